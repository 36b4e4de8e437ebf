"""``python -m gdpr.dpo``: the DPO's actions from a terminal (the console's, for operators and scripts).

Each command acts in the name of an existing, enabled DPO account (``--dpo USERNAME``, created
with ``python -m console.accounts create``), the actor the audit trail records, and runs as the
console's database role. An address to hold is read from standard input, never from the
command line, where shell history and process lists would keep it. A reason goes to the
hash-chained, append-only audit trail for good: a case reference and the ground, never personal
data.
"""

# A command-line tool: it prints its results for people (as the project's other commands do).

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime

from analytics import ledger
from core import cli, db
from core.config import Settings
from core.errors import InvalidInput
from gdpr import actions, mail

APPLICATION = "dpo-cli"
REASON_GUIDANCE = "a case reference and the ground, never personal data: it is kept in the audit trail for good"


def parse_until(text: str) -> datetime:
    """argparse type: YYYY-MM-DD (the hold ends at 00:00 UTC that day) or an ISO 8601 instant
    with its offset."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD or an ISO 8601 time with offset") from e
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no offset: add +00:00 (UTC) or give a date")
    return moment


def request_id(text: str) -> int:
    """argparse type: a privacy request's id."""
    if not text.isdigit() or not 1 <= int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r} is not a request id (a positive whole number)")
    return int(text)


def hold_id(text: str) -> int:
    """argparse type: a legal hold's id."""
    if not text.isdigit() or not 1 <= int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r} is not a hold id (a positive whole number)")
    return int(text)


def _act(settings: Settings, username: str, work: Callable[[db.Cursor], str]) -> int:
    with db.connection(settings.database, application_name=APPLICATION, role=db.CONSOLE_ROLE) as conn:
        try:
            with conn, conn.cursor() as cur:
                if not actions.is_active_dpo(cur, username):
                    raise InvalidInput(
                        f"no enabled DPO account {username!r}: create one with `python -m console.accounts create {username}`"
                    )
                done = work(cur)
        except actions.ActionRefused as e:
            raise InvalidInput(str(e)) from e
    print(done)
    return 0


def _tell(settings: Settings, told: list[actions.Requester], decision: str, reason: str, due_at: datetime | None = None) -> None:
    """After the commit: mail a requester who filed through the API the decision and its reason."""
    for who in told:
        if mail.tell_decision_or_log(
            settings, who.email, request_id=who.request_id, request_type=who.request_type, decision=decision,
            reason=reason.strip(), due_at=due_at,
        ):  # fmt: skip
            print(f"the requester was mailed the decision and its reason (request {who.request_id})")
        else:
            print(f"the requester could not be mailed (request {who.request_id}): tell them another way")


def _read_email() -> str:
    email = sys.stdin.readline().strip()
    if not email:
        raise InvalidInput(
            "no address on standard input: e.g. `printf '%s\\n' ADDRESS | python -m gdpr.dpo ... hold --email-stdin`"
        )
    return email


def _hold(settings: Settings, args: argparse.Namespace) -> int:
    key = settings.gdpr_hmac_key
    if args.email_stdin:
        email = _read_email()
        return _act(
            settings,
            args.dpo,
            lambda cur: _held(actions.place_hold_for_email(cur, email, args.dpo, args.reason, until=args.until, hmac_key=key)),
        )
    return _act(
        settings,
        args.dpo,
        lambda cur: _held(actions.place_hold(cur, args.request, args.dpo, args.reason, until=args.until, hmac_key=key)),
    )


def _held(placed: actions.HoldPlaced) -> str:
    waiting = ", ".join(map(str, placed.held_requests)) or "none pending now"
    return f"legal hold {placed.hold_id} placed; erasure requests put on hold: {waiting}"


