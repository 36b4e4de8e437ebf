"""The layout is the architecture: imports only point down (core is the library every stage
imports; no module imports a command, and only commands parse arguments and print)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT

STAGES = ("data_generators", "collector", "consumers", "batch", "analytics", "gdpr", "reports", "console")
# The scheduler runs the stages' commands on time, as the demo runs them in order; the dashboard
# watches every stage at once.
APPLICATIONS = ("demo", "devstack", "bench", "scheduler", "dashboard")
PACKAGES = ("core", *STAGES, *APPLICATIONS)


def modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            if any(part.startswith(".") for part in parts):
                continue  # a virtual environment inside a package (the bench's Quix baseline)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(path: Path) -> set[str]:
    """The project modules ``path`` imports (``from a.b import c`` counts as a.b and a.b.c)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] in PACKAGES}


def is_entry_point(path: Path) -> bool:
    return path.name == "__main__.py" or 'if __name__ == "__main__"' in path.read_text(encoding="utf-8")


ALL = modules()


def test_the_packages_are_where_the_layout_says() -> None:
    assert {name.split(".")[0] for name in ALL} == set(PACKAGES)


@pytest.mark.parametrize("name", sorted(n for n in ALL if n.split(".")[0] == "core"))
def test_core_imports_no_stage_and_no_application(name: str) -> None:
    outside = {i for i in imported(ALL[name]) if i.split(".")[0] != "core"}
    assert not outside, f"{name} (library) imports {sorted(outside)}"


@pytest.mark.parametrize("name", sorted(n for n in ALL if n.split(".")[0] in STAGES))
def test_stages_import_no_application(name: str) -> None:
    apps = {i for i in imported(ALL[name]) if i.split(".")[0] in APPLICATIONS}
    assert not apps, f"{name} imports {sorted(apps)}"


# Between stages the arrows run one way: a stage named here imports none of the stages listed
# with it. The reports read the analyses and their release rules (analytics.release); an analysis
# never reads a report, so each can change without the other going in a circle.
STAGE_IMPORTS_FORBIDDEN = {"analytics": ("reports", "console")}


@pytest.mark.parametrize("name", sorted(n for n in ALL if n.split(".")[0] in STAGE_IMPORTS_FORBIDDEN))
def test_stage_dependencies_run_one_way(name: str) -> None:
    forbidden = STAGE_IMPORTS_FORBIDDEN[name.split(".", maxsplit=1)[0]]
    found = {i for i in imported(ALL[name]) if i.split(".")[0] in forbidden}
    assert not found, f"{name} imports {sorted(found)}: what both need belongs in the lower stage (e.g. analytics.release)"


# The bench's scripts are commands that compose its harness (bench.harness); they are the bench's own.
COMMAND_IMPORT_EXCEPTIONS = ("bench",)


@pytest.mark.parametrize("name", sorted(n for n in ALL if n.split(".")[0] not in COMMAND_IMPORT_EXCEPTIONS))
def test_no_module_imports_a_command(name: str) -> None:
    """A command module (what ``python -m`` runs) holds the parser, main() and the printing, nothing
    another module needs: shared code lives in library modules (batch.metrics, gdpr.retention's
    package, ...). Where a documented command is also a library (core.db, gdpr.retention), the name
    is a package: the library in its ``__init__.py``, the command in its ``__main__.py``."""
    commands = {i for i in imported(ALL[name]) if i in ALL and i != name and is_entry_point(ALL[i])}
    assert not commands, f"{name} imports the command(s) {sorted(commands)}: move what it needs to a library module"


# Modules that may import argparse without being a command, and why.
ARGPARSE_EXCEPTIONS = {
    "core.cli": "the commands' shared kit: day and format arguments, one-line errors",
    "core.metrics": "the --metrics-port option every service and consumer takes",
    "core.web": "the HTTP services' one command line (web.command: --host, --port, --metrics-port)",
    "devstack.stack": "the embedded stack's options, shared by python -m devstack and make up",
}


def imports_argparse(path: Path) -> bool:
    return "argparse" in {
        alias.name
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Import)
        for alias in node.names
    }


@pytest.mark.parametrize("name", sorted(n for n in ALL if n not in ARGPARSE_EXCEPTIONS and not is_entry_point(ALL[n])))
def test_only_commands_parse_arguments(name: str) -> None:
    """A library takes its inputs as parameters: the command line is its command's business."""
    assert not imports_argparse(ALL[name]), f"{name} is a library but imports argparse: move its parser to its command"


