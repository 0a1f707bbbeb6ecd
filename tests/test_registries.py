"""Every plugin table is one :class:`~edgeface.common.registry.Registry`: backends, sources,
sinks, commands, doctor checks, bench peers and model families.

One test walks every registered entry of every registry and checks what the rest of
edgeface relies on; one registers a fake of each kind in a scope, shows it used end to end
and gone afterwards. The fake backend is a folder (a package written below, with its spec
and its runtime module) plus one registry line: what adding a backend takes.
"""

from __future__ import annotations

import importlib
import importlib.util
import textwrap

import click
import numpy as np
import pytest

from edgeface.bench.peers import PEERS, Peer, available_peers
from edgeface.cli import COMMANDS, CommandEntry, main
from edgeface.cli.doctor_cmd import default_checks
from edgeface.common.registry import Registry
from edgeface.errors import ConfigError
from edgeface.inference.backends import BACKENDS, PROVIDERS, backend_for, open_backend
from edgeface.inference.backends.spec import load_attr
from edgeface.system import doctor_host, doctor_stack
from edgeface.system.doctor import STATUSES, Finding, Probe, run_checks

REFERENCE = "^[a-z_][a-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$"


def _runtime_registries():
    pytest.importorskip("cv2", reason="sources and sinks need OpenCV: pip install '.[cpu]'")
    from edgeface.runtime.sinks import SINKS
    from edgeface.runtime.sources import SOURCES

    return SOURCES, SINKS


# -- the generic type ----------------------------------------------------------------------

def test_registry_names_the_known_kinds_refuses_a_taken_name_and_scopes_restore():
    reg: Registry[str] = Registry("colour", name_of=str)
    reg.register("red")
    reg.register("blue")
    assert reg.names() == ["red", "blue"] and "red" in reg and len(reg) == 2
    with pytest.raises(ConfigError, match=r"unknown colour 'green' \(known: red, blue\)"):
        reg.get("green")
    with pytest.raises(ValueError, match="registered already"):
        reg.register("other", "red")
    with reg.scoped("green"):
        assert reg.names() == ["red", "blue", "green"]
    with reg.scoped("RED", "red"):  # replaces in place, then the old entry comes back
        assert reg["red"] == "RED"
    assert reg.items() == [("red", "red"), ("blue", "blue")]
    with pytest.raises(RuntimeError), reg.scoped("green"):
        raise RuntimeError  # the scope ends on an error too
    assert "green" not in reg


# -- every registered kind -----------------------------------------------------------------

def test_every_backend_spec_is_complete_and_consistent():
    import re

    assert BACKENDS.names()[:1] == ["onnxruntime"]  # the fallback for unknown suffixes
    seen: dict[str, str] = {}
    for name, spec in BACKENDS.items():
        assert spec.name == name and spec.install.strip(), name
        assert re.match(REFERENCE, spec.factory), spec.factory
        module = spec.factory.partition(":")[0]
        assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"
        assert spec.providers and set(spec.providers) <= set(PROVIDERS) - {"auto"}, name
        assert set(spec.gpu_providers) <= set(spec.providers), name
        assert set(spec.builds_on_open) <= set(spec.providers), name
        for suffix in spec.suffixes:
            assert suffix.startswith(".") and suffix == suffix.lower(), (name, suffix)
            assert suffix not in seen, f"{suffix} is both {seen[suffix]}'s and {name}'s"
            seen[suffix] = name
            assert backend_for(f"model{suffix.upper()}").name == name
        for check_name, ref in spec.doctor_checks:
            assert re.match(REFERENCE, ref) and callable(load_attr(ref, check_name)), ref
        for ref in filter(None, (spec.model_check, spec.engine_builder)):
            assert re.match(REFERENCE, ref) and callable(load_attr(ref, name)), ref
    # what used to be hand lists elsewhere (service install, doctor)
    assert BACKENDS["tensorrt"].device_bound and BACKENDS["tensorrt"].needs_gpu("auto")
    assert "threads" not in BACKENDS["tensorrt"].options  # the GPU uses no CPU threads
    assert not BACKENDS["onnxruntime"].needs_gpu("auto")
    assert BACKENDS["onnxruntime"].needs_gpu("cuda")
    assert BACKENDS["onnxruntime"].builds_engine("tensorrt")


