"""Results (bench/results/*.json) -> docs/benchmarks.md and docs/benchmarks/*.png.

The tables and plots are generated; the profiling findings are hand-written in
``bench/findings.md`` and included verbatim, so rerunning the bench never loses them.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import baseline
import cluster
from common import BENCH, ROOT, log

DOCS = ROOT / "docs"
PLOTS = DOCS / "benchmarks"
PEERS = {"limit": "limit loop", "supertask": "supertask", "apscheduler": "bare APScheduler",
         "original": "supertask 0.1.1"}
LABEL = dict(PEERS)
COLOR = {"limit": "0.4", "supertask": "tab:blue", baseline.NAME: "tab:purple", "apscheduler": "tab:orange",
         "original": "tab:green"}


def set_labels(results: dict) -> None:
    """The subjects in table order; a baseline build, when the results hold one, after supertask."""
    name = baseline.label(results)
    LABEL.clear()
    for kind, text in PEERS.items():
        LABEL[kind] = text
        if kind == "supertask" and name:
            LABEL[baseline.NAME] = name


def ms(x: float | None, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}"


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("**pass**" if ok else "**miss**")


# -- plots --------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_lateness(late: dict, out: Path) -> None:
    plt = _plt()
    sizes = sorted({r["jobs"] for r in late["rows"]})
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.6), sharey=True)
    axes = axes if len(sizes) > 1 else [axes]
    for ax, jobs in zip(axes, sizes, strict=True):
        for r in late["rows"]:
            if r["jobs"] != jobs or not r.get("lateness_ms"):
                continue
            xs = sorted(max(v, 0.1) for v in r["lateness_ms"])
            ys = [(i + 1) / r["expected"] for i in range(len(xs))]  # missed fires keep the curve below 1
            ax.step(xs, ys, where="post", label=LABEL[r["subject"]], color=COLOR[r["subject"]])
        ax.set_xscale("log")
        ax.set_title(f"{jobs} job{'s' if jobs > 1 else ''} every second")
        ax.set_xlabel("lateness (ms, log)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("share of expected fires")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_startup(rows: dict, out: Path) -> None:
    plt = _plt()
    items = [(k, v["median"] * 1000) for k, v in rows.items() if "median" in v]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(items) + 1))
    ax.barh([k for k, _ in items], [v for _, v in items],
            color=["tab:blue" if k.startswith("supertask ") else "tab:purple" if k.startswith("supertask@")
                   else "0.6" for k, _ in items])
    for i, (_, v) in enumerate(items):
        ax.text(v, i, f" {v:.0f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("median wall time (ms)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_growth(results: dict, out: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    late = results.get("lateness", {}).get("rows", [])
    ax = axes[0]
    for kind in LABEL:
        pts = sorted((r["jobs"], r["p99_ms"]) for r in late if r["subject"] == kind and "p99_ms" in r
                     and not math.isnan(r["p99_ms"]))
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=LABEL[kind], color=COLOR[kind])
    ax.set(xscale="log", yscale="log", xlabel="jobs firing every second", ylabel="p99 lateness (ms)",
           title="fire lateness")
    ax.legend(fontsize=8)
    scale = results.get("scale", {})
    ax = axes[1]
    for store, marker in (("sqlite", "o"), ("postgresql", "s")):
        rows = [r for r in scale.get("rows", []) if r["store"] == store]
        for key, label in (("synced_s", "sync (empty store)"), ("started_s", "start (jobs stored)"),
                           ("validate_s", "validate (parse)")):
            pts = [(r["jobs"], r[key]) for r in rows if r.get(key)]
            if pts and not (key == "validate_s" and store != "sqlite"):
                ax.plot(*zip(*pts, strict=True), marker=marker, label=f"{label}, {store}" if key != "validate_s" else label)
    aps = [(r["jobs"], r["add_s"]) for r in scale.get("apscheduler_add", []) if not math.isnan(r["add_s"])]
    if aps:
        ax.plot(*zip(*aps, strict=True), marker="^", ls="--", color=COLOR["apscheduler"], label="bare APScheduler add_job, sqlite")
    ax.axhline(30, color="red", lw=0.8, ls=":")
    ax.axhline(5, color="red", lw=0.8, ls=":")
    ax.set(xscale="log", yscale="log", xlabel="jobs in the timetable", ylabel="seconds", title="sync and start")
    ax.legend(fontsize=7)
    ax = axes[2]
    for store, marker in (("sqlite", "o"), ("postgresql", "s")):
        pts = [(r["jobs"], r["idle_rss_mb"]) for r in scale.get("rows", []) if r["store"] == store and r.get("idle_rss_mb")]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker=marker, label=f"idle RSS, {store}")
    ax.scatter([1000, 100000], [60, 250], color="red", marker="_", s=200, label="target")
    ax.set(xscale="log", yscale="log", xlabel="jobs in the store", ylabel="MB", title="idle memory")
    ax.legend(fontsize=8)
    for a in axes:
        a.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


# -- tables -------------------------------------------------------------------------------------


def extrapolate(pts: list[tuple[float, float]], at: float) -> tuple[float, float, float] | None:
    """From the last two points: the log-log slope k, the per-job cost b of a fixed-plus-
    per-job fit (y = a + b * jobs), and that fit's value at ``at``."""
    pts = sorted(p for p in pts if p[1] and p[1] > 0)
    if len(pts) < 2:
        return None
    (x0, y0), (x1, y1) = pts[-2], pts[-1]
    k = math.log(y1 / y0) / math.log(x1 / x0)
    b = (y1 - y0) / (x1 - x0)
    return k, b, y1 + b * (at - x1)


