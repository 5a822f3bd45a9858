"""What an operator meets (issue 14): one scheduler per state folder, hooks that find
supertask, mail on failure, @reboot per host, live changes in the log, a broken file
at a restart — each with the real CLI and real schedulers."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import os
import signal
import socketserver
import threading
from pathlib import Path

from tests.conftest import Cli, wait_until


def timetable(cli: Cli, text: str) -> None:
    (cli.cwd / "supertask.yaml").write_text(text)


TICKING = """
namespace: {ns}
jobs:
  - {{name: tick, when: "every 1s", run: "cmd:echo tick"}}
"""


def test_a_second_scheduler_for_a_namespace_is_refused_naming_the_first(cli: Cli) -> None:
    timetable(cli, TICKING.format(ns="one-only"))
    first = cli.start()
    try:
        first.wait_event("scheduler started")
        second = cli("run", timeout=30)
        assert second.returncode == 2, second.stderr
        assert f"another scheduler (pid {first.proc.pid})" in second.stderr and "--allow-second" in second.stderr
        assert cli("status", "--json").returncode == 0  # the one that runs is the one status sees
        # on purpose: it starts, says so, and names the first
        shared = cli.start("--allow-second")
        try:
            shared.wait_event("second scheduler by request", first_pid=first.proc.pid)
            shared.wait_event("scheduler started")
        finally:
            assert shared.stop() == 0
    finally:
        first.kill()  # kill -9: the kernel lets go of its lock
    again = cli.start()
    try:
        again.wait_event("scheduler started")
    finally:
        assert again.stop(signal.SIGTERM) == 0
    assert not os.path.exists(cli.home / "control" / "one-only.sock")


def test_a_scheduler_of_another_namespace_in_the_same_folder_starts(cli: Cli, tmp_path: object) -> None:
    timetable(cli, TICKING.format(ns="first-ns"))
    first = cli.start()
    try:
        first.wait_event("scheduler started")
        (cli.cwd / "other.yaml").write_text(TICKING.format(ns="second-ns"))
        other = cli.start("--file", "other.yaml")
        try:
            other.wait_event("scheduler started")
            wait_until(lambda: (cli.home / "control" / "second-ns.sock").exists(), what="its own socket")
        finally:
            assert other.stop() == 0
    finally:
        assert first.stop() == 0


def test_every_live_change_writes_one_event_naming_who_and_what(cli: Cli) -> None:
    import getpass

    timetable(cli, """
namespace: audited
jobs:
  - {name: nightly, when: "0 3 * * *", timezone: UTC, run: "cmd:echo dump", env: {PGPASSWORD: hunter2}}
""")
    sched = cli.start("--listen", "127.0.0.1:0")
    try:
        ready = sched.wait_event("control ready")
        me = getpass.getuser()
        for args in (("pause", "nightly"), ("resume", "nightly"), ("reschedule", "nightly", "--when", "0 4 * * *"),
                     ("edit", "nightly", "--set", "retries=2", "--set", "env.PGPASSWORD=s3cret"),
                     ("add", "hourly", "--when", "@hourly", "--", "cmd:echo hi")):
            proc = cli("jobs", *args)
            assert proc.returncode == 0, proc.stderr
        proc = cli("jobs", "remove", "hourly", "--connect", ready["tcp"])
        assert proc.returncode == 0, proc.stderr
        paused = sched.wait_event("job paused", job="nightly")
        resumed = sched.wait_event("job resumed", job="nightly")
        moved = sched.wait_event("job rescheduled", job="nightly")
        edited = sched.wait_event("job edited", job="nightly")
        added = sched.wait_event("job added", job="hourly")
        removed = sched.wait_event("job removed", job="hourly")
    finally:
        assert sched.stop() == 0
    assert paused["by"] == resumed["by"] == moved["by"] == edited["by"] == added["by"] == me
    assert removed["by"] == "token"  # over TCP the peer is whoever holds the token
    assert (paused["before"], paused["after"]) == ({"paused": False}, {"paused": True})
    assert (resumed["before"], resumed["after"]) == ({"paused": True}, {"paused": False})
    assert (moved["before"], moved["after"]) == ({"when": "0 3 * * *"}, {"when": "0 4 * * *"})
    assert "T04:00:00" in moved["next_fire"] and "T03:00:00" in moved["next_fire_before"]
    assert edited["before"] == {"env": {"PGPASSWORD": "***"}, "retries": 0}
    assert edited["after"] == {"env": {"PGPASSWORD": "***"}, "retries": 2}
    assert added["before"] is None and added["after"]["when"] == "@hourly" and added["after"]["run"] == "cmd:echo hi"
    assert removed["before"]["when"] == "@hourly" and removed["after"] is None
    assert "hunter2" not in sched.output and "s3cret" not in sched.output
    assert sum(1 for e in sched.events() if e.get("event", "").startswith("job ")) == 6, json.dumps(sched.events())


# -- hooks find supertask; mail on failure ---------------------------------------------------------

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # a systemd unit's


def unit_like(cli: Cli, path: str = SYSTEM_PATH, **env: str) -> dict[str, str]:
    """The scheduler's environment as a systemd unit gives it: a bare PATH, the state
    folder and store given as flags (the test passes --home and --store)."""
    return {"PATH": path, "SUPERTASK_HOME": "", "SUPERTASK_STORE": "", **env}


def test_a_hook_finds_the_schedulers_supertask_and_store_and_a_failed_hook_says_so(cli: Cli, tmp_path: Path) -> None:
    got = tmp_path / "got"
    timetable(cli, f"""
