"""`edgeface models`: the known checkpoints, a verified download cache."""

from __future__ import annotations

from pathlib import Path

import click

from edgeface import checkpoints
from edgeface.cli.options import FiniteRange
from edgeface.errors import EXIT_BAD_MODEL, EdgefaceError

_CACHE_HELP = (f"Model cache [default: ${checkpoints.CACHE_ENV}, else "
               "$XDG_CACHE_HOME/edgeface/models, else ~/.cache/edgeface/models].")
_MIRROR_HELP = ("Fetch from this directory or http(s) base URL (holding the files under their "
                f"registry names) instead of upstream [env: {checkpoints.MIRROR_ENV}].")


def _err(msg: str) -> None:
    click.echo(msg, err=True)


@click.group("models")
def models() -> None:
    """List, download and verify the known FeatherFace checkpoints."""


@models.command("list")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help=_CACHE_HELP)
@click.option("-v", "--verbose", is_flag=True, help="Also show upstream source and description.")
def list_cmd(cache_dir: Path | None, verbose: bool) -> None:
    """Known checkpoints, and whether a verified copy is cached."""
    cache = cache_dir or checkpoints.default_cache_dir()
    rows = [("NAME", "KIND", "ARCH", "PARAMS", "SIZE", "SHA256", "CACHED")]
    for c in checkpoints.REGISTRY.values():
        rows.append((c.name, c.kind, c.arch or "-", f"{c.params:,}" if c.params else "-",
                     f"{c.size / 2**20:.1f} MiB", c.sha256[:12],
                     "yes" if checkpoints.cached(c, cache) else "no"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    if verbose:
        for c in checkpoints.REGISTRY.values():
            click.echo(f"\n{c.name}: {c.description}\n  file:   {c.filename}\n"
                       f"  sha256: {c.sha256}\n  source: {c.source} ({c.license})\n"
                       f"  url:    {c.url or 'none (mirror required)'}")
    click.echo(f"\ncache: {cache}")


@models.command("pull")
@click.argument("names", nargs=-1, required=True)
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help=_CACHE_HELP)
@click.option("--mirror", default=None, metavar="DIR|URL", help=_MIRROR_HELP)
@click.option("--timeout", default=30.0, show_default=True, type=FiniteRange(1, 3600),
              help="Network timeout per read, seconds.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def pull(names: tuple[str, ...], cache_dir: Path | None, mirror: str | None, timeout: float,
         quiet: bool) -> None:
    """Download checkpoints into the cache, verified by SHA-256.

    Prints each file's path. A cached file whose digest matches is not downloaded again;
    a mismatch deletes the partial file and exits non-zero. Checkpoints are PyTorch files:
    `edgeface export --weights PATH -o model.onnx` makes the model the runtime runs.
    """
    for name in names:
        checkpoints.get(name)  # fail on a typo before any transfer
    for name in names:
        path = checkpoints.pull(name, cache_dir, mirror, progress=not quiet, timeout=timeout,
                             log=None if quiet else _err)
        click.echo(str(path))
        ckpt = checkpoints.get(name)
        if not quiet and ckpt.arch:
            _err(f"next: edgeface export --arch {ckpt.arch} --weights {path} "
                 f"-o {ckpt.name}.onnx")


@models.command("verify")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
def verify(directory: Path | None) -> None:
    """Check checkpoint files against the registry's digests.

    DIRECTORY defaults to the cache; files are matched by their registry file names.

    Exits non-zero if any file present has the wrong digest; missing files are listed.
    """
    directory = directory or checkpoints.default_cache_dir()
    if not directory.is_dir():
        raise EdgefaceError(f"not a directory: {directory}")
    results = checkpoints.verify_dir(directory)
    for r in results:
        click.echo(f"{r.status:8s} {r.name:28s} {r.path}")
    bad = [r.name for r in results if r.status == "mismatch"]
    if bad:
        raise checkpoints.ChecksumMismatch(f"checksum mismatch: {', '.join(bad)}", EXIT_BAD_MODEL)