def lateness_section(late: dict) -> list[str]:
    lines = [f"Each subject runs N jobs every second for {late['duration']} s (after a warm-up until the first "
             "fire and 2 s more); lateness is the child's `date +%s.%N` minus the fire's scheduled time. "
             "Missed = expected fires minus distinct fires in the window, doubled = repeats. CPU is the "
             "scheduler process alone (children excluded), in % of one core. Ratio = p99 / the limit loop's "
             "p99 at the same size, from the same run. At 100 fires a second and fewer the limit loop and "
             f"supertask run {late.get('repeats', 3)} times in turn (limit, supertask, limit, ...): the row is the run with the "
             "median p99, and supertask's ratio the median of its runs' ratios to the limit run just before "
             "each (a 30 s window here moves p99 by a fifth from one minute to the next)."
             + (f" {LABEL[baseline.NAME]}, the baseline build, runs at {', '.join(map(str, late['ab_sizes']))} "
                f"fires a second ({late.get('repeats', 3)} turns there too), each turn the limit loop then both builds, which of them first alternating "
                "turn by turn; its rows are likewise the median run and the median of its pairs (the before/after "
                "table reads every turn)." if baseline.NAME in LABEL and late.get("ab_sizes") else ""), ""]
    sizes = sorted({r["jobs"] for r in late["rows"]})
    lines += ["| jobs/s | subject | p50 ms | p99 ms | max ms | p99 vs limit | missed | doubled | CPU % | RSS MB "
              "| child CPU ms/fire | machine busy % |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    verdicts = []
    for jobs in sizes:
        rows = {r["subject"]: r for r in late["rows"] if r["jobs"] == jobs}
        base = rows.get("limit", {}).get("p99_ms")
        for kind in LABEL:
            r = rows.get(kind)
            if r is None:
                continue
            if "error" in r:
                lines.append(f"| {jobs} | {LABEL[kind]} | {r['error'][:80]} | | | | | | | | | |")
                continue
            ratio = r["p99_ms"] / base if base else math.nan
            if r.get("pair_ratios"):  # each run against the limit loop's run of the minute before
                ratio = statistics.median(r["pair_ratios"])
            lines.append(f"| {jobs} | {LABEL[kind]} | {ms(r['p50_ms'], 1)} | {ms(r['p99_ms'], 1)} | {ms(r['max_ms'])} "
                         f"| {ratio:.2f}× | {r['missed']:,} | {r['doubled']:,} | {r['cpu_pct']:.0f} | {r['rss_mb']:.0f} "
                         f"| {ms(r.get('child_cpu_ms', math.nan), 2)} | {ms(r.get('machine_busy_pct', math.nan))} |")
        st = rows.get("supertask")
        if st and "error" not in st:
            if jobs <= 100 and base:
                ratio = statistics.median(st["pair_ratios"]) if st.get("pair_ratios") else st["p99_ms"] / base
                runs = (f" (median of {len(st['pair_ratios'])} pairs: "
                        f"{', '.join(f'{x:.2f}' for x in st['pair_ratios'])})" if st.get("pair_ratios") else "")
                verdicts.append((f"p99 within 1.2× of the limit loop at {jobs} job(s)/s",
                                 f"{ratio:.2f}×{runs}", ratio <= 1.2))
            if jobs >= 1000:
                need = capacity(rows, jobs, late.get("cores"))
                verdicts.append((f"no missed or doubled fire at {jobs} jobs/s",
                                 f"{st['missed']} missed, {st['doubled']} doubled" + (f"; {need}" if need else ""),
                                 st["missed"] == 0 and st["doubled"] == 0))
            peers = [rows[k] for k in ("apscheduler", "original") if k in rows and "error" not in rows[k]]
            ahead = all(st["p99_ms"] < p["p99_ms"] and st["missed"] <= p["missed"] for p in peers)
            verdicts.append((f"ahead of bare APScheduler and supertask 0.1.1 at {jobs} job(s)/s (p99, missed)",
                             ", ".join(f"{LABEL[p['subject']]} {p['p99_ms']:.0f} ms / {p['missed']} missed" for p in peers),
                             ahead if peers else None))
    lines += ["", "![lateness CDF](benchmarks/lateness.png)", "", "| target | measured | |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {verdict(ok)} |" for t, m, ok in verdicts]
    top = max(sizes, default=0)
    need = capacity({r["subject"]: r for r in late["rows"] if r["jobs"] == top}, top, late.get("cores"))
    if need and late.get("cores"):
        lines += ["", f"Capacity at {top} fires a second on this machine ({late['cores']} cores): {need}. "
                  "Child CPU is what the scheduler's reaped children cost a fire (its `sh` and `date`); machine "
                  "busy is all cores over the window, from `/proc/stat`."]
    return lines


def capacity(rows: dict, jobs: int, cores: int | None) -> str | None:
    """How many cores ``jobs`` fires a second need: the fires' own work (the limit
    loop's children, the same command), and that plus supertask's own CPU a run."""
    limit, st = rows.get("limit", {}), rows.get("supertask", {})
    child, own = limit.get("child_cpu_ms"), st.get("own_cpu_ms")
    if child is None or own is None or "error" in limit or "error" in st:
        return None
    of = f" of {cores}" if cores else ""
    return (f"the fires' children alone need {child * jobs / 1000:.2f} cores ({child:.2f} ms of CPU a fire, "
            f"the limit loop's); with supertask's own {own:.2f} ms a run, {(child + own) * jobs / 1000:.2f}{of}")


def launch_section(results: dict) -> list[str]:
    rows = results["launch"]["rows"]
    sh = rows["sh -c true"]["median"]
    lines = ["| command | median ms | min ms | CPU ms | runs | vs `sh -c true` |", "|---|---:|---:|---:|---:|---:|"]
    for k, v in rows.items():
        lines.append(f"| `{k}` | {v['median'] * 1000:.1f} | {v['min'] * 1000:.1f} | {ms(v.get('cpu', math.nan) * 1000)} | "
                     f"{v['runs']} | +{(v['median'] - sh) * 1000:.0f} ms ({v['median'] / sh:.0f}×) |")
    extra = (rows["supertask run -- cmd:true"]["median"] - sh) * 1000
    lines += ["", "| target | measured | |", "|---|---|---|",
              f"| `supertask run -- cmd:true` under 120 ms more than `sh -c true` | +{extra:.0f} ms | {verdict(extra < 120)} |"]
    late = results.get("lateness", {}).get("rows", [])
    top = max((r["jobs"] for r in late), default=None)
    if top:
        got = {r["subject"]: r for r in late if r["jobs"] == top and "runs_per_s" in r}
        lines += ["", f"Sustained runs per second of one scheduler, offered {top} fires a second "
                  f"(completed fires in the window / its length; same run as table 1):", "",
                  "| subject | runs/s | scheduler CPU % |", "|---|---:|---:|"]
        lines += [f"| {LABEL[k]} | {got[k]['runs_per_s']:.0f} | {got[k]['cpu_pct']:.0f} |" for k in LABEL if k in got]
    return lines


def startup_section(st: dict) -> list[str]:
    rows = st["rows"]
    py = rows["python -c pass"]["median"]
    both = next((v for v in rows.values() if "turn_medians" in v), None)
    lines = [f"Medians of {rows['python -c pass']['runs']} runs after a warm-up; the ratio is against bare "
             "`python -c pass` from the same run. `list-jobs` runs while a scheduler holding "
             f"{st['jobs']} jobs is up."
             + (f" Each build's commands run {both['runs']} times, in {len(both['turn_medians'])} turns that "
                "alternate between the builds (each with its own home and, for `list-jobs`, its own scheduler)."
                if both else ""), "",
             "| command | median ms | min ms | CPU ms | vs bare python | exit |", "|---|---:|---:|---:|---:|---:|"]
    for k, v in rows.items():
        if "median" not in v:
            lines.append(f"| `{k}` | error | | | | |")
            continue
        lines.append(f"| `{k}` | {v['median'] * 1000:.0f} | {v['min'] * 1000:.0f} | {ms(v.get('cpu', math.nan) * 1000)} | "
                     f"{v['median'] / py:.1f}× | {v['exit']} |")
    helpm = rows.get("supertask --help", {}).get("median")
    live_key = next((k for k in rows if k.startswith("supertask list-jobs --json")), None)
    live = rows.get(live_key, {}).get("median") if live_key else None
    lines += ["", "| target | measured | |", "|---|---|---|",
              f"| `supertask --help` under 120 ms | {helpm * 1000:.0f} ms | {verdict(helpm < 0.12)} |"]
    if st.get("live_control"):
        lines.append(f"| live `list-jobs` under 200 ms | {live * 1000:.0f} ms | {verdict(live < 0.2)} |")
    else:
        lines.append(f"| live `list-jobs` under 200 ms | pending: no control endpoint answered yet (issue 4); "
                     f"the store view took {live * 1000:.0f} ms | {verdict(live < 0.2)} (store view) |"
                     if live else "| live `list-jobs` under 200 ms | pending | – |")
    lines += ["", "![start-up](benchmarks/startup.png)"]
    return lines


def imports_section(im: dict) -> list[str]:
    lines = ["What a command pays before it does anything: each module's cumulative import time "
             "(`python -X importtime -c 'import M'`, median), measured in the same run.", "",
             "| module | import ms |", "|---|---:|"]
    lines += [f"| `{k}` | {v['median'] * 1000:.0f} |" for k, v in im["rows"].items()]
    lines += ["", f"An interpreter that imported what `supertask run` imports holds {im['rss_imported_mb']:.0f} MB "
              f"RSS before it loads a single job (bare: {im['rss_bare_mb']:.0f} MB)."]
    return lines


def scale_section(results: dict) -> list[str]:
    sc = results["scale"]
    lines = ["Idle jobs (`0 0 1 1 *`, `cmd:true`) in one namespace. *Sync* is the time from `supertask run` "
             "starting until its `timetable synced` event with an empty store (it includes reading and "
             "checking the YAML, which `validate` times alone); *start* is the time to `scheduler started` "
             "when the same timetable is already stored (a restart). Idle RSS is measured 3 s after each "
             "start (after the first, that synced the file, and after the restart), idle CPU after the restart.", "",
             "| store | jobs | validate s | sync s | first start s | restart: start s | idle RSS MB, first start "
             "| idle RSS MB, restart | idle CPU % |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    verdicts = []
    for r in sc["rows"]:
        if "error" in r:
            rss = f"{r['rss_at_timeout_mb']:.0f} MB when stopped" if r.get("rss_at_timeout_mb") else ""
            lines.append(f"| {r['store']} | {r['jobs']:,} | {ms(r.get('validate_s'), 2)} | {ms(r.get('synced_s'), 2)} | "
                         f"{r['error']} | not measured | {rss} | | |")
            if r["jobs"] == 100000:
                verdicts.append((f"100,000 jobs synced in under 30 s ({r['store']})",
                                 f"{ms(r.get('synced_s'), 1)} s" if r.get("synced_s") else r["error"], False))
                verdicts.append((f"start with 100,000 stored in under 5 s ({r['store']})", r["error"], False))
                if r.get("rss_at_timeout_mb"):
                    verdicts.append(("idle RSS under 250 MB at 100,000 jobs",
                                     f"{r['rss_at_timeout_mb']:.0f} MB before it had even started", r["rss_at_timeout_mb"] < 250))
            continue
        lines.append(f"| {r['store']} | {r['jobs']:,} | {ms(r.get('validate_s'), 2)} | {ms(r.get('synced_s'), 2)} | "
                     f"{ms(r.get('first_started_s'), 2)} | {ms(r.get('started_s'), 2)} | "
                     f"{ms(r.get('first_idle_rss_mb'))} | {ms(r.get('idle_rss_mb'))} | {ms(r.get('idle_cpu_pct'), 1)} |")
        if r["jobs"] == 100000:
            verdicts.append((f"100,000 jobs synced in under 30 s ({r['store']})", f"{r['synced_s']:.1f} s",
                             r["synced_s"] is not None and r["synced_s"] < 30))
            verdicts.append((f"start with 100,000 stored in under 5 s ({r['store']})",
                             f"{ms(r.get('started_s'), 1)} s", r.get("started_s") is not None and r["started_s"] < 5))
        if r["store"] == "sqlite" and r["jobs"] in (1000, 100000) and r.get("idle_rss_mb"):
            limit = 60 if r["jobs"] == 1000 else 250
            worst = max(r["idle_rss_mb"], r.get("first_idle_rss_mb") or 0)  # the first start counts too
            verdicts.append((f"idle RSS under {limit} MB at {r['jobs']:,} jobs (after the first start and a restart)",
                             f"{worst:.0f} MB", worst < limit))
    late = sc.get("lateness_stored")
    base = late.get("baseline") if late else None  # the same minute's run with nothing else stored
    where = "same minute" if base else "table 1"
    base = base or next((r for r in results.get("lateness", {}).get("rows", [])
                         if r["subject"] == "supertask" and late and r["jobs"] == late["jobs"]), None)
    if late and "p99_ms" in late:
        lines += ["", f"Lateness with {late['stored']:,} stored jobs of which {late['jobs']} fire each second "
                  f"({late['duration']} s, SQLite):", "",
                  "| stored jobs | p50 ms | p99 ms | max ms | missed | doubled | CPU % | RSS MB |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        if base:
            lines.append(f"| {late['jobs']} ({where}) | {ms(base['p50_ms'], 1)} | {ms(base['p99_ms'], 1)} | "
                         f"{ms(base['max_ms'])} | {base['missed']} | {base['doubled']} | {base['cpu_pct']:.0f} | {base['rss_mb']:.0f} |")
        lines.append(f"| {late['stored']:,} | {ms(late['p50_ms'], 1)} | {ms(late['p99_ms'], 1)} | {ms(late['max_ms'])} | "
                     f"{late['missed']} | {late['doubled']} | {late['cpu_pct']:.0f} | {late['rss_mb']:.0f} |")
        if base:
            ratio = late["p99_ms"] / base["p99_ms"]
            verdicts.append((f"lateness unchanged with {late['stored']:,} stored jobs (p99 within 1.2× of the "
                             f"{late['jobs']}-job run, {where}, nothing missed)", f"{ratio:.2f}×, {late['missed']} missed",
                             ratio <= 1.2 and late["missed"] == 0))
    if sc.get("apscheduler_add"):
        lines += ["", "Bare APScheduler's `SQLAlchemyJobStore` (SQLite), `add_job` per job, for comparison:", "",
                  "| jobs | add_job total s | per job ms |", "|---:|---:|---:|"]
        lines += [f"| {r['jobs']:,} | {r['add_s']:.2f} | {1000 * r['add_s'] / r['jobs']:.2f} |" for r in sc["apscheduler_add"]]
    lines += ["", "| target | measured | |", "|---|---|---|"] + [f"| {t} | {m} | {verdict(ok)} |" for t, m, ok in verdicts]
    return lines


def growth_section(results: dict) -> list[str]:
    sc = results.get("scale", {})
    lines = ["Each figure against the number of jobs on log axes. The slope *k* between the two largest "
             "sizes (cost ∝ jobs^k) shows how close to linear it is; the last columns fit a fixed plus a "
             "per-job cost through those two points and carry it to a million jobs.", "",
             "![growth](benchmarks/growth.png)", "",
             "| figure | sizes | slope k | per job | at 1,000,000 jobs |", "|---|---|---:|---:|---:|"]
    rows = sc.get("rows", [])
    for store in ("sqlite", "postgresql"):
        for key, name, unit, per in (("synced_s", "sync", "s", (1000, "ms")), ("started_s", "start with jobs stored", "s", (1000, "ms")),
                                     ("idle_rss_mb", "idle RSS", "MB", (1024, "KB"))):
            pts = [(r["jobs"], r.get(key)) for r in rows if r["store"] == store and r.get(key)]
            e = extrapolate(pts, 1e6)
            if e:
                sizes = "–".join(f"{x:,}" for x, _ in sorted(pts)[-2:])
                lines.append(f"| {name}, {store} | {sizes} | {e[0]:.2f} | {e[1] * per[0]:.2f} {per[1]} | {e[2]:,.0f} {unit} |")
    e = extrapolate([(r["jobs"], r["add_s"]) for r in sc.get("apscheduler_add", [])], 1e6)
    if e:
        lines.append(f"| bare APScheduler add_job, sqlite | 1,000–10,000 | {e[0]:.2f} | {e[1] * 1000:.2f} ms | {e[2]:,.0f} s |")
    lines += ["", "Fires per second cannot grow with the number of stored jobs on this machine: two cores top "
              "out near 1,100–1,300 `sh` launches a second (DESIGN.md), so a million jobs is only affordable when "
              "few of them are due in any one second; the lateness-with-stored-jobs rows of table 4 check "
              "whether stored but idle jobs cost anything per fire."]
    return lines


def web_section(web: dict) -> list[str]:
    """bench/web.py's figures (issue 17 point 7): pages with real volumes, a live log's
    delay, fire lateness with and without browsers on the pages, all of one run."""
    lines = [f"`bench/web.py`: a SQLite store of {web['jobs']:,} jobs in 10 namespaces and {web['runs']:,} runs "
             f"(built in {web['store_built_s']:.0f} s), a real `supertask web`, each path asked {web['requests']} "
             "times over HTTP; p50 and p95 are the client's times (the server's plus loopback).", "",
             "| path | p50 ms | p95 ms |", "|---|---:|---:|"]
    lines += [f"| `{path}` | {v['p50_ms']:.1f} | {v['p95_ms']:.1f} |" for path, v in web["paths"].items()]
    worst = max(web["paths"].items(), key=lambda kv: kv[1]["p95_ms"])
    verdicts = [(f"pages answer in under 200 ms with {web['jobs']:,} jobs and {web['runs']:,} runs (p95)",
                 f"worst p95 {worst[1]['p95_ms']:.0f} ms (`{worst[0]}`)", worst[1]["p95_ms"] < 200)]
    live = web.get("live_log")
    if live:
        lines += ["", f"A live log (a job printing a line every 0.3 s, its run's event stream read by the client): "
                  f"{live['lines']} lines, each after {live['p50_ms']} ms at the median, {live['max_ms']} ms at most."]
        verdicts.append(("a live log shows a new line within 500 ms", f"{live['max_ms']} ms at most", live["max_ms"] < 500))
    late = web.get("lateness")
    if late and "turns" in late:  # bench/web.py's lateness_pairs: turn by turn, judged against its noise
        from web import lateness_lines

        more, check = lateness_lines(late)
        lines += ["", *more]
        verdicts.append(check)
    elif late:
        lines += ["", f"Fire lateness under `supertask run --http`, {late['jobs']} jobs every second: {late['seconds']} s "
                  f"with no one on the pages (the baseline of the same run), then {late['seconds']} s with "
                  f"{late['browsers']} clients each loading the overview, jobs and runs pages"
                  + (f" every {late['pause']:g} s." if late["pause"] else ", back to back."), "",
                  "| pages | fires | p50 ms | p95 ms | max ms |", "|---|---:|---:|---:|---:|",
                  f"| none | {late['quiet']['fires']} | {late['quiet']['p50_ms']:.1f} | {late['quiet']['p95_ms']:.1f} | "
                  f"{late['quiet']['max_ms']:.1f} |",
                  f"| {late['browsers']} clients ({late['browsing']['pages_served']:,} pages) | {late['browsing']['fires']} | "
                  f"{late['browsing']['p50_ms']:.1f} | {late['browsing']['p95_ms']:.1f} | {late['browsing']['max_ms']:.1f} |"]
        ratio = late["browsing"]["p95_ms"] / late["quiet"]["p95_ms"] if late["quiet"]["p95_ms"] else math.nan
        verdicts.append((f"{late['browsers']} browsers do not move fire lateness (p95 with them within 1.2× of "
                         "without, the tolerance of table 1)", f"{ratio:.2f}×", ratio <= 1.2))
    lines += ["", "| target | measured | |", "|---|---|---|"] + [f"| {t} | {m} | {verdict(ok)} |" for t, m, ok in verdicts]
    return lines


#: The sections measured apart (``--only``): a partial run's results.json replaces just these
#: in the docs/benchmarks.md it finds (keeping every other section as it was measured).
SPLICED = {"workers": "## 6. Workers", "web": "## The dashboard with real volumes (issue 17)",
           "cluster": "## Several hosts (issue 15)"}
WHOLE = ("lateness", "launch", "startup", "scale")


def splice(old: str, new: dict[str, list[str]]) -> str:
    """``old`` with each ``## heading`` section of ``new`` replaced (or, when it has none,
    added before the findings)."""
    parts: list[list[str]] = [[]]
    for line in old.splitlines():
        if line.startswith("## "):
            parts.append([])
        parts[-1].append(line)
    for heading, lines in new.items():
        at = next((i for i, p in enumerate(parts) if p and p[0] == heading), None)
        if at is None:
            at = next((i for i, p in enumerate(parts) if p and p[0].startswith("## Findings")), len(parts))
            parts.insert(at, [])
        parts[at] = [heading, "", *lines, ""]
    return "\n".join(line for p in parts for line in p) + "\n"


def write_report(results: dict, *, quick: bool = False) -> Path:
    """Full runs write docs/benchmarks.md; quick runs write bench/results/benchmarks-quick.md."""
    global PLOTS
    base = BENCH / "results" if quick else DOCS
    PLOTS = base / "benchmarks"
    PLOTS.mkdir(parents=True, exist_ok=True)
    out = base / ("benchmarks-quick.md" if quick else "benchmarks.md")
    import workers

    render = {"workers": workers.section, "web": web_section, "cluster": cluster.section}
    apart = {SPLICED[k]: render[k](results[k]) for k in SPLICED if k in results}
    if out.exists() and not all(k in results for k in WHOLE):
        # results of some sections only (``--only cluster`` on a machine with no full run kept):
        # the report keeps what it has and takes these in
        out.write_text(splice(out.read_text(), apart))
        log(f"report: {', '.join(apart) or 'nothing'} written into {out} (its other sections kept)")
        return out
    m = results.get("machine", {})
    v = m.get("versions", {})
    set_labels(results)
    info = results.get("baseline")
    lines = [
        "# Benchmarks", "",
        "supertask against its peers, all measured in the same run on the same machine by `make bench` "
        "(`python bench/run.py`; `--quick` for a short pass, `--only SECTION`, `--report` to re-render). "
        "`make bench BASELINE=REF` (`--baseline REF`) measures the supertask of commit REF as well, turn by "
        "turn with this tree's, and opens the report with a before/after table against the run-to-run noise. "
        "These machines are shared and noisy: read the medians and the ratios to the baseline of the same run "
        "(bare Python, `sh -c true`, the limit loop), not lone absolute times.", "",
        "Subjects, each given the same work (`sh -c 'echo \"JOB SCHEDULED $(date +%s.%N)\" >> FILE'`, one shell and "
        "one `date` per fire):", "",
        "- **supertask** (this tree): the real CLI, `supertask run --file T.yaml --log-level warning --no-watch` "
        "with N jobs `when: \"* * * * * *\"`, `SUPERTASK_HOME` in a temporary folder (SQLite store); the child "
        "writes `$SUPERTASK_SCHEDULED`, so lateness is exact.",
        "- **bare APScheduler 3.11** (`bench/peers/aps_peer.py`): `BackgroundScheduler`, `SQLAlchemyJobStore` on "
        "SQLite, a 20-thread pool calling `subprocess.call(..., shell=True)`; defaults otherwise (1 s misfire grace).",
        "- **supertask 0.1.1** from PyPI in `bench/venv-supertask-0.1.1` (never a dependency of the project): its "
        "`meta:`/`tasks:` timetable (as JSON) with a `python-entrypoint` step `subprocess:call` (`shell: true`). "
        "It accepts only `postgresql://`, `crate://` and `memory://` stores, so it runs on PostgreSQL here "
        "(psycopg added to its venv).",
        "- **the limit** (`bench/peers/limit.py`): a loop that sleeps until each due second and `Popen`s the commands.",
        *([f"- **{info['label']}** (`--baseline {info['ref']}`, `make bench BASELINE={info['ref']}`): the supertask of "
           f"that commit, from a git worktree at `{info['path']}` with its own venv (`uv sync --frozen`), run exactly "
           "as this tree's and turn by turn with it: the *before* of the before/after table."] if info else []),
        "",
        "Bare APScheduler and 0.1.1 do not tell the job its scheduled time, so their fires are counted against "
        "the whole second the child ran in (a fire more than 1 s late would count as missed plus doubled).", "",
        "## Machine", "",
        f"{m.get('cpu', '?')}, {m.get('cores')} cores, {m.get('mem_gb')} GB, Linux {m.get('kernel')}, "
        f"Python {m.get('python')}; {m.get('supertask')}, APScheduler {v.get('apscheduler')}, "
        f"SQLAlchemy {v.get('sqlalchemy')}, typer {v.get('typer')}; PostgreSQL on 127.0.0.1. "
        f"Load average (1, 5, 15 min) at the start {', '.join(f'{x:.1f}' for x in m.get('loadavg', []))}, at the end "
        f"{', '.join(f'{x:.1f}' for x in m.get('loadavg_end', []))}; run {m.get('date')} "
        f"({results.get('mode')} mode); this tree at {m.get('commit', '?')}.", "",
    ]
    if info and results.get("before_after"):
        lines += [f"## Before and after: {info['label']} → this tree", ""] + baseline.section(results, ms) + [""]
    if "lateness" in results:
        plot_lateness(results["lateness"], PLOTS / "lateness.png")
        lines += ["## 1. Fire lateness", ""] + lateness_section(results["lateness"]) + [""]
    if "launch" in results:
        lines += ["## 2. Launch overhead", ""] + launch_section(results) + [""]
    if "startup" in results:
        plot_startup(results["startup"]["rows"], PLOTS / "startup.png")
        lines += ["## 3. Start-up", ""] + startup_section(results["startup"]) + [""]
    if "imports" in results:
        lines += ["### What start-up is made of", ""] + imports_section(results["imports"]) + [""]
    if "scale" in results:
        lines += ["## 4. Scale", ""] + scale_section(results) + [""]
    plot_growth(results, PLOTS / "growth.png")
    lines += ["## 5. Growth", ""] + growth_section(results) + [""]
    for heading, section in apart.items():
        lines += [heading, ""] + section + [""]
    findings = BENCH / "findings.md"
    if findings.exists():
        lines += [findings.read_text().rstrip(), ""]
    out.write_text("\n".join(lines))
    return out