def _release(settings: Settings, args: argparse.Namespace) -> int:
    key = settings.gdpr_hmac_key
    if args.hold is None and args.request is None:
        raise InvalidInput("name the hold to release: --hold ID (its id is on the request's page), or --request ID")

    def work(cur: db.Cursor) -> str:
        if args.hold is None:
            released = actions.release_only_hold(cur, args.request, args.dpo, key)
        else:
            released = actions.release_hold(cur, args.hold, args.dpo, key, request_id=args.request)
        return _released(released)

    return _act(settings, args.dpo, work)


def _released(released: actions.HoldReleased) -> str:
    if released.still_active:
        others = ", ".join(map(str, released.still_active))
        return (
            f"legal hold {released.hold_id} released; the person is still under legal hold {others}: their erasures stay on hold"
        )
    resumed = ", ".join(map(str, released.resumed_requests)) or "none"
    return f"legal hold {released.hold_id} released; no other hold on the person is active; back to pending: {resumed}"


def _deny(settings: Settings, args: argparse.Namespace) -> int:
    key = settings.gdpr_hmac_key
    told: list[actions.Requester] = []

    def work(cur: db.Cursor) -> str:
        who = actions.requester(cur, args.request)  # before the denial removes the address
        actions.deny(cur, args.request, args.dpo, args.reason, key)
        told.extend([who] if who else [])
        return f"request {args.request} denied"

    code = _act(settings, args.dpo, work)
    _tell(settings, told, "denied", args.reason)
    return code


def _extend(settings: Settings, args: argparse.Namespace) -> int:
    told: list[actions.Requester] = []
    due_at: list[datetime] = []

    def work(cur: db.Cursor) -> str:
        who = actions.requester(cur, args.request)
        due = actions.extend(cur, args.request, args.dpo, args.months, args.reason)
        told.extend([who] if who else [])
        due_at.append(due)
        return f"request {args.request} is now due {due.astimezone(UTC):%Y-%m-%d %H:%M} UTC"

    code = _act(settings, args.dpo, work)
    _tell(settings, told, "extended", args.reason, due_at[0] if due_at else None)
    return code


def _verify(settings: Settings, args: argparse.Namespace) -> int:
    def work(cur: db.Cursor) -> str:
        actions.verify_manually(cur, args.request, args.dpo)
        return f"request {args.request} verified; the processor takes it next"

    return _act(settings, args.dpo, work)


def _lift(settings: Settings, args: argparse.Namespace) -> int:
    def work(cur: db.Cursor) -> str:
        restored = actions.lift_restriction(cur, args.request, args.dpo, settings.consent_mode)
        consent = "analytics consent restored" if restored else "no consent recorded (as before the restriction)"
        return f"restriction of request {args.request} lifted; {consent}"

    return _act(settings, args.dpo, work)


def epsilon_value(text: str) -> float:
    """argparse type: a budget, an epsilon above 0 and at most actions.MAX_BUDGET_EPSILON."""
    try:
        return actions.check_budget_epsilon(float(text))
    except (ValueError, actions.InvalidArgument) as e:
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r} is not an epsilon above 0 and at most {actions.MAX_BUDGET_EPSILON:g} (such as 1 or 0.5)"
        ) from e


