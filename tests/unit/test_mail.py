"""Mail on failure (supertask.runs.mail): addresses, and what a message says."""

from __future__ import annotations

import pytest

from supertask.runs.mail import bad_address, body, message, smtp_where, subject

RUN = {"id": 7, "namespace": "backups", "job": "nightly", "attempt": 2, "status": "failed", "exit_code": 3,
       "reason": "retry", "scheduled": "2026-12-05T03:00:00+00:00", "host": "db1", "message": None,
       "log_tail": "dumping\npg_dump: error: connection refused\n", "log_path": "/var/lib/supertask/logs/7.log"}


@pytest.mark.parametrize(("address", "ok"), [
    ("ops@example.com", True), ("root", True), ("first.last+cron@mail.example.org", True),
    ("-oQ/tmp", False), ("a b@example.com", False), ("ops@example.com\nBcc: x@y", False), ("", False),
    ("Ops <ops@example.com>", False), ("a@b@c", False),
])
def test_addresses(address: str, ok: bool) -> None:
    assert (bad_address(address) is None) is ok


def test_subject_and_body_say_the_job_exit_code_and_log_tail() -> None:
    assert subject(RUN, "db1") == "supertask <backups@db1>: nightly failed (exit code 3)"
    text = body(RUN)
    assert "exit code:  3" in text and "attempt:    2" in text and "note" not in text
    assert text.index("Last lines of its log:") < text.index("pg_dump: error: connection refused")
    assert text.rstrip().endswith("supertask logs 7")
    msg = message(RUN, ("ops@example.com", "root"), "supertask@db1", "db1")
    assert msg["To"] == "ops@example.com, root" and msg["X-Supertask-Run"] == "7"


@pytest.mark.parametrize(("url", "shown"), [
    ("smtp://user:pw@mail.example.com:587?starttls", "smtp://mail.example.com:587"),
    ("smtps://mail.example.com", "smtps://mail.example.com:465"),
    ("smtp://localhost", "smtp://localhost:25"),
])
def test_smtp_urls_are_shown_without_credentials(url: str, shown: str) -> None:
    assert smtp_where(url) == shown
