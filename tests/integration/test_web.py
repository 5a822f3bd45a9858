"""The dashboard and HTTP API (issue 17): a real `supertask web` or `supertask run --http`
subprocess, real HTTP, real SQLite and PostgreSQL stores; tokens and their scopes; the
audit rows every change writes."""

from __future__ import annotations

import getpass
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import SUPERTASK, Cli, wait_until

httpx = pytest.importorskip("httpx")

TIMETABLE = """\
namespace: alpha
jobs:
  - name: hello
    when: "0 3 * * *"
    timezone: Europe/Berlin
    run: "cmd:echo hello from the dashboard"
    env: {SECRET: hunter2}
"""


class Web:
    """A `supertask web --http 127.0.0.1:0` in the background; its URL from its log."""

    def __init__(self, cli: Cli, *args: str):
        self.log_path = cli.home.parent / "web.log"
        cli.home.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([*SUPERTASK, "web", "--http", "127.0.0.1:0", *args], cwd=cli.cwd, env=cli.env,
                                     stdout=self._log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.url = wait_until(self._url, 60, what="the dashboard's URL")

    def _url(self) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"supertask web exited {self.proc.returncode}:\n{self.log_path.read_text()}")
        return serving_url(self.log_path)

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(30)
        finally:
            self._log.close()


def serving_url(path: Path) -> str | None:
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "dashboard serving":
            return str(event["url"]).rstrip("/")
    return None


def client(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=30, follow_redirects=False)


@pytest.fixture
def scheduler_web(store_cli: Cli) -> Iterator[tuple[Cli, str]]:
    (store_cli.cwd / "supertask.yaml").write_text(TIMETABLE)
    sched = store_cli.start("--http", "127.0.0.1:0", "--heartbeat", "1s", "--lease", "3s", "--grace", "2s")
    try:
        event = sched.wait_event("dashboard serving", timeout=60)
        yield store_cli, event["url"].rstrip("/")
    finally:
        assert sched.stop() == 0, sched.output


def test_run_http_serves_the_store_and_its_actions_reach_the_scheduler(scheduler_web: tuple[Cli, str]) -> None:
    cli, url = scheduler_web
    http = client(url)
    jobs = http.get("/api/v1/jobs").json()
    stored = cli.json("list-jobs", "--no-live", "--ns", "alpha")
    assert [{k: j[k] for k in stored[0]} for j in jobs] == stored  # the CLI's --json shape, keys added
    assert jobs[0]["schedule"] == "At 03:00" and jobs[0]["fires"][0].endswith(("+01:00", "+02:00"))
    page = http.get("/jobs")
    assert page.status_code == 200 and "alpha/hello" in page.text and "At 03:00" in page.text

    queued = http.post("/api/v1/jobs/alpha/hello/trigger", json={})
    assert queued.status_code == 202, queued.text
    run_id = queued.json()["run_id"]
    run = wait_until(lambda: (r := http.get(f"/api/v1/runs/{run_id}").json()["run"])["status"] == "succeeded" and r,
                     60, what="the triggered run")
    assert run["reason"] == "manual"
    log = http.get(f"/api/v1/runs/{run_id}/log").json()
    assert "stdout hello from the dashboard" in log["data"] and log["finished"]
    assert "hello from the dashboard" in http.get(f"/runs/{run_id}").text
    events = http.get(f"/events/runs/{run_id}/log").text  # a finished run: its log, then the end
    assert "event: log" in events and "event: end" in events and "succeeded" in events
    assert [r["id"] for r in http.get("/api/v1/runs", params={"ns": "alpha", "status": "succeeded"}).json()] == [run_id]
    assert http.get("/api/v1/runs", params={"status": "failed"}).json() == []

    paused = http.post("/api/v1/jobs/alpha/hello/pause", json={})
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert cli.json("list-jobs", "--no-live", "--ns", "alpha")[0]["paused"] is True
    audit = cli.json("audit")
    assert [(r["action"], r["job"], r["source"]) for r in audit[:2]] == [
        ("paused", "hello", "http 127.0.0.1"), ("triggered", "hello", "http 127.0.0.1")]
    assert audit[0]["before"] == {"paused": False} and audit[0]["after"] == {"paused": True}
    assert http.get("/api/v1/audit").json()[:2] == audit[:2]

    # bad input: a clear 4xx, nothing changed
    assert http.get("/api/v1/jobs/alpha/nope").status_code == 404
    assert http.get("/api/v1/runs/999999").status_code == 404
    bad = http.get("/api/v1/runs", params={"status": "done"})
    assert bad.status_code == 400 and "succeeded" in bad.json()["error"]
    assert http.get("/api/v1/runs", params={"limit": "many"}).status_code == 400
    not_json = http.post("/api/v1/jobs/alpha/hello/resume", content=b"{oops", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]
    big = http.post("/api/v1/jobs/alpha/hello/resume", content=b"x" * 70000, headers={"content-type": "application/json"})
    assert big.status_code == 413 and "at most 65536" in big.json()["error"]
    assert http.post("/api/v1/jobs/alpha/hello/resume").status_code == 403  # no JSON, no CSRF token: refused
    assert cli.json("list-jobs", "--no-live", "--ns", "alpha")[0]["paused"] is True
    assert len(cli.json("audit")) == len(audit)
    assert http.get("/api/v1/openapi.json").json()["paths"]["/api/v1/runs"]["get"]
    rebound = http.get("/api/v1/jobs", headers={"Host": "evil.example:8080"})  # DNS rebinding, no tokens
    assert rebound.status_code == 403 and "loopback" in rebound.json()["error"]


