"""Replacing cron on a server, end to end: import-crontab, @reboot/@restart, live reload,
SIGHUP, Prometheus metrics over real HTTP, init, doctor, the systemd unit, next's warnings."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Cli, wait_until

DATA = Path(__file__).resolve().parent.parent / "data" / "crontabs"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def history(cli: Cli, *args: str) -> list[dict]:
    return cli.json("history", "--limit", "500", *args)


# -- import-crontab ------------------------------------------------------------------------------


def test_import_system_crontabs_gives_a_valid_timetable_and_reports_what_differs(cli: Cli) -> None:
    files = [str(DATA / name) for name in ("debian-crontab", "certbot", "mdadm", "sysstat")]
    proc = cli("import-crontab", "--system", "--user", "root", *files)
    assert proc.returncode == 0, proc.stderr
    out = write(cli.cwd / "supertask.yaml", proc.stdout)
    check = cli("validate", str(out))
    assert check.returncode == 0, check.stderr
    assert "ok, 8 jobs" in check.stdout
    names = [r["job"] for r in cli.json("next", str(out), "-n", "1")]
    assert names == ["cron.hourly", "cron.daily", "cron.weekly", "cron.monthly", "certbot-renew", "checkarray",
                     "debian-sa1", "debian-sa1-2"]
    assert proc.stderr.count("run-parts line carried over") == 4
    assert "imported 8 jobs from 4 crontabs" in proc.stderr
    assert "$(date +%d)" in proc.stdout  # mdadm's \% is a plain % again


def test_import_a_user_crontab_from_stdin(cli: Cli) -> None:
    proc = cli("import-crontab", "-", "--user", "alice", input=(DATA / "user-crontab").read_text())
    assert proc.returncode == 0, proc.stderr
    assert "MAILTO=ops@example.com carried over as mailto" in proc.stderr
    assert 'mailto: "ops@example.com"' in proc.stdout
    path = write(cli.cwd / "supertask.yaml", proc.stdout)
    rows = {r["job"]: r for r in cli.json("next", str(path), "-n", "1", "--after", "2026-06-01T00:00:00+00:00")}
    assert rows["warm-cache"]["when"] == "@reboot"
    assert rows["logrotate"]["timezone"] == "Europe/Berlin"  # CRON_TZ
    assert rows["logrotate"]["fires"] == ["2026-06-02T00:00:00+02:00"]


def test_import_a_job_line_as_root_with_another_users_column(cli: Cli) -> None:
    proc = cli("import-crontab", "--system", "--user", "root", "-", input="0 4 * * * www-data /srv/purge%now\n")
    assert proc.returncode == 0, proc.stderr
    assert "exec:runuser -u www-data -- /bin/sh -c" in proc.stdout
    assert "runs as www-data through `runuser -u www-data --`" in proc.stderr


def test_import_keeps_every_line_names_the_namespace_and_moving_the_file_keeps_history(cli: Cli) -> None:
    """A short line is kept commented out with its note; notes come in line order; the
    timetable names its namespace, so the same jobs under another file name are the same jobs."""
    crontab = ("* * * echo short\n0 3 * * * tar czf /backup/home-$(date +%F).tgz /home\n"
               "0 0 30 2 * never\n@reboot logger booted\n")
    proc = cli("import-crontab", "-", input=crontab)
    assert proc.returncode == 0, proc.stderr
    assert "# NOT IMPORTED (see the notes above): <stdin>:1: * * * echo short" in proc.stdout
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note: ")]
    assert [n.split(":")[2] for n in notes] == ["1", "3"], notes
    first = write(cli.cwd / "first.yaml", proc.stdout)
    rows = cli.json("next", str(first), "-n", "1")
    assert [r["job"] for r in rows] == ["backup-home", "logger-booted"]
    namespace = rows[0]["namespace"]
    assert namespace.endswith("-crontab")
    sched = cli.start("--file", str(first))
    try:
        sched.wait_event("run finished", job="logger-booted")
    finally:
        assert sched.stop() == 0
    moved = first.rename(cli.cwd / "moved.yaml")
    assert cli.json("next", str(moved), "-n", "1")[0]["namespace"] == namespace
    assert [r["job"] for r in history(cli, "--ns", namespace)] == ["logger-booted"]


def test_import_a_missing_file_is_a_usage_error(cli: Cli) -> None:
    proc = cli("import-crontab", "no-such-crontab")
    assert proc.returncode == 2 and "no-such-crontab" in proc.stderr


def test_imported_jobs_run(cli: Cli, tmp_path: Path) -> None:
    """An imported `%` job gets cron's stdin when it really runs under the scheduler."""
    out = tmp_path / "got"
    crontab = f"SHELL=/bin/bash\nGREETING=hi\n@reboot cat > {out}; echo \"$GREETING\" >> {out}%line 1%line\\%2\n"
    proc = cli("import-crontab", "-", input=crontab)
    assert proc.returncode == 0, proc.stderr
    write(cli.cwd / "supertask.yaml", proc.stdout)
    sched = cli.start()
    try:
        sched.wait_event("run finished", status="succeeded")
    finally:
        assert sched.stop() == 0
    assert out.read_text() == "line 1\nline%2\nhi\n"  # cron ends the input with a newline


# -- @reboot and @restart ------------------------------------------------------------------------


def test_reboot_jobs_run_after_a_boot_restart_jobs_at_every_start(cli: Cli, tmp_path: Path) -> None:
    boots, starts = tmp_path / "boots", tmp_path / "starts"
    write(cli.cwd / "supertask.yaml", f"""
namespace: boot
jobs:
  - {{name: on-boot, when: "@reboot", run: "cmd:echo x >> {boots}"}}
  - {{name: on-start, when: "@restart", run: "cmd:echo x >> {starts}"}}
""")

    def serve_once(expected_runs: int) -> dict:
        sched = cli.start()
        try:
            event = sched.wait_event("start jobs")
            wait_until(lambda: len(history(cli)) >= expected_runs and all(
                r["status"] == "succeeded" for r in history(cli)), what=f"{expected_runs} runs")
        finally:
            assert sched.stop() == 0
        return event

    first = serve_once(2)  # first start ever: both (and both are new)
    assert first["booted"] is True
    again = serve_once(3)  # same boot: only @restart
    assert again["booted"] is False and again["due"] == ["on-start"]
    assert len(boots.read_text().splitlines()) == 1 and len(starts.read_text().splitlines()) == 2
    # the machine rebooted since: the boot recorded in the store is an older one
    assert boot_marks(cli) == [first["boot"]]
    set_boot_marks(cli, "an-older-boot")
    after_boot = serve_once(5)
    assert after_boot["booted"] is True and sorted(after_boot["due"]) == ["on-boot", "on-start"]
    assert len(boots.read_text().splitlines()) == 2 and len(starts.read_text().splitlines()) == 3
    assert boot_marks(cli) == [first["boot"]]
    # an upgrade from a release that kept the boot time in the state folder: its word holds
    set_boot_marks(cli, None)
    (cli.home / "boot").mkdir()
    write(cli.home / "boot" / "boot", f"{psutil.boot_time():.0f}\n")
    upgraded = serve_once(6)
    assert upgraded["booted"] is False and upgraded["due"] == ["on-start"]
    assert boot_marks(cli) == [first["boot"]]


def boot_marks(cli: Cli) -> list[str]:
    with sqlite3.connect(cli.home / "supertask.db") as db:
        return [v for (v,) in db.execute("SELECT value FROM supertask_meta WHERE key LIKE 'boot:%'")]


def set_boot_marks(cli: Cli, value: str | None) -> None:
    with sqlite3.connect(cli.home / "supertask.db") as db:
        if value is None:
            db.execute("DELETE FROM supertask_meta WHERE key LIKE 'boot:%'")
        else:
            db.execute("UPDATE supertask_meta SET value = ? WHERE key LIKE 'boot:%'", (value,))


def test_reboot_jobs_run_once_a_boot_when_two_state_folders_share_a_store(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'shared.db'}"
    boots = tmp_path / "boots"
    work = tmp_path / "work"
    work.mkdir()
    write(work / "supertask.yaml", f"""
namespace: shared-boot
jobs:
  - {{name: on-boot, when: "@reboot", run: "cmd:echo x >> {boots}"}}
""")
    events = []
    for folder in ("home-a", "home-b", "home-a"):
        cli = Cli(tmp_path / folder, store, work)
        sched = cli.start()
        try:
            events.append(sched.wait_event("start jobs"))
            wait_until(lambda cli=cli: history(cli) and all(r["status"] == "succeeded" for r in history(cli)),
                       what="the @reboot run")
        finally:
            assert sched.stop() == 0
    assert [e["booted"] for e in events] == [True, False, False]
    assert boots.read_text().splitlines() == ["x"]  # one run for the boot, whichever folder started first