def test_the_argparse_exceptions_still_parse_arguments() -> None:
    """An exception that no longer needs to be one is removed from the list."""
    stale = [n for n in ARGPARSE_EXCEPTIONS if not imports_argparse(ALL[n])]
    assert stale == []


def test_print_is_allowed_in_commands_only() -> None:
    """Each file pyproject.toml exempts from ruff's print rule (T20) by name is a command, or the
    commands' kit; the patterns are __main__.py files, tests and the applications (bench, demo,
    devstack) that are commands through and through."""
    settings = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    ignores = settings["tool"]["ruff"]["lint"]["per-file-ignores"]
    named = [path for path, rules in ignores.items() if "T20" in rules and "*" not in path]
    libraries = [path for path in named if path != "core/cli.py" and not is_entry_point(PROJECT_ROOT / path)]
    assert named and libraries == [], f"print() exempted in library modules: {libraries}"
    patterns = sorted(path for path, rules in ignores.items() if "T20" in rules and "*" in path)
    assert patterns == ["**/__main__.py", "bench/*.py", "demo/*.py", "devstack/*.py", "tests/**"]


def test_the_design_config_module_is_for_outside_code_only() -> None:
    """``config`` (top level) exists for code written against the design document; the platform
    reads its settings from core.config, so a second reader can never drift from it."""

    def names_config(node: ast.AST) -> bool:
        if isinstance(node, ast.Import):
            return any(alias.name.split(".")[0] == "config" for alias in node.names)
        return isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "config"

    users = [name for name, path in ALL.items() if any(map(names_config, ast.walk(ast.parse(path.read_text(encoding="utf-8")))))]
    assert users == []


# A statement naming the table: the SQL keyword before it, as the code writes SQL (upper case).
NAMES_PRIVACY_REQUESTS = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN|USING|TABLE)\s+privacy_requests\b")
# Modules that may still name privacy_requests in SQL, and why.
PRIVACY_REQUESTS_EXCEPTIONS = {
    "gdpr.requests": "the owner of the table: every statement on it",
    "bench.pipeline": "the bench files requests as an operator would, by SQL, and counts the outcomes",
    "bench.history": "the bench files requests as an operator would, by SQL, and counts the outcomes",
    "demo.__main__": "the demo shows the design's way to file a request: an operator's INSERT",
}


def sql_strings(path: Path) -> list[str]:
    """Every string constant of the module (adjacent literals joined; an f-string's literal parts)."""
    return [
        node.value
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


@pytest.mark.parametrize("name", sorted(n for n in ALL if n not in PRIVACY_REQUESTS_EXCEPTIONS))
def test_only_gdpr_requests_names_privacy_requests_in_sql(name: str) -> None:
    """The privacy request's lifecycle has one owner: a statement on the table elsewhere would
    drift from its statuses, its open set and the columns each login may read."""
    found = [s for s in sql_strings(ALL[name]) if NAMES_PRIVACY_REQUESTS.search(s)]
    assert not found, f"{name} names privacy_requests in SQL: call a function of gdpr.requests instead: {found}"


def test_the_privacy_requests_exceptions_still_name_the_table() -> None:
    """An exception that no longer needs to be one is removed from the list."""
    stale = [n for n in PRIVACY_REQUESTS_EXCEPTIONS if not any(map(NAMES_PRIVACY_REQUESTS.search, sql_strings(ALL[n])))]
    assert stale == []


def reachable(graph: dict[str, list[str]], start: str) -> set[str]:
    """The modules ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return seen


def import_cycles() -> list[tuple[str, ...]]:
    """Every group of project modules that import each other, directly or through others (an
    import inside a function counts: it runs all the same)."""
    graph = {name: sorted(i for i in imported(path) if i in ALL and i != name) for name, path in ALL.items()}
    reach = {name: reachable(graph, name) for name in graph}
    return sorted({tuple(sorted(n for n in reach[name] if name in reach[n])) for name in graph if name in reach[name]})


def test_no_import_cycles() -> None:
    """Imports form a tree of layers: a module that imports one that imports it back (even inside
    a function) has two owners for one concept; what both need goes in a third module they import."""
    cycles = import_cycles()
    assert cycles == [], f"modules that import each other: {cycles}"