def test_every_source_and_sink_kind_is_reachable_and_described():
    sources, sinks = _runtime_registries()
    flags = []
    for name, kind in sources.items():
        assert kind.name == name and callable(kind.make_reader), name
        assert kind.selector is not None or kind.matches is not None, f"{name}: unreachable"
        for opt in ([kind.selector] if kind.selector else []) + list(kind.options):
            assert opt.flag.startswith("--") and opt.help.strip(), (name, opt.key)
            flags.append(opt.flag)
    assert len(flags) == len(set(flags)), sorted(flags)
    keys = []
    for name, kind in sinks.items():
        assert kind.name == name and kind.options and callable(kind.build), name
        assert not kind.enabled({}), f"{name} is on with nothing configured"
        keys += [o.key for o in kind.options]
    assert len(keys) == len(set(keys)), sorted(keys)


def test_every_command_loads_under_its_name_with_its_help():
    for name, entry in COMMANDS.items():
        assert entry.name == name and entry.help.strip().endswith("."), name
        command = entry.load()
        assert isinstance(command, click.Command) and command.name in (name, entry.attr)


def test_every_doctor_check_runs_on_an_empty_machine(tmp_path):
    """Every check (stack, backends, host) gives findings with a known status on a root
    with nothing in it and no module importable: never an exception."""

    def nothing(name):
        raise ImportError(f"No module named {name!r}")

    checks = default_checks()
    names = [n for n, _ in checks]
    assert len(names) == len(set(names)), names
    assert {"python", "numpy", "opencv", "onnxruntime", "tensorrt", "cpu", "disk"} <= set(names)
    probe = Probe(root=tmp_path, importer=nothing, version_of=lambda name: None,
                  run=lambda argv, timeout: None, commands=False, machine="aarch64",
                  disk_usage=lambda path: type("U", (), {"free": 1 << 40, "total": 1 << 41})())
    for name, check in checks:
        got = check(probe)
        for f in got if isinstance(got, list) else [got]:
            assert isinstance(f, Finding) and f.status in STATUSES and f.summary, (name, f)


def test_every_bench_peer_says_what_it_is():
    for name, peer in PEERS.items():
        assert peer.name == name and peer.label and peer.module and peer.package, name
        assert peer.allows.strip(), f"{name}: record what its API lets us control"


def test_every_model_family_owns_a_complete_output_contract():
    from edgeface.inference.families import FAMILIES, get_family

    assert "featherface" in FAMILIES
    for name, fam in FAMILIES.items():
        assert fam.name == name and fam.label and get_family(name) is fam
        names = [o.name for o in fam.outputs]
        assert len(names) == 3 and len(set(names)) == 3, name  # boxes, scores, landmarks
        info = fam.info
        assert info.family == name and len(info.mean) == 3 and info.anchors() > 0, name
        assert callable(fam.decoder(info)), name


# -- a fake of each kind, in a scope ------------------------------------------------------

FAKE_SPEC = '''
    """A backend for tests only: what a new backend's folder holds."""
    from edgeface.inference.backends.spec import BackendSpec

    SPEC = BackendSpec(
        "fake-for-tests", (".fake",), ("cpu",),
        "fake_backend_for_tests.runtime:FakeBackendForTests",
        "nothing to install: it exists in tests only", options=("threads", "faces"))
'''
FAKE_RUNTIME = '''
    """FakeBackendForTests: the InferenceBackend surface, one face where the options say."""
    import numpy as np

    from edgeface.inference.model_info import ModelInfo


    class FakeBackendForTests:
        name = "fake-for-tests"

        def __init__(self, path, *, provider="cpu", input_size=None, threads=None, faces=1):
            self.info = ModelInfo(arch="fake", input_size=tuple(input_size or (64, 64)))
            self.providers, self.threads, self.faces = [provider], threads, faces
            self.frames = 0

        def infer(self, blob):
            self.frames += 1
            anchors = self.info.anchors()
            scores = np.zeros(anchors, np.float32)
            scores[:self.faces] = 0.99
            return (np.zeros((anchors, 4), np.float32), scores,
                    np.zeros((anchors, 10), np.float32))
'''
FAKE_COMMAND = '''
    import click


    @click.command("fake-for-tests")
    def fake():
        """A command for tests only."""
        click.echo("fake command ran")
'''


@pytest.fixture
def fake_folder(tmp_path, monkeypatch):
    """``fake_backend_for_tests/``: a backend's folder (spec + runtime) and a command."""
    pkg = tmp_path / "fake_backend_for_tests"
    pkg.mkdir()
    for file, text in (("__init__.py", FAKE_SPEC), ("runtime.py", FAKE_RUNTIME),
                       ("command.py", FAKE_COMMAND)):
        (pkg / file).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("fake_backend_for_tests")
    for mod in [m for m in list(importlib.sys.modules) if m.startswith("fake_backend_for")]:
        del importlib.sys.modules[mod]


