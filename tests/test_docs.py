"""The docs: every relative link in README.md and docs/ resolves, and every management
command and each of its long flags is named somewhere in them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import load_command_class

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# Django's own flags, the same for every command.
COMMON_FLAGS = {
    "--help", "--version", "--verbosity", "--settings", "--pythonpath", "--traceback",
    "--no-color", "--force-color", "--skip-checks",
}  # fmt: skip


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, - for space."""
    found = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_resolves(page):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name}: no heading for #{anchor}"


def command_names() -> list[str]:
    folder = ROOT / "predictor" / "management" / "commands"
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("name", command_names())
def test_every_command_and_flag_is_documented(name):
    text = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    assert re.search(rf"\b{name}\b", text), f"the {name} command is not documented"
    parser = load_command_class("predictor", name).create_parser("manage.py", name)
    undocumented = [
        action.option_strings
        for action in parser._actions
        if any(flag.startswith("--") for flag in action.option_strings)
        and not set(action.option_strings) & COMMON_FLAGS
        and not any(flag in text for flag in action.option_strings)
    ]
    assert not undocumented, f"{name}: flags not named in README.md or docs/: {undocumented}"
