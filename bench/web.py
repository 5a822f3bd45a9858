"""The dashboard with real volumes (issue 17 point 7): a SQLite store with JOBS jobs and
RUNS runs, a real `supertask web`, and each main page and API path asked REQUESTS times
over HTTP; p50 and p95 of the answer time (measured by the client: the server's time
plus loopback).

    python bench/web.py                      # 10,000 jobs, 1,000,000 runs, 20 requests
    python bench/web.py --jobs 1000 --runs 100000 --requests 10

`bench/run.py --only web` runs it as a section of `make bench`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = ROOT / ".venv" / "bin" / "python"
UTC = timezone.utc
PATHS = ("/", "/jobs", "/jobs?ns=ns0", "/jobs/ns0/job-00000", "/runs", "/runs?status=failed", "/runs?since=7d",
         "/runs?since=40d", "/runs?ns=ns3&since=40d", "/api/v1/overview", "/api/v1/runs?ns=ns1&job=job-00001",
         "/api/v1/jobs?ns=ns0&limit=100", "/api/v1/runs/timeline?since=40d", "RUN_PAGE")


def build_store(folder: Path, jobs: int, runs: int) -> str:
    """Jobs in 10 namespaces through the store's own sync; runs inserted in bulk."""
    sys.path.insert(0, str(ROOT))
    from supertask.model import Job
    from supertask.scheduler.edits import first_fire
    from supertask.store.sql import SqlStore

    url = f"sqlite:///{folder / 'supertask.db'}"
    st = SqlStore.open(url)
    for n in range(10):
        ns = f"ns{n}"
        st.ensure_namespace(ns, source="bench", host="bench", user="bench")
        st.sync(ns, [Job(name=f"job-{i:05d}", when="*/5 * * * *", run="cmd:true")
                     for i in range(n, jobs, 10)], first_fire)
    st.close()
    now = datetime.now(UTC).replace(tzinfo=None)
    statuses = ["succeeded"] * 18 + ["failed", "timed-out"]
    with sqlite3.connect(folder / "supertask.db") as conn:
        batch = []
        for i in range(runs):
            job = i % jobs
            at = now - timedelta(seconds=(runs - i) * 3)
            batch.append((f"ns{job % 10}", f"job-{job:05d}", 1, "schedule", at, at, at + timedelta(seconds=1),
                          statuses[i % 20], 0, "bench", 1, None, "ok", None))
            if len(batch) == 50000:
                conn.executemany("INSERT INTO supertask_runs (namespace, job, attempt, reason, scheduled, started, "
                                 "finished, status, exit_code, host, pid, log_path, log_tail, message) VALUES "
                                 "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
                batch = []
        if batch:
            conn.executemany("INSERT INTO supertask_runs (namespace, job, attempt, reason, scheduled, started, "
                             "finished, status, exit_code, host, pid, log_path, log_tail, message) VALUES "
                             "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
    return url


def measure(jobs: int = 10000, runs: int = 1000000, requests: int = 20) -> dict:
    with tempfile.TemporaryDirectory(prefix="supertask-bench-web-") as tmp:
        folder = Path(tmp)
        began = time.monotonic()
        url = build_store(folder, jobs, runs)
        built = time.monotonic() - began
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERTASK_")}
        env.update(SUPERTASK_HOME=str(folder / "home"), SUPERTASK_LOG_FORMAT="json")
        log = open(folder / "web.log", "w")
        proc = subprocess.Popen([str(PY), "-m", "supertask", "web", "--store", url, "--http", "127.0.0.1:0"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = None
            deadline = time.monotonic() + 60
            while base is None and time.monotonic() < deadline:
                for line in (folder / "web.log").read_text().splitlines():
                    if '"dashboard serving"' in line:
                        base = json.loads(line)["url"].rstrip("/")
                time.sleep(0.05)
            assert base, (folder / "web.log").read_text()
            run_id = json.loads(urllib.request.urlopen(base + "/api/v1/runs?limit=1").read())[0]["id"]
            out = {}
            for path in PATHS:
                path = f"/runs/{run_id // 2}" if path == "RUN_PAGE" else path
                times = []
                for _ in range(requests):
                    t0 = time.perf_counter()
                    with urllib.request.urlopen(base + path) as answer:
                        answer.read()
                        assert answer.status == 200
                    times.append(time.perf_counter() - t0)
                times.sort()
                out[path] = {"p50_ms": round(statistics.median(times) * 1000, 1),
                             "p95_ms": round(times[max(0, math.ceil(0.95 * len(times)) - 1)] * 1000, 1)}
                print(f"{path:40s} p50 {out[path]['p50_ms']:8.1f} ms  p95 {out[path]['p95_ms']:8.1f} ms", flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
    return {"jobs": jobs, "runs": runs, "requests": requests, "store_built_s": round(built, 1), "paths": out}



def log_latency(lines: int = 20) -> dict:
    """How long after a job writes a line its run page's event stream delivers it: a
    `supertask run --http` running a job that prints a line every 0.3 s, read as
    `text/event-stream` by the client; each line's delay is its arrival minus the time
    stamp the log gave it."""
    with tempfile.TemporaryDirectory(prefix="supertask-bench-log-") as tmp:
        folder = Path(tmp)
        (folder / "supertask.yaml").write_text(
            "namespace: bench\njobs:\n  - {name: talk, when: '@yearly', "
            f"run: 'cmd:for i in $(seq {lines}); do echo line $i; sleep 0.3; done'}}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERTASK_")}
        env.update(SUPERTASK_HOME=str(folder / "home"), SUPERTASK_LOG_FORMAT="json")
        log = open(folder / "run.log", "w")
        proc = subprocess.Popen([str(PY), "-m", "supertask", "run", "--http", "127.0.0.1:0"], cwd=folder, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            base = None
            deadline = time.monotonic() + 60
            while base is None and time.monotonic() < deadline:
                for line in (folder / "run.log").read_text().splitlines():
                    if '"dashboard serving"' in line:
                        base = json.loads(line)["url"].rstrip("/")
                time.sleep(0.05)
            assert base, (folder / "run.log").read_text()
            host, port = base.removeprefix("http://").split(":")
            request = urllib.request.Request(base + "/api/v1/jobs/bench/talk/trigger", data=b"{}",
                                             headers={"Content-Type": "application/json"}, method="POST")
            run_id = json.loads(urllib.request.urlopen(request).read())["run_id"]
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
            conn.request("GET", f"/events/runs/{run_id}/log")
            answer = conn.getresponse()
            delays: list[float] = []
            while True:
                raw = answer.readline()
                if not raw or raw.startswith(b"event: end"):
                    break
                if raw.startswith(b"data: "):
                    now = datetime.now(UTC)
                    for text in json.loads(raw[6:]).splitlines():
                        stamp = datetime.fromisoformat(text.split(" ", 1)[0])
                        delays.append((now - stamp).total_seconds())
            conn.close()
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
    live = sorted(delays[1:])  # the first lines may be read before the page opened
    return {"lines": len(delays), "p50_ms": round(statistics.median(live) * 1000), "max_ms": round(live[-1] * 1000)}


def lateness_with_browsers(seconds: int = 20, jobs: int = 20, browsers: int = 5, pause: float = 1.0) -> dict:
    """Fire lateness of ``jobs`` jobs firing every second under `supertask run --http`,
    for ``seconds`` with no one on the pages, then ``seconds`` with ``browsers`` clients
    each fetching the overview, jobs and runs pages, then waiting ``pause`` seconds (0:
    back to back): p50, p95 and max of each."""
    import threading

    with tempfile.TemporaryDirectory(prefix="supertask-bench-late-") as tmp:
        folder = Path(tmp)
        (folder / "supertask.yaml").write_text("namespace: bench\njobs:\n" + "".join(
            f"  - {{name: j{i:02d}, when: 'every 1s', run: 'cmd:true'}}\n" for i in range(jobs)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERTASK_")}
        env.update(SUPERTASK_HOME=str(folder / "home"), SUPERTASK_LOG_FORMAT="json")
        log = open(folder / "run.log", "w")
        proc = subprocess.Popen([str(PY), "-m", "supertask", "run", "--http", "127.0.0.1:0"], cwd=folder, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        stop = threading.Event()
        try:
            base = None
            deadline = time.monotonic() + 60
            while base is None and time.monotonic() < deadline:
                for line in (folder / "run.log").read_text().splitlines():
                    if '"dashboard serving"' in line:
                        base = json.loads(line)["url"].rstrip("/")
                time.sleep(0.05)
            assert base, (folder / "run.log").read_text()
            time.sleep(3)  # past the start
            quiet_from = datetime.now(UTC)
            time.sleep(seconds)
            busy_from = datetime.now(UTC)
            pages = [0]

            def browse() -> None:
                while not stop.is_set():
                    for path in ("/", "/jobs", "/runs"):
                        with urllib.request.urlopen(base + path) as answer:
                            answer.read()
                        pages[0] += 1
                    stop.wait(pause)

            clients = [threading.Thread(target=browse, daemon=True) for _ in range(browsers)]
            for c in clients:
                c.start()
            time.sleep(seconds)
            busy_until = datetime.now(UTC)
            stop.set()
            for c in clients:
                c.join(30)
            runs = json.loads(urllib.request.urlopen(base + "/api/v1/runs?limit=500&ns=bench").read())
            more = runs
            while len(more) == 500:
                more = json.loads(urllib.request.urlopen(f"{base}/api/v1/runs?limit=500&ns=bench&before={more[-1]['id']}").read())
                runs += more
        finally:
            stop.set()
            proc.terminate()
            proc.wait(30)
            log.close()

    def figures(since: datetime, until: datetime) -> dict:
        late = sorted(r["lateness"] for r in runs if r["lateness"] is not None
                      and since <= datetime.fromisoformat(r["scheduled"]) < until)
        return {"fires": len(late), "p50_ms": round(statistics.median(late) * 1000, 1),
                "p95_ms": round(late[math.ceil(0.95 * len(late)) - 1] * 1000, 1), "max_ms": round(late[-1] * 1000, 1)}

    return {"jobs": jobs, "seconds": seconds, "browsers": browsers, "pause": pause, "quiet": figures(quiet_from, busy_from),
            "browsing": {**figures(busy_from, busy_until), "pages_served": pages[0]}}


def _spread(values: list[float]) -> float:
    """(max - min) / median: how far one figure moves from turn to turn."""
    mid = statistics.median(values)
    return round((max(values) - min(values)) / mid, 2) if mid else 0.0


def lateness_pairs(turns: int = 3, seconds: int = 20, pause: float = 1.0) -> dict:
    """:func:`lateness_with_browsers` ``turns`` times: each turn's quiet and browsing
    windows are of the same run. The verdict compares the median browsing p95 with the
    median quiet p95, against the quiet p95's own spread from turn to turn (its noise)."""
    rows = [lateness_with_browsers(seconds, pause=pause) for _ in range(turns)]
    quiet = [r["quiet"]["p95_ms"] for r in rows]
    busy = [r["browsing"]["p95_ms"] for r in rows]
    ratios = [b / q for q, b in zip(quiet, busy, strict=True) if q]
    noise = _spread(quiet)
    ratio = round(statistics.median(ratios), 2) if ratios else None
    return {"turns": rows, "seconds": seconds, "pause": pause, "quiet_p95_ms": statistics.median(quiet),
            "browsing_p95_ms": statistics.median(busy),
            "quiet_p50_ms": statistics.median(r["quiet"]["p50_ms"] for r in rows),
            "browsing_p50_ms": statistics.median(r["browsing"]["p50_ms"] for r in rows),
            "ratio": ratio, "noise": noise, "pass": ratio is not None and ratio <= 1 + noise}


def lateness_lines(late: dict) -> tuple[list[str], tuple[str, str, bool]]:
    """The report's table of :func:`lateness_pairs` and its verdict (target, measured, ok)."""
    lines = [f"Fire lateness under `supertask run --http` (20 jobs every second, the pages served by its child "
             f"`supertask web`): {late['seconds']} s with no one on the pages, then {late['seconds']} s with 5 "
             "clients each loading the overview, jobs and runs pages every second, in the same run; turn by turn:",
             "", "| turn | quiet p50 | quiet p95 | browsing p50 | browsing p95 | pages served |",
             "|---:|---:|---:|---:|---:|---:|"]
    for n, r in enumerate(late["turns"], 1):
        lines.append(f"| {n} | {r['quiet']['p50_ms']} ms | {r['quiet']['p95_ms']} ms | {r['browsing']['p50_ms']} ms | "
                     f"{r['browsing']['p95_ms']} ms | {r['browsing']['pages_served']} |")
    lines += ["", f"Median p95 {late['quiet_p95_ms']} ms quiet, {late['browsing_p95_ms']} ms browsing; the median of the "
                  f"turns' ratios {late['ratio']}×, against the quiet p95's turn-to-turn noise of {late['noise']:.0%}."]
    return lines, ("5 browsers do not move fire lateness (the median browsing/quiet p95 ratio within the quiet "
                   "p95's turn-to-turn noise)", f"{late['ratio']}× (noise {late['noise']:.0%})", bool(late["pass"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=1000000)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--turns", type=int, default=3, help="turns of the lateness pair")
    ap.add_argument("--only", choices=("pages", "log", "lateness"), help="one part only")
    args = ap.parse_args()
    if args.only in (None, "log"):
        print(json.dumps(log_latency(), indent=1))
    if args.only in (None, "lateness"):
        print(json.dumps(lateness_pairs(args.turns), indent=1))
    if args.only in (None, "pages"):
        print(json.dumps(measure(args.jobs, args.runs, args.requests), indent=1))


if __name__ == "__main__":
    main()
