"""The dashboard in a real browser (issue 17 point 6): log in with a token, see a job,
run it now, watch its log stream in, pause it, see the audit row; a namespace-A token
cannot see namespace B. A real `supertask run --http` on a real SQLite store.

With SUPERTASK_SCREENSHOTS=DIR the main pages are saved there (docs/images for docs/dashboard.md)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tests.conftest import Cli

TIMETABLE = """\
namespace: alpha
jobs:
  - name: hello
    description: Says hello, then goodbye
    when: "30 6 * * mon-fri"
    timezone: Europe/Berlin
    run: "cmd:echo line one; sleep 2; echo line two"
  - {name: nightly-dump, when: "0 3 * * *", run: "cmd:echo dumped", description: Dump the app database}
  - {name: broken, when: "@hourly", run: "cmd:echo oops >&2; exit 3"}
"""


def _shot(page: Any, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("SUPERTASK_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"dashboard-{name}.png"), full_page=True)


def test_log_in_run_now_watch_the_log_pause_and_see_the_audit(cli: Cli, browser: Any, tmp_path: Path) -> None:
    assert cli("run", "--ns", "beta", "--name", "secret-job", "--", "cmd:echo beta only").returncode == 0
    (cli.cwd / "supertask.yaml").write_text(TIMETABLE)
    sched = cli.start("--http", "127.0.0.1:0", "--grace", "2s")
    try:
        url = sched.wait_event("dashboard serving", timeout=60)["url"].rstrip("/")
        assert cli("jobs", "trigger", "broken", "--wait").returncode == 3  # a failure for the overview
        token = cli("tokens", "create", "alice", "--ns", "alpha", "--scope", "run").stdout.strip()
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.set_default_timeout(30000)
        page.goto(url + "/jobs")
        page.wait_for_url(re.compile(r".*/login.*"))
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_url(url + "/jobs")
        assert page.is_visible("text=alpha/hello") and page.is_visible("text=alpha/nightly-dump")
        assert not page.is_visible("text=secret-job")
        _shot(page, "jobs", tmp_path)

        page.click("text=alpha/hello")
        page.wait_for_url(url + "/jobs/alpha/hello")
        page.click("#trigger")
        page.wait_for_selector("#result .done")
        assert "queued run" in page.inner_text("#result")
        page.click("#result a")
        page.wait_for_url(re.compile(r".*/runs/\d+$"))
        page.wait_for_function("document.getElementById('log').textContent.includes('line one')")
        page.wait_for_function("document.getElementById('log').textContent.includes('line two')")
        page.wait_for_function("document.getElementById('status').textContent === 'succeeded'")
        _shot(page, "run", tmp_path)

        page.goto(url + "/jobs/alpha/hello")
        page.click("#pause")
        page.wait_for_selector("#result .done")
        page.reload()
        assert page.inner_text("#state") == "paused"
        assert cli.json("list-jobs", "--no-live", "--ns", "alpha")[1]["paused"] is True

        page.goto(url + "/audit")
        first = page.inner_text("#audit tr:nth-child(2)")
        assert "token:alice" in first and "paused" in first and "alpha/hello" in first
        _shot(page, "audit", tmp_path)

        page.goto(url + "/")
        assert page.is_visible("text=failures in 24 h")
        assert page.inner_text("#overview").count("alpha/broken") >= 1
        _shot(page, "overview", tmp_path)

        page.goto(url + "/runs?ns=alpha")
        _shot(page, "runs", tmp_path)
        assert page.goto(url + "/jobs/beta/secret-job").status == 404
        assert "beta only" not in page.content()
        session = page.context.cookies()
        page.close()

        phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
        phone.context.add_cookies(session)
        phone.goto(url + "/jobs")
        assert phone.is_visible("text=alpha/hello")
        # the page itself does not scroll sideways on a phone: wide tables scroll in their own box
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        _shot(phone, "phone", tmp_path)
        phone.close()
    finally:
        assert sched.stop() == 0, sched.output