def _namespaces_with_jobs(cli: Cli) -> int:
    """alpha/job-a and beta/job-b in the store (one-shot runs of those names); beta's run id."""
    for ns, job in (("alpha", "job-a"), ("beta", "job-b")):
        assert cli("run", "--ns", ns, "--name", job, "--", f"cmd:echo {ns} secret log").returncode == 0
    return int(cli.json("history", "--ns", "beta")[0]["id"])


def test_tokens_scope_and_namespaces(cli: Cli) -> None:
    beta_run = _namespaces_with_jobs(cli)
    refused = cli("web", "--http", "0.0.0.0:0")
    assert refused.returncode == 2 and "not a loopback address, and the store has no token" in refused.stderr

    reader = cli("tokens", "create", "reader", "--ns", "alpha", "--scope", "read")
    assert reader.returncode == 0 and "shown this once" in reader.stderr
    read_token = reader.stdout.strip()
    run_token = cli("tokens", "create", "runner", "--ns", "alpha", "--scope", "run").stdout.strip()
    assert cli("tokens", "create", "runner", "--ns", "alpha").returncode == 2  # the name is taken
    assert cli("tokens", "create", "x", "--ns", "gamma").returncode == 2  # no such namespace
    listed = cli.json("tokens", "list")
    assert [(t["name"], t["scope"], t["namespaces"]) for t in listed] == [("reader", "read", ["alpha"]),
                                                                           ("runner", "run", ["alpha"])]
    assert read_token not in json.dumps(listed)
    web = Web(cli)
    try:
        anonymous = client(web.url)
        assert anonymous.get("/api/v1/jobs").status_code == 401
        assert anonymous.get("/jobs").headers["location"].startswith("/login")
        assert client(web.url, "st_not-a-token").get("/api/v1/jobs").status_code == 401
        assert anonymous.get("/api/v1/jobs", headers={"Authorization": "Basic abc"}).status_code == 400

        read = client(web.url, read_token)
        assert [j["name"] for j in read.get("/api/v1/jobs").json()] == ["job-a"]
        for path in ("/api/v1/jobs/beta/job-b", f"/api/v1/runs/{beta_run}", f"/api/v1/runs/{beta_run}/log",
                     f"/runs/{beta_run}", f"/events/runs/{beta_run}/log", "/jobs/beta/job-b"):
            assert read.get(path).status_code == 404, path
        assert read.get("/api/v1/runs", params={"ns": "beta"}).status_code == 404
        assert {r["namespace"] for r in read.get("/api/v1/runs").json()} == {"alpha"}
        runs_before = len(cli.json("history", "--all"))
        forbidden = read.post("/api/v1/jobs/alpha/job-a/trigger")
        assert forbidden.status_code == 403 and "scope read" in forbidden.json()["error"]
        assert len(cli.json("history", "--all")) == runs_before

        run = client(web.url, run_token)
        assert run.post("/api/v1/jobs/beta/job-b/trigger").status_code == 404
        queued = run.post("/api/v1/jobs/alpha/job-a/trigger")
        assert queued.status_code == 202 and queued.json()["status"] == "queued"
        assert cli.json("audit")[0]["who"] == "token:runner"
        assert run.post("/api/v1/jobs/alpha/job-a/pause").json()["paused"] is True

        # a browser session: the cookie, then a form post needing the page's CSRF token
        form = anonymous.post("/login", data={"token": read_token})
        assert form.status_code == 303
        cookie = form.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        session = httpx.Client(base_url=web.url, timeout=30, cookies=form.cookies)
        session_run = client(web.url)
        session_run.cookies = anonymous.post("/login", data={"token": run_token}).cookies
        page = session_run.get("/jobs/alpha/job-a")
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert page.status_code == 200 and csrf
        assert session_run.post("/jobs/alpha/job-a/resume", data={}).status_code == 403
        assert session_run.post("/jobs/alpha/job-a/resume", data={"csrf": csrf[1]}).status_code == 303
        assert cli.json("list-jobs", "--no-live", "--ns", "alpha")[0]["paused"] is False
        assert session.get("/jobs/beta/job-b").status_code == 404

        for _ in range(5):
            assert anonymous.post("/login", data={"token": "st_wrong"}).status_code == 401
        assert anonymous.post("/login", data={"token": read_token}).status_code == 429
        assert "login failed" in web.log_path.read_text() and "st_wrong" not in web.log_path.read_text()

        assert cli("tokens", "revoke", "reader").returncode == 0
        wait_until(lambda: read.get("/api/v1/jobs").status_code == 401, 30, what="the revoked token refused")
    finally:
        web.stop()
    assert [r["action"] for r in cli.json("audit")][:3] == ["token revoked", "resumed", "paused"]


