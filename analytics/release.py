"""The release rules for every figure that leaves the pseudonymous zone: what a report, a command's
table or JSON, or the dashboard may show of data about people (issue 29 makes this THE release
module: each figure published goes through it).

Today it holds the k-rule, small-cell protection: no cell may single out a person. A cell that
describes fewer than ``k`` people (but not zero: "nobody" discloses nothing) is suppressed.
Suppressing it is not enough when the total is printed too: total minus the shown cells would
give it back. So while the suppressed cells together describe fewer than ``k`` people, the
smallest shown cell is suppressed as well (secondary suppression).

It lives in ``analytics`` (beside the analyses whose output it guards) so that the dependency runs
one way: reports and the dashboard import analytics, never the reverse.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

DEFAULT_MIN_CELL_USERS = 5
SUPPRESSED = "suppressed"

K = TypeVar("K", bound=Hashable)


def suppressed_cells(people: Mapping[K, int], k: int) -> set[K]:
    """The keys of ``people`` (cell -> number of distinct people it describes) to hide."""
    if k <= 1:
        return set()
    hidden = {key for key, n in people.items() if 0 < n < k}
    if not hidden:
        return hidden
    shown = sorted((n, i, key) for i, (key, n) in enumerate(people.items()) if key not in hidden and n > 0)
    while sum(people[key] for key in hidden) < k and shown:
        hidden.add(shown.pop(0)[2])
    return hidden


def marker(k: int) -> str:
    """What a suppressed cell shows instead of its figure."""
    return f"< {k} users, {SUPPRESSED}"
