"""Shared by the benchmark scripts: one subprocess per case, so each peak RSS is its own."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from typing import Callable


def peak_mb() -> float:
    """This process's peak resident memory in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_cases(argv: list[str], script: str, cases: list[str],
              run_case: Callable[[str], dict]) -> list[dict] | None:
    """In a child (``script --child CASE``) print ``run_case(CASE)`` as JSON and return None;
    in the parent run the requested cases (default all) each in a child and return their rows."""
    if len(argv) > 1 and argv[1] == "--child":
        print(json.dumps(run_case(argv[2])))
        return None
    rows = []
    for case in argv[1:] or cases:
        out = subprocess.run([sys.executable, script, "--child", case], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows
