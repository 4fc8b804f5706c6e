"""The stats' live counters beside the same counters rebuilt from the rows, to compare."""

from __future__ import annotations

from sqlalchemy import Connection

from verifyd import rebuild, rollup

#: (policy version, arm, counter name) -> count, over every hour.
Totals = dict[tuple[int, str, str], int]


def live_and_rebuilt(conn: Connection) -> tuple[Totals, Totals]:
    """The rollup's non-zero counters, and what ``rebuild.compute`` makes of the rows."""
    live = {
        (v, a, name): n
        for (v, a), counters in rollup.read(conn).items()
        for name, n in counters.items()
        if n
    }
    rebuilt: Totals = {}
    for (v, a, name, _hour), n in rebuild.compute(conn).items():
        rebuilt[v, a, name] = rebuilt.get((v, a, name), 0) + n
    return live, rebuilt