def test_the_tcp_control_endpoint_takes_the_same_tokens(cli: Cli) -> None:
    (cli.cwd / "supertask.yaml").write_text(TIMETABLE)
    assert cli("run", "--ns", "beta", "--", "cmd:true").returncode == 0
    assert cli("run", "--ns", "alpha", "--", "cmd:true").returncode == 0
    reader = cli("tokens", "create", "reader", "--ns", "alpha", "--scope", "read").stdout.strip()
    runner = cli("tokens", "create", "runner", "--ns", "alpha", "--scope", "run").stdout.strip()
    other = cli("tokens", "create", "other", "--ns", "beta", "--scope", "admin").stdout.strip()
    sched = cli.start("--listen", "127.0.0.1:0", "--token", "the-endpoint-token", "--grace", "2s")
    try:
        tcp = sched.wait_event("control ready", timeout=60)["tcp"]

        def over_tcp(token: str, *args: str) -> subprocess.CompletedProcess[str]:
            return cli(*args, "--connect", tcp, "--token", token)

        assert {t["name"]: t["last_used"] for t in cli.json("tokens", "list")}["reader"] is None
        listed = over_tcp(reader, "list-jobs", "--json")
        assert {t["name"]: t["last_used"] for t in cli.json("tokens", "list")}["reader"]  # the TCP use counts
        assert listed.returncode == 0 and [j["name"] for j in json.loads(listed.stdout)] == ["hello"]
        refused = over_tcp(reader, "jobs", "pause", "hello")
        assert refused.returncode == 2 and "scope read" in refused.stderr
        assert over_tcp(other, "list-jobs").returncode != 0  # sees none of this scheduler's namespaces
        assert over_tcp("st_unknown", "list-jobs").returncode != 0
        assert over_tcp(runner, "jobs", "pause", "hello").returncode == 0
        assert cli.json("audit")[0]["who"] == "token:runner"
        assert over_tcp("the-endpoint-token", "jobs", "resume", "hello").returncode == 0  # as before
        assert over_tcp(runner, "jobs", "remove", "hello").returncode == 2  # admin only
        assert cli("tokens", "revoke", "runner").returncode == 0
        assert over_tcp(runner, "list-jobs").returncode != 0
    finally:
        assert sched.stop() == 0, sched.output


