"""Every touch of a dependency's private internals, in one module.

supertask leans on a few things its dependencies do not promise. Each is one class or
function here, named for what supertask needs from it, and ``tests/unit/test_compat.py``
checks each against the installed versions (signatures, attributes, behaviour): an
upgrade that changes one fails there, by name, rather than in a scheduler at night.
Known to work (the pins in pyproject.toml say the same): CPython 3.10 to 3.13
(``make test-pythons`` runs the tests on each), APScheduler 3.11, RPyC 6.0.

CPython ``subprocess``:

- ``Popen._execute_child``, overridden by :class:`SpawnedPopen` to start the child
  with ``posix_spawn``; its parameters differ by version (3.11 added
  ``process_group``), and ``_close_pipe_fds`` and ``_child_created`` are used as
  Popen's own ``posix_spawn`` path uses them.

APScheduler 3 (imported here only inside the functions, so the fast paths of
``supertask/entry.py``, which load this module for :class:`SpawnedPopen`, never pay
for it):

- ``BaseScheduler._process_jobs``, what the scheduler thread calls at each wake-up
  (:func:`scheduler_base` hands it to ``process_round``), and the scheduler's
  ``_jobstores``, ``_jobstores_lock`` and ``_logger`` that a round uses;
- ``Job._get_run_times`` and ``Job._modify`` (:func:`due_run_times`,
  :func:`set_next_run_time`);
- a ``Job`` built from its pickled state (version 1) and bound to a store with
  ``_scheduler`` and ``_jobstore_alias`` (:func:`make_job`); ``BaseJobStore.start``'s
  ``_scheduler``, ``_alias``, ``_logger`` (:func:`plugin_logger`);
- ``BaseExecutor``'s abstract ``_do_submit_job`` (:func:`executor_base`: supertask's
  executor replaces ``submit_job`` whole).

RPyC 6.0 (imported here only inside the functions; ``supertask.control`` alone calls them):

- ``Server._listen``, to bind and listen before serving, so the port is known at once
  (:func:`listen_now`), and ``Server.clients``, the connections ``close`` ends
  (:func:`forget_clients`);
- ``Connection._config``, where the server put the authenticator's credentials
  (:func:`credentials`);
- :func:`server_base`, a ``ThreadedServer`` whose private steps are hooks with names:
  ``Server.accept`` raising ``EOFError`` (which ends ``start``'s loop) on any accept
  error but EINTR/EAGAIN, caught while ``active`` (``accept_failed``);
  ``ThreadedServer._accept_method``, the hand-off of an accepted socket to a thread of
  rpyc's (``hand_off``, ``serve_in_thread``, ``drop``); ``Server._serve_client``,
  ``Service._connect`` and ``Server._handle_connection``, which make and serve the
  connection over a ``Channel`` (``channel``); ``protocol_config`` and ``logger``;
- ``Channel``'s frame layout (``FRAME_HEADER``, ``FLUSHER``, ``stream``; public names,
  undocumented), which ``supertask.control.channel.BoundedChannel.recv`` reads as
  ``Channel.recv`` does.
"""

from __future__ import annotations

import os
import signal
import subprocess

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a one-shot run loads this)
if TYPE_CHECKING:
    import logging
    from datetime import datetime
    from typing import Any

# -- CPython -----------------------------------------------------------------------------------

#: the signals Python ignores that a child gets back at their defaults (as Popen does)
_SIGDEF = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name))
_ABSENT = object()  # Python 3.10's _execute_child has no process_group


