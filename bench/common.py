"""Shared helpers of the benchmark: statistics, process handling, timetables, fire logs.

Every subject gets the same work: each job, every second, runs
``sh -c 'echo "<job> <scheduled> $(date +%s.%N)" >> FILE'``: one shell and one
``date`` child, as in the issue's ``sh -c "date +%s.%N >> file"``. Where a subject
knows the scheduled time (supertask's ``$SUPERTASK_SCHEDULED``, the limit loop) it
writes it; where not (APScheduler 3 does not pass it to the job), ``-`` and the
analysis takes the whole second the child ran in.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
SUPERTASK = ROOT / ".venv" / "bin" / "supertask"
ORIGINAL_VENV = BENCH / "venv-supertask-0.1.1"
ORIGINAL = ORIGINAL_VENV / "bin" / "supertask"
RESULTS = BENCH / "results"
PG_ADMIN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
# The supertask builds under test: this tree's, and with ``--baseline REF`` that commit's
# (``baseline.prepare`` adds it as "baseline").
BUILDS: dict[str, Path] = {"supertask": SUPERTASK}


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# -- statistics ---------------------------------------------------------------------------------


@contextlib.contextmanager
def pg_database(kind: str) -> Iterator[str | None]:
    """A PostgreSQL database of this bench run's own (its name says ``kind``), dropped
    afterwards; None, said in the log, when psycopg or the server is not there."""
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except Exception as exc:  # no psycopg or no server here
        log(f"{kind}: PostgreSQL not reachable:", exc)
        yield None
        return
    name = f"supertask_bench_{kind}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def pg_sql(url: str, query: str, *params: object) -> list[tuple]:
    """One statement on its own connection; its rows (none for a statement without)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def quantile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def time_command(argv: list[str], *, runs: int, env: dict[str, str] | None = None, warmup: int = 1,
                 cwd: str | None = None) -> dict:
    """Wall and CPU time of a command, hyperfine-like: warm-up runs, then ``runs`` timed ones.

    CPU (user + system of the command and the children it waited for, from ``wait4``) is
    what a shared, overloaded machine distorts least: wall time there includes waiting
    for a core.
    """
    times, cpus = [], []
    code = None
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        dt = time.perf_counter() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if i >= warmup:
            times.append(dt)
            cpus.append(usage.ru_utime + usage.ru_stime)
    return {"argv": argv, "median": median(times), "min": min(times), "max": max(times),
            "cpu": median(cpus), "runs": len(times), "exit": code, "times": times}


# -- processes ----------------------------------------------------------------------------------


@dataclass
class Subject:
    """A running scheduler under test, with its stderr collected by a thread."""

    name: str
    proc: subprocess.Popen
    started: float
    lines: list[tuple[float, str]] = field(default_factory=list)

    @classmethod
    def spawn(cls, name: str, argv: list[str], env: dict[str, str] | None = None,
              cwd: str | None = None) -> Subject:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        subject = cls(name, proc, t0)
        threading.Thread(target=subject._read, daemon=True).start()
        return subject

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((time.perf_counter() - self.started, line.rstrip("\n")))

    def wait_for(self, text: str, timeout: float) -> float | None:
        """Seconds from spawn until a stderr line containing ``text``; None on timeout/exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, line in list(self.lines):
                if text in line:
                    return t
            if self.proc.poll() is not None:
                return None
            time.sleep(0.02)
        return None

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    def cpu(self) -> float:
        """CPU seconds of the scheduler process itself (children excluded)."""
        t = self.ps.cpu_times()
        return t.user + t.system

    def children_cpu(self) -> float:
        """CPU seconds of the children the scheduler has reaped (the fires' own work)."""
        t = self.ps.cpu_times()
        return t.children_user + t.children_system

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def tail(self, n: int = 15) -> str:
        return "\n".join(line for _, line in self.lines[-n:])


def machine_ticks() -> tuple[int, int]:
    """(all, idle) CPU ticks of the whole machine so far, from ``/proc/stat``."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return sum(ticks), ticks[3] + ticks[4]  # idle + iowait


# -- the work -----------------------------------------------------------------------------------


def shell_line(job: str, scheduled: str, out: Path) -> str:
    """The command every subject runs: one shell and one ``date``, appending one line."""
    return f'echo "{job} {scheduled} $(date +%s.%N)" >> {out}'


def supertask_timetable(path: Path, *, firing: int, idle: int, out: Path | None,
                        namespace: str = "bench") -> Path:
    """``firing`` jobs every second writing to ``out``, then ``idle`` jobs that fire once a year."""
    with open(path, "w") as f:
        f.write(f"namespace: {namespace}\njobs:\n")
        for i in range(firing):
            cmd = shell_line("$SUPERTASK_JOB", "$SUPERTASK_SCHEDULED", out)
            f.write(f"  - name: j{i}\n    when: \"* * * * * *\"\n    run: {json.dumps('cmd:' + cmd)}\n")
        for i in range(firing, firing + idle):
            f.write(f"  - name: j{i}\n    when: \"0 0 1 1 *\"\n    run: \"cmd:true\"\n")
    return path


def original_timetable(path: Path, *, firing: int, out: Path) -> Path:
    """The original supertask's shape: ``meta`` / ``tasks`` with ``python-entrypoint`` steps
    calling ``subprocess:call(CMD, shell=True)``, i.e. ``/bin/sh -c CMD``."""
    tasks = []
    for i in range(firing):
        tasks.append({
            "meta": {"id": f"j{i}", "name": f"j{i}", "description": "bench", "enabled": True},
            "on": {"schedule": [{"cron": "* * * * * *"}]},
            "steps": [{"name": "run", "uses": "python-entrypoint", "run": "subprocess:call",
                       "args": [shell_line(f"j{i}", "-", out)], "kwargs": {"shell": True}}],
        })
    path.write_text(json.dumps({"meta": {"namespace": "bench"}, "tasks": tasks}))
    return path


# -- fire logs ----------------------------------------------------------------------------------


def parse_scheduled(text: str, child: float) -> float:
    if text == "-":
        return float(math.floor(child))  # the subject does not tell: the second it ran in
    if text.replace(".", "", 1).isdigit():
        return float(text)
    return datetime.fromisoformat(text).timestamp()


def analyse_fires(out: Path, *, jobs: int, start: int, end: int) -> dict:
    """Lateness, missed and doubled fires of the fires scheduled in [start, end)."""
    late: list[float] = []
    seen: Counter[tuple[str, float]] = Counter()
    if out.exists():
        for line in out.read_text().splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue
            job, sched_text, child_text = parts
            child = float(child_text)
            sched = parse_scheduled(sched_text, child)
            if not (start <= sched < end):
                continue
            seen[(job, sched)] += 1
            late.append(child - sched)
    expected = jobs * (end - start)
    distinct = len(seen)
    return {
        "expected": expected,
        "fires": sum(seen.values()),
        "missed": expected - distinct,
        "doubled": sum(c - 1 for c in seen.values() if c > 1),
        "p50_ms": quantile(late, 0.5) * 1000,
        "p99_ms": quantile(late, 0.99) * 1000,
        "max_ms": max(late) * 1000 if late else math.nan,
        "lateness_ms": [round(x * 1000, 2) for x in late],
    }
