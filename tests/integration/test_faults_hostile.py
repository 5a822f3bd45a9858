"""Hostile input and hostile state folders (issue 18, points 4-11): each case injected for
real against the real CLI, asserting what a user sees (exit codes, files, rows, events)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import psutil
import pytest

from tests.conftest import SUPERTASK, Cli, Scheduler, wait_until
from tests.integration.figures import record, tick_job, tick_rows, ticks, unfinished

NOBODY = 65534  # the uid `nobody` has on Debian and most distributions

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: chown to another user (nobody)")


def timetable(cli: Cli, text: str) -> Path:
    path = cli.cwd / "supertask.yaml"
    path.write_text(text)
    return path


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def with_umask(cli: Cli, umask: int, *args: str) -> subprocess.CompletedProcess[str]:
    """``supertask ARGS`` started under ``umask``."""
    return subprocess.run(["sh", "-c", f'umask {umask:03o}; exec "$@"', "sh", *SUPERTASK, *args], cwd=cli.cwd,
                          env=cli.env, text=True, capture_output=True, timeout=60)


# -- a state folder is private (point 4) --------------------------------------------------------------


def test_the_state_folder_and_its_files_are_private_whatever_the_umask(cli: Cli) -> None:
    proc = with_umask(cli, 0, "run", "--ns", "private", "--name", "echo", "--", "cmd:echo a secret")
    assert proc.returncode == 0, proc.stderr
    log = cli.home / "logs" / "private" / "echo" / "1.log"
    assert "a secret" in log.read_text()
    for folder in (cli.home, cli.home / "logs", log.parent.parent, log.parent):
        assert mode(folder) == 0o700, folder
    for file in (cli.home / "supertask.db", log):
        assert mode(file) == 0o600, file
    doctor = cli("doctor")
    assert "ok   state folder" in doctor.stdout, doctor.stdout
    os.chmod(cli.home / "supertask.db", 0o644)  # as an older supertask made it
    doctor = cli("doctor")
    assert f"WARN state folder: others may read what is in {cli.home}: {cli.home / 'supertask.db'} (mode 644)" \
        in doctor.stdout, doctor.stdout
    assert f"fix: chmod -R go-rwx {cli.home}" in doctor.stdout


def test_the_control_folder_socket_and_token_are_private_whatever_the_umask(cli: Cli) -> None:
    timetable(cli, "namespace: ctl\njobs:\n  - {name: a, when: '@daily', run: 'cmd:true'}\n" + tick_job(marks_of(cli)))
    proc = subprocess.Popen(["sh", "-c", 'umask 000; exec "$@"', "sh", *SUPERTASK, "run", "--listen", "127.0.0.1:0"],
                            cwd=cli.cwd, env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        control = cli.home / "control"
        wait_until(lambda: (control / "ctl.sock").exists() and (control / "token").exists(), timeout=60, what="the socket")
        assert mode(control) == 0o700 and mode(control / "ctl.sock") == 0o600 and mode(control / "token") == 0o600
    finally:
        proc.terminate()
        proc.wait(30)


def test_service_install_keeps_the_store_password_out_of_the_unit_and_never_overwrites(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    home = tmp_path / "userhome"
    url = "postgresql://app:s3cret@db.example/app"
    written = subprocess.run(
        ["sh", "-c", 'umask 000; exec "$@"', "sh", *SUPERTASK, "service", "install", "--user", "--store", url],
        cwd=cli.cwd, env={**cli.env, "HOME": str(home)}, text=True, capture_output=True, timeout=60)
    assert written.returncode == 0, written.stderr
    unit = home / ".config" / "systemd" / "user" / "supertask.service"
    env_file = home / ".config" / "supertask" / "supertask.env"
    assert "s3cret" not in unit.read_text() and mode(unit) == 0o644
    assert f"EnvironmentFile={env_file}" in unit.read_text().splitlines()
    assert f"SUPERTASK_STORE={url}" in env_file.read_text().splitlines() and mode(env_file) == 0o600
    unit.write_text("# mine\n")
    again = cli("service", "install", "--user", "--store", url, env={"HOME": str(home)})
    assert again.returncode == 2 and f"{unit} exists; pass --force" in again.stderr
    assert unit.read_text() == "# mine\n"
    forced = cli("service", "install", "--user", "--store", url, "--force", env={"HOME": str(home)})
    assert forced.returncode == 0, forced.stderr
    assert "EnvironmentFile=" in unit.read_text()
    printed = cli("service", "install", "--print", "--store", url)
    assert "s3cret" not in printed.stdout and "EnvironmentFile=/etc/supertask/supertask.env" in printed.stdout


# -- a state folder is trusted only when it is ours (point 5) ------------------------------------------


@needs_root
@pytest.mark.parametrize("case", ["another user's", "writable by all", "under a folder of another user's"])
def test_a_state_folder_others_could_write_to_is_refused(cli: Cli, tmp_path: Path, case: str) -> None:
    if case == "another user's":
        cli.home.mkdir(mode=0o777)
        os.chmod(cli.home, 0o777)
        os.chown(cli.home, NOBODY, -1)
        culprit, why = cli.home, f"it belongs to another user (uid {NOBODY}); chown root {cli.home}"
    elif case == "writable by all":
        cli.home.mkdir()
        os.chmod(cli.home, 0o777)
        culprit, why = cli.home, f"anyone can write to it (mode 777); chmod o-w {cli.home}"
    else:
        parent = tmp_path / "theirs"
        parent.mkdir()
        os.chown(parent, NOBODY, -1)
        cli.env["SUPERTASK_HOME"] = str(parent / "home")
        culprit, why = parent, f"it belongs to another user (uid {NOBODY}); chown root {parent}"
    (culprit / "planted").mkdir()
    before = files_under(tmp_path)
    for args in (["run", "--", "cmd:echo hi"], ["run", "--listen", "127.0.0.1:0", "--when", "@daily", "--", "cmd:true"]):
        proc = cli(*args)
        assert proc.returncode == 2, proc.stderr
        assert f"refusing to use {culprit}: {why}" in proc.stderr
    assert files_under(tmp_path) == before  # no store, no token, no log
    doctor = cli("doctor")
    assert doctor.returncode == 1 and f"FAIL state folder: {culprit}:" in doctor.stdout
    if case == "writable by all":
        record("a state folder others can write to (or another user's)", fires=None, fires_run=None,
               fires_recorded=None, unfinished=None, recover_s=None,
               note="refused before anything is read or written there: exit 2, nothing created, doctor fails")


@needs_root
def test_a_planted_token_is_refused(cli: Cli) -> None:
    control = cli.home / "control"
    control.mkdir(parents=True)
    (control / "token").write_text("planted\n")
    os.chown(control / "token", NOBODY, -1)
    timetable(cli, "jobs:\n  - {name: a, when: '@daily', run: 'cmd:true'}\n")
    proc = cli("run", "--listen", "127.0.0.1:0", timeout=60)
    assert proc.returncode == 2
    assert f"refusing the token file {control / 'token'}: not a private file of ours" in proc.stderr


def test_planted_symlinks_in_the_state_folder_are_not_followed(cli: Cli, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    folder = cli.home / "logs" / "ns" / "job"
    folder.mkdir(parents=True)
    (folder / "1.log").symlink_to(victim)  # the first run's log
    proc = cli("run", "--ns", "ns", "--name", "job", "--", "cmd:echo the secret")
    assert victim.read_text() == "root's file\n"
    (row,) = cli.json("history")
    assert "log not kept: cannot write" in row["message"] and row["log_path"] is None, proc


@needs_root
def test_a_folder_symlink_of_another_users_is_refused_and_ours_is_followed(cli: Cli, tmp_path: Path) -> None:
    (cli.home / "logs").mkdir(parents=True)
    (cli.home / "logs" / "ns").symlink_to(tmp_path)
    os.lchown(cli.home / "logs" / "ns", NOBODY, -1)
    cli("run", "--ns", "ns", "--name", "job", "--", "cmd:echo the secret")
    assert not (tmp_path / "job").exists()
    (row,) = cli.json("history")
    assert "log not kept" in row["message"] and row["log_path"] is None, row
    # logs/ on a disk of its own (a tmpfs is a sticky folder of root's): ours, so followed
    shutil.rmtree(cli.home / "logs")
    disk = tmp_path / "disk"
    disk.mkdir(mode=0o1777)
    os.chmod(disk, 0o1777)
    (cli.home / "logs").symlink_to(disk)
    assert cli("run", "--ns", "ns", "--name", "job", "--", "cmd:echo kept").returncode == 0
    assert (disk / "ns" / "job" / "2.log").read_text().endswith(" stdout kept\n")
    assert mode(disk / "ns") == 0o700 and mode(disk / "ns" / "job" / "2.log") == 0o600


# -- the control endpoint under load (points 9 and 10) ------------------------------------------------


def listening(cli: Cli, *args: str, prefix: str = "") -> tuple[Scheduler, str, int, str]:
    """A scheduler serving TCP with a token (under the shell ``prefix``, e.g. a ulimit)."""
    timetable(cli, "namespace: ctl\njobs:\n  - {name: a, when: '@daily', run: 'cmd:true'}\n" + tick_job(marks_of(cli)))
    env = {"SUPERTASK_TOKEN": "tok-" + "x" * 20}
    sched = cli.start(*args, env={**env, "SUPERTASK_LISTEN": "127.0.0.1:0"}) if not prefix else \
        _prefixed(cli, prefix, list(args), {**env, "SUPERTASK_LISTEN": "127.0.0.1:0"})
    ready = sched.wait_event("control ready", timeout=60)
    host, port = ready["tcp"][len("tcp://"):].rsplit(":", 1)
    return sched, host, int(port), env["SUPERTASK_TOKEN"]


def marks_of(cli: Cli) -> Path:
    return cli.cwd.parent / "marks"


def fires_through(cli: Cli, since: float, until: float) -> dict[str, int | None]:
    """The tick job's figures over a fault (call after the scheduler stopped)."""
    rows = cli.json("history", "--limit", "1000")
    return {"fires": int(until - since), "fires_run": ticks(marks_of(cli), since, until),
            "fires_recorded": tick_rows(rows, since, until), "unfinished": unfinished(rows)}


