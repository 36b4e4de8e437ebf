"""docs/configuration.md, written from the settings models (core.config): every variable, its
default and its meaning, per section; a unit test fails when the committed file is stale."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import SecretStr

from core.config import DEFAULTS, PROJECT_ROOT, Section, Settings, sections, variables

DOC = PROJECT_ROOT / "docs" / "configuration.md"

INTRO = """\
# Configuration

<!-- Written by `make docs` (python -m core.settings_doc) from the models in core/config.py: edit those. -->

Every setting the platform reads, with its default and its meaning: where settings come from, the
variables of each component, and the settings of the test suite's stack.

Environment variables win over `.local/stack.env` (written by `make up`; `STACK_FILE` names
another file), which wins over the defaults (the compose values). A value that cannot work stops
the command with one line naming the variable.
"""

TESTS = """\
## Tests

`make test` runs the suite in four workers (`TEST_WORKERS`, pytest-xdist), each starting an
isolated embedded stack on free ports in a temporary folder (never `.local/`); the first lines of
the run say which stack it is (`stack: embedded (Tansu + PostgreSQL 18.x ...)`, or the existing
URLs with the password masked). `TEST_DATABASE_URL` + `TEST_KAFKA_BOOTSTRAP_SERVERS` run the suite
against an existing stack instead (its tables are truncated: use a disposable database, and
`TEST_WORKERS=0`, since the workers would empty each other's tables); `TEST_STACK=testcontainers`
(with Docker and `pip install testcontainers`) against Kafka and postgres:17 containers. Our CI has
no Docker engine, so only the first two are exercised there.
"""


def _title(section: type[Section]) -> str:
    if section is Settings:
        return "General"
    for owner in sections():
        for field in owner.model_fields.values():
            if field.annotation is section and field.description:
                return field.description[0].upper() + field.description[1:]
    return section.__name__


def _default(variable: str, secret: bool) -> str:
    value = DEFAULTS[variable]
    if not value:
        return "empty"
    # A secret's default is public (the development one): shown only as that.
    return "(development default)" if secret else f"`{value}`"


def markdown() -> str:
    """The whole of docs/configuration.md."""
    parts = [INTRO]
    by_section: dict[type[Section], list[str]] = {}
    for section, variable, field in variables():
        secret = field.annotation is SecretStr
        row = f"| `{variable}` | {_default(variable, secret)} | {field.description} |"
        by_section.setdefault(section, []).append(row)
    for section, rows in by_section.items():
        prose = " ".join(line.strip() for line in (section.__doc__ or "").strip().splitlines())
        parts.append(
            f"## {_title(section)}\n\n{prose}\n\n| variable | default | meaning |\n|---|---|---|\n" + "\n".join(rows) + "\n"
        )
    parts.append(TESTS)
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.settings_doc", description=__doc__)
    parser.add_argument("--output", type=Path, default=DOC, help=f"where to write it (default: {DOC.relative_to(PROJECT_ROOT)})")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when the file differs from the models")
    args = parser.parse_args(argv)
    text = markdown()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if current != text:
            sys.stderr.write(f"{args.output} is stale: run `make docs`\n")
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