def _budget(settings: Settings, args: argparse.Namespace) -> int:
    def work(cur: db.Cursor) -> str:
        if args.action == "set":
            analyst = ledger.OVERALL if args.overall else args.analyst
            actions.set_budget(cur, args.dpo, analyst, args.epsilon, args.period)
        rows = ledger.budgets(cur)
        if not rows:
            return "no privacy budget is set: every release is refused (set one with `budget set`)"
        lines = [f"{'analyst':<24} {'epsilon':>10} {'period':<8} {'spent':>10} {'left':>10}"]
        for b in rows:
            name = "(overall)" if b.analyst == ledger.OVERALL else b.analyst
            lines.append(f"{name:<24} {b.epsilon:>10g} {b.period:<8} {b.spent:>10g} {b.left:>10g}")
        return "\n".join(lines)

    return _act(settings, args.dpo, work)


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "budget": _budget,
    "hold": _hold,
    "release": _release,
    "deny": _deny,
    "extend": _extend,
    "verify": _verify,
    "lift-restriction": _lift,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gdpr.dpo",
        description="The DPO's actions on privacy requests, audited in the DPO's name (the same as the console's).",
        epilog=f"--reason (deny, extend, hold): {REASON_GUIDANCE}.",
    )
    parser.add_argument("--dpo", required=True, metavar="USERNAME", help="the enabled DPO account acting (the audit's actor)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    reason_help = f"why, on one line, at most {actions.MAX_REASON_LENGTH} characters: {REASON_GUIDANCE}"

    hold = commands.add_parser("hold", help="place a legal hold on a person: their erasure waits until it is released")
    who = hold.add_mutually_exclusive_group(required=True)
    who.add_argument("--request", type=request_id, metavar="ID", help="the person of this request")
    who.add_argument("--email-stdin", action="store_true", help="the person with the address read from standard input")
    hold.add_argument("--reason", required=True, help=reason_help)
    hold.add_argument(
        "--until", type=parse_until, help="when the hold ends: YYYY-MM-DD (00:00 UTC) or an ISO time; default: until released"
    )

    release = commands.add_parser(
        "release",
        help="release one legal hold; the person's erasures resume once no other hold on them is active",
        description="Release one legal hold by its id (the request's page lists the person's holds). The person's "
        "erasures on hold resume only when no other hold on them is active.",
    )
    release.add_argument("--hold", type=hold_id, metavar="ID", help="the hold to release")
    release.add_argument(
        "--request",
        type=request_id,
        metavar="ID",
        help="a request of the hold's person, audited with the release; alone: release the person's only active hold "
        "(refused when they have several: name it with --hold)",
    )

    deny = commands.add_parser("deny", help="deny an open request as manifestly unfounded or excessive (Art. 12(5))")
    deny.add_argument("request", type=request_id, metavar="ID")
    deny.add_argument("--reason", required=True, help=reason_help)

    extend = commands.add_parser("extend", help="extend an open request's deadline by 1 or 2 months (Art. 12(3))")
    extend.add_argument("request", type=request_id, metavar="ID")
    extend.add_argument("--months", type=int, choices=(1, 2), required=True, help="months after the original deadline")
    extend.add_argument("--reason", required=True, help=reason_help)

    verify = commands.add_parser("verify", help="mark an unverified request as verified by the DPO (identity checked manually)")
    verify.add_argument("request", type=request_id, metavar="ID")

    lift = commands.add_parser("lift-restriction", help="lift the restriction of processing of a completed restriction request")
    lift.add_argument("request", type=request_id, metavar="ID")

    budget = commands.add_parser(
        "budget",
        help="set or show the privacy budgets (epsilon per period) of the analysts' differentially private releases",
        description="A release that would take an analyst, or all of them together (--overall), past the budget of "
        f"the current period is refused. The daily report's releases draw from {ledger.REPORT_ANALYST!r}.",
    )
    actions_ = budget.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions_.add_parser("show", help="every budget with what its period has spent and has left")
    setter = actions_.add_parser(
        "set", help="set one budget (kept with the DPO's name in privacy_budget_changes and the audit trail)"
    )
    whose = setter.add_mutually_exclusive_group(required=True)
    whose.add_argument("--analyst", metavar="NAME", help="the analyst's account name")
    whose.add_argument("--overall", action="store_true", help="the budget of all analysts together")
    setter.add_argument("--epsilon", type=epsilon_value, required=True, help="the privacy loss allowed per period")
    setter.add_argument(
        "--period", choices=ledger.PERIODS, default=ledger.DEFAULT_PERIOD, help="the period (UTC), default: a calendar year"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m gdpr.dpo``."""
    args = build_parser().parse_args(argv)
    cli.run(lambda settings: COMMANDS[args.command](settings, args))


if __name__ == "__main__":
    main()