def test_jobs_are_paged_searched_and_rescheduled_by_admin_tokens_only(cli: Cli) -> None:
    for name in ("aa", "ab", "ba"):
        assert cli("run", "--ns", "alpha", "--name", name, "--", "cmd:true").returncode == 0
    runner = cli("tokens", "create", "runner", "--ns", "alpha", "--scope", "run").stdout.strip()
    admin = cli("tokens", "create", "admin", "--ns", "*", "--scope", "admin").stdout.strip()
    web = Web(cli)
    try:
        http = client(web.url, admin)
        first = http.get("/api/v1/jobs", params={"limit": 2}).json()
        assert [j["name"] for j in first] == ["aa", "ab"] and first[0]["last"]["status"] == "succeeded"
        after = f"{first[-1]['namespace']}/{first[-1]['name']}"
        assert [j["name"] for j in http.get("/api/v1/jobs", params={"limit": 2, "after": after}).json()] == ["ba"]
        assert [j["name"] for j in http.get("/api/v1/jobs", params={"q": "a_"}).json()] == []  # _ is no wildcard
        assert [j["name"] for j in http.get("/api/v1/jobs", params={"q": "b"}).json()] == ["ab", "ba"]
        assert http.get("/api/v1/jobs", params={"after": "nonsense"}).status_code == 400

        denied = client(web.url, runner).post("/api/v1/jobs/alpha/aa/edit", json={"set": {"when": "0 4 * * *"}})
        assert denied.status_code == 403
        wrong = http.post("/api/v1/jobs/alpha/aa/edit", json={"set": {"when": "every 5 mins"}})
        assert wrong.status_code == 400 and "every 5m" in wrong.json()["error"]
        assert http.post("/api/v1/jobs/alpha/aa/edit", json={"when": "x"}).status_code == 400
        changed = http.post("/api/v1/jobs/alpha/aa/edit", json={"set": {"when": "0 4 * * *"}})
        assert changed.status_code == 200 and changed.json()["when"] == "0 4 * * *"
        assert cli.json("list-jobs", "--no-live", "--ns", "alpha")[0]["when"] == "0 4 * * *"
        row = cli.json("audit")[0]
        assert (row["action"], row["who"], row["after"]) == ("rescheduled", "token:admin", {"when": "0 4 * * *"})
    finally:
        web.stop()


