"""The guides library: rendering with heading anchors, link rewriting, FTS5 search."""

from __future__ import annotations

from pathlib import Path

from actors.gateway.dashboard.docs import DocsLibrary, docs_dir, slugify


def _library(tmp_path: Path) -> DocsLibrary:
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "troubleshooting.md").write_text(
        "# Troubleshooting\n\nIntro.\n\n## Error classes\n\n### permanent\n\n"
        "The step fails the same way every time: a quixotic configuration.\n\n"
        "### circuit_open\n\nA breaker is open. See [retries](retries.md#breakers).\n"
    )
    (tmp_path / "guides" / "retries.md").write_text(
        "# Retries\n\n## Breakers\n\nHalf-open probes.\n\n## Breakers\n\nAgain.\n"
        '\n```toml\nretry = "zanzibar"\n```\n'
    )
    return DocsLibrary(tmp_path)


def test_slugs_follow_github_so_anchors_work_on_github_and_in_the_dashboard() -> None:
    """Lower case, punctuation dropped, spaces to dashes, underscores kept."""
    assert slugify("circuit_open") == "circuit_open"
    assert slugify("The topology: created once, as admin") == "the-topology-created-once-as-admin"
    assert slugify("exit-124") == "exit-124"


def test_every_heading_gets_an_id_and_a_self_link(tmp_path: Path) -> None:
    """Headings carry their anchor as id; a repeated heading gets a numbered one."""
    library = _library(tmp_path)
    page = library.pages["guides/troubleshooting"]
    assert page.title == "Troubleshooting"
    assert '<h3 id="circuit_open"><a class="anchor" href="#circuit_open"' in page.html
    assert [h[2] for h in library.pages["guides/retries"].headings] == [
        "retries",
        "breakers",
        "breakers-1",
    ]


def test_relative_markdown_links_point_to_dashboard_pages(tmp_path: Path) -> None:
    """``retries.md#breakers`` in a guide becomes ``/docs/guides/retries#breakers``."""
    page = _library(tmp_path).pages["guides/troubleshooting"]
    assert 'href="/docs/guides/retries#breakers"' in page.html


def test_search_finds_the_section_holding_a_word_of_its_body(tmp_path: Path) -> None:
    """A body word finds its section, linked by anchor, with the match marked."""
    hits = _library(tmp_path).search("quixotic")
    assert [(h.path, h.anchor) for h in hits] == [("guides/troubleshooting", "permanent")]
    assert "<mark>quixotic</mark>" in hits[0].snippet


def test_search_reads_code_blocks_and_takes_prefixes(tmp_path: Path) -> None:
    """Words in fenced code are indexed; a word prefix matches."""
    hits = _library(tmp_path).search("zanz")
    assert hits
    assert hits[0].path == "guides/retries"


def test_search_ignores_fts_syntax_in_the_query(tmp_path: Path) -> None:
    """Quotes, operators and parentheses are plain text, never a query error."""
    library = _library(tmp_path)
    assert library.search('") OR NEAR(* -') == []
    assert library.search("") == []


def test_a_missing_docs_directory_is_an_empty_library(tmp_path: Path) -> None:
    """No docs shipped: no pages and no hits, no error."""
    library = DocsLibrary(tmp_path / "absent")
    assert library.pages == {}
    assert library.search("anything") == []


def test_the_packaged_guides_are_found_and_all_render() -> None:
    """The repository's docs/ (or the wheel's copy) renders page by page."""
    root = docs_dir()
    assert root is not None
    library = DocsLibrary(root)
    assert "architecture" in library.pages
    assert all(page.html for page in library.pages.values())
