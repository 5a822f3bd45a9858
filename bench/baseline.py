"""Before and after in one run: a second supertask build (``--baseline REF``) beside this tree.

``prepare(REF)`` makes a git worktree of REF under ``bench/baseline-<commit>/`` (git-ignored)
with a venv of its own, built the way ``make setup`` builds this tree's (``uv sync --frozen
--compile-bytecode``, then the package byte-compiled). The sections then run both builds
turn by turn (this tree, the baseline, the baseline, this tree, ...), so whatever else the
machine is doing hits both alike, and ``before_after`` reads each figure's turns back: the
after/before ratio (the median of the turns' ratios) next to the run-to-run noise, the spread
of one build's repeated turns, (max - min) / median, the larger of the two builds'.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path

from common import BENCH, BUILDS, ROOT, SUPERTASK, log, time_command

NAME = "baseline"  # the subject's kind in results.json; its label is results["baseline"]["label"]


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(found).exists() and not shutil.which(found):
        raise SystemExit(f"--baseline needs uv to build the baseline's venv; not found at {found} (make setup installs it)")
    return found


def prepare(ref: str) -> dict:
    """The baseline's worktree and venv (made once, reused while REF names the same commit);
    registers its ``supertask`` as the subject ``baseline``."""
    try:
        commit = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except subprocess.CalledProcessError:
        raise SystemExit(f"--baseline {ref}: no such commit in {ROOT} (give a hash, tag or branch)") from None
    short = commit[:7]
    path = BENCH / f"baseline-{short}"
    if not path.exists():
        log(f"baseline: git worktree of {short} at {path.relative_to(ROOT)}")
        _git("worktree", "prune")
        _git("worktree", "add", "--detach", str(path), commit)
    elif _git("rev-parse", "HEAD", cwd=path) != commit:
        raise SystemExit(f"{path} is not at {commit}: remove it (git worktree remove --force {path}) and run again")
    exe = path / ".venv" / "bin" / "supertask"
    stamp = path / ".venv" / ".bench-synced"
    if not stamp.exists():
        log(f"baseline: its own venv (uv sync --frozen) in {path.relative_to(ROOT)}/.venv")
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
        subprocess.run([_uv(), "sync", "--quiet", "--frozen", "--compile-bytecode"], cwd=path, env=env, check=True)
        subprocess.run([str(path / ".venv" / "bin" / "python"), "-m", "compileall", "-q", "supertask"], cwd=path,
                       env=env, check=True)
        stamp.touch()
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout.strip()
    BUILDS[NAME] = exe
    return {"ref": ref, "commit": commit, "label": f"supertask@{short}", "path": str(path.relative_to(ROOT)),
            "version": version}


def label(results: dict) -> str | None:
    info = results.get("baseline")
    return info.get("label") if info else None


def turn_order(builds: list[str], turn: int) -> list[str]:
    """Which build goes first alternates turn by turn (A B, B A, A B, ...)."""
    return builds if turn % 2 == 0 else builds[::-1]


def time_builds(argvs: dict[str, list[str]], *, turns: int, runs: int,
                envs: dict[str, dict[str, str]] | Callable[[str], dict[str, str]]) -> dict[str, dict]:
    """``time_command`` of each build's command, ``runs`` runs a turn, the builds alternating
    for ``turns`` turns; each build's result holds all its runs and each turn's median."""
    per: dict[str, list[dict]] = {b: [] for b in argvs}
    for t in range(turns):
        for build in turn_order(list(argvs), t):
            env = envs(build) if callable(envs) else envs[build]
            per[build].append(time_command(argvs[build], runs=runs, env=env))
    out = {}
    for build, parts in per.items():
        times = [x for p in parts for x in p["times"]]
        out[build] = {"argv": argvs[build], "median": statistics.median(times), "min": min(times), "max": max(times),
                      "cpu": statistics.median(p["cpu"] for p in parts), "runs": len(times),
                      "exit": parts[-1]["exit"], "times": times,
                      "turn_medians": [p["median"] for p in parts], "turn_cpus": [p["cpu"] for p in parts]}
    return out


def build_names(label: str | None) -> dict[str, str]:
    """How each build's commands are named in the tables: ``supertask ...`` for this tree,
    ``supertask@COMMIT ...`` for the baseline."""
    return {"supertask": "supertask", **({NAME: label} if label and NAME in BUILDS else {})}


def time_supertask(args: list[str], *, names: dict[str, str], runs: int, turns: int,
                   envs: dict[str, dict[str, str]], key: str | None = None) -> dict[str, dict]:
    """``supertask ARGS`` of each build, named ``NAME ARGS`` (or ``NAME`` + ``key``); with a
    baseline the builds alternate for ``turns`` turns of ``runs // turns`` runs each."""
    suffix = key if key is not None else " " + " ".join(args)
    if len(names) == 1:
        return {"supertask" + suffix: time_command([str(SUPERTASK), *args], runs=runs, env=envs["supertask"])}
    timed = time_builds({b: [str(BUILDS[b]), *args] for b in names}, turns=turns,
                         runs=max(1, runs // turns), envs=envs)
    return {names[b] + suffix: timed[b] for b in names}


# -- reading the turns back ----------------------------------------------------------------------


def spread(values: list[float]) -> float:
    """Run-to-run noise of one build: (max - min) / median of its repeated turns."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if len(vals) < 2:
        return math.nan
    mid = statistics.median(vals)
    return (max(vals) - min(vals)) / mid if mid else math.nan


def ratio_noise(after: list[float], before: list[float]) -> tuple[float, float, int]:
    """The median of the turns' after/before ratios, the noise (the larger spread of the
    two builds' turns) and how many turns both builds have a figure for."""
    pairs = [(a, b) for a, b in zip(after, before, strict=False)
             if a is not None and b and not (math.isnan(a) or math.isnan(b))]
    ratio = statistics.median(a / b for a, b in pairs) if pairs else math.nan
    noise = max((x for x in (spread(after), spread(before)) if not math.isnan(x)), default=math.nan)
    return ratio, noise, len(pairs)


def compare(metric: str, unit: str, after: list[float], before: list[float], *, higher_is_better: bool = False,
            section: str = "", cpu: tuple[list[float], list[float]] | None = None) -> dict:
    """One figure before and after: the after/before ratio against the noise, and whether
    after is worse by more than it. ``cpu``: the same turns' CPU (after, before), shown
    beside it: CPU time is what a busy machine distorts least."""
    ratio, noise, turns = ratio_noise(after, before)
    worse = (1 - ratio) if higher_is_better else (ratio - 1)  # > 0: after is worse
    ok = None if math.isnan(ratio) or math.isnan(noise) else worse <= noise
    row = {"metric": metric, "section": section, "unit": unit, "higher_is_better": higher_is_better,
           "before": statistics.median(before) if before else math.nan,
           "after": statistics.median(after) if after else math.nan,
           "before_turns": before, "after_turns": after, "ratio": ratio, "noise": noise,
           "worse_by": worse, "within_noise": ok, "turns": turns}
    if cpu:
        row["cpu_ratio"], row["cpu_noise"], _ = ratio_noise(*cpu)
    return row


def own_cpu(after: list[dict], before: list[dict]) -> tuple[list[float], list[float]]:
    """The scheduler's own CPU per fire, each turn (after, before)."""
    return ([t.get("own_cpu_ms", math.nan) for t in after], [t.get("own_cpu_ms", math.nan) for t in before])


def before_after(results: dict) -> list[dict]:
    """Every figure measured for both builds in ``results``: lateness p99 (each size the
    baseline ran at, but the top one), runs/s at the top size (saturation), the start-up
    and one-shot commands."""
    name = label(results)
    if not name:
        return []
    rows: list[dict] = []
    late = results.get("lateness", {})
    by = {(r["subject"], r["jobs"]): r for r in late.get("rows", []) if r.get("turns")}
    sizes = sorted(j for (s, j) in by if s == NAME and ("supertask", j) in by)
    top = max((r["jobs"] for r in late.get("rows", [])), default=None)
    for jobs in sizes:
        after, before = by[("supertask", jobs)]["turns"], by[(NAME, jobs)]["turns"]
        if jobs != top or len(sizes) == 1:
            rows.append(compare(f"p99 fire lateness, {jobs} fires/s", "ms", [t["p99_ms"] for t in after],
                                [t["p99_ms"] for t in before], section="lateness", cpu=own_cpu(after, before)))
        if jobs == top:
            rows.append(compare(f"runs/s offered {jobs} fires/s (saturation)", "runs/s",
                                [t["runs_per_s"] for t in after], [t["runs_per_s"] for t in before],
                                higher_is_better=True, section="lateness", cpu=own_cpu(after, before)))
    for section in ("launch", "startup"):
        table = results.get(section, {}).get("rows", {})
        for key, row in table.items():
            if not key.startswith("supertask ") or "turn_medians" not in row:
                continue
            base = table.get(name + key[len("supertask"):])
            if base and "turn_medians" in base:
                rows.append(compare(f"`{key}`", "ms", [x * 1000 for x in row["turn_medians"]],
                                    [x * 1000 for x in base["turn_medians"]], section=section,
                                    cpu=(row.get("turn_cpus", []), base.get("turn_cpus", []))))
    return rows


# -- the report's table --------------------------------------------------------------------------


def pct(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{100 * x:.0f} %"


def section(results: dict, ms: Callable[[float | None, int], str]) -> list[str]:
    """This tree against the baseline build, every figure both were measured for in this run."""
    rows = results.get("before_after") or before_after(results)
    info = results.get("baseline", {})
    if not rows:
        return []
    name = info.get("label", "baseline")
    lines = [f"The same figures of two builds measured turn by turn in this run: **before** is `{name}` "
             f"(`--baseline {info.get('ref')}`: commit {info.get('commit', '?')[:12]}, a worktree at "
             f"`{info.get('path')}` with a venv of its own), **after** is this tree "
             f"({results.get('machine', {}).get('commit', '?')}). The two builds alternate turn by turn, which "
             "of them goes first changing every turn, so whatever else the machine does hits both alike. "
             "Each build's figure is the median of its turns (each turn's figure in brackets); "
             "*after / before* is the median of the turns' ratios (each turn's after over the same turn's "
             "before); *noise* is how far repeated turns of one build differ, (max − min) / median of its "
             "turns, the larger of the two builds'. A figure passes when after is not worse than before by "
             "more than that noise (times: after / before ≤ 1 + noise; runs/s: ≥ 1 − noise). *CPU* is the same "
             "ratio and noise for CPU time, which a busy machine distorts least (for commands their user + "
             "system time; for the scheduler its own CPU per fire): where wall time misses and CPU does not, "
             "suspect the machine. With three or "
             "five turns the noise itself is a rough figure: a miss by a little is a reason to run again on a "
             "quieter machine, not proof.", "",
             f"| figure | before ({name}) | after (this tree) | after / before | run-to-run noise | turns | | "
             "CPU after / before (noise) |",
             "|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        digits = 0 if r["unit"] == "runs/s" or r["before"] >= 100 else 1
        turns_b = ", ".join(ms(x, digits) for x in r["before_turns"])
        turns_a = ", ".join(ms(x, digits) for x in r["after_turns"])
        ok = r["within_noise"]
        cpu = "–" if math.isnan(r.get("cpu_ratio", math.nan)) else f"{r['cpu_ratio']:.2f}× ({pct(r['cpu_noise'])})"
        if ok is None:
            mark = "–"
        elif ok:
            mark = "**pass**" + (" (better by more than the noise)" if -r["worse_by"] > r["noise"] else "")
        else:
            mark = f"**miss**: {pct(r['worse_by'])} worse"
        lines.append(f"| {r['metric']} | {ms(r['before'], digits)} {r['unit']} ({turns_b}) | "
                     f"{ms(r['after'], digits)} {r['unit']} ({turns_a}) | {r['ratio']:.2f}× | {pct(r['noise'])} | "
                     f"{r['turns']} | {mark} | {cpu} |")
    return lines