def test_upcoming_fires_and_runs_by_time_and_name(scheduler_web: tuple[Cli, str]) -> None:
    cli, url = scheduler_web
    http = client(url)
    fires = http.get("/api/v1/upcoming").json()
    assert [(f["job"], f["schedule"]) for f in fires] == [("hello", "At 03:00")]
    assert fires[0]["at"].endswith(("+01:00", "+02:00"))  # in the job's zone, Europe/Berlin
    assert "alpha/hello" in http.get("/upcoming").text
    assert http.get("/api/v1/upcoming", params={"hours": 1000}).status_code == 400
    run_id = http.post("/api/v1/jobs/alpha/hello/trigger", json={}).json()["run_id"]
    wait_until(lambda: http.get(f"/api/v1/runs/{run_id}").json()["run"]["status"] == "succeeded", 60,
               what="the run")
    assert [r["id"] for r in http.get("/api/v1/runs", params={"q": "ell", "since": "1h"}).json()] == [run_id]
    assert http.get("/api/v1/runs", params={"q": "nope"}).json() == []
    assert http.get("/api/v1/runs", params={"until": "2020-01-01T00:00"}).json() == []
    assert http.get("/api/v1/runs", params={"since": "yesterday"}).status_code == 400
    page = http.get("/runs", params={"since": "1h", "q": "hello"}).text
    assert f"/runs/{run_id}" in page
    assert 'id="timeline"' in page and 'class="seg succeeded"' in page
    strip = http.get("/api/v1/runs/timeline", params={"since": "1h", "q": "hello", "buckets": 12}).json()
    assert strip["total"] == 1 and len(strip["buckets"]) == 12 and strip["most"] == 1
    (bar,) = [b for b in strip["buckets"] if b["total"]]
    assert (bar["succeeded"], bar["failed"]) == (1, 0)
    assert [r["id"] for r in http.get("/api/v1/runs", params={"since": bar["from"], "until": bar["to"]}).json()] == [run_id]
    assert http.get("/api/v1/runs/timeline", params={"buckets": 0}).status_code == 400
    assert http.get("/api/v1/runs/timeline", params={"since": "2999-01-01"}).status_code == 400


def test_a_run_is_ended_through_the_dashboard_beside_its_scheduler_only(cli: Cli) -> None:
    (cli.cwd / "supertask.yaml").write_text("namespace: alpha\njobs:\n  - {name: long, when: '@yearly', "
                                            "run: 'cmd:echo started; sleep 120'}\n")
    sched = cli.start("--http", "127.0.0.1:0", "--grace", "2s")
    try:
        url = sched.wait_event("dashboard serving", timeout=60)["url"].rstrip("/")
        http = client(url)
        run_id = http.post("/api/v1/jobs/alpha/long/trigger", json={}).json()["run_id"]
        wait_until(lambda: "started" in http.get(f"/api/v1/runs/{run_id}/log").json()["data"], 60, what="the run")
        assert 'id="kill"' in http.get(f"/runs/{run_id}").text
        alone = Web(cli)  # supertask web on the same store runs nothing: 409 saying where
        try:
            refused = client(alone.url).post(f"/api/v1/runs/{run_id}/kill", json={})
            assert refused.status_code == 409 and "jobs kill" in refused.json()["error"]
        finally:
            alone.stop()
        assert http.post(f"/api/v1/runs/{run_id}/kill", json={}).status_code == 200
        ended = wait_until(lambda: (r := http.get(f"/api/v1/runs/{run_id}").json()["run"])["status"] != "running" and r,
                           60, what="the run ended")
        assert ended["status"] == "killed"
        assert http.post(f"/api/v1/runs/{run_id}/kill", json={}).status_code == 409  # not running any more
        killed = [r for r in cli.json("audit") if r["action"] == "killed"]  # one row, by the scheduler
        assert len(killed) == 1 and (killed[0]["who"], killed[0]["source"]) == (getpass.getuser(), "http 127.0.0.1")
    finally:
        assert sched.stop() == 0, sched.output


