"""Notifications and hooks after a run: ``on_success``, ``on_failure``, ``on_retry``, ``ping``.

Each action is ``cmd:...`` (a shell command given the run's facts in
``SUPERTASK_JOB``, ``SUPERTASK_RUN_ID``, ``SUPERTASK_STATUS``, ``SUPERTASK_EXIT_CODE``,
``SUPERTASK_LOG_TAIL``), ``webhook:URL`` (a JSON POST of the run as
``supertask history --json`` shows it plus ``log_tail``; 10 s timeout, 3 tries with
backoff) or ``apprise:URL`` (Slack, Discord, e-mail ... through the optional apprise
library). ``ping: URL`` sends healthchecks.io-style pings: ``URL/start`` when a run
starts, ``URL`` on success, ``URL/fail`` on failure. A failing notification is
logged and never fails the run.

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
import subprocess
import threading
import time
from collections.abc import Callable

from supertask.log import get_logger

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms of a one-shot run)
if TYPE_CHECKING:
    from typing import Any

WEBHOOK_TIMEOUT = 10.0
WEBHOOK_TRIES = 3
CMD_TIMEOUT = 60.0


class Outbox:
    """Notifications sent in order on one thread of their own (started when first used)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...], dict[str, Any]] | None] = (
            queue.SimpleQueue())
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="supertask-notify", daemon=True)
                self._thread.start()
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


def run_actions(actions: tuple[str, ...], run: dict[str, Any], *, event: str, outbox: Outbox | None = None) -> None:
    """Fire each action with the run's facts; log (never raise) what goes wrong."""
    if outbox is not None:
        if actions:
            outbox.put(run_actions, actions, run, event=event)
        return
    log = get_logger("supertask.runs.notify")
    for action in actions:
        kind, _, target = action.partition(":")
        try:
            if kind == "cmd":
                _cmd(target, run)
            elif kind == "webhook":
                _webhook(target, run)
            elif kind == "apprise":
                _apprise(target, run)
            else:
                raise ValueError(f"unknown action kind {kind!r}")
            log.info("notification sent", kind=kind, on=event, job=run.get("job"), run=run.get("id"))
        except Exception as exc:
            log.warning("notification failed", kind=kind, on=event, job=run.get("job"), run=run.get("id"),
                        error=str(exc))


def _cmd(command: str, run: dict[str, Any]) -> None:
    env = dict(os.environ)
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
        raise RuntimeError(f"still running after {CMD_TIMEOUT:g}s; killed") from None
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"exit code {proc.returncode}" + (f": {lines[-1]}" if lines else ""))


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
