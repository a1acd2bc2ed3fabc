"""README.md and docs/*.md point only at things that exist: every relative link resolves to a
file, every ``#anchor`` to a heading of its page (GitHub's slugs), and every repository path
written in backticks (``engine/agents/monitor.py``, ``bench/*.py``, ``DESIGN.md``) is there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REPO_DIRS = ("engine", "tui", "bench", "tests", "rules", "scenarios", "reports", "docs", ".ci")

FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """The page without fenced code blocks (links there are examples, not links)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces
    to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[`*_~]|<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(prose(page.read_text(encoding="utf-8"))):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> list[str]:
    text = CODE_SPAN.sub("", prose(page.read_text(encoding="utf-8")))
    return LINK.findall(text) + REFERENCE.findall(text)


def repo_paths(page: Path) -> list[str]:
    """Backticked words that name a file or directory of this repository: a path under one of
    its directories, or a bare file name of the kinds it ships (``DESIGN.md``,
    ``docker-compose.yml``, ``.env.example``). Not runtime paths (``var/…``, ``.env``), URL or
    topic patterns, or module names written without their package."""
    out = []
    for span in CODE_SPAN.findall(prose(page.read_text(encoding="utf-8"))):
        word = span.strip()
        if " " in word or "{" in word or "\\" in word:
            continue
        in_repo_dir = "/" in word and word.split("/")[0] in REPO_DIRS
        shipped = "/" not in word and re.fullmatch(r"[\w.-]+\.(md|ya?ml|toml|conf|example)", word)
        if in_repo_dir or shipped:
            out.append(word)
    return out


def cases(kind: str) -> list[tuple[Path, str]]:
    get = links if kind == "link" else repo_paths
    return [(page, target) for page in PAGES for target in get(page)]


def test_the_pages_have_links_to_check() -> None:
    assert len(cases("link")) >= 5 and len(cases("path")) >= 20


@pytest.mark.parametrize(
    ("page", "target"), cases("link"), ids=lambda v: v.name if isinstance(v, Path) else v
)
def test_every_relative_link_resolves(page: Path, target: str) -> None:
    if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not fetched (no network)
        assert target.startswith(("https://", "http://", "mailto:")), target
        return
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    assert dest.exists(), f"{page.name}: link to missing {path}"
    assert dest.is_relative_to(ROOT), f"{page.name}: link leaves the repository: {target}"
    if anchor:
        assert dest.suffix == ".md", f"{page.name}: anchor into a non-markdown file: {target}"
        assert anchor in anchors(dest), f"{page.name}: no heading #{anchor} in {dest.name}"


@pytest.mark.parametrize(
    ("page", "target"), cases("path"), ids=lambda v: v.name if isinstance(v, Path) else v
)
def test_every_repository_path_exists(page: Path, target: str) -> None:
    if "/" not in target:  # a bare name: somewhere in the repository (`toy_day.yaml`)
        found = [p for p in ROOT.rglob(target) if ".venv" not in p.parts]
        assert found, f"{page.name}: `{target}` is not in the repository"
    elif "*" in target:
        assert list(ROOT.glob(target)), f"{page.name}: `{target}` matches no file"
    else:
        where = ROOT / target.rstrip("/")
        assert where.exists(), f"{page.name}: `{target}` is not in the repository"


def test_slugs_follow_github() -> None:
    assert slug("Offering it to colleagues over SSH") == "offering-it-to-colleagues-over-ssh"
    assert slug("`controlroom detect`: historian CSV, any signals") == (
        "controlroom-detect-historian-csv-any-signals"
    )
    assert slug("Alert → ticket latency (p95)") == "alert--ticket-latency-p95"