def test_a_fake_backend_is_one_folder_plus_one_registry_line(fake_folder, tmp_path):
    from edgeface.inference.detector import Detector

    model = tmp_path / "m.fake"
    model.write_bytes(b"fake")
    with BACKENDS.scoped(fake_folder.SPEC):  # the one registry line
        assert backend_for(model).name == "fake-for-tests"
        backend = open_backend(model, threads=3, arena=False, faces=2)  # arena: not its
        assert type(backend).__name__ == "FakeBackendForTests" and backend.threads == 3
        with pytest.raises(ConfigError, match="fake-for-tests backend has no option 'arch'"):
            open_backend(model, arch="v1")
        with pytest.raises(ConfigError, match="supports --provider cpu, not cuda"):
            open_backend(model, provider="cuda")
        detector = Detector(backend)
        dets = detector.detect(np.full((48, 64, 3), 128, np.uint8))
        assert backend.frames == 1 and len(dets) >= 1
    assert "fake-for-tests" not in BACKENDS
    assert backend_for(model).name == "onnxruntime"  # unknown suffixes again


def test_fake_source_sink_command_check_and_peer_are_used_then_gone(fake_folder, tmp_path,
                                                                    capsys):
    from edgeface.runtime.options import Option, boolean
    from edgeface.runtime.sinks import SinkContext, SinkKind, build_sinks
    from edgeface.runtime.sources import (
        CaptureSettings,
        SourceKind,
        classify,
        open_source,
        source_options,
    )
    from edgeface.runtime.sources.registry import device_number

    sources, sinks = _runtime_registries()

    class FakeReaderForTests:
        def __init__(self, frames: int):
            self.left = frames

        def open(self) -> None:
            pass

        def read(self):
            self.left -= 1
            return np.zeros((8, 8, 3), np.uint8) if self.left >= 0 else None

        def close(self) -> None:
            pass

    def reader(target, settings: CaptureSettings):
        return FakeReaderForTests(3), f"fake {target}"

    written = []

    class FakeSinkForTests:
        def write(self, result):
            written.append(result)

        def flush(self):
            pass

        def close(self):
            pass

        def describe(self):
            return "fake sink"

    source = SourceKind("fake-source", live=False, make_reader=reader,
                        matches=lambda text: device_number(text, "fakesrc"), rank=1,
                        options=(Option("fake_opt", "--fake-opt", boolean, False,
                                        help="A setting of the fake source."),))
    sink = SinkKind("fake-sink", (Option("fake_sink", "--fake-sink", boolean, False,
                                         help="Turn the fake sink on."),),
                    lambda values, context: FakeSinkForTests())

    def fake_check(probe):
        return Finding("fake-check", "info", "the fake check ran")

    with sources.scoped(source), sinks.scoped(sink), \
            COMMANDS.scoped(CommandEntry("fake-for-tests", "fake_backend_for_tests.command",
                                         "fake", "A command for tests only.")), \
            doctor_host.CHECKS.scoped(fake_check, "fake-check"), \
            PEERS.scoped(Peer("fake-peer", "Fake", "fake_backend_for_tests", "fake", "x")):
        assert classify("fakesrc:2") == ("fake-source", 2)
        assert "--fake-opt" in [o.flag for o in source_options()]
        with open_source("fakesrc:1") as src:
            frames = [src.read(timeout=5) for _ in range(4)]
        assert [f.index for f in frames[:3]] == [0, 1, 2] and frames[3] is None
        built = build_sinks({"fake_sink": True}, SinkContext())
        assert [s.describe() for s in built] == ["fake sink"]
        assert main(["fake-for-tests"]) == 0 and "fake command ran" in capsys.readouterr().out
        assert main(["--help"]) == 0 and "fake-for-tests" in capsys.readouterr().out
        findings = run_checks(Probe(root=tmp_path), [c for c in default_checks()
                                                     if c[0] == "fake-check"])
        assert [f.summary for f in findings] == ["the fake check ran"]
        assert "fake-peer" in available_peers()
        from edgeface.bench.runs import parse_model_arg

        assert parse_model_arg("peer:fake-peer").target == "fake-peer"
    assert "fake-source" not in sources and "fake-sink" not in sinks
    assert "fake-for-tests" not in COMMANDS and "fake-check" not in doctor_host.CHECKS
    assert "fake-peer" not in PEERS and "fake-check" not in doctor_stack.CHECKS
    with pytest.raises(ConfigError, match="unknown peer 'fake-peer'"):
        parse_model_arg("peer:fake-peer")
    assert main(["fake-for-tests"]) != 0
