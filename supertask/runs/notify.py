"""Notifications and hooks after a run: ``on_success``, ``on_failure``, ``on_retry``, ``ping``.

Each action is ``cmd:...`` (a shell command given the run's facts in
``SUPERTASK_JOB``, ``SUPERTASK_RUN_ID``, ``SUPERTASK_STATUS``, ``SUPERTASK_EXIT_CODE``,
``SUPERTASK_LOG_TAIL``), ``webhook:URL`` (a JSON POST of the run as
``supertask history --json`` shows it plus ``log_tail``; 10 s timeout, 3 tries with
backoff) or ``apprise:URL`` (Slack, Discord, e-mail ... through the optional apprise
library). ``ping: URL`` sends healthchecks.io-style pings: ``URL/start`` when a run
starts, ``URL`` on success, ``URL/fail`` on failure. ``mailto:`` mails a failure
(:mod:`supertask.runs.mail`). A failing notification is logged (``notification
failed``, with the hook's exit code; ``mail failed``) and never fails the run.

A ``cmd:`` hook finds the scheduler's own supertask and store, whatever the
environment the scheduler was started in (a systemd unit's bare PATH): its PATH
starts with ``$SUPERTASK_HOME/bin`` holding a ``supertask`` that runs this very
supertask (also in ``SUPERTASK_BIN``), and ``SUPERTASK_HOME`` / ``SUPERTASK_STORE``
name the scheduler's state folder and store, so ``supertask logs $SUPERTASK_RUN_ID``
in a hook prints the run's log. (The store URL may hold a password: it is passed to
the hook, never logged.) A hook that exits 0 but wrote to its stderr (``supertask:
not found`` in the first command of a pipe) is logged as ``notification sent`` at
warning level, with the lines.

In the scheduler they go out through an :class:`Outbox`: in order, on a thread of
their own, so an endpoint that is slow or hangs (10 s × 3 tries per webhook) never
delays a run, keeps it "in flight" for ``overlap``, or holds a ``--max-concurrent``
slot. At a stop, what is still queued gets up to ``--grace`` to go out. Without an
outbox (a one-shot ``supertask run -- ...``) they are sent before the command exits.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from supertask.log import get_logger
from supertask.threads import Spawn, Threads

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms of a one-shot run)
if TYPE_CHECKING:
    from typing import Any

    from supertask.settings import Settings

WEBHOOK_TIMEOUT = 10.0
WEBHOOK_TRIES = 3
CMD_TIMEOUT = 60.0


class Outbox:
    """Notifications sent in order on one thread of their own (started when first used,
    with ``spawn``: the scheduler's supervisor's)."""

    def __init__(self, spawn: Spawn | None = None) -> None:
        self.spawn: Spawn = spawn or Threads("notifications").spawn
        self._queue: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...], dict[str, Any]] | None] = (
            queue.SimpleQueue())
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = self.spawn("supertask-notify", self._loop)
        self._queue.put((fn, args, kwargs))

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, args, kwargs = item
            try:
                fn(*args, **kwargs)
            except Exception:  # the senders log their own failures; this is a bug's last stop
                get_logger("supertask.runs.notify").exception("notification crashed")

    def close(self, timeout: float) -> bool:
        """Let what is queued go out, for at most ``timeout`` seconds; False if some did not."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return True
        self._queue.put(None)
        thread.join(timeout)
        return not thread.is_alive()


class HookFailed(RuntimeError):
    """A ``cmd:`` hook that exited non-zero (or was killed)."""

    def __init__(self, message: str, exit_code: int | None):
        super().__init__(message)
        self.exit_code = exit_code


def run_actions(actions: tuple[str, ...], run: dict[str, Any], *, event: str, outbox: Outbox | None = None,
                settings: Settings | None = None, mailto: tuple[str, ...] = ()) -> None:
    """Fire each action with the run's facts, then mail ``mailto`` (a failure only);
    log (never raise) what goes wrong."""
    if outbox is not None:
        if actions or (mailto and event == "failure"):
            outbox.put(run_actions, actions, run, event=event, settings=settings, mailto=mailto)
        return
    log = get_logger("supertask.runs.notify")
    facts = {"on": event, "job": run.get("job"), "namespace": run.get("namespace"), "run": run.get("id")}
    for action in actions:
        kind, _, target = action.partition(":")
        try:
            said: list[str] = []
            if kind == "cmd":
                said = _cmd(target, run, settings)
            elif kind == "webhook":
                _webhook(target, run)
            elif kind == "apprise":
                _apprise(target, run)
            else:
                raise ValueError(f"unknown action kind {kind!r}")
            if said:
                log.warning("notification sent", kind=kind, **facts, exit_code=0, stderr=said)
            else:
                log.info("notification sent", kind=kind, **facts)
        except HookFailed as exc:
            log.warning("notification failed", kind=kind, **facts, exit_code=exc.exit_code, error=str(exc))
        except Exception as exc:
            log.warning("notification failed", kind=kind, **facts, error=str(exc))
    if mailto and event == "failure":
        _mail(run, mailto, settings, facts)


