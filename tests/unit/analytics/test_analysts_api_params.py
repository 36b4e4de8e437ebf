"""The analysts' API's parameter models and command lines, without services."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from analytics.api import params
from core.config import PROJECT_ROOT

LIMITS = params.Limits(max_epsilon=4, max_days=366)
TODAY = datetime.now(UTC).date()


def test_good_parameters_are_parsed_and_countries_normalised() -> None:
    start = (TODAY - timedelta(days=6)).isoformat()
    parsed = params.parse(
        params.KpisByCountry, {"epsilon": "0.5", "from": start, "to": TODAY.isoformat(), "country": ["fr", "DE,FR"]}, LIMITS
    )
    assert (parsed.epsilon, parsed.start, parsed.end, parsed.country) == (0.5, TODAY - timedelta(days=6), TODAY, ["DE", "FR"])


@pytest.mark.parametrize("epsilon", ["0", "-1", "nan", "inf", "1e309", "4.0001", "x" * 10_000])
def test_an_epsilon_outside_zero_to_the_maximum_is_refused_without_quoting_it(epsilon: str) -> None:
    with pytest.raises(params.InvalidParameters) as refused:
        params.parse(params.Segments, {"epsilon": epsilon}, LIMITS)
    assert refused.value.code == "invalid_parameter" and "epsilon" in refused.value.detail
    assert epsilon not in refused.value.detail or len(epsilon) < 4


def test_a_user_id_is_an_unknown_parameter() -> None:
    with pytest.raises(params.InvalidParameters) as refused:
        params.parse(params.Segments, {"epsilon": "1", "user_id": "1"}, LIMITS)
    assert refused.value.code == "unknown_parameter" and "user id" in refused.value.detail


@pytest.mark.parametrize("module", ["analytics.api", "analytics.accounts"])
def test_the_commands_have_help(module: str) -> None:
    helped = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False, timeout=60
    )
    assert helped.returncode == 0 and f"python -m {module}" in helped.stdout