namespace: hooks
jobs:
  - name: breaks
    when: once
    run: "cmd:echo the-output-of-the-run; exit 3"
    on_failure:
      - "cmd:supertask logs $SUPERTASK_RUN_ID | cat > {got}; echo \\"$SUPERTASK_BIN\\" >> {got}"
      - "cmd:echo nope >&2; exit 7"
      - "cmd:no-such-command-here | true"
""")
    store = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    sched = cli.start("--home", str(cli.home), "--store", store, env=unit_like(cli))
    try:
        failed = sched.wait_event("notification failed", kind="cmd")
        warned = sched.wait_event("notification sent", kind="cmd", exit_code=0)
        wait_until(lambda: got.exists() and len(got.read_text().splitlines()) >= 2, what="the hook's output")
    finally:
        assert sched.stop() == 0
    lines = got.read_text().splitlines()
    assert "the-output-of-the-run" in lines[0]  # `supertask logs` found the run in the scheduler's store
    assert lines[-1] == str(cli.home / "bin" / "supertask")
    assert failed["exit_code"] == 7 and "nope" in failed["error"] and failed["on"] == "failure"
    assert any("not found" in line for line in warned["stderr"])
    assert "elsewhere.db" not in json.dumps([e for e in sched.events() if "notification" in e.get("event", "")])


def fake_sendmail(folder: Path) -> Path:
    folder.mkdir()
    script = folder / "sendmail"
    script.write_text(f'#!/bin/sh\necho "$@" > {folder}/args\ncat > {folder}/message\n')
    script.chmod(0o755)
    return folder


def test_mailto_sends_a_failure_through_the_sendmail_on_path(cli: Cli, tmp_path: Path) -> None:
    fake = fake_sendmail(tmp_path / "fakebin")
    timetable(cli, """
namespace: mailing
defaults:
  mailto: ops@example.com, root
jobs:
  - {name: backup-home, when: once, run: "cmd:echo disk full >&2; exit 3"}
  - {name: fine, when: once, run: "cmd:true"}
  - {name: quiet, when: once, mailto: "", run: "cmd:exit 1"}
