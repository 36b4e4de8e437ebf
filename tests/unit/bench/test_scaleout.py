"""The scale-out bench's arithmetic: which k it runs, how a group's rate is read from its commit
log, what counts as handled exactly once, and the table it prints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench.scaleout import Run, Tally, exactly_once_problems, flag_disagreements, instance_counts, steady_rate, table

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("partitions", "counts"),
    [(1, [1]), (2, [1, 2]), (3, [1, 2, 3]), (4, [1, 2, 4]), (6, [1, 2, 4, 6]), (16, [1, 2, 4, 8, 16])],
)
def test_k_doubles_up_to_the_partition_count_which_is_always_run(partitions: int, counts: list[int]) -> None:
    assert instance_counts(partitions) == counts


def test_a_topic_without_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        instance_counts(0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_one_instance_is_timed_from_the_end_of_its_first_batch_as_make_bench_does() -> None:
    # 50,000 events before the clock starts (start-up), then 100,000 in 2 s.
    batches = [(at(1), 50_000), (at(2), 50_000), (at(3), 50_000)]
    assert steady_rate(batches, 1) == 50_000


def test_k_instances_are_timed_from_the_end_of_the_kth_batch_each_instances_first() -> None:
    # Two instances finish their first batches together; the other two batches take 1 s more.
    batches = [(at(2.0), 50_000), (at(2.1), 50_000), (at(3.1), 40_000), (at(3.0), 40_000)]
    assert steady_rate(batches, 2) == pytest.approx(80_000)


def test_a_group_with_no_batch_after_start_up_has_no_rate() -> None:
    assert steady_rate([(at(1), 50_000), (at(2), 10)], 2) is None
    assert steady_rate([(at(1), 50_000), (at(1), 10)], 1) is None


def tally(**changes: int) -> Tally:
    # 1,000 events: 10 invalid, 90 dropped for lack of consent, 900 kept.
    values = {"offsets": 1000, "handled": 990, "dead_letters": 10, "dead_letter_rows": 10, "dropped": 90, "kept": 900}
    return Tally(**{**values, **changes})


def test_a_run_that_handled_every_event_once_has_no_problem() -> None:
    assert exactly_once_problems(1000, tally(), "stored") == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"offsets": 998}, "stored offsets cover 998 of the topic's 1,000 events"),
        ({"handled": 1_040, "kept": 950}, "its batches handled 1,050 events, the topic holds 1,000"),
        ({"dead_letter_rows": 11}, "11 dead letters stored, 10 recorded by its batches"),
        ({"kept": 950}, "950 stored + 90 dropped for lack of consent, 990 valid events handled"),
    ],
)
def test_an_event_lost_or_counted_twice_is_named(changes: dict[str, int], problem: str) -> None:
    assert exactly_once_problems(1000, tally(**changes), "stored") == [problem]


def test_every_run_must_keep_as_many_events_as_the_first() -> None:
    runs = [Run("raw", 1, 10.0, 1.0, None, kept=900), Run("raw", 2, 20.0, 2.0, None, kept=900)]
    runs += [Run("streaming", 1, 30.0, 1.0, None, kept=901), Run("streaming", 2, None, None, None)]
    flag_disagreements(runs)
    assert [r.problems for r in runs] == [[], [], ["kept 901 events, raw k=1 kept 900"], []]


def test_the_table_shows_the_speed_up_and_each_instances_share() -> None:
    runs = [
        Run("raw", 1, 60_000.4, 1.0, 512.3),
        Run("raw", 2, 100_000.0, 100_000.0 / 60_000.4, 300.0),
        Run("streaming", 1, None, None, None, problems=["FAILED: an instance exited with 1"]),
    ]
    lines = table(runs)
    assert lines[0] == (
        "| consumer | k | events/s | speed-up vs k=1 | per-instance events/s | peak RSS per instance | exactly once |"
    )
    assert lines[2:] == [
        "| raw | 1 | 60,000 | 1.00x | 60,000 | 512 MiB | yes |",
        "| raw | 2 | 100,000 | 1.67x | 50,000 | 300 MiB | yes |",
        "| streaming | 1 | n/a | n/a | n/a |  | NO: FAILED: an instance exited with 1 |",
    ]
