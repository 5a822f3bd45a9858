"""A worker wakes when a run is queued for workers: ``LISTEN`` on :data:`CHANNEL`, on a
PostgreSQL connection of its own (reopened when it breaks), each notification carrying
when the run is due (epoch seconds). The claim loop's poll stays the fallback for a
notification lost, or a connection that cannot be had.

It also wakes when one of its own attempts ends (:meth:`Wakeup.poke`, from the attempt's
thread): a slot is free, and runs that waited for one (or for the job's
``max_concurrent`` place it held) are claimed at once rather than at the next poll. The
wait is one ``select`` on the listening connection's socket and a pipe of its own."""

from __future__ import annotations

import os
import select
import threading
import time
from typing import Any

from supertask.store.listen import listen

#: The channel a queued run for workers is announced on (payload: when it is due, epoch seconds).
CHANNEL = "supertask_runs"
#: Seconds between two attempts to (re)open the listening connection.
RELISTEN = 10.0


def announce(conn: Any, due: str = "") -> None:
    """Tell the listening workers a run is queued (at the commit of ``conn``'s transaction);
    ``due``: SQL giving when it may start (epoch seconds), or now."""
    import sqlalchemy as sa

    conn.execute(sa.text(f"SELECT pg_notify('{CHANNEL}', CAST({due or 'EXTRACT(EPOCH FROM now())'} AS TEXT))"))


class Wakeup:
    """Waits for a queued run's announcement (see the module's docstring)."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.conn: Any = None
        self._tried = -RELISTEN
        self._read, self._write = os.pipe()  # poke() writes a byte: wait() returns
        self._pipe = threading.Lock()  # no poke into a closed pipe (its descriptor may be another's by then)
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def poke(self) -> None:
        """Wake the waiting claim loop now (any thread; never blocks, never raises)."""
        with self._pipe:
            if self._write < 0:
                return
            try:
                os.write(self._write, b"!")
            except OSError:  # the pipe is full: a wake-up is pending anyway
                pass

    def _poked(self, timeout: float, fd: int | None = None) -> tuple[bool, bool]:
        """Wait up to ``timeout`` for a poke or ``fd`` to be readable: (poked, fd readable)."""
        try:
            ready = select.select([self._read] + ([fd] if fd is not None else []), [], [], max(0.0, timeout))[0]
        except (OSError, ValueError):
            time.sleep(timeout)
            return False, False
        poked = self._read in ready
        if poked:
            try:
                while os.read(self._read, 512):
                    pass
            except OSError:  # drained (EAGAIN)
                pass
        return poked, fd is not None and fd in ready

    def _open(self) -> Any:
        if time.monotonic() - self._tried < RELISTEN:
            return None
        self._tried = time.monotonic()
        try:
            return listen(self.engine, CHANNEL)
        except Exception:
            return None

    def wait(self, timeout: float) -> float | None:
        """Wait up to ``timeout`` seconds for an announcement or a :meth:`poke`: when the
        earliest run announced is due (epoch seconds; now for a poke), None when neither came."""
        if self.conn is None:
            self.conn = self._open()
        if self.conn is None:
            return time.time() if self._poked(timeout)[0] else None
        due: list[float] = []
        try:
            for note in self.conn.notifies(timeout=0.0):  # those already received
                due.append(_due(note.payload))
            if not due:
                poked, readable = self._poked(timeout, self.conn.fileno())
                if poked:
                    due.append(time.time())
                if readable:
                    for note in self.conn.notifies(timeout=0.0):
                        due.append(_due(note.payload))
        except Exception:  # the connection broke: polling until it is open again
            self.close()
        return min(due) if due else None

    def close(self, pipe: bool = False) -> None:
        """Close the listening connection (and, at the end, ``pipe``: the poke's pipe too)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
        if pipe:
            with self._pipe:
                for fd in (self._read, self._write):
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                self._read = self._write = -1


def _due(payload: str) -> float:
    try:
        return float(payload)
    except ValueError:
        return time.time()