# -- live reload ---------------------------------------------------------------------------------


def test_edits_reload_live_and_a_broken_edit_keeps_the_last_good_timetable(cli: Cli, tmp_path: Path) -> None:
    path = cli.cwd / "supertask.yaml"
    made = tmp_path / "made"
    write(path, "namespace: live\njobs:\n  - {name: a, when: every 1h, run: 'cmd:true'}\n")
    sched = cli.start()
    try:
        sched.wait_event("watching timetable")
        write(path, f"namespace: live\njobs:\n  - {{name: a, when: every 1h, run: 'cmd:true'}}\n"
                    f"  - {{name: b, when: once, run: 'cmd:touch {made}'}}\n")
        reloaded = sched.wait_event("timetable reloaded")
        assert reloaded["added"] == ["b"] and reloaded["trigger"] == "file changed"
        wait_until(made.exists, what="the added job to run")
        before = cli.json("list-jobs", "--ns", "live")
        write(path, "namespace: live\njobs:\n  - {name: a, when: every 5 mins, run: 'cmd:true'}\n")
        failed = sched.wait_event("timetable reload failed")
        assert failed["level"] == "error"
        assert any("supertask.yaml:3" in p and "every 5m" in p for p in failed["problems"])
        assert sched.proc.poll() is None
        assert cli.json("list-jobs", "--ns", "live") == before
    finally:
        assert sched.stop() == 0


def test_sighup_reloads_with_no_watch(cli: Cli) -> None:
    path = cli.cwd / "supertask.yaml"
    write(path, "namespace: hup\njobs:\n  - {name: a, when: every 1h, run: 'cmd:true'}\n")
    sched = cli.start("--no-watch")
    try:
        event = sched.wait_event("watching timetable")
        assert event["watch"] is False
        write(path, "namespace: hup\njobs:\n  - {name: a, when: every 1h, run: 'cmd:true'}\n"
                    "  - {name: c, when: '@daily', run: 'cmd:true'}\n")
        sched.proc.send_signal(signal.SIGHUP)
        reloaded = sched.wait_event("timetable reloaded")
        assert reloaded["trigger"] == "SIGHUP" and reloaded["added"] == ["c"]
        assert {j["name"] for j in cli.json("list-jobs", "--ns", "hup")} == {"a", "c"}
        assert [e["trigger"] for e in sched.events() if e.get("event") == "timetable reloaded"] == ["SIGHUP"]
    finally:
        assert sched.stop() == 0


# -- metrics -------------------------------------------------------------------------------------


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_are_served_over_http(cli: Cli) -> None:
    write(cli.cwd / "supertask.yaml", """
namespace: metered
jobs:
  - {name: ok, when: "* * * * * *", run: "cmd:true"}
  - {name: bad, when: "* * * * * *", run: "cmd:exit 3"}
  - {name: slow, when: once, run: "cmd:sleep 30", timeout: 60s}
""")
    sched = cli.start("--metrics", "127.0.0.1:0", "--grace", "1s")
    try:
        url = sched.wait_event("metrics serving")["url"]
        assert url.startswith("http://127.0.0.1:")

        def ready() -> dict | None:
            s = scrape(url)
            ok = value(s, "supertask_runs_total", namespace="metered", job="ok", status="succeeded") or 0
            bad = value(s, "supertask_runs_total", namespace="metered", job="bad", status="failed") or 0
            return s if ok >= 2 and bad >= 2 else None

        samples = wait_until(ready, what="runs counted in the metrics")
        ns = {"namespace": "metered"}
        assert value(samples, "supertask_up") == 1
        assert value(samples, "supertask_runs_in_flight", **ns, job="slow") == 1
        count = value(samples, "supertask_run_duration_seconds_count", **ns, job="ok")
        assert count is not None and count >= 2
        assert value(samples, "supertask_run_duration_seconds_bucket", **ns, job="ok", le="+Inf") == count
        late = value(samples, "supertask_fire_lateness_seconds_count", **ns, job="ok")
        assert late is not None and late >= 2
        assert (value(samples, "supertask_fire_lateness_seconds_sum", **ns, job="ok") or 0) / late < 1.0
        last_ok = value(samples, "supertask_last_success_timestamp_seconds", **ns, job="ok")
        assert last_ok is not None and abs(last_ok - psutil.time.time()) < 30
        assert value(samples, "supertask_last_success_timestamp_seconds", **ns, job="bad") is None
    finally:
        assert sched.stop(timeout=60) in (0,)
    # the endpoint goes with the scheduler
    try:
        urllib.request.urlopen(url, timeout=2)
        raise AssertionError("metrics still served after stop")
    except OSError:
        pass