class SpawnedPopen(subprocess.Popen):  # type: ignore[type-arg]
    """``Popen`` whose child is started with ``posix_spawn`` rather than Popen's own
    ``vfork``: 0.40 ms a child against 0.51 here, and 1.3 ms against 9 while another
    thread wants the interpreter (Popen hands the interpreter lock back and forth
    around its ``vfork`` and its wait on an error pipe, and waits up to 5 ms each
    time to get it back; docs/benchmarks.md).

    For an argv list whose program has a path, an ``env``, no ``cwd``, and no
    descriptor of the caller's that is inheritable: ``posix_spawn`` closes none
    (``close_fds`` is not honoured), and everything Python opens is closed on exec
    already (PEP 446). Anything else this path does not do (``cwd``, ``preexec_fn``,
    ``user``, ``group``, ``umask``, ``process_group``, ``executable``, ``pass_fds``,
    ``shell``, a parameter a later Python adds) goes to Popen's own way.
    """

    def _execute_child(self, args: Any, executable: Any, preexec_fn: Any, close_fds: Any, pass_fds: Any,
                       cwd: Any, env: Any, startupinfo: Any, creationflags: Any, shell: Any,
                       p2cread: int, p2cwrite: int, c2pread: int, c2pwrite: int, errread: int, errwrite: int,
                       restore_signals: Any, gid: Any, gids: Any, uid: Any, umask: Any,
                       start_new_session: bool, process_group: Any = _ABSENT, *more: Any) -> None:
        if (more or executable is not None or preexec_fn is not None or pass_fds or cwd is not None or shell
                or gid is not None or gids is not None or uid is not None or umask >= 0
                or process_group not in (_ABSENT, None, -1) or env is None
                or not isinstance(args, list) or not args or "/" not in str(args[0])):
            tail = () if process_group is _ABSENT else (process_group, *more)
            return super()._execute_child(  # type: ignore[misc]
                args, executable, preexec_fn, close_fds, pass_fds, cwd, env, startupinfo, creationflags,
                shell, p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite, restore_signals, gid, gids,
                uid, umask, start_new_session, *tail)
        actions = [(os.POSIX_SPAWN_DUP2, fd, target)
                   for fd, target in ((p2cread, 0), (c2pwrite, 1), (errwrite, 2)) if fd != -1]
        try:
            self.pid = os.posix_spawn(args[0], args, env, file_actions=actions, setsid=bool(start_new_session),
                                      setsigdef=_SIGDEF if restore_signals else ())
            self._child_created = True
        finally:
            self._close_pipe_fds(p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)  # type: ignore[attr-defined]
        return None


# -- APScheduler 3 ----------------------------------------------------------------------------

_bases: dict[str, Any] = {}


def scheduler_base() -> Any:
    """APScheduler's ``BackgroundScheduler`` whose every wake-up calls
    ``self.process_round()`` (a subclass defines it): what to do with the due jobs,
    returning the seconds to sleep until the next wake-up (``None``: until woken).
    APScheduler's main loop calls ``_process_jobs`` for this, with that contract."""
    if "scheduler" not in _bases:
        from apscheduler.schedulers.background import BackgroundScheduler

        class RoundHook(BackgroundScheduler):  # type: ignore[misc]
            def _process_jobs(self) -> float | None:
                return self.process_round()  # type: ignore[no-any-return]

            def process_round(self) -> float | None:
                raise NotImplementedError

        _bases["scheduler"] = RoundHook
    return _bases["scheduler"]


def executor_base() -> Any:
    """APScheduler's ``BaseExecutor`` with its abstract ``_do_submit_job`` filled in,
    for an executor that replaces ``submit_job`` whole."""
    if "executor" not in _bases:
        from apscheduler.executors.base import BaseExecutor

        class WholeSubmit(BaseExecutor):  # type: ignore[misc]
            def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:  # pragma: no cover
                raise NotImplementedError("submit_job replaces BaseExecutor's path")

        _bases["executor"] = WholeSubmit
    return _bases["executor"]


def jobstores(scheduler: Any) -> dict[str, Any]:
    """The scheduler's job stores by alias (hold :func:`jobstores_lock` to walk them)."""
    return scheduler._jobstores  # type: ignore[no-any-return]


def jobstores_lock(scheduler: Any) -> Any:
    """The lock APScheduler holds from finding a job due to updating it (``None``
    before there is a scheduler)."""
    return None if scheduler is None else scheduler._jobstores_lock


def scheduler_logger(scheduler: Any) -> logging.Logger:
    """The logger APScheduler's scheduler reports through (``apscheduler.scheduler``)."""
    return scheduler._logger  # type: ignore[no-any-return]


def plugin_logger(plugin: Any) -> logging.Logger:
    """A started job store's or executor's logger (``apscheduler.jobstores.ALIAS``)."""
    return plugin._logger  # type: ignore[no-any-return]


