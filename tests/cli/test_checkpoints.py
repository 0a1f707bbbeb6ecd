"""Model registry and `edgeface models`: digests against the shared checkpoints, verified
downloads from a loopback HTTP server and from local mirrors, and loud failures."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from edgeface import checkpoints
from edgeface.cli import main
from edgeface.errors import EXIT_BAD_MODEL, EXIT_FAILURE, EdgefaceError

V1 = "featherface-v1"


@pytest.fixture(scope="module")
def mirror_dir(shared_dir) -> Path:
    return shared_dir / "models" / "featherface"


@pytest.fixture(autouse=True)
def no_upstream(monkeypatch):
    """No test may reach the internet: upstream URLs are unusable, the env mirror unset."""
    monkeypatch.delenv(checkpoints.MIRROR_ENV, raising=False)
    monkeypatch.delenv(checkpoints.CACHE_ENV, raising=False)

    def refuse(url, *a, **kw):
        if not str(getattr(url, "full_url", url)).startswith("http://127.0.0.1:"):
            raise AssertionError(f"test tried to download {url}")
        return real(url, *a, **kw)

    import urllib.request

    real = urllib.request.urlopen
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def http_mirror(mirror_dir):
    """The shared model folder served on 127.0.0.1 (ephemeral port) from a thread."""
    handler = type("Handler", (_Handler,), {"requests": []})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(mirror_dir)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.glob("*.part"))


# --------------------------------------------------------------------------- the registry

def test_registry_matches_the_shared_checkpoints(mirror_dir):
    sums = dict(reversed(line.split()) for line in
                (mirror_dir / "SHA256SUMS").read_text().splitlines() if line.strip())
    assert {c.filename for c in checkpoints.REGISTRY.values()} == set(sums)
    for c in checkpoints.REGISTRY.values():
        assert c.sha256 == sums[c.filename], c.name
        assert checkpoints.is_valid(mirror_dir / c.filename, c), c.name
        assert c.kind in ("detector", "backbone") and (c.arch is None) == (c.kind == "backbone")
        assert c.url is None or c.url.startswith("https://github.com/fokouarnaud/FeatherFace/")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(EdgefaceError, match="featherface-eca-cbam"):
        checkpoints.get("featherface-v3")


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert checkpoints.default_cache_dir() == tmp_path / "xdg" / "edgeface" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert checkpoints.default_cache_dir() == tmp_path / "home" / ".cache" / "edgeface" / "models"
    monkeypatch.setenv(checkpoints.CACHE_ENV, str(tmp_path / "explicit"))
    assert checkpoints.default_cache_dir() == tmp_path / "explicit"


# --------------------------------------------------------------------------- pull

def test_pull_over_http_verifies_and_caches(tmp_path, http_mirror):
    url, requests = http_mirror
    cache = tmp_path / "cache"
    path = checkpoints.pull(V1, cache, mirror=url, progress=False)
    ckpt = checkpoints.get(V1)
    assert path == cache / ckpt.filename and checkpoints.sha256_file(path) == ckpt.sha256
    assert requests == [f"/{ckpt.filename}"] and _leftovers(cache) == []
    assert checkpoints.pull(V1, cache, mirror=url, progress=False) == path
    assert len(requests) == 1, "a verified cached file is not downloaded again"


def test_pull_from_env_mirror_directory_via_cli(tmp_path, mirror_dir, monkeypatch, capsys):
    monkeypatch.setenv(checkpoints.MIRROR_ENV, str(mirror_dir))
    cache = tmp_path / "cache"
    assert main(["models", "pull", "featherface-eca-cbam", "mobilenetv1-0.25-imagenet",
                 "--cache-dir", str(cache), "-q"]) == 0
    printed = capsys.readouterr().out.split()
    names = [checkpoints.get(n).filename for n in ("featherface-eca-cbam",
                                                "mobilenetv1-0.25-imagenet")]
    assert printed == [str(cache / n) for n in names]
    assert main(["models", "list", "--cache-dir", str(cache)]) == 0
    table = capsys.readouterr().out
    cached = {line.split()[0]: line.split()[-1] for line in table.splitlines()[1:4]}
    assert cached == {"featherface-v1": "no", "featherface-eca-cbam": "yes",
                      "mobilenetv1-0.25-imagenet": "yes"}


def test_corrupted_mirror_fails_loudly_and_leaves_nothing(tmp_path, mirror_dir, capsys):
    bad = tmp_path / "bad-mirror"
    bad.mkdir()
    ckpt = checkpoints.get(V1)
    data = bytearray((mirror_dir / ckpt.filename).read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte
    (bad / ckpt.filename).write_bytes(bytes(data))
    cache = tmp_path / "cache"
    rc = main(["models", "pull", V1, "--mirror", str(bad), "--cache-dir", str(cache), "-q"])
    err = capsys.readouterr().err
    assert rc == EXIT_BAD_MODEL and "checksum mismatch" in err and ckpt.sha256 in err
    assert list(cache.iterdir()) == []  # neither the file nor a .part


def test_oversized_download_is_cut_off(tmp_path, mirror_dir):
    big = tmp_path / "big"
    big.mkdir()
    ckpt = checkpoints.get(V1)
    (big / ckpt.filename).write_bytes((mirror_dir / ckpt.filename).read_bytes() + b"\0" * 10)
    with pytest.raises(checkpoints.ChecksumMismatch, match="larger than"):
        checkpoints.pull(V1, tmp_path / "cache", mirror=str(big), progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_corrupted_cache_is_replaced(tmp_path, mirror_dir):
    cache = tmp_path / "cache"
    cache.mkdir()
    ckpt = checkpoints.get(V1)
    (cache / ckpt.filename).write_bytes(b"truncated")
    path = checkpoints.pull(V1, cache, mirror=str(mirror_dir), progress=False)
    assert checkpoints.sha256_file(path) == ckpt.sha256


def test_missing_file_on_http_mirror(tmp_path, http_mirror, capsys):
    url, _ = http_mirror
    rc = main(["models", "pull", V1, "--mirror", url + "nowhere/", "--cache-dir",
               str(tmp_path / "cache"), "-q"])
    assert rc == EXIT_FAILURE and "HTTP 404" in capsys.readouterr().err
    assert _leftovers(tmp_path / "cache") == []


def test_backbone_needs_a_mirror(tmp_path, capsys):
    rc = main(["models", "pull", "mobilenetv1-0.25-imagenet", "--cache-dir", str(tmp_path)])
    assert rc == EXIT_FAILURE and "mirror required" in capsys.readouterr().err


def test_verify_directory(tmp_path, mirror_dir, capsys):
    assert main(["models", "verify", str(mirror_dir)]) == 0
    assert capsys.readouterr().out.count("ok ") == len(checkpoints.REGISTRY)
    ckpt = checkpoints.get(V1)
    (tmp_path / ckpt.filename).write_bytes(b"x")
    assert main(["models", "verify", str(tmp_path)]) == EXIT_BAD_MODEL
    out = capsys.readouterr().out
    assert "mismatch" in out and "missing" in out