def test_a_frozen_scheduler_counts_and_reports_the_fires_it_coalesced(cli: Cli) -> None:
    """A scheduler stopped for a few seconds (a stalled VM, SIGSTOP) is behind its fires
    when it goes on: catch_up: latest runs each job's latest once, the rest are in the
    metrics and a warning; catch_up: all runs every one."""
    write(cli.cwd / "supertask.yaml", """
namespace: frozen
jobs:
  - {name: latest, when: "* * * * * *", run: "cmd:true"}
  - {name: all, when: "* * * * * *", catch_up: all, run: "cmd:true"}
""")
    sched = cli.start("--metrics", "127.0.0.1:0")
    try:
        url = sched.wait_event("metrics serving")["url"]
        sched.wait_event("run finished", job="latest")
        os.kill(sched.proc.pid, signal.SIGSTOP)
        frozen = time.time()
        time.sleep(4)  # the freeze itself: what is measured is what the scheduler does after it
        os.kill(sched.proc.pid, signal.SIGCONT)
        event = sched.wait_event("fires coalesced", job="latest")
        # the whole seconds well inside the freeze (a fire decided just before it may still run)
        inside = list(range(math.floor(frozen + 1.1) + 1, math.ceil(frozen + 3)))

        def during() -> dict[str, list[int]]:
            runs = cli.json("history", "--limit", "1000")
            return {job: sorted(round(ts(r["scheduled"])) for r in runs if r["job"] == job
                                and r["status"] == "succeeded" and frozen + 1.1 < ts(r["scheduled"]) < frozen + 3)
                    for job in ("latest", "all")}

        # catch_up: all runs them one after another: wait for the last before stopping
        seen = wait_until(lambda: (d := during())["all"] == inside and d, what="every second of the freeze run")
        samples = scrape(url)
    finally:
        assert sched.stop() == 0
    assert event["level"] == "warning" and event["jobs"] == 1 and event["fires"] >= 2
    assert (value(samples, "supertask_fires_coalesced_total", namespace="frozen", job="latest") or 0) >= event["fires"]
    assert value(samples, "supertask_fires_coalesced_total", namespace="frozen", job="all") is None
    assert seen["latest"] == [], seen  # folded into the first fire after it


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@pytest.mark.parametrize("option, value", [("--metrics", "nonsense"), ("--listen", "0.0.0.0:99999")])
def test_a_wrong_address_stops_the_start_before_the_store_is_touched(cli: Cli, option: str, value: str) -> None:
    write(cli.cwd / "supertask.yaml", "jobs:\n  - {name: a, when: '@daily', run: 'cmd:true'}\n")
    proc = cli("run", option, value)
    assert proc.returncode == 2 and f"{option} {value!r}: expected HOST:PORT" in proc.stderr
    assert "scheduler started" not in proc.stderr
    assert not (cli.home / "supertask.db").exists()  # nothing synced (before: the jobs were)


# -- init, doctor, service, next -----------------------------------------------------------------


def test_init_writes_a_valid_commented_starter(cli: Cli) -> None:
    proc = cli("init")
    assert proc.returncode == 0, proc.stderr
    text = (cli.cwd / "supertask.yaml").read_text()
    assert text.count("#") > 10
    assert cli("validate").returncode == 0
    again = cli("init")
    assert again.returncode == 2 and "--force" in again.stderr
    assert cli("init", "--force").returncode == 0


