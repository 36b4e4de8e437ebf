"""``make bench``: every stage on the same generated events, each against a baseline measured in
the same run, printed as ratios and written to ``bench/results/`` (JSON and Markdown) and into ``docs/benchmarks.md``.

The command that chooses a bench: ``--scale small|large`` runs bench.pipeline (every stage of the
pipeline against its baseline), ``scaleout`` bench.scaleout (the consumers with 1, 2, 4, ...
instances), ``history`` bench.history (costs over 400 days of history), ``releases`` only the pipeline bench's
DP release rows, on the day summaries of the configured database (the demo's after ``make demo``). Each composes
bench.harness and is described in its own module.
"""

from __future__ import annotations

import argparse

from bench import history, pipeline, scaleout
from core import cli
from core.config import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale",
        choices=[*sorted(pipeline.SCALES), "scaleout", "history", "releases"],
        default="small",
        help="small: 1M users, 1M events; large: 10M events; scaleout: the consumers with 1, 2, 4, ... instances "
        "(bench.scaleout); history: 400 days at 10M and 50M events (bench.history, its own options follow); "
        "releases: only the DP release rows, on the configured database",
    )
    parser.add_argument("--events", type=int, help="override the number of events")
    parser.add_argument("--keep", action="store_true", help="leave the stack running and its folder in place")
    args, rest = parser.parse_known_args(argv)
    if args.scale == "history":
        if args.events:
            parser.error("--scale history takes --small-events and --large-events instead of --events")
        history.main([*rest, *(["--keep"] if args.keep else [])])
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.scale == "releases":

        def releases(settings: Settings) -> int:
            for row in pipeline.release_rows(settings):
                ratio = "" if row.ratio is None else f" ({row.ratio:.2f}x, target {row.target})"
                print(f"{row.stage}: {row.measured} vs {row.baseline}{ratio}\n  {row.notes}")
            return 0

        cli.run(releases)
        return
    if args.scale == "scaleout":
        scaleout.main([*(["--events", str(args.events)] if args.events else []), *(["--keep"] if args.keep else [])])
        return
    pipeline.main(args.scale, args.events, keep=args.keep)


if __name__ == "__main__":
    main()
