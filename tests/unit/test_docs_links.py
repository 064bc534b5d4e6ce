"""The README and docs/ stand on their own: every relative link names a file of the
repository, every #anchor a heading of the page it points into, and none leaves the
repository (a reader of a clone has nothing beside it)."""

import re
from pathlib import Path

import pytest

from services.platform.settings import PROJECT_ROOT

PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
# [text](target): the inline links of these pages (none nests brackets in its text).
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text()))


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of the page's headings: lower case, punctuation but '-' and '_'
    dropped, spaces as '-'."""
    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", page.read_text()), re.MULTILINE)
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_resolves_inside_the_repository(page: Path) -> None:
    assert links(page) or page.name != "README.md", "the README links its docs"
    for target in links(page):
        assert not re.match(r"[a-z]+:", target), f"{page.name} links outside: {target}"
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        assert linked.is_relative_to(PROJECT_ROOT), f"{page.name}: {target} leaves the repository"
        assert linked.is_file(), f"{page.name}: {target} names no file"
        if anchor:
            assert anchor in anchors(linked), (
                f"{page.name}: no heading for #{anchor} in {linked.name}"
            )


def test_the_readme_stays_short() -> None:
    """The front door: what it is, the two commands, first calls, configuration, links."""
    assert len((PROJECT_ROOT / "README.md").read_text().splitlines()) <= 300
