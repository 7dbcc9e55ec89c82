"""The README and the docs stand alone: every page they point to is in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted(ROOT.glob("*/README.md"))]
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
UPWARD = re.compile(r"(?<![\w/.])((?:\.\./)+[\w./-]+)")
DOC_PAGE = re.compile(r"(?<![\w/.-])(docs/[\w/.-]+\.md)")


def _inside(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_page_names_resolve_inside_the_repository(page: Path) -> None:
    text = page.read_text()
    broken: list[str] = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        resolved = page.parent / target
        if not (_inside(resolved) and resolved.exists()):
            broken.append(f"link {target}")
    for target in UPWARD.findall(text):
        if not _inside(page.parent / target):
            broken.append(f"path outside the repository: {target}")
    broken += [f"no such page: {name}" for name in DOC_PAGE.findall(text) if not (ROOT / name).exists()]

    assert broken == []
