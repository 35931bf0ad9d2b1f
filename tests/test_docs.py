"""The README is a front page (<= 150 lines) whose links resolve; the reference lives in docs/ (mkdocs.yml's nav lists
every page, and CI builds the site with --strict)."""

import re

import yaml

from tests.conftest import REPO


def test_readme_is_a_front_page_with_working_links():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    for cmd in ('pip install torch==2.13.0 && pip install -e ".[dev]"', "drsedge demo", "python -m pytest -q"):
        assert cmd in text  # the two commands
    links = [t for t in re.findall(r"\]\(([^)#]+)\)", text) if not t.startswith("http")]
    assert links and all((REPO / t).exists() for t in links), [t for t in links if not (REPO / t).exists()]


def test_every_docs_page_is_in_the_nav():
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    listed = {next(iter(item.values())) for item in nav}
    pages = {p.name for p in (REPO / "docs").glob("*.md")}
    assert pages == listed
