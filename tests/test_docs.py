"""The documentation site builds strictly, and every section the code cites exists.

* ``mkdocs build --strict`` (the command CI runs, with the API reference generated from the
  docstrings by mkdocstrings) succeeds into a temporary directory, and a page with a broken
  cross-reference makes the same build fail;
* the prose pages are numbered (``## N.M Title`` on page N) so that docstrings can cite them;
* every citation ``docs/PAGE.md §N.M`` (or a bare ``§N.M``) in the package, the tests, the
  configs and the READMEs names a heading that exists, on that page when a page is named;
* nothing cites the internal specification any more.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# Pages written elsewhere in the project that the nav links; if one is not in this tree yet the
# build copy gets a one-line page in its place (printed, never written into docs/).
PENDING = ("supported-ranges.md",)
CITATION = re.compile(r"(?:(docs/[\w./-]+\.md)\s*)?§\s*(\d+(?:\.\d+)*)")
HEADING = re.compile(r"^(#{1,3})\s+(\d+(?:\.\d+)*)\.?\s+\S", re.M)
SOURCES = ("minimax", "tests", "conf", "experiments/README.md", "README.md", "docs")


def _numbered_pages() -> dict[str, set[str]]:
    """page path ('docs/model.md') -> section numbers of its headings."""
    return {f"docs/{p.relative_to(DOCS).as_posix()}": {m[1] for m in HEADING.findall(p.read_text())}
            for p in DOCS.rglob("*.md")}


def _build(docs_dir: Path, site_dir: Path) -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` of ``mkdocs.yml`` with its docs taken from ``docs_dir``."""
    cfg = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    cfg["docs_dir"] = str(docs_dir)
    cfg["hooks"] = [str(ROOT / h) for h in cfg.get("hooks", [])]
    for plugin in cfg["plugins"]:
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            plugin["mkdocstrings"]["handlers"]["python"]["paths"] = [str(ROOT)]
    config = site_dir.parent / "mkdocs.yml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d",
         str(site_dir)], capture_output=True, text=True, env=env, timeout=300)


def _docs_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "docs"
    shutil.copytree(DOCS, copy)
    for page in PENDING:
        if not (copy / page).exists():
            print(f"docs/{page} is not in this tree; the build uses a placeholder page")
            (copy / page).write_text(f"# {page}\n")
    return copy


@pytest.mark.slow
def test_docs_build_strict(tmp_path):
    docs = _docs_copy(tmp_path)
    site = tmp_path / "site"
    result = _build(docs, site)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-4000:]}"
    assert "WARNING" not in result.stderr, result.stderr[-4000:]
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("index.html"))
    print(f"{len(pages)} pages: {pages}")
    nav_pages = [p for p in yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]]
    assert len(pages) >= len(nav_pages)
    # the API reference is generated from the docstrings, not written by hand
    api = (site / "api" / "index.html").read_text()
    for name in ("minimax.certify", "minimax.Game", "minimax.solve_mixed", "minimax.LEVERS"):
        assert f'id="{name}"' in api, name
    modules = (site / "api" / "modules" / "index.html").read_text()
    for name in ("minimax.solver.solve", "minimax.response.best_response",
                 "minimax.certificate.lagrangian_lower_bound"):
        assert f'id="{name}"' in modules, name
    assert ":func:" not in modules and ":class:" not in modules  # docs/hooks.py


@pytest.mark.slow
def test_docs_build_fails_on_a_broken_reference(tmp_path):
    docs = _docs_copy(tmp_path)
    page = docs / "model.md"
    page.write_text(page.read_text() + "\nSee [`nothing`][minimax.no_such_function].\n")
    result = _build(docs, tmp_path / "site")
    assert result.returncode != 0
    assert "minimax.no_such_function" in result.stderr


def test_prose_pages_are_numbered():
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    chapters = {}
    for item in nav:
        (title, target), = item.items()
        m = re.match(r"(\d+)\. ", title)
        if m:
            chapters[target] = m.group(1)
    assert len(chapters) == 7, chapters
    for page, number in chapters.items():
        text = (DOCS / page).read_text()
        assert text.startswith(f"# {number}. "), f"docs/{page}: title must start '# {number}. '"
        for heading in re.findall(r"^## (.*)$", text, re.M):
            assert re.match(rf"{number}\.\d+ \S", heading), (
                f"docs/{page}: section heading {heading!r} is not numbered {number}.M")


def _lines(sources, suffixes=(".py", ".md", ".yaml")):
    """(path, line number, line) of every file with one of ``suffixes`` under ``sources``."""
    for source in sources:
        path = ROOT / source
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix in suffixes)
        for f in files:
            for lineno, line in enumerate(f.read_text().splitlines(), 1):
                yield f, lineno, line


def _citations() -> list[tuple[str, int, str | None, str]]:
    found = []
    for f, lineno, line in _lines(SOURCES):
        for page, number in CITATION.findall(line):
            found.append((f"{f.relative_to(ROOT)}:{lineno}", lineno, page or None, number))
    return found


def test_every_section_citation_resolves():
    headings = _numbered_pages()
    everywhere = set().union(*headings.values())
    citations = _citations()
    assert len(citations) >= 20, "expected the package to cite the docs by section"
    bad = []
    for where, _, page, number in citations:
        if page is None:
            ok = number in everywhere
        else:
            ok = page in headings and number in headings[page]
        if not ok:
            bad.append(f"{where}: {page or ''} §{number}")
    assert not bad, "citations to sections that do not exist:\n" + "\n".join(bad)


def test_citation_check_catches_a_missing_section():
    headings = _numbered_pages()
    assert "1.4" in headings["docs/model.md"]
    assert "3.3" not in headings["docs/model.md"] and "3.3" in headings["docs/certificates.md"]
    assert "9.9" not in set().union(*headings.values())


def test_nothing_cites_the_internal_specification():
    stale = re.compile(r"spec(?:'s)? sections?\s*\d|GAME\.md|the spec\b", re.I)
    hits = [f"{f.relative_to(ROOT)}:{lineno}: {line.strip()}"
            for f, lineno, line in _lines(SOURCES)
            if f != Path(__file__) and stale.search(line)]
    assert not hits, "cite docs/PAGE.md §N instead:\n" + "\n".join(hits)


def test_one_spelling_of_defense():
    """docs/usage.md §6.6: the American spelling everywhere (identifiers, configs, pages)."""
    british = re.compile("defen" + "ce", re.I)
    sources = (*SOURCES, "experiments", "pyproject.toml", ".ci")
    hits = [f"{f.relative_to(ROOT)}:{lineno}: {line.strip()}"
            for f, lineno, line in _lines(sources, (".py", ".md", ".yaml", ".toml", ""))
            if british.search(line)]
    assert not hits, "write 'defense' (docs/usage.md §6.6):\n" + "\n".join(hits)


def test_no_module_is_shadowed_by_a_function():
    """docs/api/index.md: ``minimax.X`` is the module ``minimax/X.py`` or no attribute at all.

    A package that exports a function under its module's name (``minimax.solve`` the function
    over ``minimax/solve.py``) makes ``import minimax.X as m`` bind the function.
    """
    import importlib
    import pkgutil

    import minimax

    clashes = []
    for info in pkgutil.walk_packages(minimax.__path__, "minimax."):
        parent, _, leaf = info.name.rpartition(".")
        module = importlib.import_module(info.name)
        attr = getattr(importlib.import_module(parent), leaf, None)
        if attr is not None and attr is not module:
            clashes.append(f"{parent}.{leaf} is {type(attr).__name__}, not the module")
    assert not clashes, "\n".join(clashes)