def test_doctor_says_what_to_fix(cli: Cli) -> None:
    cli("init")
    proc = cli("doctor", "--json")
    assert proc.returncode == 2, proc.stdout + proc.stderr  # no store in this folder yet: said, as history says it
    assert f"no store in the state folder {cli.home}" in proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert set(checks) >= {"state folder", "store", "timetable", "uv", "docker/podman", "time zone"}
    assert checks["store"]["status"] == "warn" and "no store yet" in checks["store"]["detail"]
    assert checks["timetable"]["status"] == "ok"
    assert str(cli.home) in checks["state folder"]["detail"]
    assert not (cli.home / "supertask.db").exists()  # doctor creates nothing
    assert cli("run", "--", "cmd:true").returncode == 0
    checks = {c["name"]: c for c in cli.json("doctor")}
    assert checks["store"]["status"] == "ok" and "1 namespace(s)" in checks["store"]["detail"]
    write(cli.cwd / "supertask.yaml", "jobs:\n  - {name: a, when: 'every 5 mins', run: 'cmd:true'}\n")
    broken = cli("doctor")
    assert broken.returncode == 1
    assert "FAIL timetable" in broken.stdout and "every 5m" in broken.stdout and "fix:" in broken.stdout
    bad_store = cli("doctor", env={"SUPERTASK_STORE": "postgresql://nobody@127.0.0.1:1/none"})
    assert bad_store.returncode == 1 and "FAIL store" in bad_store.stdout


def test_service_install_prints_and_writes_a_systemd_unit(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    unit = cli("service", "install", "--print")
    assert unit.returncode == 0, unit.stderr
    text = unit.stdout
    assert f"run --file {cli.cwd / 'supertask.yaml'}" in text
    for line in ("Restart=on-failure", "StateDirectory=supertask", "Environment=SUPERTASK_HOME=%S/supertask",
                 "KillMode=mixed", "ExecReload=/bin/kill -HUP $MAINPID", "WantedBy=multi-user.target",
                 "LimitNOFILE=65536"):
        assert line in text.splitlines(), line
    home = tmp_path / "userhome"
    written = cli("service", "install", "--user", "--name", "mysched", env={"HOME": str(home)})
    assert written.returncode == 0, written.stderr
    path = home / ".config" / "systemd" / "user" / "mysched.service"
    assert "WantedBy=default.target" in path.read_text()
    assert "systemctl --user enable --now mysched" in written.stdout
    write(cli.cwd / "supertask.yaml", "jobs: []\n")
    assert cli("service", "install", "--print").returncode == 2


def test_next_warns_about_never_and_dst(cli: Cli) -> None:
    write(cli.cwd / "supertask.yaml", """
jobs:
  - {name: past, when: "2020-01-01T00:00:00+00:00", run: "cmd:true"}
  - {name: berlin, when: "30 2 * * *", timezone: Europe/Berlin, run: "cmd:true"}
  - {name: fine, when: "0 12 * * *", timezone: Europe/Berlin, run: "cmd:true"}
""")
    proc = cli("next", "--after", "2026-03-27T00:00:00+01:00", "-n", "3")
    assert proc.returncode == 0, proc.stderr
    assert "warning: past: never fires after 2026-03-27T00:00+01:00; its time is past" in proc.stderr
    assert "warning: berlin: 2026-03-29 03:00 CEST: moved by DST" in proc.stderr
    assert "fine" not in proc.stderr
    rows = {r["job"]: r for r in cli.json("next", "--after", "2026-03-27T00:00:00+01:00", "-n", "3")}
    assert rows["fine"]["warnings"] == [] and len(rows["berlin"]["warnings"]) == 1
    write(cli.cwd / "supertask.yaml", "jobs:\n  - {name: feb30, when: '0 0 30 2 *', run: 'cmd:true'}\n")
    never = cli("next")
    assert never.returncode == 2 and "never fires" in never.stderr


def test_version(cli: Cli) -> None:
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("supertask ")
    assert os.path.exists(Path(__file__))


def test_import_with_no_jobs_says_so(cli: Cli) -> None:
    proc = cli("import-crontab", "-", input="# nothing\nMAILTO=x\n@fortnightly true\n")
    assert proc.returncode == 2
    assert "no jobs to import" in proc.stderr and "<stdin>:3: not imported: unknown @ form" in proc.stderr
