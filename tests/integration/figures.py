"""The fault suite's figures (issue 18, "Measured, and kept measured").

Each fault test hands what it measured to :func:`record`: fires run, fires recorded,
rows left unfinished, time to recover. It is printed (``pytest -s`` shows it) and, when
``SUPERTASK_FAULT_FIGURES`` names a file, appended to it as one JSON line; ``make
test-faults`` (bench/faults.py) sets it, runs the fault suite and prints the table that
docs/operations.md ("What happens when…") carries.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ENV = "SUPERTASK_FAULT_FIGURES"


def record(fault: str, *, fires: int | None, fires_run: int | None, fires_recorded: int | None,
           unfinished: int | None, recover_s: float | None, note: str = "") -> None:
    """One fault's figures (None: does not apply to this fault; ``note``: what else it says):
    ``fires`` due while it lasted, ``fires_run`` of them run, ``fires_recorded`` with their
    row once it was over, rows left ``unfinished`` (running, queued), seconds to recover."""
    figures = {"fault": fault, "fires": fires, "fires_run": fires_run, "fires_recorded": fires_recorded,
               "unfinished": unfinished, "recover_s": None if recover_s is None else round(recover_s, 1),
               "note": note, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(f"\n{fault}: " + ", ".join(f"{k} {v}" for k, v in figures.items() if k not in ("fault", "at") and v != ""))
    path = os.environ.get(ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(figures) + "\n")


def tick_job(marks: Path, name: str = "tick") -> str:
    """A timetable line: a job firing every second that leaves a file per run in ``marks``."""
    marks.mkdir(parents=True, exist_ok=True)
    return f'  - {{name: {name}, when: "every 1s", run: "cmd:touch {marks}/$(date +%s%N)"}}\n'


def ticks(marks: Path, since: float, until: float) -> int:
    """Runs of a :func:`tick_job` that started between ``since`` and ``until`` (epoch seconds)."""
    return len([m for m in marks.iterdir() if since <= int(m.name) / 1e9 < until])


def tick_rows(rows: list[dict[str, Any]], since: float, until: float, job: str = "tick") -> int:
    """Rows of the job whose fire was due between ``since`` and ``until``."""
    return len([r for r in rows if r["job"] == job
                and since <= datetime.fromisoformat(r["scheduled"]).timestamp() < until])


def unfinished(rows: list[dict[str, Any]]) -> int:
    return len([r for r in rows if r["status"] in ("running", "queued")])