def _mail(run: dict[str, Any], to: tuple[str, ...], settings: Settings | None, facts: dict[str, Any]) -> None:
    from supertask.runs import mail
    from supertask.settings import current_user, host_name

    log = get_logger("supertask.runs.notify")
    try:
        via = mail.send(run, to, user=settings.user if settings else current_user(),
                        host=settings.host if settings else host_name())
    except Exception as exc:
        log.warning("mail failed", to=list(to), **facts, error=str(exc))
        return
    log.info("mail sent", to=list(to), via=via, **facts)


def hook_env(settings: Settings | None) -> dict[str, str]:
    """The scheduler's environment, with its own supertask first on PATH and its store."""
    env = dict(os.environ)
    if settings is None:
        return env
    env.update(SUPERTASK_HOME=str(settings.home), SUPERTASK_STORE=settings.store_url)
    shim = _supertask_shim(settings.home)
    if shim is not None:
        env["SUPERTASK_BIN"] = str(shim)
        env["PATH"] = os.pathsep.join([str(shim.parent), env.get("PATH") or os.defpath])
    return env


def _supertask_shim(home: Path) -> Path | None:
    """``HOME/bin/supertask``: a two-line script that runs this supertask (the console
    script beside this Python, else ``python -m supertask``). Only supertask is put in
    that folder: the hook's ``python3`` stays the system's."""
    script = Path(sys.executable).parent / "supertask"
    command = shlex.quote(str(script)) if script.is_file() else f"{shlex.quote(sys.executable)} -m supertask"
    text = f'#!/bin/sh\nexec {command} "$@"\n'
    path = Path(home) / "bin" / "supertask"
    try:
        if not path.is_file() or path.is_symlink() or path.read_text() != text:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_name(f".supertask.{os.getpid()}")
            tmp.write_text(text)
            os.chmod(tmp, 0o700)
            os.replace(tmp, path)
    except OSError:
        return None
    return path


def _cmd(command: str, run: dict[str, Any], settings: Settings | None = None) -> list[str]:
    """Run a ``cmd:`` hook; the last lines it wrote to stderr (exit 0), or HookFailed."""
    env = hook_env(settings)
    env.update(
        SUPERTASK_JOB=str(run.get("job")),
        SUPERTASK_NAMESPACE=str(run.get("namespace")),
        SUPERTASK_RUN_ID=str(run.get("id")),
        SUPERTASK_STATUS=str(run.get("status")),
        SUPERTASK_EXIT_CODE="" if run.get("exit_code") is None else str(run.get("exit_code")),
        SUPERTASK_ATTEMPT=str(run.get("attempt")),
        SUPERTASK_LOG_TAIL=str(run.get("log_tail") or ""),
    )
    from supertask.launchers import reaper

    try:
        proc = reaper.run(["/bin/sh", "-c", command], env=env, stdin=subprocess.DEVNULL,
                          timeout=CMD_TIMEOUT, start_new_session=True)
    except subprocess.TimeoutExpired:
        raise HookFailed(f"still running after {CMD_TIMEOUT:g}s; killed", None) from None
    lines = proc.stderr.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0:
        raise HookFailed(f"exit code {proc.returncode}" + (f": {lines[-1]}" if lines else ""), proc.returncode)
    return lines[-5:]


def _post(url: str, body: bytes | None, content_type: str = "application/json") -> None:
    last: Exception | None = None
    for attempt in range(WEBHOOK_TRIES):
        try:
            import urllib.request  # ~20 ms: only when a webhook or ping is sent

            request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET",
                                             headers={"Content-Type": content_type, "User-Agent": "supertask"})
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:
                if response.status < 300:
                    return
                last = RuntimeError(f"HTTP {response.status}")
        except Exception as exc:
            last = exc
        if attempt + 1 < WEBHOOK_TRIES:
            time.sleep(0.5 * 2**attempt)
    raise RuntimeError(f"{url}: {last}")


def _webhook(url: str, run: dict[str, Any]) -> None:
    _post(url, json.dumps(run, default=str).encode())


def _apprise(url: str, run: dict[str, Any]) -> None:
    try:
        import apprise
    except ImportError:
        raise RuntimeError("apprise is not installed: pip install 'supertask[notify]'") from None
    client = apprise.Apprise()
    if not client.add(url):
        raise RuntimeError("apprise does not understand this URL")
    title = f"supertask: {run.get('job')} {run.get('status')}"
    body = f"run {run.get('id')} (attempt {run.get('attempt')}) exit code {run.get('exit_code')}\n\n{run.get('log_tail') or ''}"
    if not client.notify(title=title, body=body):
        raise RuntimeError("apprise could not deliver the notification")


def ping(url: str | None, what: str, run: dict[str, Any], outbox: Outbox | None = None) -> None:
    """healthchecks.io style: ``start`` -> URL/start, ``success`` -> URL, ``fail`` -> URL/fail."""
    if not url:
        return
    if outbox is not None:
        outbox.put(ping, url, what, run)
        return
    target = url.rstrip("/") + {"start": "/start", "success": "", "fail": "/fail"}[what]
    try:
        body = (run.get("log_tail") or "").encode() if what != "start" else b""
        _post(target, body, "text/plain")
    except Exception as exc:
        get_logger("supertask.runs.notify").warning("ping failed", url=target, job=run.get("job"), error=str(exc))
