"""``python -m data_generators.generate_users``: the command line of :mod:`data_generators.generate_users`."""

from __future__ import annotations

import argparse

from core import cli
from core.config import Settings
from data_generators.generate_users import SIGNUP_WINDOW_DAYS, seed_users


def consent_share(text: str) -> float:
    """argparse type for --consent-share: a number from 0 to 1."""
    try:
        share = float(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}") from e
    if not 0.0 <= share <= 1.0:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {text}")
    return share


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_generators.generate_users",
        description="Seed Faker users of EU countries: PII into users_pii, country and signup date into "
        "users_public, and an analytics consent grant from signup for a share of them into consent_ledger. "
        "Makes sure COUNT users exist (counting users made by anybody); safe to re-run.",
    )
    parser.add_argument("--count", type=int, default=10_000, help="number of users that should exist (default: 10000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed, for reproducible users (default: 42)")
    parser.add_argument(
        "--consent-share",
        type=consent_share,
        default=1.0,
        metavar="F",
        help="share (0 to 1) of the users added that grant analytics consent from their signup, recorded in "
        "consent_ledger with source 'generator'; the same users for a seed on every run (default: 1)",
    )
    parser.add_argument(
        "--signup-days",
        type=int,
        default=None,
        metavar="N",
        help=f"spread the added users' signups over the last N days, today included (1 to {SIGNUP_WINDOW_DAYS}), for recent "
        "signup-week cohorts; generate_events --behaviour shoppers starts nobody's sessions before their signup (default: "
        "signups 1 to 3 years before the longest history generate_events can make)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    if args.signup_days is not None and not 1 <= args.signup_days <= SIGNUP_WINDOW_DAYS:
        parser.error(f"--signup-days must be between 1 and {SIGNUP_WINDOW_DAYS}")

    def execute(settings: Settings) -> int:
        result = seed_users(settings, args.count, args.seed, consent_share=args.consent_share, signup_days=args.signup_days)
        print(
            f"users: {result.added:,} added, {args.count:,} requested ({result.existing:,} already existed); "
            f"{result.consented:,} of the added with analytics consent"
        )
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