def _prefixed(cli: Cli, prefix: str, args: list[str], env: dict[str, str]) -> Scheduler:
    """A Scheduler whose `supertask run` starts under a shell ``prefix``."""
    sched = Scheduler.__new__(Scheduler)
    sched.cli, sched.log_path = cli, cli.home.parent / "scheduler-prefixed.log"
    cli.home.mkdir(parents=True, exist_ok=True)
    sched._log = open(sched.log_path, "w")
    sched.proc = subprocess.Popen(["sh", "-c", f'{prefix}; exec "$@"', "sh", *SUPERTASK, "run", *args],
                                  cwd=cli.cwd, env={**cli.env, **env}, stdout=sched._log,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return sched


def authenticated(host: str, port: int, token: str) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(b"SUPERTASK-TOKEN " + token.encode() + b"\n")
    assert sock.recv(16) == b"OK\n"
    return sock


def status_over_tcp(cli: Cli, host: str, port: int, token: str) -> subprocess.CompletedProcess[str]:
    return cli("status", "--json", "--connect", f"tcp://{host}:{port}", "--token", token)


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_compressed_frame_bomb_is_refused_before_it_is_inflated(cli: Cli) -> None:
    sched, host, port, token = listening(cli)
    try:
        before = peak_rss(sched.proc.pid)
        inflater = zlib.compressobj(9)
        zeros = bytes(1 << 20)
        bomb = b"".join(inflater.compress(zeros) for _ in range(512)) + inflater.flush()  # 512 MiB of zeros in 0.5 MB
        sock = authenticated(host, port, token)
        since = time.time()
        sock.sendall(struct.pack("!LB", len(bomb), 1) + bomb + b"\n")
        refused = sched.wait_event("control frame refused", timeout=60)
        assert "inflating past 8388608 bytes" in refused["frame"]
        while sock.recv(65536):  # what rpyc sent on connecting, then the scheduler hangs up
            pass
        sock.close()
        big = authenticated(host, port, token)  # a frame that claims 4 GiB is not read at all
        big.sendall(struct.pack("!LB", 0xFFFFFFF0, 0) + bytes(1000))
        wait_until(lambda: any("a frame of 4294967280 bytes" in e.get("frame", "") for e in sched.events()),
                   timeout=60, what="the 4 GiB frame refused")
        big.close()
        grown = peak_rss(sched.proc.pid) - before
        assert grown < 64 << 20  # was: the whole 512 MiB and more
        assert status_over_tcp(cli, host, port, token).returncode == 0
        until = time.time()
    finally:
        assert sched.stop() == 0
    record("a compressed RPyC frame of 512 MiB of zeros (0.5 MB sent), then one claiming 4 GiB",
           **fires_through(cli, since, until), recover_s=None,
           note=f"both refused before they were inflated or read; peak RSS grew {grown / 2**20:.0f} MiB; "
                "status over TCP answers after")


def test_a_flood_of_silent_connections_neither_closes_the_listener_nor_locks_others_out(cli: Cli) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4096:
        pytest.skip(f"needs 1,100 descriptors here (hard limit {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
    # the scheduler at 256 descriptors, soft and hard: raising the soft limit cannot help it
    sched, host, port, token = listening(cli, prefix="ulimit -n 256")
    flood: list[socket.socket] = []
    try:
        since = time.time()
        for _ in range(1100):
            flood.append(socket.create_connection((host, port), timeout=10))
        sched.wait_event("control connections refused", timeout=60)
        for sock in flood:
            sock.close()
        flood.clear()
        ended = time.time()
        # the listener is still there, and a peer with the token gets in
        proc = wait_until(lambda: (p := status_over_tcp(cli, host, port, token)).returncode == 0 and p,
                          timeout=60, what="status over TCP after the flood")
        back = time.time()
        assert json.loads(proc.stdout)["namespaces"] == ["ctl"]
        slow = socket.create_connection((host, port), timeout=30)  # a byte now and then is not a token
        began = time.monotonic()
        try:
            while time.monotonic() - began < 15:
                slow.sendall(b"S")
                time.sleep(1)
        except OSError:
            pass
        assert time.monotonic() - began < 8  # cut off after AUTH_TIMEOUT (5 s) in all
        slow.close()
    finally:
        for sock in flood:
            sock.close()
        assert sched.stop() == 0
    record("1,100 silent TCP connections to a scheduler limited to 256 descriptors",
           **fires_through(cli, since, ended), recover_s=back - ended,
           note="recover: the flood closed to a status over TCP with the token answered (a CLI start included)")


def test_the_scheduler_raises_its_soft_descriptor_limit(cli: Cli) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 1024:
        pytest.skip(f"the hard descriptor limit here is {hard}: nothing to raise to")
    sched, *_ = listening(cli, prefix="ulimit -S -n 1024")
    try:
        limits = Path(f"/proc/{sched.proc.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
        assert int(line.split()[3]) == min(hard, 65536), line
    finally:
        assert sched.stop() == 0


# -- names become paths (point 6) ----------------------------------------------------------------


@pytest.mark.parametrize("ns", ["../../x/y", "team/backups", "..", ".", ".hidden", "a" * 129])
def test_a_namespace_that_would_leave_its_folder_is_refused(cli: Cli, tmp_path: Path, ns: str) -> None:
    before = files_under(tmp_path)
    one_shot = cli("run", "--ns", ns, "--", "cmd:echo out")
    scheduled = cli("run", "--ns", ns, "--when", "@daily", "--", "cmd:echo out")
    for proc in (one_shot, scheduled):
        assert proc.returncode == 2, proc.stderr
        assert "is not a valid namespace: use letters, digits, '_', '.' and '-', not starting with '.'" in proc.stderr
    assert files_under(tmp_path) == before  # no store, no log, no socket, inside or outside the state folder


def test_a_namespace_or_job_named_dot_dot_in_a_timetable_is_a_timetable_error(cli: Cli) -> None:
    path = timetable(cli, "namespace: '..'\njobs:\n  - {name: '..', when: '@daily', run: 'cmd:true'}\n")
    proc = cli("run", "--file", str(path))
    assert proc.returncode == 2  # run: input error; validate says 1
    assert f"{path}:1: namespace: '..' is not a valid namespace" in proc.stderr
    assert f"{path}:3: jobs[0].name: '..' is not a valid name" in proc.stderr
    assert not cli.home.exists()


# -- a symlinked state folder (point 7) ------------------------------------------------------------


def test_an_orphan_started_through_a_symlinked_home_is_ended_by_a_restart_through_the_real_path(
        cli: Cli, tmp_path: Path) -> None:
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to(real)
    pidfile = tmp_path / "sleeper.pid"
    timetable(cli, f"""
namespace: linked
jobs:
  - {{name: sleeper, when: once, run: "cmd:sleep 300 & echo $! > {pidfile}; wait"}}
""")
    sched = cli.start(env={"SUPERTASK_HOME": str(link)})
    sleeper = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=60, what="the sleeper"))
    os.kill(sched.proc.pid, signal.SIGKILL)  # the scheduler only: the job's group lives on
    sched.proc.wait(10)
    assert psutil.pid_exists(sleeper)
    sched = cli.start(env={"SUPERTASK_HOME": str(real)})
    try:
        sched.wait_event("run lost", timeout=60, job="sleeper", orphans_ended=1)
    finally:
        assert sched.stop() == 0
    wait_until(lambda: not psutil.pid_exists(sleeper) or psutil.Process(sleeper).status() == psutil.STATUS_ZOMBIE,
               what="the orphan to be ended")
    rows = json.loads(cli("history", "--json", env={"SUPERTASK_HOME": str(real)}).stdout)
    assert [r["status"] for r in rows] == ["lost"]


# -- one input must not take the scheduler down (points 8 and 11) --------------------------------------


def test_deep_yaml_is_an_error_at_validate_and_a_reload_keeps_the_last_good(cli: Cli) -> None:
    deep = "jobs:\n  - " + "[" * 25000 + "]" * 25000 + "\n"  # 50 KB; libyaml's composer crashed on it
    (cli.cwd / "deep.yaml").write_text(deep)
    proc = cli("validate", "deep.yaml")
    assert proc.returncode == 1, proc.stderr
    assert "deep.yaml:2: nested deeper than 100 levels of lists and mappings" in proc.stderr
    path = timetable(cli, "namespace: deep\njobs:\n  - {name: kept, when: '@daily', run: 'cmd:true'}\n"
                     + tick_job(marks_of(cli)))
    sched = cli.start("--file", str(path))
    try:
        sched.wait_event("watching timetable", timeout=60)  # its SIGHUP handler is in place
        path.write_text(deep)
        since = time.time()
        sched.proc.send_signal(signal.SIGHUP)
        failed = sched.wait_event("timetable reload failed", timeout=60)
        assert "nested deeper than 100 levels" in failed["problems"][0]
        assert sched.proc.poll() is None
        assert sorted(j["name"] for j in cli.json("list-jobs")) == ["kept", "tick"]
        wait_until(lambda: ticks(marks_of(cli), since, time.time()) >= 3, 30, what="fires after the bad reload")
        until = time.time()
    finally:
        assert sched.stop() == 0
    record("a timetable nested 25,000 deep (50 KB), reloaded into a running scheduler",
           **fires_through(cli, since, until), recover_s=None,
           note="validate exits 1 naming FILE:LINE; the reload is refused and the last good timetable kept firing")


def test_a_nul_byte_in_an_env_value_is_an_error_at_validate(cli: Cli) -> None:
    path = timetable(cli, 'jobs:\n  - name: a\n    when: "@daily"\n    run: "cmd:true"\n    env: {A: "x\\0y"}\n')
    proc = cli("validate", str(path))
    assert proc.returncode == 1
    assert f"{path}:5: jobs[0].env.A: contains a NUL byte" in proc.stderr


def test_an_env_file_no_run_could_use_is_an_error_at_validate_sync_and_each_run(cli: Cli) -> None:
    """A NUL byte (or a line that is not KEY=value) in an env_file: validate, a start and a
    reload name the env file and its line and exit 1 / refuse it; a file broken after the
    sync fails the runs with the same words. No value is ever shown."""
    env = cli.cwd / "app.env"
    env.write_bytes(b"A=1\nSECRET=hunter\0two\n")
    job = '  - {name: a, when: "every 1s", run: "cmd:echo $A", env_file: app.env}\n'
    path = timetable(cli, "namespace: envfile\njobs:\n" + job)
    proc = cli("validate", str(path))
    assert proc.returncode == 1, proc.stdout
    assert f"{path}:3: jobs[0].env_file: env_file {env}:2: contains a NUL byte (\\0)" in proc.stderr, proc.stderr
    assert "remove it" in proc.stderr and "hunter" not in proc.stderr + proc.stdout
    first = cli("run", timeout=60)  # a first start on it: nothing synced, exit 2 before the store is touched
    assert first.returncode == 2 and f"{env}:2: contains a NUL byte" in first.stderr, first.stderr
    assert "hunter" not in first.stderr + first.stdout and not (cli.home / "supertask.db").exists()
    env.write_bytes(b"# ok\nA=1\n")
    assert cli("validate", str(path)).returncode == 0
    sched = cli.start()
    try:
        sched.wait_event("run finished", status="succeeded", job="a")
        env.write_bytes(b"A=1\nPGPASSWORD: hunter2\n")  # broken after the sync: each run says why
        failed = wait_until(lambda: [r for r in cli.json("history", "--limit", "50") if r["status"] == "failed"],
                            timeout=20, what="a run failing on the env file")[0]
        assert f"env_file {env}:2: is not KEY=value" in failed["message"], failed
        path.write_text("namespace: envfile\njobs:\n" + job + "# edited\n")  # a reload reads it too
        event = sched.wait_event("timetable reload failed", timeout=20)
        assert f"{env}:2: is not KEY=value" in json.dumps(event)
    finally:
        assert sched.stop() == 0
    assert "hunter" not in sched.output


def test_tracebacks_in_the_json_log_are_json_events(tmp_path: Path) -> None:
    """What the libraries log through the stdlib (with a traceback) and an exception no
    thread caught: each one JSON line, the traceback in its ``exception`` field."""
    code = """
import logging, threading
from supertask.log import configure
configure("json", "info")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("apscheduler.executors").exception("Job raised an exception")
t = threading.Thread(target=lambda: [][1], name="worker")
t.start(); t.join()
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    lines = proc.stderr.strip().splitlines()
    events = [json.loads(line) for line in lines]  # every line is JSON
    assert [e["event"] for e in events] == ["Job raised an exception", "uncaught exception in a thread"]
    assert "ZeroDivisionError" in events[0]["exception"] and events[0]["logger"] == "apscheduler.executors"
    assert "IndexError" in events[1]["exception"] and events[1]["thread"] == "worker"