def test_run_http_serves_from_a_child_process_started_and_stopped_with_the_scheduler(store_cli: Cli) -> None:
    """The pages are rendered in a process of their own (fire lateness does not move
    while people look); one that exits is reported and started again on the same address."""
    cli = store_cli
    (cli.cwd / "supertask.yaml").write_text(TIMETABLE)
    sched = cli.start("--http", "127.0.0.1:0", "--grace", "2s")
    try:
        serving = sched.wait_event("dashboard serving", timeout=60)
        url, child = serving["url"].rstrip("/"), serving["pid"]
        assert child != sched.proc.pid and psutil.Process(child).ppid() == sched.proc.pid
        assert client(url).get("/api/v1/jobs").json()[0]["name"] == "hello"
        assert psutil.Process(child).nice() == psutil.Process(sched.proc.pid).nice() + 10  # fires first
        shown = " ".join(psutil.Process(child).cmdline())
        assert "--store" not in shown and (not cli.store or cli.store not in shown)  # it may hold a password
        os.kill(child, signal.SIGKILL)
        exited = sched.wait_event("dashboard exited", timeout=30)
        assert (exited["pid"], exited["exit_code"]) == (child, -signal.SIGKILL)
        again = sched.wait_event("dashboard restarted", timeout=30)["pid"]
        assert wait_until(lambda: _answers(url), 30, what="the dashboard served again")
    finally:
        assert sched.stop() == 0, sched.output
    assert not psutil.pid_exists(again) or psutil.Process(again).status() == psutil.STATUS_ZOMBIE
    port = int(url.rsplit(":", 1)[1])
    taken = socket.create_server(("127.0.0.1", port))  # the port is free again: take it
    try:
        refused = cli.start("--http", f"127.0.0.1:{port}", "--grace", "2s")
        assert refused.proc.wait(60) == 2 and "cannot listen there" in refused.output
    finally:
        taken.close()


def _answers(url: str) -> bool:
    try:
        return client(url).get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def test_a_token_s_last_use_is_kept_written_at_most_once_a_minute(cli: Cli) -> None:
    _namespaces_with_jobs(cli)
    secret = cli("tokens", "create", "reader", "--ns", "alpha", "--scope", "read").stdout.strip()
    assert cli.json("tokens", "list")[0]["last_used"] is None
    assert "never" in cli("tokens", "list").stdout
    web = Web(cli)
    try:
        http = client(web.url, secret)
        assert http.get("/api/v1/jobs").status_code == 200
        first = wait_until(lambda: cli.json("tokens", "list")[0]["last_used"], 30, what="last_used written")
        table = cli("tokens", "list")
        assert "last used" in table.stdout and "never" not in table.stdout
        # more requests, past the server's one-second cache of the token: no new write
        until = time.monotonic() + 2.5
        while time.monotonic() < until:
            assert http.get("/api/v1/jobs").status_code == 200
            time.sleep(0.2)
        assert cli.json("tokens", "list")[0]["last_used"] == first
        assert client(web.url, "st_unknown").get("/api/v1/jobs").status_code == 401
    finally:
        web.stop()


