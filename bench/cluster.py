"""Several hosts on one PostgreSQL (issue 15 point 6): ``bench/run.py --only cluster``.

    python bench/cluster.py             # the section alone: 30 s windows, 3-5 turns (~15 min)
    python bench/cluster.py --quick     # 5 s windows, 1 turn (~4 min)

Every host is a ``supertask run`` process of its own with its own state folder, all on
one PostgreSQL database made for this run (``supertask_bench_cluster_PID``, dropped at
the end; its schema is emptied between measurements). Measured, in the same run:

- fire lateness p50/p99 of N jobs every second (1 and 100) served by 3 hosts, against
  one host alone on the same store: the two turn by turn (one, three, three, one, ...),
  so each three-host run has a one-host run of the minute beside it; the ratio is the
  median of the turns' p99 ratios. Missed and doubled slots from the fires' own output;
- failover: a job running (``sleep``, ``retries: 1``) on one of 3 hosts at the default
  heartbeat (5 s) and lease (20 s), its host killed with SIGKILL once every host has been
  up longer than a lease: the time until its run is ``lost`` and until the retry runs
  (polled in the runs table every 50 ms), and the slots of 5 jobs firing every second
  missed or doubled from 10 s before the kill to 5 s after the retry;
- live changes: a job paused or resumed through one host's control socket, or edited
  straight in the store (``--store URL``, no socket), and the time until every host has
  taken it in (its own log's ``job paused``/``job edited`` or ``jobs changed in the
  store``, by the log's clock), counted from the command's start; afterwards each host's
  socket (``supertask list-jobs --json``) is asked whether it shows the change.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SUPERTASK, Subject, analyse_fires, log, pg_database, shell_line  # noqa: E402
from common import pg_sql as sql  # noqa: E402

HOSTS = 3
TICKS = 5  # jobs firing every second through the failover
HEARTBEAT = 5.0  # `supertask run`'s default --heartbeat (its --lease, 20 s, is in each host row)


def reset(url: str) -> None:
    sql(url, "DROP SCHEMA public CASCADE")
    sql(url, "CREATE SCHEMA public")


def until(what: str, predicate, timeout: float = 120, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"cluster: no {what} within {timeout:.0f} s")


class Cluster:
    """``count`` hosts serving ``timetable`` from ``url``, each its own state folder."""

    def __init__(self, work: Path, url: str, timetable: Path, count: int, *args: str, level: str = "warning"):
        self.work, self.url = work, url
        self.homes = [work / f"host{i}" for i in range(count)]
        self.hosts = [Subject.spawn(f"host{i}", [str(SUPERTASK), "run", "--file", str(timetable), "--log-level", level,
                                                 "--log-format", "json", "--no-watch", "--grace", "1s", *args],
                                    env=self.env(home)) for i, home in enumerate(self.homes)]
        until(f"{count} host row(s) serving", lambda: self._serving() >= count or self._exited())

    def env(self, home: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERTASK_")}
        return dict(env, SUPERTASK_HOME=str(home), SUPERTASK_STORE=self.url)

    def _serving(self) -> int:
        with contextlib.suppress(Exception):  # the schema is made by the first host
            return sql(self.url, "SELECT count(*) FROM supertask_hosts WHERE state = 'serving'")[0][0]
        return 0

    def _exited(self) -> bool:
        for h in self.hosts:
            if h.proc.poll() is not None:
                raise RuntimeError(f"cluster: {h.name} exited {h.proc.returncode}: {h.tail()}")
        return False

    def cli(self, *args: str, home: Path | None = None) -> tuple[subprocess.CompletedProcess, float, float]:
        env = self.env(home or self.work / "cli")
        t0 = time.time()
        done = subprocess.run([str(SUPERTASK), *args], env=env, capture_output=True, text=True, timeout=60)
        return done, t0, time.time()

    def events(self, i: int, name: str) -> list[dict]:
        out = []
        for _, line in list(self.hosts[i].lines):
            if f'"{name}"' in line:
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def cpu(self) -> float:
        total = 0.0
        for h in self.hosts:
            with contextlib.suppress(Exception):
                total += h.cpu()
        return total

    def stop(self) -> None:
        import psutil

        kids = []
        for h in self.hosts:
            with contextlib.suppress(psutil.Error):
                kids += h.ps.children(recursive=True)
        for h in self.hosts:
            h.stop(30)
        for kid in kids:  # a run still in flight (the failover's sleep)
            with contextlib.suppress(psutil.Error):
                kid.kill()


def stamp(event: dict) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


# -- fire lateness -------------------------------------------------------------------------------


def fires_window(cluster: Cluster, jobs: int, out: Path, duration: int) -> dict:
    until("a first fire", lambda: (out.exists() and out.stat().st_size) or cluster._exited(), 300)
    start = math.ceil(time.time()) + 3
    end = start + duration
    time.sleep(max(0.0, start - 0.5 - time.time()))
    cpu0 = cluster.cpu()
    time.sleep(max(0.0, end - 0.5 - time.time()))
    cpu1 = cluster.cpu()
    time.sleep(3.5)
    result = analyse_fires(out, jobs=jobs, start=start, end=end)
    result.pop("lateness_ms")
    result["cpu_pct"] = 100 * (cpu1 - cpu0) / duration
    ran_by = sql(cluster.url, "SELECT count(DISTINCT instance) FROM supertask_runs")[0][0]
    result["hosts_that_ran"] = ran_by
    return result


def lateness(url: str, sizes: dict[int, int], duration: int) -> list[dict]:
    """``sizes``: jobs firing every second -> turns."""
    rows = []
    for jobs, turns in sizes.items():
        runs: dict[int, list[dict]] = {1: [], HOSTS: []}
        for turn in range(turns):
            for count in (1, HOSTS) if turn % 2 == 0 else (HOSTS, 1):
                reset(url)
                work = Path(tempfile.mkdtemp(prefix="bench-cluster-late-"))
                out = work / "fires.log"
                tt = work / "supertask.yaml"
                tt.write_text("namespace: bench\njobs:\n" + "".join(
                    f"  - name: j{i}\n    when: \"* * * * * *\"\n"
                    f"    run: {json.dumps('cmd:' + shell_line('$SUPERTASK_JOB', '$SUPERTASK_SCHEDULED', out))}\n"
                    for i in range(jobs)))
                log(f"cluster: lateness, {jobs} job(s) every second, {count} host(s), turn {turn + 1}/{turns}")
                cluster = Cluster(work, url, tt, count)
                try:
                    r = fires_window(cluster, jobs, out, duration)
                finally:
                    cluster.stop()
                    shutil.rmtree(work, ignore_errors=True)
                log(f"  p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms missed {r['missed']} doubled {r['doubled']}"
                    f" cpu {r['cpu_pct']:.0f}% ran on {r['hosts_that_ran']} host(s)")
                runs[count].append(r)
        for count, done in runs.items():
            p99 = sorted(r["p99_ms"] for r in done)
            mid = sorted(done, key=lambda r: r["p99_ms"])[(len(done) - 1) // 2]
            rows.append({"jobs": jobs, "hosts": count, "p50_ms": statistics.median(r["p50_ms"] for r in done),
                         "p99_ms": statistics.median(p99), "max_ms": mid["max_ms"],
                         "turns_p99_ms": [round(r["p99_ms"], 1) for r in done],
                         "missed": sum(r["missed"] for r in done), "doubled": sum(r["doubled"] for r in done),
                         "expected": sum(r["expected"] for r in done),
                         "cpu_pct": statistics.median(r["cpu_pct"] for r in done),
                         "hosts_that_ran": max(r["hosts_that_ran"] for r in done),
                         "noise": (p99[-1] - p99[0]) / statistics.median(p99) if len(p99) > 1 else math.nan})
        pairs = [t[1]["p99_ms"] / t[0]["p99_ms"] for t in zip(runs[1], runs[HOSTS], strict=True) if t[0]["p99_ms"]]
        rows[-1]["pair_ratios"] = [round(x, 2) for x in pairs]
        rows[-1]["ratio"] = statistics.median(pairs) if pairs else math.nan
    return rows


# -- failover ------------------------------------------------------------------------------------


def failover(url: str, turns: int) -> list[dict]:
    rows = []
    for turn in range(turns):
        reset(url)
        work = Path(tempfile.mkdtemp(prefix="bench-cluster-failover-"))
        out = work / "fires.log"
        tt = work / "supertask.yaml"
        tt.write_text("namespace: failover\njobs:\n  - {name: long, when: once, run: 'cmd:exec sleep 300', retries: 1}\n"
                      + "".join(f"  - name: t{i}\n    when: \"* * * * * *\"\n    run: "
                                f"{json.dumps('cmd:' + shell_line('$SUPERTASK_JOB', '$SUPERTASK_SCHEDULED', out))}\n"
                                for i in range(TICKS)))
        log(f"cluster: failover turn {turn + 1}/{turns}: {HOSTS} hosts, default heartbeat and lease")
        cluster = Cluster(work, url, tt, HOSTS)
        try:
            run_id, instance = until("the long job running", lambda: sql(
                url, "SELECT id, instance FROM supertask_runs WHERE job = 'long' AND status = 'running'"))[0]
            pid, lease = sql(url, "SELECT pid, lease FROM supertask_hosts WHERE instance = %s", instance)[0]
            # every host up longer than a lease (a survivor declares others dead only after a
            # lease of unbroken heartbeats of its own) and a heartbeat more
            until("every host up for a lease", lambda: sql(
                url, "SELECT bool_and(now() - started > make_interval(secs => lease + %s)) FROM supertask_hosts",
                HEARTBEAT + 1)[0][0],
                timeout=120, every=0.5)
            victim = next(h for h in cluster.hosts if h.proc.pid == pid)
            killed = time.time()
            os.kill(pid, signal.SIGKILL)
            victim.proc.wait(10)
            lost = until("the run lost", lambda run=run_id: sql(
                url, "SELECT 1 FROM supertask_runs WHERE id = %s AND status = 'lost'", run) and time.time(), 120)
            retried = until("the retry running", lambda: sql(
                url, "SELECT 1 FROM supertask_runs WHERE job = 'long' AND attempt = 2 AND status = 'running'")
                and time.time(), 120)
            time.sleep(5.5)
            start, end = math.floor(killed) - 10, math.ceil(retried) + 5
            slots = analyse_fires(out, jobs=TICKS, start=start, end=end)
            rows_of = sql(url, "SELECT count(*), count(DISTINCT (job, scheduled)) FROM supertask_runs WHERE job <> 'long' "
                          "AND attempt = 1 AND scheduled >= to_timestamp(%s) AND scheduled < to_timestamp(%s)", start, end)[0]
            long_rows = sql(url, "SELECT attempt, status FROM supertask_runs WHERE job = 'long' ORDER BY id")
        finally:
            cluster.stop()
            shutil.rmtree(work, ignore_errors=True)
        row = {"lost_s": lost - killed, "retried_s": retried - killed, "lease_s": lease, "heartbeat_s": HEARTBEAT,
               "slots": slots["expected"], "missed": slots["missed"], "doubled": slots["doubled"],
               "slot_rows": rows_of[0], "slot_rows_distinct": rows_of[1], "long_rows": [list(r) for r in long_rows]}
        log(f"  lost after {row['lost_s']:.1f} s, retry running after {row['retried_s']:.1f} s; "
            f"{row['slots']} slots: {row['missed']} missed, {row['doubled']} doubled; long: {row['long_rows']}")
        rows.append(row)
    return rows


# -- live changes --------------------------------------------------------------------------------

CHANGES = (  # (kind, command, through host i or None: the store, what each host's listing shows)
    ("pause through one host's socket", ("jobs", "pause", "target"), 0, {"paused": True}),
    ("resume through another host's socket", ("jobs", "resume", "target"), 1, {"paused": False}),
    ("edit in the store (--store, no socket)", ("jobs", "edit", "target", "--set", "when=0 0 1 7 *", "--ns", "live"),
     None, {"month": 7}),
    ("edit back in the store", ("jobs", "edit", "target", "--set", "when=0 0 1 1 *", "--ns", "live"), None, {"month": 1}),
)
OWN_EVENT = {"pause": "job paused", "resume": "job resumed", "edit": "job rescheduled"}


def listing_shows(cluster: Cluster, i: int, expect: dict) -> bool:
    done = subprocess.run([str(SUPERTASK), "list-jobs", "--json"], env=cluster.env(cluster.homes[i]),
                          capture_output=True, text=True, timeout=60)
    try:
        job = next(j for j in json.loads(done.stdout) if j["name"] == "target")
    except (ValueError, StopIteration):
        return False
    if "paused" in expect:
        return job["paused"] is expect["paused"]
    return bool(job["next_fire"]) and datetime.fromisoformat(job["next_fire"]).month == expect["month"]


def every_host(cluster: Cluster, via: int | None, own: str, own_before: int, before: list[int]) -> list[float] | None:
    """When each host took the change in, by its log (None until all have): the host it was
    made through logs ``own`` (``job paused``...), the others ``jobs changed in the store``."""
    times = []
    for i in range(HOSTS):
        if i == via:
            took = cluster.events(i, own)[own_before:]
        else:
            took = [e for e in cluster.events(i, "jobs changed in the store")[before[i]:] if "target" in e["changed"]]
        if not took:
            return None
        times.append(stamp(took[0]))
    return times


def live_changes(url: str, turns: int) -> list[dict]:
    reset(url)
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-live-"))
    tt = work / "supertask.yaml"
    tt.write_text("namespace: live\njobs:\n  - {name: target, when: '0 0 1 1 *', run: 'cmd:true'}\n"
                  + "".join(f"  - {{name: other{i}, when: '@hourly', run: 'cmd:true'}}\n" for i in range(20)))
    log(f"cluster: live changes, {HOSTS} hosts, {turns} turn(s) of {len(CHANGES)} changes")
    cluster = Cluster(work, url, tt, HOSTS, level="info")
    rows = []
    try:
        for h in cluster.hosts:
            until("a host started", lambda h=h: h.wait_for("scheduler started", 0.01) is not None, 120)
        for turn in range(turns):
            for kind, command, via, expect in CHANGES:
                home = cluster.homes[via] if via is not None else None
                before = [len(cluster.events(i, "jobs changed in the store")) for i in range(HOSTS)]
                own = OWN_EVENT[command[1]]
                own_before = len(cluster.events(via, own)) if via is not None else 0
                done, t0, t1 = cluster.cli(*command, home=home)
                if done.returncode:
                    raise RuntimeError(f"cluster: {' '.join(command)} exited {done.returncode}: {done.stderr}")

                marks = {"via": via, "own": own, "own_before": own_before, "before": before}
                times = until("the change taken in by every host", lambda marks=marks: every_host(cluster, **marks), 30)
                shown = [listing_shows(cluster, i, expect) for i in range(HOSTS)]
                row = {"kind": kind, "turn": turn, "command_s": t1 - t0,
                       "seen_s": [round(t - t0, 3) for t in times], "all_s": max(times) - t0, "listings": shown}
                log(f"  {kind}: every host after {row['all_s']:.2f} s (each {row['seen_s']}; command "
                    f"{row['command_s']:.2f} s); listings show it: {shown}")
                rows.append(row)
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    return rows


def measure(quick: bool = False) -> dict:
    load0, began = os.getloadavg(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    head = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent,
                          capture_output=True, text=True).stdout.strip()
    # at 1 fire a second a 30 s window holds 30 fires, its p99 nearly its max: more turns there
    duration, turns = (5, {1: 1, 100: 1}) if quick else (30, {1: 5, 100: 3})
    with pg_database("cluster") as url:
        if url is None:
            return {"error": "PostgreSQL not reachable (the cluster figures need one)"}
        result = {"hosts": HOSTS, "duration": duration, "turns": {str(k): v for k, v in turns.items()}, "date": began, "commit": head,
                  "lateness": lateness(url, turns, duration),
                  "failover": failover(url, 1 if quick else 3),
                  "live": live_changes(url, 1 if quick else 5)}
    result["loadavg"], result["loadavg_end"] = load0, os.getloadavg()
    return result


# -- the report's section ------------------------------------------------------------------------


def _fmt(x: float, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def _pass(ok: bool) -> str:
    return "**pass**" if ok else "**miss**"


def section(c: dict) -> list[str]:
    """docs/benchmarks.md's "Several hosts (issue 15)" section from ``measure``'s result."""
    if "error" in c:
        return [f"Not measured: {c['error']}."]
    load = ", ".join(f"{x:.1f}" for x in c["loadavg"])
    load_end = ", ".join(f"{x:.1f}" for x in c["loadavg_end"])
    lines = [
        f"{c['hosts']} hosts, each a `supertask run` process with its own state folder, on one PostgreSQL "
        "database made for the run (and dropped after it; its schema emptied between measurements), on this "
        f"machine: `bench/run.py --only cluster` (`bench/cluster.py`), run {c['date']} at {c['commit']}, load "
        f"average (1, 5, 15 min) {load} at the start and {load_end} at the end. The machine has 2 cores, which "
        "the hosts, PostgreSQL, the fires' children and other work all share: three hosts on one machine cost "
        "the machine three schedulers, which separate machines would not.", "",
        f"**Fire lateness.** N jobs every second for {c['duration']} s (after the first fire and 3 s more), "
        f"served by {c['hosts']} hosts, against one host alone on the same PostgreSQL, the two turn by turn "
        f"({' and '.join(f'{t} turns at {j}' for j, t in c['turns'].items())} fire(s)/s, each turn both, which goes "
        "first alternating). p50 and p99 are the medians of the turns, the "
        "turns' p99 in brackets; *vs one host* is the median of the turns' p99 ratios; *noise* is (max − min) / "
        "median of one subject's turns. Missed and doubled slots are counted from the fires' own output (every "
        "turn's window). CPU is all hosts' scheduler processes together, % of one core.", "",
        "| jobs/s | hosts | p50 ms | p99 ms (turns) | max ms | p99 vs one host | noise | slots | missed | doubled "
        "| CPU % | hosts that ran fires |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    verdicts = []
    late = c["lateness"]
    for r in late:
        ratio = r.get("ratio") if r["hosts"] > 1 else 1.0
        lines.append(f"| {r['jobs']} | {r['hosts']} | {_fmt(r['p50_ms'])} | {_fmt(r['p99_ms'])} "
                     f"({', '.join(_fmt(x) for x in r['turns_p99_ms'])}) | {_fmt(r['max_ms'], 0)} | "
                     f"{_fmt(ratio, 2)}× | {_fmt(100 * r['noise'], 0)} % | {r['expected']:,} | {r['missed']} | "
                     f"{r['doubled']} | {_fmt(r['cpu_pct'], 0)} | {r['hosts_that_ran']} |")
        if r["hosts"] > 1:
            verdicts.append((f"p99 with {r['hosts']} hosts within 1.5× of one host, {r['jobs']} fire(s)/s",
                             f"{_fmt(ratio, 2)}× (turns {', '.join(f'{x:.2f}' for x in r['pair_ratios'])})",
                             ratio <= 1.5))
    noise = {j: max(r["noise"] for r in late if r["jobs"] == j) for j in dict.fromkeys(r["jobs"] for r in late)}
    noisy = {j: n for j, n in noise.items() if n > 0.5}
    if noisy:
        lines += ["", "Read the ratios against the noise: " + "; ".join(
            f"at {j} fire(s)/s a subject's p99 moves by up to {100 * n:.0f} % from turn to turn"
            for j, n in noisy.items()) + " (a 30 s window at 1 fire a second holds 30 fires, so its p99 is nearly its slowest "
            "fire), more than the 50 % the target leaves: the median ratio says there is no systematic slowdown, not "
            "how large a small one would be."]
    fo = c["failover"]
    lines += ["", f"**Failover.** A job (`sleep`, `retries: 1`) running on one of {c['hosts']} hosts at the defaults "
              f"(heartbeat {fo[0]['heartbeat_s']:g} s, lease {fo[0]['lease_s']:g} s), its scheduler killed with SIGKILL "
              "once every host had been up longer than a lease and a heartbeat (a host declares others dead only "
              "after a lease of its own heartbeats); the times are from the kill until the runs table says `lost`, "
              "and until the retry (attempt 2) is `running` on a survivor, polled every 50 ms. The child of the "
              "killed host, on this same machine, is ended by the survivor that took it over. Slots: "
              f"{TICKS} jobs firing every second, from 10 s before the kill to 5 s after the retry, counted from the "
              "fires' output (and their rows: one per slot). Expect the lease less the time since the killed host's last "
              "heartbeat, plus up to a heartbeat of the survivor that notices: 15 to 25 s at the defaults; a shorter "
              "`--lease` shortens it (at the price of declaring a merely slow host dead sooner).", "",
              "| turn | `lost` after s | retry running after s | slots | missed | doubled | rows (slots with one) |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(fo, 1):
        lines.append(f"| {i} | {r['lost_s']:.1f} | {r['retried_s']:.1f} | {r['slots']} | {r['missed']} | {r['doubled']} "
                     f"| {r['slot_rows']} ({r['slot_rows_distinct']}) |")
    worst = max(r["retried_s"] for r in fo)
    verdicts.append(("a killed host's run `lost` and retried within 30 s",
                     f"lost after {_fmt(statistics.median(r['lost_s'] for r in fo))} s, retried after "
                     f"{_fmt(statistics.median(r['retried_s'] for r in fo))} s (median of {len(fo)}; worst {worst:.1f} s)",
                     worst < 30))
    live = c["live"]
    lines += ["", "**Live changes.** A job paused and resumed through one host's control socket (`supertask jobs "
              "pause|resume`), and edited in the store with no socket (`jobs edit --set when=... --ns NS --store "
              f"URL`), with {c['hosts']} hosts serving it. *Every host* is the time from the command's start (its "
              "own start-up included) until the last host took the change in, by each host's log (`job paused` on the "
              "host that made it, `jobs changed in the store` on the others: a NOTIFY, or the once-a-second look); "
              "*listings* says whether each host's `supertask list-jobs --json`, through its own socket, then showed it. "
              "The command's own time (start-up, connecting, the change's transaction) is beside it: where every host "
              "took the change in before the command had even exited, the propagation itself is the NOTIFY's.", "",
              "| change | times | every host: median s | max s | the command itself s (median) | listings show it |",
              "|---|---:|---:|---:|---:|---|"]
    kinds = list(dict.fromkeys(r["kind"] for r in live))
    for kind in kinds:
        rs = [r for r in live if r["kind"] == kind]
        shown = sum(all(r["listings"]) for r in rs)
        lines.append(f"| {kind} | {len(rs)} | {statistics.median(r['all_s'] for r in rs):.2f} | "
                     f"{max(r['all_s'] for r in rs):.2f} | {statistics.median(r['command_s'] for r in rs):.2f} | "
                     f"{shown} of {len(rs)} |")
    slowest = max(r["all_s"] for r in live)
    verdicts.append(("live changes seen on every host within 2 s",
                     f"median {statistics.median(r['all_s'] for r in live):.2f} s, worst {slowest:.2f} s of {len(live)}; "
                     f"listings {sum(all(r['listings']) for r in live)} of {len(live)}",
                     slowest < 2 and all(all(r["listings"]) for r in live)))
    missed = sum(r["missed"] for r in late if r["hosts"] > 1) + sum(r["missed"] for r in fo)
    doubled = sum(r["doubled"] for r in late if r["hosts"] > 1) + sum(r["doubled"] for r in fo)
    slots = sum(r["expected"] for r in late if r["hosts"] > 1) + sum(r["slots"] for r in fo)
    verdicts.append(("slots missed and doubled with several hosts: 0 and 0",
                     f"{missed} missed, {doubled} doubled of {slots:,} (lateness windows and failovers)",
                     missed == 0 and doubled == 0))
    lines += ["", "| target | measured | |", "|---|---|---|"] + [f"| {t} | {m} | {_pass(ok)} |" for t, m, ok in verdicts]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 s windows, one turn")
    args = ap.parse_args()
    result = measure(args.quick)
    print("\n".join(section(result)))


if __name__ == "__main__":
    main()
