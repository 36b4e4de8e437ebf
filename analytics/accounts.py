"""``python -m analytics.accounts create|list|disable``: the operator's commands for the analysts'
API's accounts.

``create NAME --budget EPS`` makes an analyst's account with a yearly privacy budget (set in
privacy_budgets by analytics.ledger.set_budget, as the DPO's ``python -m gdpr.dpo budget set``
would; ``--role dpo`` a DPO's account, which spends none) and prints its bearer token once: only the token's hash is
stored, so a lost token is replaced by disabling the account and making another. It connects as
DATABASE_URL's user, the owner (the API's own login may only read the accounts).
"""

# A command-line tool: it prints its results for people (as the project's other commands do).

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from contextlib import AbstractContextManager

import psycopg2.extensions

from analytics import analysts, ledger
from analytics.analysts import Role
from analytics.api.store import LOGIN
from core import cli, db
from core.config import Settings
from core.errors import InvalidInput

# Who set a budget made with an account, as privacy_budget_changes records it.
SET_BY = "operator:analytics.accounts"


def _connection(settings: Settings) -> AbstractContextManager[psycopg2.extensions.connection]:
    return db.connection(settings.database, application_name=f"{LOGIN.application_name}-accounts")


def _create(settings: Settings, name: str, role: Role, epsilon: float | None) -> int:
    with _connection(settings) as conn:
        try:
            with conn, conn.cursor() as cur:
                account, token = analysts.create(cur, name, role)
                if epsilon is not None:
                    ledger.set_budget(cur, name, epsilon, set_by=SET_BY)
        except analysts.AccountError as e:
            raise InvalidInput(str(e)) from e
    spends = f"a yearly budget of epsilon {epsilon:g}" if epsilon is not None else "the budgets and the ledger to read"
    print(f"created {account.role} account {name!r} ({spends}); its token, shown only now:")
    print(token)
    return 0


def _disable(settings: Settings, name: str) -> int:
    with _connection(settings) as conn:
        try:
            with conn, conn.cursor() as cur:
                analysts.disable(cur, name)
        except analysts.AccountError as e:
            raise InvalidInput(str(e)) from e
    print(f"disabled account {name!r}: its token is refused from now on")
    return 0


def _list(settings: Settings) -> int:
    with _connection(settings) as conn, conn, conn.cursor() as cur:
        accounts = analysts.list_accounts(cur)
    if not accounts:
        print("no accounts: create one with `python -m analytics.accounts create NAME --budget EPS`")
        return 0
    width = max(len("name"), *(len(a.name) for a in accounts))
    print(f"{'name'.ljust(width)}  role     budget  created               disabled")
    for a in accounts:
        disabled = f"{a.disabled_at:%Y-%m-%dT%H:%M:%SZ}" if a.disabled_at else "-"
        asked = f"{a.budget:g}" if a.budget is not None else "-"
        print(f"{a.name.ljust(width)}  {a.role.value.ljust(7)}  {asked.rjust(6)}  {a.created_at:%Y-%m-%dT%H:%M:%SZ}  {disabled}")
    return 0


def _name(text: str) -> str:
    try:
        return analysts.check_name(text)
    except analysts.AccountError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _epsilon(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text[:50]!r} is not a budget: an epsilon above 0, such as 1 or 10")
    return value


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m analytics.accounts``."""
    parser = argparse.ArgumentParser(
        prog="python -m analytics.accounts",
        description="Create, list and disable the analysts' API's accounts (bearer tokens stored as SHA-256 hashes)."
        " Connects as DATABASE_URL's user, the owner.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    create = commands.add_parser(
        "create",
        help="create an account and print its token, once",
        description="Create the account NAME and print its bearer token (shown only now). An analyst needs --budget:"
        " the privacy loss (epsilon) its releases may spend in a year. A DPO (--role dpo) reads the budgets and"
        " the ledger and spends none.",
    )
    create.add_argument("name", metavar="NAME", type=_name, help="2-40 lower-case letters, digits, '.', '_' or '-'")
    create.add_argument("--role", choices=[r.value for r in Role], default=Role.ANALYST.value, help="default: analyst")
    create.add_argument("--budget", metavar="EPS", type=_epsilon, help="the analyst's yearly budget, an epsilon above 0")
    disable = commands.add_parser("disable", help="disable an account: its token is refused from then on")
    disable.add_argument("name", metavar="NAME", type=_name)
    commands.add_parser("list", help="list the accounts: name, role, budget, created, disabled (never a token)")
    args = parser.parse_args(argv)
    if args.command == "create":
        if args.role == Role.ANALYST and args.budget is None:
            create.error("an analyst's account needs --budget EPS (its yearly privacy budget)")
        if args.role == Role.DPO and args.budget is not None:
            create.error("a DPO's account spends no budget: leave out --budget")
    actions: dict[str, Callable[[Settings], int]] = {
        "create": lambda settings: _create(settings, args.name, Role(args.role), args.budget),
        "disable": lambda settings: _disable(settings, args.name),
        "list": _list,
    }
    cli.run(actions[args.command])


if __name__ == "__main__":
    main()
