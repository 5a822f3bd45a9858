"""``make test-faults``: the fault suite, run for its figures (issue 18).

    python bench/faults.py                # run it, print the table for docs/operations.md
    python bench/faults.py -- -k outage   # pytest arguments after --
    python bench/faults.py --table FILE   # the table of figures recorded earlier (JSON lines)

Runs the fault tests (``tests/integration/test_faults_*.py``, ``test_store_outage.py``:
real faults: a 2 MB tmpfs that fills, a proxy that cuts PostgreSQL, hostile folders and
input) with ``SUPERTASK_FAULT_FIGURES`` naming a file, to which each test appends what it
measured (tests/integration/figures.py), then prints them as the markdown table that
docs/operations.md ("What happens when…") carries, with the date and the machine. Exits
with pytest's exit code: a figure from a failing test is not one to publish.
The same tests run in ``make test`` without it (they only print their figures there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = ["tests/integration/test_faults_storage.py", "tests/integration/test_store_outage.py",
         "tests/integration/test_faults_hostile.py"]
COLUMNS = [("fault", "fault"), ("fires", "fires due"), ("fires_run", "fires run"),
           ("fires_recorded", "fires recorded"), ("unfinished", "rows left unfinished"),
           ("recover_s", "time to recover (s)"), ("note", "what else it says")]


def machine() -> str:
    cpus = os.cpu_count() or 0
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.node()}: {cpus} cores ({model}), Linux {platform.release()}, load {load:.1f} at the end"


def table(figures: list[dict[str, object]]) -> str:
    def cell(value: object) -> str:
        return "–" if value is None or value == "" else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(f.get(key)) for key, _ in COLUMNS) + " |" for f in figures]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, help="print the table of this figures file; run nothing")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args()
    if args.table:
        print(table([json.loads(line) for line in args.table.read_text().splitlines() if line.strip()]))
        return 0
    with tempfile.TemporaryDirectory(prefix="supertask-faults-") as tmp:
        out = Path(tmp) / "figures.jsonl"
        began = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "300",
                               *SUITE, *args.pytest_args], cwd=ROOT, env={**os.environ, "SUPERTASK_FAULT_FIGURES": str(out)})
        figures = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
        keep = ROOT / "bench" / "results"
        keep.mkdir(exist_ok=True)
        (keep / "faults.jsonl").write_text("".join(json.dumps(f) + "\n" for f in figures))
    print(f"\nMeasured {began} on {machine()}; `make test-faults` (bench/faults.py), pytest exit {done.returncode}:\n")
    print(table(figures))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
