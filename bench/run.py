"""``make bench``: supertask side by side with its peers, in one run on this machine.

    python bench/run.py            # the issue's sizes (~35-40 min here)
    python bench/run.py --quick    # small sizes and short runs (~8 min)
    python bench/run.py --baseline a5753cf   # and that commit's supertask, turn by turn (~35 min)
    python bench/run.py --only lateness,startup   # some sections (others kept from the last run)
    python bench/run.py --only cluster   # 3 hosts on one PostgreSQL: lateness, failover, live changes
    python bench/run.py --sizes 100,500 --seconds 15   # lateness at those rates, shorter windows
    python bench/run.py --report   # rewrite docs/benchmarks.md from bench/results/results.json

Results go to ``bench/results/results.json`` (git-ignored); ``bench/report.py``
turns them into ``docs/benchmarks.md`` and ``docs/benchmarks/*.png``. Where the results
hold only some sections (no full run kept on this machine), the report takes the
workers, dashboard (``web``) and several-hosts (``cluster``) sections into the
docs/benchmarks.md it finds and keeps its other sections as they were.

``--baseline REF`` (``make bench BASELINE=REF``) builds commit REF's supertask in a
worktree of its own (``bench/baseline.py``) and runs it beside this tree's in the lateness
(100, 500 and 1,000 fires a second), launch and start-up sections, the two builds
alternating turn by turn; the report opens with their before/after table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline  # noqa: E402
from common import (  # noqa: E402
    BENCH,
    BUILDS,
    ORIGINAL,
    RESULTS,
    SUPERTASK,
    VENV_PY,
    Subject,
    analyse_fires,
    log,
    machine_ticks,
    original_timetable,
    pg_database,
    supertask_timetable,
    time_command,
)

SECTIONS = ("lateness", "launch", "startup", "imports", "scale", "web", "workers", "cluster")
SUBJECTS = ("limit", "supertask", "apscheduler", "original")


def reset_pg(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


# -- 1. fire lateness ---------------------------------------------------------------------------


def spawn_subject(kind: str, jobs: int, out: Path, work: Path, pg: str | None,
                  env: dict[str, str], timetable: Path | None = None) -> Subject | None:
    if kind == "limit":
        return Subject.spawn(kind, [str(VENV_PY), str(BENCH / "peers" / "limit.py"), str(jobs), str(out)])
    if kind == "apscheduler":
        return Subject.spawn(kind, [str(VENV_PY), str(BENCH / "peers" / "aps_peer.py"), "run", str(jobs),
                                    str(out), str(work / "aps.sqlite")], cwd=str(BENCH / "peers"))
    if kind == "original":
        if not ORIGINAL.exists() or pg is None:
            return None
        reset_pg(pg)
        tt = original_timetable(work / "original.json", firing=jobs, out=out)
        return Subject.spawn(kind, [str(ORIGINAL), "--store-address", pg, "--pre-delete-jobs", "run", str(tt)],
                             cwd=str(work))
    if kind in BUILDS:  # this tree's supertask, or the baseline's
        tt = timetable or supertask_timetable(work / "supertask.yaml", firing=jobs, idle=0, out=out)
        return Subject.spawn(kind, [str(BUILDS[kind]), "run", "--file", str(tt), "--log-level", "warning",
                                    "--log-format", "json", "--no-watch"], env=env)
    raise ValueError(kind)


def measure_fires(subject: Subject, jobs: int, out: Path, duration: int, settle: float = 3.0) -> dict:
    """Wait for the first fire, then measure the fires scheduled in a window of ``duration`` s."""
    deadline = time.time() + 300
    while not (out.exists() and out.stat().st_size) and time.time() < deadline:
        if subject.proc.poll() is not None:
            return {"error": f"exited {subject.proc.returncode}: {subject.tail()}"}
        time.sleep(0.05)
    if not out.exists():
        return {"error": "no fire within 300 s: " + subject.tail()}
    start = math.ceil(time.time()) + 2
    end = start + duration
    time.sleep(max(0.0, start - 0.5 - time.time()))
    cpu0, rss0, kids0, ticks0 = subject.cpu(), subject.rss_mb(), subject.children_cpu(), machine_ticks()
    time.sleep(max(0.0, end - 0.5 - time.time()))
    cpu1, rss1, kids1, ticks1 = subject.cpu(), subject.rss_mb(), subject.children_cpu(), machine_ticks()
    time.sleep(settle + 0.5)
    result = analyse_fires(out, jobs=jobs, start=start, end=end)
    fires = max(1, result["fires"])
    all_ticks, idle_ticks = ticks1[0] - ticks0[0], ticks1[1] - ticks0[1]
    result.update(cpu_pct=100 * (cpu1 - cpu0) / duration, rss_mb=max(rss0, rss1), duration=duration,
                  runs_per_s=(result["fires"] - result["doubled"]) / duration,
                  # what the fires cost the machine: the reaped children's CPU a fire, the
                  # scheduler's own a fire, and how busy all cores were in the window
                  child_cpu_ms=1000 * (kids1 - kids0) / fires, own_cpu_ms=1000 * (cpu1 - cpu0) / fires,
                  machine_busy_pct=100 * (1 - idle_ticks / all_ticks) if all_ticks else math.nan)
    return result


def lateness(sizes: list[int], duration: int, pg: str | None, repeats: int = 1,
             ab_sizes: tuple[int, ...] = ()) -> dict:
    """Each subject at each size. Where a target is a ratio to the limit loop (100 fires
    a second and fewer), the limit loop and supertask run ``repeats`` times in turn
    (limit, supertask, limit, supertask, ...), so each supertask run has a limit run of
    the minute before it: a 30 s window on these shared machines moves p99 by a fifth
    from one minute to the next. The row kept is the run with the median p99; the ratio
    is the median of the pairs' ratios.

    With a baseline build, at ``ab_sizes`` each turn is the limit loop then both builds,
    which of them first alternating turn by turn (limit, supertask, baseline, limit,
    baseline, supertask, ...); every turn's figures are kept (``turns``) for the
    before/after ratio and the run-to-run noise."""
    rows = []
    for jobs in sizes:
        ab = baseline.NAME in BUILDS and jobs in ab_sizes
        reps = repeats if jobs <= 100 or ab else 1
        builds = ["supertask", baseline.NAME] if ab else ["supertask"]
        order = [k for t in range(reps) for k in ["limit", *baseline.turn_order(builds, t)]]
        order += [k for k in SUBJECTS if k not in ("limit", "supertask")]
        runs: dict[str, list[dict]] = {}
        for kind in order:
            work = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
            out = work / "fires.log"
            env = dict(os.environ, SUPERTASK_HOME=str(work / "home"))
            log(f"lateness: {kind} with {jobs} job(s) every second for {duration} s")
            subject = spawn_subject(kind, jobs, out, work, pg, env)
            if subject is None:
                runs.setdefault(kind, []).append({"subject": kind, "jobs": jobs, "error": "not available (see docs)"})
                continue
            try:
                result = measure_fires(subject, jobs, out, duration)
            finally:
                subject.stop()
                shutil.rmtree(work, ignore_errors=True)
            result.update(subject=kind, jobs=jobs)
            log(f"  p50 {result.get('p50_ms', math.nan):.1f} ms p99 {result.get('p99_ms', math.nan):.1f} ms"
                f" missed {result.get('missed')} doubled {result.get('doubled')} cpu {result.get('cpu_pct', 0):.0f}%"
                f" machine {result.get('machine_busy_pct', 0):.0f}% child {result.get('child_cpu_ms', 0):.2f} ms/fire"
                + (f" ERROR {result['error']}" if "error" in result else ""))
            runs.setdefault(kind, []).append(result)
        for kind in [*SUBJECTS, *([baseline.NAME] if ab else [])]:
            done = [r for r in runs.get(kind, []) if "p99_ms" in r]
            if not done:
                rows.extend(runs.get(kind, [])[:1])
                continue
            row = sorted(done, key=lambda r: r["p99_ms"])[(len(done) - 1) // 2]
            if len(done) > 1:
                row["repeats_p99_ms"] = [round(r["p99_ms"], 1) for r in done]
            pairs = [(lim["p99_ms"], st["p99_ms"]) for lim, st in zip(runs.get("limit", []), runs.get(kind, []), strict=False)
                     if "p99_ms" in lim and "p99_ms" in st and lim["p99_ms"] > 0]
            if kind in builds and len(pairs) > 1:
                row["pair_ratios"] = [round(st / lim, 3) for lim, st in pairs]
            if ab and kind in builds:  # each turn, in order (a failed run keeps its place as NaN)
                row["turns"] = [{k: r.get(k, math.nan) for k in ("p50_ms", "p99_ms", "runs_per_s", "missed", "own_cpu_ms")}
                                for r in runs.get(kind, [])]
            rows.append(row)
    return {"rows": rows, "duration": duration, "cores": os.cpu_count(), "repeats": repeats,
            "ab_sizes": [j for j in sizes if j in ab_sizes] if baseline.NAME in BUILDS else []}


# -- 2. launch overhead -------------------------------------------------------------------------


def launch(runs: int, label: str | None = None, turns: int = 5) -> dict:
    names = baseline.build_names(label)
    homes = {b: tempfile.mkdtemp(prefix=f"bench-launch-{b}-") for b in names}
    envs = {b: dict(os.environ, SUPERTASK_HOME=home) for b, home in homes.items()}
    rows = {
        "sh -c true": time_command(["sh", "-c", "true"], runs=runs * 3),
        "python -c pass": time_command([str(VENV_PY), "-c", "pass"], runs=runs),
        **baseline.time_supertask(["run", "--log-level", "warning", "--", "cmd:true"], names=names, runs=runs, turns=turns,
                         envs=envs, key=" run -- cmd:true"),
    }
    for home in homes.values():
        shutil.rmtree(home, ignore_errors=True)
    for k, v in rows.items():
        log(f"launch: {k}: {v['median'] * 1000:.1f} ms")
    return {"rows": rows}


# -- 3. start-up --------------------------------------------------------------------------------


def startup(runs: int, jobs: int, label: str | None = None, turns: int = 5) -> dict:
    """Start-up of each command. With a baseline, each build has its own home and, for
    ``list-jobs``, its own scheduler (both up at once, idle), and the builds alternate."""
    names = baseline.build_names(label)
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    homes = {b: work / f"home-{b}" for b in names}
    envs = {b: dict(os.environ, SUPERTASK_HOME=str(home)) for b, home in homes.items()}
    tt = supertask_timetable(work / "supertask.yaml", firing=0, idle=jobs, out=None)
    def timed(args: list[str], env: dict[str, dict[str, str]], key: str | None = None) -> dict[str, dict]:
        return baseline.time_supertask(args, names=names, runs=runs, turns=turns, envs=env, key=key)

    rows = {
        "python -c pass": time_command([str(VENV_PY), "-c", "pass"], runs=runs),
        "python -c 'import typer'": time_command([str(VENV_PY), "-c", "import typer"], runs=runs),
        "python -c 'import apscheduler…, sqlalchemy'": time_command(
            [str(VENV_PY), "-c", "import apscheduler.schedulers.background, sqlalchemy"], runs=runs),
        **timed(["--help"], envs),
        **timed(["--version"], envs),
        **timed(["validate", str(tt)], envs, key=f" validate ({jobs} jobs)"),
    }
    if ORIGINAL.exists():
        rows["supertask==0.1.1 --help"] = time_command([str(ORIGINAL), "--help"], runs=max(3, runs // 2))
    log(f"startup: scheduler with {jobs} jobs for list-jobs ({', '.join(names.values())})")
    subjects = {b: Subject.spawn(b, [str(BUILDS[b]), "run", "--file", str(tt), "--log-level", "info",
                                     "--log-format", "json", "--no-watch"], env=envs[b]) for b in names}
    live = {b: False for b in names}
    try:
        failed = [b for b, s in subjects.items() if s.wait_for("scheduler started", 300) is None]
        if failed:
            for b in failed:
                rows[f"{names[b]} list-jobs (running scheduler)"] = {"error": subjects[b].tail()}
        else:
            time.sleep(1.0)
            live = {b: any(p.is_socket() for p in home.rglob("*")) if home.exists() else False
                    for b, home in homes.items()}
            key = " list-jobs --json, live" if live["supertask"] else " list-jobs --json, store view"
            rows.update(timed(["list-jobs", "--json"], envs, key=key))
            rows.update(timed(["list-jobs"], {b: dict(e, COLUMNS="200") for b, e in envs.items()},
                              key=key.replace(" --json", "")))
    finally:
        for s in subjects.values():
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
    for k, v in rows.items():
        if "median" in v:
            log(f"startup: {k}: {v['median'] * 1000:.1f} ms (exit {v['exit']})")
    return {"rows": rows, "jobs": jobs, "live_control": live["supertask"],
            "live_control_builds": {names[b]: v for b, v in live.items()}}


# -- 3b. what start-up is made of -----------------------------------------------------------------

IMPORTS = ("typer", "pydantic", "rich.console", "structlog", "yaml", "croniter", "psutil", "sqlalchemy",
           "apscheduler.schedulers.background", "rpyc", "supertask.cli", "supertask.cli.commands",
           "supertask.store.sql", "supertask.scheduler.service")


def imports(runs: int) -> dict:
    """``python -X importtime -c 'import M'``: M's own cumulative import time, median of ``runs``;
    and the RSS of an interpreter that imported what ``supertask run`` imports."""
    rows = {}
    for mod in IMPORTS:
        times = []
        for _ in range(runs):
            p = subprocess.run([str(VENV_PY), "-X", "importtime", "-c", f"import {mod}"], capture_output=True, text=True)
            cum = [int(line.split("|")[1]) for line in p.stderr.splitlines()
                   if line.startswith("import time:") and line.split("|")[2].strip() == mod]
            if cum:
                times.append(cum[-1] / 1e6)
        rows[mod] = {"median": sorted(times)[len(times) // 2] if times else math.nan, "runs": len(times)}
        log(f"imports: {mod}: {rows[mod]['median'] * 1000:.0f} ms")
    code = ("import psutil; p = psutil.Process(); a = p.memory_info().rss\n"
            "import supertask.cli, supertask.cli.commands, supertask.scheduler.service, supertask.store.sql\n"
            "import json; print(json.dumps([a / 2**20, p.memory_info().rss / 2**20]))")
    p = subprocess.run([str(VENV_PY), "-c", code], capture_output=True, text=True)
    try:
        bare, loaded = json.loads(p.stdout)
    except ValueError:
        bare = loaded = math.nan
    return {"rows": rows, "rss_bare_mb": bare, "rss_imported_mb": loaded}


# -- 4. scale -----------------------------------------------------------------------------------


def scale(sizes: list[int], pg: str | None, duration: int, aps_sizes: list[int], checkpoint=None,
          pg_sizes: list[int] | None = None, wait: float = 240) -> dict:
    """Sync, start, idle RSS per store and size; then lateness with the largest stored size
    that started within ``wait`` seconds, of which 100 jobs fire every second."""
    rows = []
    stores: list[tuple[str, str | None, list[int]]] = [("sqlite", None, sizes)]
    if pg:
        stores.append(("postgresql", pg, pg_sizes or sizes))
    late = None
    for store_name, url, store_sizes in stores:
        for jobs in store_sizes:
            work = Path(tempfile.mkdtemp(prefix=f"bench-scale-{store_name}-"))
            env = dict(os.environ, SUPERTASK_HOME=str(work / "home"))
            if url:
                reset_pg(url)
                env["SUPERTASK_STORE"] = url
            tt = supertask_timetable(work / "supertask.yaml", firing=0, idle=jobs, out=None)
            row: dict = {"store": store_name, "jobs": jobs}
            argv = [str(SUPERTASK), "run", "--file", str(tt), "--log-level", "info", "--log-format", "json",
                    "--no-watch"]
            log(f"scale: {store_name}, {jobs} jobs: first start (sync into an empty store)")
            s = Subject.spawn("supertask", argv, env=env)
            try:
                row["synced_s"] = s.wait_for("timetable synced", wait)
                row["first_started_s"] = s.wait_for("scheduler started", wait) if row["synced_s"] else None
                if row["first_started_s"] is not None:  # idle after the sync, as a new user sees it
                    time.sleep(3)
                    row["first_idle_rss_mb"] = s.rss_mb()
                if row["first_started_s"] is None:
                    with contextlib.suppress(Exception):
                        row["rss_at_timeout_mb"] = s.rss_mb()
                    row["error"] = (f"not started within {wait:.0f} s" if row["synced_s"] else
                                    f"not synced within {wait:.0f} s")
            finally:
                s.stop(60)
            if "error" not in row:
                log(f"scale: {store_name}, {jobs} jobs: restart with them stored, idle")
                s = Subject.spawn("supertask", argv, env=env)
                try:
                    row["restart_synced_s"] = s.wait_for("timetable synced", wait)
                    row["started_s"] = s.wait_for("scheduler started", wait)
                    time.sleep(3)
                    row["idle_rss_mb"] = s.rss_mb()
                    c0 = s.cpu()
                    time.sleep(3)
                    row["idle_cpu_pct"] = 100 * (s.cpu() - c0) / 3
                finally:
                    s.stop(60)
            if jobs <= 10000:  # larger: read off the growth plot
                t0 = time.perf_counter()
                subprocess.run([str(SUPERTASK), "validate", str(tt)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                row["validate_s"] = time.perf_counter() - t0
            log("  ", {k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()})
            rows.append(row)
            if checkpoint:
                checkpoint({"rows": rows, "lateness_stored": late, "apscheduler_add": []})
            done = [r["jobs"] for r in rows if r["store"] == "sqlite" and "error" not in r]
            last = store_name == "sqlite" and jobs == max(sizes)
            if last and done:
                jobs = max(done)
                work = Path(tempfile.mkdtemp(prefix="bench-scale-late-"))
                env = dict(os.environ, SUPERTASK_HOME=str(work / "home"))
                tt = work / "supertask.yaml"
                firing = min(100, jobs)
                log(f"scale: lateness with {jobs} stored jobs, {firing} firing each second")
                out = work / "fires.log"
                supertask_timetable(tt, firing=0, idle=jobs, out=None)
                s = Subject.spawn("supertask", [str(SUPERTASK), "run", "--file", str(tt), "--log-level", "info",
                                                "--log-format", "json", "--no-watch"], env=env)
                try:
                    s.wait_for("scheduler started", wait)
                finally:
                    s.stop(60)
                supertask_timetable(tt, firing=firing, idle=jobs - firing, out=out)
                s = spawn_subject("supertask", firing, out, work, None, env, timetable=tt)
                assert s is not None
                try:
                    late = measure_fires(s, firing, out, duration)
                finally:
                    s.stop(60)
                late.update(stored=jobs, jobs=firing)
                log(f"  p50 {late.get('p50_ms', math.nan):.1f} ms p99 {late.get('p99_ms', math.nan):.1f} ms "
                    f"missed {late.get('missed')} doubled {late.get('doubled')}")
                # the baseline of the same minute: the same fires with nothing else stored
                log(f"scale: lateness with {firing} jobs and nothing else stored (the baseline)")
                base_work = Path(tempfile.mkdtemp(prefix="bench-scale-base-"))
                base_out = base_work / "fires.log"
                s = spawn_subject("supertask", firing, base_out, base_work, None,
                                  dict(os.environ, SUPERTASK_HOME=str(base_work / "home")))
                assert s is not None
                try:
                    late["baseline"] = measure_fires(s, firing, base_out, duration)
                finally:
                    s.stop(60)
                    shutil.rmtree(base_work, ignore_errors=True)
                late["baseline"].pop("lateness_ms", None)
                log(f"  p50 {late['baseline'].get('p50_ms', math.nan):.1f} ms "
                    f"p99 {late['baseline'].get('p99_ms', math.nan):.1f} ms")
            shutil.rmtree(work, ignore_errors=True)
    aps = []
    for jobs in aps_sizes:
        work = Path(tempfile.mkdtemp(prefix="bench-aps-add-"))
        log(f"scale: bare APScheduler add_job x {jobs} into SQLite")
        t0 = time.perf_counter()
        p = subprocess.run([str(VENV_PY), str(BENCH / "peers" / "aps_peer.py"), "add", str(jobs),
                            str(work / "aps.sqlite")], cwd=str(BENCH / "peers"), capture_output=True, text=True)
        total = time.perf_counter() - t0
        added = float(p.stderr.split(" in ")[1].split()[0]) if " in " in p.stderr else math.nan
        aps.append({"jobs": jobs, "add_s": added, "total_s": total})
        log(f"  {added:.2f} s")
        shutil.rmtree(work, ignore_errors=True)
    return {"rows": rows, "lateness_stored": late, "apscheduler_add": aps}


# -- main ---------------------------------------------------------------------------------------


def machine() -> dict:
    import psutil

    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for mod in ("apscheduler", "sqlalchemy", "typer"):
        with contextlib.suppress(Exception):
            versions[mod] = __import__(mod).__version__
    sup = subprocess.run([str(SUPERTASK), "--version"], capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=BENCH, capture_output=True, text=True)
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "kernel": platform.release(), "versions": versions,
            "supertask": sup, "commit": head.stdout.strip(), "loadavg": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "original": "supertask==0.1.1" if ORIGINAL.exists() else "not installed"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes and short runs")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections: " + ", ".join(SECTIONS))
    ap.add_argument("--report", action="store_true", help="only rewrite the report from the last results")
    ap.add_argument("--baseline", metavar="REF",
                    help="also measure the supertask of commit REF (a worktree and venv under bench/baseline-*/), "
                         "turn by turn with this tree's, and report before/after against the run-to-run noise")
    ap.add_argument("--sizes", metavar="N,N,...",
                    help="lateness: fires a second to measure (default 1,100,500,1000; --quick 1,100)")
    ap.add_argument("--seconds", type=int, metavar="S", help="lateness: each run's window (default 30; --quick 5)")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / ("results-quick.json" if args.quick else "results.json")
    results = json.loads(path.read_text()) if path.exists() else {}
    if not args.report:
        only = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = sorted(set(only) - set(SECTIONS))
        if unknown:
            ap.error(f"--only: unknown section(s) {', '.join(unknown)}; the sections are {', '.join(SECTIONS)}")
        if args.baseline:
            results["baseline"] = baseline.prepare(args.baseline)
        elif set(only) >= {"lateness", "launch", "startup"}:
            results.pop("baseline", None)  # nothing kept from an earlier run compares builds any more
        label = results["baseline"]["label"] if args.baseline else None
        # with a baseline each build gets ``turns`` turns of runs // turns runs
        turns = 3 if args.quick else 5
        runs = (6 if args.baseline else 5) if args.quick else (20 if args.baseline else 10)
        results["machine"] = machine()
        results["mode"] = "quick" if args.quick else "full"
        with pg_database("run") as pg:
            if "lateness" in only:
                sizes, duration = ([1, 100], 5) if args.quick else ([1, 100, 500, 1000], 30)
                if args.sizes:
                    sizes = [int(s) for s in args.sizes.split(",")]
                duration = args.seconds or duration
                results["lateness"] = lateness(sizes, duration, pg, repeats=(2 if args.baseline else 1) if args.quick else 3,
                                               ab_sizes=tuple(s for s in sizes if s >= 100) if args.sizes else
                                               (100,) if args.quick else (100, 500, 1000))
                path.write_text(json.dumps(results, indent=1))
            if "launch" in only:
                results["launch"] = launch(runs, label, turns=turns)
                path.write_text(json.dumps(results, indent=1))
            if "startup" in only:
                results["startup"] = startup(runs, 1000, label, turns=turns)
                path.write_text(json.dumps(results, indent=1))
            if "imports" in only:
                results["imports"] = imports(3 if args.quick else 7)
                path.write_text(json.dumps(results, indent=1))
            if "scale" in only:
                def checkpoint(partial: dict) -> None:
                    results["scale"] = partial
                    path.write_text(json.dumps(results, indent=1))

                if args.quick:
                    results["scale"] = scale([1000], pg, 5, [500], checkpoint)
                else:
                    results["scale"] = scale([1000, 10000, 100000], pg, 30, [1000, 10000], checkpoint,
                                             pg_sizes=[1000, 10000, 100000])
                path.write_text(json.dumps(results, indent=1))
            if "web" in only:  # the dashboard with real volumes: bench/web.py
                import web

                results["web"] = web.measure(1000, 100000, 5) if args.quick else web.measure(10000, 1000000, 20)
                results["web"]["live_log"] = web.log_latency()
                results["web"]["lateness"] = web.lateness_pairs(2 if args.quick else 3, 10 if args.quick else 20)
                path.write_text(json.dumps(results, indent=1))
            if "workers" in only and pg:  # workers on PostgreSQL: bench/workers.py
                import workers

                results["workers"] = workers.measure(args.quick)
                path.write_text(json.dumps(results, indent=1, default=str))
        if "cluster" in only:  # 3 hosts on a PostgreSQL database of its own: bench/cluster.py
            import cluster

            results["cluster"] = cluster.measure(args.quick)
            path.write_text(json.dumps(results, indent=1, default=str))
        results["machine"]["loadavg_end"] = os.getloadavg()
    results["before_after"] = baseline.before_after(results)
    path.write_text(json.dumps(results, indent=1, default=str))
    from report import write_report

    write_report(results, quick=args.quick)


if __name__ == "__main__":
    main()
