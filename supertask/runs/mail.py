"""Mail on failure, as cron's ``MAILTO`` (``mailto:`` per job or in ``defaults:``).

When a run fails for good (the last attempt failed, timed out, was killed or lost;
not a skip, not an attempt that will be retried), one message goes to the job's
``mailto`` addresses: the subject names the host, job, status and exit code, the
body the run's facts and the last lines of its log.

How it is sent, as cron does it:

- ``SUPERTASK_SMTP_URL`` set: by SMTP (stdlib ``smtplib``):
  ``smtp://[USER:PASSWORD@]HOST[:PORT]`` (port 25; ``?starttls`` upgrades the
  connection), ``smtps://...`` (TLS from the start, port 465). The password is never
  logged.
- else the ``sendmail`` found on the scheduler's ``PATH``, else ``/usr/sbin/sendmail``
  (postfix, exim, msmtp-mta, nullmailer and OpenSMTPD all install one), run as
  ``sendmail -t -i`` with the message on its standard input: recipients come from
  the headers, never from the command line.

The sender is ``SUPERTASK_MAIL_FROM`` (cron's ``MAILFROM``), else ``USER@HOST`` of the
scheduler. A message that cannot be sent is logged as ``mail failed`` and never
fails the run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

SENDMAIL_FALLBACK = "/usr/sbin/sendmail"
SEND_TIMEOUT = 60.0
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+(@[A-Za-z0-9.-]+)?")


def bad_address(address: str) -> str | None:
    """What is wrong with a mail address (None: nothing). A local name (``root``) is
    an address, as in cron; nothing may start with ``-`` nor hold blanks or newlines."""
    if address.startswith("-"):
        return "it starts with '-'"
    if not _ADDRESS.fullmatch(address):
        return "only letters, digits, '.', '-', '_', '+' and one '@' with a domain"
    return None


def subject(run: dict[str, Any], host: str) -> str:
    code = run.get("exit_code")
    return (f"supertask <{run.get('namespace')}@{host}>: {run.get('job')} {run.get('status')}"
            + (f" (exit code {code})" if code is not None else ""))


def body(run: dict[str, Any]) -> str:
    """The run's facts, then its log's last lines."""
    facts = [("job", run.get("job")), ("namespace", run.get("namespace")), ("run", run.get("id")),
             ("attempt", run.get("attempt")), ("status", run.get("status")), ("exit code", run.get("exit_code")),
             ("reason", run.get("reason")), ("scheduled", run.get("scheduled")), ("started", run.get("started")),
             ("finished", run.get("finished")), ("host", run.get("host")), ("note", run.get("message")),
             ("log", run.get("log_path"))]
    lines = [f"{name + ':':<11} {value}" for name, value in facts if value is not None and value != ""]
    tail = str(run.get("log_tail") or "").rstrip("\n")
    lines += ["", "Last lines of its log:" if tail else "Its log is empty.", ""]
    if tail:
        lines += [tail, ""]
    lines.append(f"The whole log: supertask logs {run.get('id')}")
    return "\n".join(lines) + "\n"


def message(run: dict[str, Any], to: tuple[str, ...], sender: str, host: str) -> Any:
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject(run, host)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=host or None)
    msg["Auto-Submitted"] = "auto-generated"  # as cron marks its mail: no auto-replies
    msg["X-Supertask-Job"] = f"{run.get('namespace')}/{run.get('job')}"
    msg["X-Supertask-Run"] = str(run.get("id"))
    msg.set_content(body(run))
    return msg


def sendmail_path() -> str | None:
    return shutil.which("sendmail") or (SENDMAIL_FALLBACK if os.access(SENDMAIL_FALLBACK, os.X_OK) else None)


def send(run: dict[str, Any], to: tuple[str, ...], *, user: str, host: str,
         env: Mapping[str, str] | None = None) -> str:
    """Mail ``run`` to ``to``; return how it went ("smtp://host:port", "/usr/sbin/sendmail").
    Raises RuntimeError saying what failed."""
    env = os.environ if env is None else env
    sender = env.get("SUPERTASK_MAIL_FROM") or f"{user}@{host}"
    msg = message(run, to, sender, host)
    url = env.get("SUPERTASK_SMTP_URL")
    if url:
        return _smtp(url, msg)
    path = sendmail_path()
    if path is None:
        raise RuntimeError(f"no sendmail on PATH nor at {SENDMAIL_FALLBACK}: install a mail transfer agent "
                           "(e.g. apt install msmtp-mta or postfix), or set SUPERTASK_SMTP_URL=smtp://HOST:PORT")
    try:
        proc = subprocess.run([path, "-t", "-i"], input=msg.as_bytes(), capture_output=True, timeout=SEND_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{path} still running after {SEND_TIMEOUT:g}s; killed") from None
    except OSError as exc:
        raise RuntimeError(f"{path}: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"{path} exit code {proc.returncode}" + (f": {said[-1]}" if said else ""))
    return path


def smtp_where(url: str) -> str:
    """The SMTP URL without user and password, for logs."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or (465 if parts.scheme == 'smtps' else 25)}"


def _smtp(url: str, msg: Any) -> str:
    import smtplib
    from urllib.parse import parse_qs, unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise RuntimeError(f"SUPERTASK_SMTP_URL {smtp_where(url) if parts.hostname else '(hidden)'}: expected "
                           "smtp://[USER:PASSWORD@]HOST[:PORT][?starttls] or smtps://...")
    where = smtp_where(url)
    cls = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    try:
        with cls(parts.hostname, parts.port or (465 if parts.scheme == "smtps" else 25), timeout=SEND_TIMEOUT) as smtp:
            if "starttls" in parse_qs(parts.query, keep_blank_values=True):
                smtp.starttls()
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            refused = smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise RuntimeError(f"{where}: {exc}") from None
    if refused:
        raise RuntimeError(f"{where} refused {', '.join(sorted(refused))}")
    return where
