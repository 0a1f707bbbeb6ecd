"""The README is a front page that links into docs/; mkdocs --strict (make docs, CI) checks the
site's own links, but not the README's, which the forge renders: this checks those, and that
every page is in mkdocs.yml's nav (so the site and the README list the same pages)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

# Issue 22: the reference lives in docs/, the README stays a front page.
README_MAX_LINES = 250

_LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """Python-Markdown's toc slug (what mkdocs uses), for a heading's text."""
    text = heading.replace("`", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    found, in_code = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#{1,6} (.+)", line)):
            found.add(slug(m.group(1)))
    return found


def readme_links() -> list[str]:
    return [t for t in _LINK.findall(README.read_text(encoding="utf-8"))
            if not re.match(r"[a-z]+:", t)]


def test_readme_is_a_front_page():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines: move reference text into docs/"


def test_readme_keeps_the_product_card_spellings_and_the_layout_line():
    text = README.read_text(encoding="utf-8")
    for spelling in ("edgeface run", "--camera 0", "edgeface quantize --int8", "edgeface bench",
                     "make demo", "make test"):
        assert spelling in text, spelling
    assert "`edge/` installs as the package `edgeface`" in text


@pytest.mark.parametrize("target", readme_links())
def test_readme_link_resolves(target):
    path, _, anchor = target.partition("#")
    page = (ROOT / path) if path else README
    assert page.exists(), f"README links to {path}, which does not exist"
    if anchor:
        assert anchor in anchors(page), f"README links to {target}: no such heading in {path}"


def test_readme_links_into_every_docs_page_and_nav_lists_them_all():
    pages = {p.name for p in DOCS.glob("*.md")}
    linked = {Path(t.partition("#")[0]).name for t in readme_links() if t.startswith("docs/")}
    assert pages - linked == set(), "pages the README does not link to"
    nav = set(re.findall(r":\s*([\w-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(),
                         re.MULTILINE))
    assert nav == pages, f"mkdocs.yml nav vs docs/: {sorted(nav ^ pages)}"


def test_slug_matches_mkdocs_for_the_headings_the_docs_link_to():
    assert slug("Running on the device: `edgeface run`") == "running-on-the-device-edgeface-run"
    assert slug("The token (`EDGEFACE_API_TOKEN`)") == "the-token-edgeface_api_token"
    assert slug("Motion gating: `--motion`") == "motion-gating-motion"
