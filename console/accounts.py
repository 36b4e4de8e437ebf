"""``python -m console.accounts create|disable|list``: the operator's commands for DPO accounts.

A password is typed twice at a prompt that does not echo it (``getpass``), or read from the
first line of standard input with ``--password-stdin`` (for scripts); it is never an argument,
never printed and never logged: only its Argon2id hash is stored. Disabling an account ends its
sessions at once; the account keeps its name, which the audit trail uses.
"""

# A command-line tool: it prints its results for people (as the project's other commands do).

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager

import psycopg2.extensions

from console import auth
from console.store import LOGIN
from core import cli, db
from core.config import Settings
from core.errors import InvalidInput


def read_password(from_stdin: bool) -> str:
    """The new password: from standard input's first line, or typed twice without echo."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise InvalidInput("the two passwords differ: nothing was created")
    try:
        return auth.check_password(password)
    except auth.AccountError as e:
        raise InvalidInput(str(e)) from e


def _connection(settings: Settings) -> AbstractContextManager[psycopg2.extensions.connection]:
    """As DATABASE_URL's user, the owner: an operator's tool (sql/031). The console's own login may
    not create accounts, so a leaked console password cannot make a DPO."""
    return db.connection(settings.database, application_name=f"{LOGIN.application_name}-accounts")


def _create(settings: Settings, username: str, from_stdin: bool) -> int:
    try:
        auth.check_username(username)
    except auth.AccountError as e:
        raise InvalidInput(str(e)) from e
    password_hash = auth.Passwords().hash(read_password(from_stdin))
    with _connection(settings) as conn:
        try:
            with conn, conn.cursor() as cur:
                auth.create_account(cur, username, password_hash)
        except auth.AccountError as e:
            raise InvalidInput(str(e)) from e
    print(f"created DPO account {username!r}: sign in at the console (python -m console)")
    return 0


def _disable(settings: Settings, username: str) -> int:
    with _connection(settings) as conn:
        try:
            with conn, conn.cursor() as cur:
                auth.disable_account(cur, username)
        except auth.AccountError as e:
            raise InvalidInput(str(e)) from e
    print(f"disabled DPO account {username!r}; its sessions ended")
    return 0


def _list(settings: Settings) -> int:
    with _connection(settings) as conn, conn, conn.cursor() as cur:
        accounts = auth.list_accounts(cur)
    if not accounts:
        print("no DPO accounts: create one with `python -m console.accounts create NAME`")
        return 0
    width = max(len("username"), *(len(a.username) for a in accounts))
    print(f"{'username'.ljust(width)}  created               disabled")
    for a in accounts:
        disabled = f"{a.disabled_at:%Y-%m-%dT%H:%M:%SZ}" if a.disabled_at else "-"
        print(f"{a.username.ljust(width)}  {a.created_at:%Y-%m-%dT%H:%M:%SZ}  {disabled}")
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m console.accounts``."""
    parser = argparse.ArgumentParser(
        prog="python -m console.accounts",
        description="Create, disable and list the DPO console's accounts (passwords stored as Argon2id hashes).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    create = commands.add_parser(
        "create",
        help="create an account; the password is asked for twice (not echoed)",
        description=f"Create the DPO account USERNAME. The password needs at least {auth.MIN_PASSWORD_LENGTH} characters.",
    )
    create.add_argument("username", metavar="USERNAME", help="2-40 lower-case letters, digits, '.', '_' or '-'")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input's first line")
    disable = commands.add_parser("disable", help="disable an account and end its sessions")
    disable.add_argument("username", metavar="USERNAME")
    commands.add_parser("list", help="list the accounts: name, created, disabled (never a password)")
    args = parser.parse_args(argv)
    actions: dict[str, Callable[[Settings], int]] = {
        "create": lambda settings: _create(settings, args.username, args.password_stdin),
        "disable": lambda settings: _disable(settings, args.username),
        "list": _list,
    }
    cli.run(actions[args.command])


if __name__ == "__main__":
    main()