def test_bad_input_is_a_clear_4xx_and_changes_nothing(cli: Cli) -> None:
    """A malformed token, an unknown job or run, a filter that makes no sense, a body that
    is not JSON or too large: each a 4xx with a message saying what is wrong; the store's
    jobs, runs and audit rows are the same after all of them."""
    beta_run = _namespaces_with_jobs(cli)
    admin = cli("tokens", "create", "admin", "--ns", "*", "--scope", "admin").stdout.strip()

    def state() -> tuple[Any, ...]:
        return (cli.json("list-jobs", "--no-live", "--ns", "alpha"), cli.json("history", "--all"),
                cli.json("audit", "--limit", "1000"))

    before = state()
    web = Web(cli)
    try:
        http = client(web.url, admin)
        cases: list[tuple[str, str, dict[str, Any], int, str]] = [
            # malformed tokens
            ("GET", "/api/v1/jobs", {"headers": {"Authorization": "Bearer"}}, 400, "Bearer TOKEN"),
            ("GET", "/api/v1/jobs", {"headers": {"Authorization": "Token abc"}}, 400, "Bearer TOKEN"),
            ("POST", "/api/v1/jobs/alpha/job-a/trigger", {"headers": {"Authorization": "Bearer st_" + "x" * 5000}},
             401, "needs a token"),
            ("POST", "/api/v1/jobs/alpha/job-a/pause", {"headers": {"Authorization": "Bearer garbage"}}, 401,
             "needs a token"),
            # unknown job, run, namespace
            ("GET", "/api/v1/jobs/alpha/nope", {}, 404, "nope"),
            ("POST", "/api/v1/jobs/alpha/nope/trigger", {"json": {}}, 404, "nope"),
            ("POST", "/api/v1/jobs/alpha/nope/pause", {"json": {}}, 404, "nope"),
            ("POST", "/api/v1/jobs/gamma/job-a/edit", {"json": {"set": {"when": "@daily"}}}, 404, "gamma"),
            ("GET", "/api/v1/runs/99999999", {}, 404, "99999999"),
            ("GET", "/api/v1/runs/99999999/log", {}, 404, "99999999"),
            ("POST", "/api/v1/runs/99999999/kill", {"json": {}}, 404, "99999999"),
            ("GET", "/jobs/alpha/nope", {}, 404, "nope"),
            ("GET", "/runs/99999999", {}, 404, "99999999"),
            ("GET", "/api/v1/runs", {"params": {"ns": "gamma"}}, 404, "gamma"),
            ("POST", "/api/v1/jobs/alpha/job-a/explode", {"json": {}}, 404, "trigger, pause, resume, edit"),
            # filters that make no sense
            ("GET", "/api/v1/runs", {"params": {"status": "done"}}, 400, "succeeded"),
            ("GET", "/api/v1/runs", {"params": {"limit": "0"}}, 400, "between 1 and"),
            ("GET", "/api/v1/runs", {"params": {"before": "x"}}, 400, "whole number"),
            ("GET", "/api/v1/runs", {"params": {"since": "soon"}}, 400, "ISO time"),
            ("GET", "/api/v1/runs", {"params": {"since": "1h", "until": "2h"}}, 400, "not before"),
            ("GET", "/runs", {"params": {"since": "2026-12-06", "until": "2026-12-01"}}, 400, "not before"),
            ("GET", "/runs", {"params": {"status": "done"}}, 400, "succeeded"),
            ("GET", "/api/v1/jobs", {"params": {"after": "nonsense"}}, 400, "NAMESPACE/JOB"),
            ("GET", "/api/v1/jobs", {"params": {"limit": "5000"}}, 400, "between 1 and"),
            ("GET", "/api/v1/upcoming", {"params": {"hours": "-3"}}, 400, "between 0 and"),
            ("GET", "/api/v1/audit", {"params": {"limit": "many"}}, 400, "whole number"),
            ("GET", "/api/v1/runs/1/log", {"params": {"offset": "x"}}, 400, "whole number"),
            # bodies
            ("POST", "/api/v1/jobs/alpha/job-a/edit", {"content": b"{oops", "headers": {"content-type":
                                                       "application/json"}}, 400, "not JSON"),
            ("POST", "/api/v1/jobs/alpha/job-a/edit", {"json": [1, 2]}, 400, '{"set"'),
            ("POST", "/api/v1/jobs/alpha/job-a/edit", {"json": {"set": {"when": "every 5 mins"}}}, 400, "every 5m"),
            ("POST", "/api/v1/jobs/alpha/job-a/edit", {"json": {"set": {"colour": "red"}}}, 400, "colour"),
            ("POST", "/api/v1/jobs/alpha/job-a/pause", {"content": b"x" * 70000, "headers": {"content-type":
                                                        "application/json"}}, 413, "at most 65536"),
            ("POST", "/api/v1/jobs/alpha/job-a/pause", {"content": iter([b"{" + b" " * 40000, b" " * 40000 + b"}"]),
                                                        "headers": {"content-type": "application/json"}}, 413,
             "more than 65536"),  # chunked, no Content-Length: cut at the limit all the same
        ]
        for method, path, extra, status, said in cases:
            answer = http.request(method, path, **extra)
            assert answer.status_code == status, (method, path, answer.status_code, answer.text[:300])
            message = answer.json()["error"] if path.startswith("/api/") else answer.text
            assert said in message, (method, path, message[:300])
        assert http.get(f"/api/v1/runs/{beta_run}").status_code == 200  # the admin token sees every namespace
    finally:
        web.stop()
    assert state() == before
