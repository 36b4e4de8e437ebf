"""The analytics commands refuse hostile arguments before they reach a database: a huge, negative,
zero or malformed value, a reversed or century-long range, each in one usage line with exit 2."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from analytics import clv, funnel, retention, rfm

Main = Callable[[list[str] | None], None]

HOSTILE: list[tuple[Main, list[str], str]] = [
    (retention.main, ["--weeks", "999999999"], "--weeks is 0 to 520"),
    (retention.main, ["--weeks", "-3"], "--weeks is 0 to 520"),
    (retention.main, ["--weeks", "1e3"], "invalid int value"),
    (retention.main, ["--from", "2026-13-01"], "is not a date"),
    (retention.main, ["--as-of", "99999-01-01"], "is not a date"),
    (retention.main, ["--as-of", "2026-12-07'; DROP TABLE events_raw; --"], "is not a date"),
    (retention.main, ["--by", "email"], "invalid choice"),
    (funnel.main, ["--from", "2026-12-07", "--to", "2026-01-01"], "is after --to"),
    (funnel.main, ["--from", "0001-01-01", "--to", "9999-12-31"], "at most 3660 days"),
    (funnel.main, ["\x00"], "is not a date"),
    (clv.main, ["--horizon-days", "-1"], "--horizon-days is 1 to 3660"),
    (clv.main, ["--horizon-days", "99999999999999"], "--horizon-days is 1 to 3660"),
    (clv.main, ["--holdout-days", "0"], "--holdout-days is 1 to 3660"),
    (clv.main, ["--holdout-days", "1000000"], "--holdout-days is 1 to 3660"),
    (clv.main, ["--chart", "x.png"], "--chart needs --holdout-days"),
    (rfm.main, ["--as-of", "x" * 10_000], "is not a date"),
]


@pytest.mark.parametrize(("main", "argv", "reason"), HOSTILE, ids=lambda v: str(v)[:40] if isinstance(v, (list, str)) else "")
def test_hostile_arguments_are_one_usage_error(
    main: Main, argv: list[str], reason: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unreachable database: an argument that got past the parser would fail on it instead.
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert reason in err
    assert "Traceback" not in err and "secret" not in err
