"""Mutation score per module from ``mutmut results --all true`` (used by scripts/mutate).

Killed, timed-out and type-check-caught mutants count as caught; survivors and mutants
no test reached count against the score.  Survivors are listed for review.
"""

from __future__ import annotations

import collections
import re
import sys
from pathlib import Path

CAUGHT = {"killed", "timeout", "caught by type check"}
COUNTED = CAUGHT | {"survived", "no tests", "suspicious", "segfault"}
_LINE = re.compile(r"^\s*(?P<name>[\w.]+)__mutmut_\d+: (?P<status>.+?)\s*$")


def main(path: str) -> int:
    caught: collections.Counter[str] = collections.Counter()
    counted: collections.Counter[str] = collections.Counter()
    survivors: dict[str, list[str]] = collections.defaultdict(list)
    for line in Path(path).read_text("utf-8").splitlines():
        match = _LINE.match(line)
        if match is None or match["status"] not in COUNTED:
            continue
        name = match["name"]
        module = name.split(".x_")[0].split(".xǁ")[0]
        counted[module] += 1
        if match["status"] in CAUGHT:
            caught[module] += 1
        else:
            survivors[module].append(f"{line.strip()}")
    print(f"{'module':<20} {'caught':>7} {'total':>6} {'score':>7}")
    for module in sorted(counted):
        score = 100.0 * caught[module] / counted[module]
        print(f"{module:<20} {caught[module]:>7} {counted[module]:>6} {score:>6.1f}%")
    for module in sorted(survivors):
        print(f"\nsurvivors in {module} (see: .venv/bin/mutmut show NAME):")
        for survivor in survivors[module]:
            print(f"  {survivor}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