def due_run_times(job: Any, now: datetime) -> list[datetime]:
    """Every fire of ``job`` from its next run time up to ``now`` (inclusive), as
    APScheduler reckons them after a wake-up or downtime."""
    return job._get_run_times(now)  # type: ignore[no-any-return]


def set_next_run_time(job: Any, when: datetime) -> None:
    """Set a job's next run time as the scheduler does after a fire (validated)."""
    job._modify(next_run_time=when)


def make_job(jobstore: Any, **state: Any) -> Any:
    """An APScheduler ``Job`` from its fields (``id``, ``func``, ``trigger``,
    ``executor``, ``args``, ``kwargs``, ``name``, ``misfire_grace_time``,
    ``coalesce``, ``max_instances``, ``next_run_time``), bound to a started
    ``jobstore`` as if it had been read from it: no callable is looked up and no
    trigger checked, which ``Job()`` would do for each of many jobs."""
    from apscheduler.job import Job

    job = Job.__new__(Job)
    job.__setstate__({"version": 1, **state})
    job._scheduler = jobstore._scheduler
    job._jobstore_alias = jobstore._alias
    return job


# -- RPyC 6.0 ---------------------------------------------------------------------------------


def listen_now(server: Any) -> None:
    """Make an RPyC ``ThreadedServer`` listen before ``start`` (which would listen
    itself): its ``port`` is then the one bound (port 0 picks one) and peers may connect."""
    server._listen()


def forget_clients(server: Any) -> None:
    """Make an RPyC server's ``close`` leave its open connections alone (they end with
    the process): ``close`` ends every connection in ``clients``."""
    server.clients = set()


def credentials(conn: Any) -> Any:
    """What the server's authenticator returned for this connection (``None`` without one)."""
    return conn._config.get("credentials")


def server_base() -> Any:
    """RPyC's ``ThreadedServer`` with the steps a subclass changes turned into hooks:

    - ``accept_failed()``: accepting failed while the listener is open (rpyc gives up
      serving on any error but EINTR/EAGAIN, EMFILE included); by default the server
      stops serving, as rpyc's; return to accept again;
    - ``hand_off(sock)``: an accepted socket, to be served; by default
      ``serve_in_thread(sock)`` (rpyc's thread per connection: it authenticates, then
      serves); ``drop(sock)`` closes one not to be served;
    - ``channel(stream)``: the RPyC ``Channel`` a connection reads and writes its frames through;
    - ``keep_clients``: when true, ``close`` leaves open connections alone.
    """
    if "rpyc_server" not in _bases:
        from rpyc.core.channel import Channel
        from rpyc.core.stream import SocketStream
        from rpyc.utils.server import ThreadedServer

        class HookedServer(ThreadedServer):  # type: ignore[misc]
            keep_clients = False

            def accept(self) -> None:
                try:
                    super().accept()
                except EOFError:
                    if not self.active:
                        raise  # closed: the end of start()'s loop
                    self.accept_failed()

            def accept_failed(self) -> None:
                raise EOFError

            def _accept_method(self, sock: Any) -> None:
                self.hand_off(sock)

            def hand_off(self, sock: Any) -> None:
                self.serve_in_thread(sock)

            def serve_in_thread(self, sock: Any) -> None:
                ThreadedServer._accept_method(self, sock)

            def drop(self, sock: Any) -> None:
                self.clients.discard(sock)
                sock.close()

            def channel(self, stream: Any) -> Any:
                return Channel(stream)

            def _serve_client(self, sock: Any, credentials: Any) -> None:
                try:
                    endpoints = (sock.getsockname(), sock.getpeername())
                except OSError:  # the peer is gone already: served (and ended) as rpyc would
                    endpoints = None
                config = dict(self.protocol_config, credentials=credentials, endpoints=endpoints,
                              logger=self.logger)
                conn = self.service._connect(self.channel(SocketStream(sock)), config)
                self._handle_connection(conn)

            def close(self) -> None:
                if self.keep_clients:
                    forget_clients(self)
                super().close()

        _bases["rpyc_server"] = HookedServer
    return _bases["rpyc_server"]