""")
    sched = cli.start("--home", str(cli.home), env=unit_like(cli, f"{fake}:{SYSTEM_PATH}"))
    try:
        sent = sched.wait_event("mail sent", job="backup-home")
        wait_until(lambda: len([e for e in sched.events() if e.get("event") == "run finished"]) >= 3,
                   what="three runs")
    finally:
        assert sched.stop() == 0
    assert sent["via"] == str(fake / "sendmail") and sent["to"] == ["ops@example.com", "root"]
    assert (fake / "args").read_text().split() == ["-t", "-i"]
    msg = email.message_from_bytes((fake / "message").read_bytes(), policy=email.policy.default)
    assert msg["To"] == "ops@example.com, root"
    assert "backup-home failed (exit code 3)" in msg["Subject"] and msg["Auto-Submitted"] == "auto-generated"
    text = msg.get_content()
    assert "exit code:  3" in text and "status:     failed" in text and "disk full" in text
    assert len([e for e in sched.events() if e.get("event") == "mail sent"]) == 1  # not `fine`, not `quiet`


class _SmtpSink(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: each message's envelope and data in ``received``."""

    received: list[tuple[str, list[str], bytes]] = []
    logins: list[list[bytes]] = []

    def handle(self) -> None:
        self.wfile.write(b"220 sink\r\n")
        sender, rcpts = "", []
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250-sink\r\n250 AUTH PLAIN\r\n")
            elif verb == b"AUTH":
                _SmtpSink.logins.append(base64.b64decode(line.split()[-1]).split(b"\0")[1:])
                self.wfile.write(b"235 welcome\r\n")
                continue
            elif verb == b"MAIL":
                sender = line.decode().split(":", 1)[1].strip()
            elif verb == b"RCPT":
                rcpts.append(line.decode().split(":", 1)[1].strip())
            elif verb == b"DATA":
                self.wfile.write(b"354 go on\r\n")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk
                _SmtpSink.received.append((sender, rcpts, data))
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            if verb not in (b"EHLO", b"HELO", b"DATA"):
                self.wfile.write(b"250 ok\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"250 queued\r\n")


def test_mailto_goes_by_smtp_when_configured(cli: Cli, tmp_path: Path) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpSink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    timetable(cli, """
namespace: smtp
jobs:
  - {name: report, when: once, mailto: boss@example.com, run: "cmd:echo no data; exit 2"}
""")
    sched = cli.start(env={"SUPERTASK_SMTP_URL": f"smtp://robot:s3cret@127.0.0.1:{port}",
                           "SUPERTASK_MAIL_FROM": "cron@example.com"})
    try:
        sent = sched.wait_event("mail sent", job="report")
    finally:
        assert sched.stop() == 0
        server.shutdown()
    assert sent["via"] == f"smtp://127.0.0.1:{port}" and "s3cret" not in sched.output
    assert _SmtpSink.logins == [[b"robot", b"s3cret"]]
    sender, rcpts, data = _SmtpSink.received[-1]
    assert "cron@example.com" in sender and rcpts == ["<boss@example.com>"]
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert "report failed (exit code 2)" in msg["Subject"] and "no data" in msg.get_content()


# -- a broken timetable at a restart -------------------------------------------------------------


def test_a_restart_on_a_broken_file_serves_the_last_good_timetable_and_says_so(cli: Cli, tmp_path: Path) -> None:
    ticks = tmp_path / "ticks"
    good = f"""
namespace: keep
jobs:
  - {{name: tick, when: "every 1s", run: "cmd:echo x >> {ticks}"}}
"""
    path = cli.cwd / "supertask.yaml"
    path.write_text("namespace: keep\njobs:\n  - {name: tick, when: every 5 mins, run: 'cmd:true'}\n")
    first = cli("run", timeout=30)
    assert first.returncode == 2 and "every 5 mins" in first.stderr  # a first start on a broken file: nothing to serve
    path.write_text(good)
    sched = cli.start()
    try:
        wait_until(ticks.exists, what="a first tick")
    finally:
        assert sched.stop() == 0
    path.write_text(good.replace("every 1s", "every 5 mins"))
    sched = cli.start()
    try:
        invalid = sched.wait_event("timetable invalid at start")
        sched.wait_event("scheduler started")
        count = len(ticks.read_text().splitlines())
        wait_until(lambda: len(ticks.read_text().splitlines()) > count, what="the last good job to fire")
        status = cli.json("status")
        assert status["timetable"]["last_error"]["trigger"] == "start"
        assert "every 5 mins" in status["timetable"]["last_error"]["problems"][0]
        shown = cli("status")
        assert "the last load at start failed" in shown.stdout and "every 5 mins" in shown.stdout
        doctor = cli("doctor", "--file", str(path))
        assert doctor.returncode == 1 and "every 5 mins" in doctor.stdout
        path.write_text(good.replace("every 1s", "every 2s"))  # fixed: reloaded, and the error is gone
        sched.wait_event("timetable reloaded")
        assert cli.json("status")["timetable"]["last_error"] is None
        path.write_text(good + "  - {name: typo, when: daily, run: 'cmd:true'}\n")  # a broken edit, live
        sched.wait_event("timetable reload failed")
        error = cli.json("status")["timetable"]["last_error"]
        assert error["trigger"] == "file changed" and "daily" in error["problems"][0]
    finally:
        assert sched.stop() == 0
    assert "every 5 mins" in invalid["problems"][0] and invalid["namespace"] == "keep"
