"""docs/benchmarks.md's generated blocks: a bench replaces its own block and nothing else, the
same report twice gives the same doc, and a doc without the block is refused, not guessed at."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import doc
from bench.doc import MissingBlock, markers, replace_block

REPORT = """# Benchmark (small: 1,000 users, 1,000 events)

2026-12-07 19:10 UTC on x86_64, 2 cores; whole run 0.1 min.

| stage | measured |
|---|---:|
| raw sink | 87,381 events/s |

- raw sink: 59x the original design
"""

DOC = """# Numbers

Prose before, written by hand.

<!-- bench:small:begin -->
old small numbers
<!-- bench:small:end -->

<!-- bench:large:begin -->
old large numbers
<!-- bench:large:end -->

Prose after, written by hand.
"""


def test_a_run_replaces_its_own_block_and_leaves_the_prose_and_the_other_blocks() -> None:
    text = replace_block(DOC, "small", REPORT, "abc1234")
    before, rest = text.split(markers("small")[0])
    small, after = rest.split(markers("small")[1])
    assert before == DOC.split(markers("small")[0], maxsplit=1)[0]
    assert after == DOC.split(markers("small")[1])[1]  # the large block and the closing prose
    assert "old small numbers" not in small
    assert "| raw sink | 87,381 events/s |" in small
    assert "- raw sink: 59x the original design" in small
    assert "Commit `abc1234`" in small


def test_the_reports_heading_moves_under_the_docs_section() -> None:
    small = replace_block(DOC, "small", REPORT, "abc1234")
    assert "\n### Benchmark (small: 1,000 users, 1,000 events)\n" in small
    assert "\n# Benchmark" not in small


def test_writing_the_same_report_twice_gives_the_same_doc() -> None:
    once = replace_block(DOC, "small", REPORT, "abc1234")
    assert replace_block(once, "small", REPORT, "abc1234") == once


def test_a_later_run_replaces_the_earlier_one() -> None:
    first = replace_block(DOC, "small", REPORT, "abc1234")
    second = replace_block(first, "small", REPORT.replace("87,381", "90,000"), "def5678")
    assert "87,381" not in second
    assert "abc1234" not in second
    assert second == replace_block(DOC, "small", REPORT.replace("87,381", "90,000"), "def5678")


@pytest.mark.parametrize(
    "text",
    [
        "# Numbers\n\nno blocks at all\n",
        "<!-- bench:small:begin -->\nno end\n",
        "<!-- bench:small:end -->\nend before begin\n<!-- bench:small:begin -->\n",
        DOC + "\n<!-- bench:small:begin -->\ntwice\n<!-- bench:small:end -->\n",
        DOC.replace("<!-- bench:small:begin -->", "text <!-- bench:small:begin --> on the same line"),
    ],
    ids=["absent", "no end", "out of order", "twice", "not on a line of its own"],
)
def test_a_doc_without_exactly_one_block_for_the_scale_is_refused(text: str) -> None:
    with pytest.raises(MissingBlock, match=r"exactly one block for 'small'.*<!-- bench:small:begin -->"):
        replace_block(text, "small", REPORT, "abc1234")


def test_another_scales_block_is_not_the_one_asked_for() -> None:
    with pytest.raises(MissingBlock, match="'history'"):
        replace_block(DOC, "history", REPORT, "abc1234")


def test_update_writes_the_file_and_refuses_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text(DOC, encoding="utf-8")
    doc.update("small", REPORT, path, commit="abc1234")
    assert path.read_text(encoding="utf-8") == replace_block(DOC, "small", REPORT, "abc1234")
    with pytest.raises(MissingBlock, match="does not exist"):
        doc.update("small", REPORT, tmp_path / "absent.md", commit="abc1234")


def test_the_committed_doc_has_one_block_per_bench() -> None:
    text = doc.DOC.read_text(encoding="utf-8")
    for scale in ("small", "large", "scaleout", "history"):
        assert replace_block(text, scale, REPORT, "abc1234").count(markers(scale)[0]) == 1


def test_the_commit_is_read_from_git(tmp_path: Path) -> None:
    assert doc.commit_of(tmp_path) == "unknown"  # not a checkout
    assert doc.commit_of() not in {"", "unknown"}
