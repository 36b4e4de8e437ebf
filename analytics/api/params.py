"""What each endpoint of the analysts' API accepts: its query parameters as pydantic models.

A model forbids any parameter it does not name (so ``user_id`` is refused, as any other), takes
one value per parameter (a repeated ``epsilon`` is refused), dates as YYYY-MM-DD only, epsilon as
a finite number in (0, ANALYSTS_API_MAX_EPSILON], and countries from a public list. A refusal is
``InvalidParameters``: which parameter and what it should be, never the value sent (it may be
anything, 10,000 characters of it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Self, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from analytics import ledger

# The countries a breakdown may name and always shows: a public key set (the EU's 27 member
# states), never the countries present in the data, whose presence would itself be a release.
PUBLIC_COUNTRIES = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
)  # fmt: skip
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_NAME = re.compile(r"[a-z][a-z0-9._-]{1,39}", re.ASCII)
# The longest parameter name a refusal repeats: a hostile one may be 10,000 characters.
_SHOWN_NAME = 40


class InvalidParameters(ValueError):
    """The query parameters are not what the endpoint takes: ``code`` and a ``detail`` to act on."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    """The service's bounds on a request (ANALYSTS_API_MAX_EPSILON, ANALYSTS_API_MAX_DAYS)."""

    max_epsilon: float
    max_days: int


def _day(value: Any) -> Any:
    if isinstance(value, str) and _DAY.fullmatch(value) is None:
        raise ValueError("a day is written YYYY-MM-DD")
    return value


def _countries(value: Any) -> Any:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) for item in items):
        raise ValueError("countries are two-letter codes")
    codes = [code.strip().upper() for item in items for code in item.split(",")]
    unknown = [code for code in codes if code not in PUBLIC_COUNTRIES]
    if unknown:
        raise ValueError(f"countries are codes of the public list ({', '.join(PUBLIC_COUNTRIES)})")
    return sorted(set(codes))


Day = Annotated[date, BeforeValidator(_day)]


class Query(BaseModel):
    """Parameters every endpoint checks the same way: none it does not name, one value each."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, str_max_length=100)


class Release(Query):
    """A release: the privacy loss it may spend."""

    epsilon: float = Field(
        ge=float(ledger.EPSILON_PLACES),
        description="the privacy loss this release spends, from the caller's budget (at most ANALYSTS_API_MAX_EPSILON)",
    )

    @model_validator(mode="after")
    def _within_max(self, info: ValidationInfo) -> Self:
        limits = _limits(info)
        if self.epsilon > limits.max_epsilon:
            raise ValueError(f"epsilon may be at most {limits.max_epsilon:g} per release")
        return self


class DayRange(Release):
    """A release over days, both ends included, none in the future."""

    model_config = ConfigDict(populate_by_name=False)

    start: Day = Field(alias="from", description="the first day, YYYY-MM-DD (UTC)")
    end: Day = Field(alias="to", description="the last day, YYYY-MM-DD (UTC), not after today")

    @model_validator(mode="after")
    def _a_range(self, info: ValidationInfo) -> Self:
        limits = _limits(info)
        if self.end < self.start:
            raise ValueError("'to' is before 'from'")
        if self.end > datetime.now(UTC).date():
            raise ValueError("'to' is in the future")
        if (self.end - self.start).days + 1 > limits.max_days:
            raise ValueError(f"a release covers at most {limits.max_days} days")
        return self


class KpisByCountry(DayRange):
    """Daily KPIs by country: all the public list's countries, or those named."""

    country: Annotated[list[str], BeforeValidator(_countries)] = Field(
        default_factory=list, description="countries of the public list (repeated or comma-separated); all by default"
    )


class Funnel(DayRange):
    """The ordered funnel of people over the days."""


class Retention(DayRange):
    """Retention by signup-week cohort, of the cohorts that signed up between the days."""


class Segments(Release):
    """Segment sizes and values of the stored scores (RFM, lifetime value)."""


class Ledger(Query):
    """The privacy ledger's latest entries (the DPO's)."""

    analyst: str | None = Field(
        None,
        pattern=f"^(?:{_NAME.pattern}|{re.escape(ledger.REPORT_ANALYST)})$",
        description=f"only this analyst's releases (an account's name, or {ledger.REPORT_ANALYST} for the daily report's)",
    )
    limit: int = Field(100, ge=1, le=1000, description="how many entries, newest first")


class Budgets(Query):
    """Every budget and what is left of it (the DPO's)."""


M = TypeVar("M", bound=Query)


def _limits(info: ValidationInfo) -> Limits:
    limits = (info.context or {}).get("limits")
    assert isinstance(limits, Limits)  # noqa: S101 - parse() always passes them
    return limits


def parse(model: type[M], params: Mapping[str, str | list[str]], limits: Limits) -> M:
    """``params`` (the query string, as Falcon parsed it) as ``model``; InvalidParameters naming
    what is wrong when it is not one."""
    takes = sorted(field.alias or name for name, field in model.model_fields.items())
    unknown = sorted(name for name in params if name not in takes)
    if unknown:
        shown = ", ".join(repr(name[:_SHOWN_NAME]) for name in unknown[:3])
        raise InvalidParameters(
            "unknown_parameter",
            f"this endpoint takes {', '.join(takes) or 'no parameters'}; not {shown}"
            + ("; no endpoint takes or returns a user id" if any("user" in name.lower() for name in unknown) else ""),
        )
    repeated = sorted(name for name, value in params.items() if isinstance(value, list) and name != "country")
    if repeated:
        raise InvalidParameters("invalid_parameter", f"give {', '.join(repeated)} once")
    try:
        return model.model_validate(dict(params), context={"limits": limits})
    except ValidationError as e:
        raise InvalidParameters("invalid_parameter", describe(e)) from None


def describe(error: ValidationError) -> str:
    """What is wrong, by parameter, without the values sent."""
    parts = []
    for problem in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in problem["loc"] if not isinstance(part, int))
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
