"""The project explains itself: no file cites documents outside the repository, and the links
and citations of `docs/` point at things that exist.

- No project file (Python, Markdown, TOML, Makefile, CI scripts) mentions the old design notes
  (`ALGORITHMS` + `.md`) or a path under `shared` + `/`, which are not part of the repository.
- Every relative Markdown link in `docs/*.md` resolves to a file or folder of the repository,
  and an anchor (`page.md#section`) names a heading of that page.
- Every `docs/<page>.md` cited anywhere exists, and a citation `docs/algorithms.md, <section>`
  (or `docs/algorithms.md (<section>)`) names one of that page's `## ` sections.
- `docs/README.md` lists every page of `docs/`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# Spelled in pieces so that this file does not match its own patterns.
FORBIDDEN = [re.compile(re.escape("ALGORITHMS" + ".md")),  # docs/algorithms.md is ours
             re.compile(r"(?<![\w.-])" + "shared" + "/")]
TEXT_SUFFIXES = {".py", ".md", ".toml", ".cfg", ".ini", ".txt", ".sh", ".yml", ".yaml"}
TEXT_NAMES = {"Makefile"}
SKIP_DIRS = {"__pycache__", "build", "dist", "runs", "node_modules"}
VISIBLE_HIDDEN_DIRS = {".ci", ".github"}

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CITED_PAGE = re.compile(r"\bdocs/([\w.-]+\.md)\b")
CITED_SECTION = re.compile(r"\bdocs/algorithms\.md(?:,|\s*\()[\s#]*([A-Za-z][\w-]*)")


def project_files() -> list[Path]:
    """The repository's text files: sources, docs, configuration and CI scripts (not the
    virtual environment, caches, build outputs or run directories)."""
    out = []
    stack = [ROOT]
    while stack:
        folder = stack.pop()
        for path in sorted(folder.iterdir()):
            if path.is_dir():
                hidden = path.name.startswith(".") and path.name not in VISIBLE_HIDDEN_DIRS
                if not (hidden or path.name in SKIP_DIRS or path.name.endswith(".egg-info")):
                    stack.append(path)
            elif (path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES
                  or folder.name in VISIBLE_HIDDEN_DIRS):
                out.append(path)
    return out


def doc_pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation other than '-' and '_' dropped,
    spaces turned into '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def headings(page: Path) -> list[str]:
    """The headings of a Markdown page, outside fenced code blocks."""
    found, fenced = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            found.append(line.lstrip("#").strip())
    return found


def links(page: Path) -> list[str]:
    """Targets of the Markdown links of a page, outside fenced code blocks and inline code."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    return LINK.findall(text)


def test_the_checks_see_the_project():
    files = {p.relative_to(ROOT).as_posix() for p in project_files()}
    assert {"Makefile", "pyproject.toml", "README.md", "agents/grpo.py",
            "docs/algorithms.md", "tests/test_docs.py"} <= files
    assert not any(f.startswith((".venv/", ".git/")) for f in files)
    assert [p.name for p in doc_pages()].count("algorithms.md") == 1


def test_no_file_cites_documents_outside_the_repository():
    offenders = []
    for path in project_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if any(p.search(line) for p in FORBIDDEN):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, ("cite the docs/ pages or the papers instead of documents outside "
                           "the repository:\n" + "\n".join(offenders))


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: p.name)
def test_doc_links_point_at_repository_files(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        file = (page.parent / path_part).resolve() if path_part else page
        if not file.is_relative_to(ROOT) or not file.exists():
            broken.append(f"{target}: no such file in the repository")
        elif anchor and file.suffix == ".md" and anchor not in {slug(h) for h in headings(file)}:
            broken.append(f"{target}: no heading with anchor #{anchor} in {file.name}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_cited_doc_pages_and_sections_exist():
    sections = {h.split()[0] for h in _level_two(DOCS / "algorithms.md")}
    assert {"GRPO", "IB-TPO", "SEELE", "MRT", "B-STaR"} <= sections
    missing = []
    for path in project_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for name in CITED_PAGE.findall(text):
            if not (DOCS / name).is_file():
                missing.append(f"{path.relative_to(ROOT)}: docs/{name} does not exist")
        for section in CITED_SECTION.findall(text):
            if section not in sections:
                missing.append(f"{path.relative_to(ROOT)}: docs/algorithms.md has no section "
                               f"{section!r} (sections: {sorted(sections)})")
    assert not missing, "\n".join(missing)


def test_the_docs_index_lists_every_page():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    unlisted = [p.name for p in doc_pages() if p.name != "README.md" and p.name not in index]
    assert not unlisted, f"docs/README.md does not list {unlisted}"


def _level_two(page: Path) -> list[str]:
    """The `## ` headings of a page, outside fenced code blocks."""
    out, fenced = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            out.append(line[3:].strip())
    return out
