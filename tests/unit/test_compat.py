"""What supertask.compat relies on in its dependencies' internals, checked against the
installed versions: a Python, APScheduler or RPyC upgrade that changes one fails here, by name.
``make test-pythons`` runs these on every Python the package claims (3.10 to 3.13)."""

from __future__ import annotations

import inspect
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from supertask import compat

UTC = timezone.utc
T0 = datetime(2026, 1, 10, 10, 0, tzinfo=UTC)

# -- CPython: Popen._execute_child ------------------------------------------------------------

_EXECUTE_CHILD = [
    "self", "args", "executable", "preexec_fn", "close_fds", "pass_fds", "cwd", "env", "startupinfo",
    "creationflags", "shell", "p2cread", "p2cwrite", "c2pread", "c2pwrite", "errread", "errwrite",
    "restore_signals", "gid", "gids", "uid", "umask", "start_new_session",
]


def test_popen_execute_child_has_the_parameters_spawned_popen_takes():
    expected = _EXECUTE_CHILD + (["process_group"] if sys.version_info >= (3, 11) else [])
    assert list(inspect.signature(subprocess.Popen._execute_child).parameters) == expected
    ours = list(inspect.signature(compat.SpawnedPopen._execute_child).parameters)
    assert ours[:len(expected)] == expected, "SpawnedPopen._execute_child must take Popen's parameters in order"


def test_popen_internals_used_by_spawned_popen():
    params = list(inspect.signature(subprocess.Popen._close_pipe_fds).parameters)
    assert params == ["self", "p2cread", "p2cwrite", "c2pread", "c2pwrite", "errread", "errwrite"]
    assert subprocess.Popen._child_created is False  # a class default, set True once a child exists
    assert hasattr(os, "posix_spawn") and hasattr(os, "POSIX_SPAWN_DUP2")
    assert "setsid" in os.posix_spawn.__doc__ and "setsigdef" in os.posix_spawn.__doc__


@pytest.fixture
def spawns(monkeypatch):
    """The programs SpawnedPopen started itself (Popen's own way, to which it hands what
    it does not do, may use posix_spawn too: Python 3.13 does for a plain child)."""
    calls: list[str] = []
    real = os.posix_spawn
    own = subprocess.Popen._execute_child
    handed_on = threading.local()

    def counting(path, *args, **kwargs):
        if not getattr(handed_on, "active", False):
            calls.append(path)
        return real(path, *args, **kwargs)

    def popen_own(self, *args, **kwargs):
        handed_on.active = True
        try:
            return own(self, *args, **kwargs)
        finally:
            handed_on.active = False

    monkeypatch.setattr(os, "posix_spawn", counting)
    monkeypatch.setattr(subprocess.Popen, "_execute_child", popen_own)
    return calls


@pytest.mark.parametrize(
    "argv, kwargs, spawned, out",
    [
        # the issue's case: "missing 1 required positional argument: 'process_group'" on 3.10
        (["/bin/echo", "hi"], {}, False, b"hi\n"),
        (["/bin/echo", "hi"], {"env": {}}, True, b"hi\n"),
        (["/bin/sh", "-c", "echo $X"], {"env": {"X": "x"}, "start_new_session": True}, True, b"x\n"),
        # what posix_spawn does not do goes to Popen's own way, with the same outcome
        (["/bin/pwd"], {"env": {}, "cwd": "/"}, False, b"/\n"),
        (["echo", "bare"], {"env": {"PATH": "/bin:/usr/bin"}}, False, b"bare\n"),
        (["/bin/sh", "-c", "umask"], {"env": {}, "umask": 0o27}, False, b"0027\n"),
        ("/bin/true", {"env": {}}, False, b""),
    ],
)
def test_spawned_popen_runs_the_child(spawns, argv, kwargs, spawned, out):
    proc = compat.SpawnedPopen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
    stdout, stderr = proc.communicate(timeout=10)
    assert (proc.returncode, stdout, stderr) == (0, out, b"")
    assert bool(spawns) == spawned


def test_the_issue_case_goes_through_posix_spawn_with_an_environment(spawns):
    proc = compat.SpawnedPopen(["/bin/echo", "hi"], stdout=subprocess.PIPE, env=dict(os.environ))
    assert proc.communicate(timeout=10)[0] == b"hi\n"
    assert spawns == ["/bin/echo"]


def test_spawned_popen_starts_a_session_of_its_own(spawns):
    proc = compat.SpawnedPopen(["/bin/sleep", "30"], env={}, start_new_session=True)
    try:
        assert spawns == ["/bin/sleep"]
        assert os.getsid(proc.pid) == proc.pid and os.getpgid(proc.pid) == proc.pid
    finally:
        proc.kill()
        proc.wait(10)


def test_spawned_popen_gives_the_child_sigpipe_back():
    proc = compat.SpawnedPopen(["/bin/sh", "-c", "grep SigIgn /proc/self/status"], env={},
                               stdout=subprocess.PIPE)
    ignored = int(proc.communicate(timeout=10)[0].split()[1], 16)
    assert not ignored & (1 << (13 - 1)), "SIGPIPE must be at its default in the child"


def test_spawned_popen_missing_program_raises_and_leaks_no_descriptor():
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        compat.SpawnedPopen(["/nonexistent/program"], env={}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(os.listdir("/proc/self/fd")) == before


# -- APScheduler 3 ----------------------------------------------------------------------------


def test_scheduler_main_loop_calls_process_jobs_for_its_wait():
    assert list(inspect.signature(BaseScheduler._process_jobs).parameters) == ["self"]
    loop = inspect.getsource(BlockingScheduler._main_loop)
    assert "wait_seconds = self._process_jobs()" in loop and "self._event.wait(wait_seconds)" in loop
    assert BackgroundScheduler._main_loop is BlockingScheduler._main_loop


def test_scheduler_base_hands_each_wake_up_to_process_round():
    calls: list[float] = []
    woke = threading.Event()

    class Counting(compat.scheduler_base()):
        def process_round(self):
            calls.append(time.monotonic())
            woke.set()
            return None  # sleep until woken

    scheduler = Counting(jobstores={"default": MemoryJobStore()}, timezone=UTC)
    scheduler.start()
    try:
        assert woke.wait(5)
        woke.clear()
        scheduler.wakeup()
        assert woke.wait(5)
        assert len(calls) >= 2
    finally:
        scheduler.shutdown(wait=False)


def test_scheduler_attributes_a_round_uses():
    store = MemoryJobStore()
    scheduler = BackgroundScheduler(jobstores={"default": store}, timezone=UTC)
    assert compat.jobstores(scheduler) == {"default": store}
    lock = compat.jobstores_lock(scheduler)
    assert lock.acquire(timeout=1) and lock.acquire(timeout=1)  # re-entrant: add_job holds it too
    lock.release()
    lock.release()
    assert compat.jobstores_lock(None) is None
    assert isinstance(compat.scheduler_logger(scheduler), logging.Logger)


@pytest.mark.parametrize(
    "next_run, now, expected",
    [
        (T0, T0 - timedelta(seconds=1), []),
        (T0, T0, [T0]),
        (T0, T0 + timedelta(minutes=31), [T0, T0 + timedelta(minutes=15), T0 + timedelta(minutes=30)]),
        (None, T0, []),
    ],
)
def test_due_run_times(next_run, now, expected):
    job = Job.__new__(Job)
    job.next_run_time = next_run
    job.trigger = IntervalTrigger(minutes=15, start_date=T0, timezone=UTC)
    assert list(inspect.signature(Job._get_run_times).parameters) == ["self", "now"]
    assert compat.due_run_times(job, now) == expected


def test_set_next_run_time_and_make_job_bound_to_a_started_store():
    assert set(inspect.signature(BaseJobStore.start).parameters) == {"self", "scheduler", "alias"}
    scheduler = BackgroundScheduler(timezone=UTC)
    store = MemoryJobStore()
    store.start(scheduler, "default")
    assert isinstance(compat.plugin_logger(store), logging.Logger)
    trigger = IntervalTrigger(minutes=15, start_date=T0, timezone=UTC)
    fields = dict(id="ns/job", func="supertask.runs.runner:execute", trigger=trigger, executor="default",
                  args=("ns", "job"), kwargs={}, name="job", misfire_grace_time=None, coalesce=False,
                  max_instances=5, next_run_time=T0)
    job = compat.make_job(store, **fields)
    state = job.__getstate__()
    assert state["version"] == 1
    assert set(state) - {"version"} == set(fields), "Job's pickled state has other fields now"
    assert {k: state[k] for k in fields} == fields
    assert job._scheduler is scheduler and job._jobstore_alias == "default" and job.pending is False
    compat.set_next_run_time(job, T0 + timedelta(minutes=15))
    assert job.next_run_time == T0 + timedelta(minutes=15)
    with pytest.raises(TypeError):
        compat.set_next_run_time(job, object())  # validated as APScheduler does


def test_executor_base_needs_only_submit_job():
    assert BaseExecutor.__abstractmethods__ == frozenset({"_do_submit_job"})
    executor = compat.executor_base()()
    assert set(inspect.signature(BaseExecutor.start).parameters) == {"self", "scheduler", "alias"}
    executor.start(BackgroundScheduler(timezone=UTC), "default")
    assert isinstance(compat.plugin_logger(executor), logging.Logger)


# -- RPyC 6 -----------------------------------------------------------------------------------


def test_rpyc_server_listens_before_start_and_closes_what_clients_holds():
    import socket

    import rpyc
    from rpyc.utils.server import ThreadedServer

    assert list(inspect.signature(ThreadedServer._listen).parameters) == ["self"]
    server = ThreadedServer(rpyc.VoidService, hostname="127.0.0.1", port=0)
    try:
        compat.listen_now(server)
        assert server.port != 0
        peer = socket.create_connection(("127.0.0.1", server.port), timeout=5)  # accepted into the backlog
        peer.close()
        assert server.clients == set()
        held, kept = socket.socketpair()
        server.clients.add(held)
        compat.forget_clients(server)
        server.close()
        assert held.fileno() != -1, "close() must leave connections no longer in clients"
        held.close()
        kept.close()
    finally:
        server.close()


def test_rpyc_server_close_ends_the_connections_in_clients():
    import socket

    import rpyc
    from rpyc.utils.server import ThreadedServer

    server = ThreadedServer(rpyc.VoidService, hostname="127.0.0.1", port=0)
    held, kept = socket.socketpair()
    server.clients.add(held)
    server.close()
    assert held.fileno() == -1  # what forget_clients keeps from happening
    kept.close()


def test_rpyc_server_steps_the_hooks_replace():
    from rpyc.core.protocol import Connection
    from rpyc.core.service import Service
    from rpyc.utils.server import Server, ThreadedServer

    def params(fn):
        return list(inspect.signature(fn).parameters)

    assert params(Server.accept) == ["self"]
    assert params(ThreadedServer._accept_method) == ["self", "sock"]
    assert params(Server._serve_client) == ["self", "sock", "credentials"]
    assert params(Server._handle_connection) == ["self", "conn"]
    assert params(Service()._connect) == ["channel", "config"]
    start, accept = inspect.getsource(Server.start), inspect.getsource(Server.accept)
    assert "self.accept()" in start and "except EOFError" in start, "start() no longer ends on accept's EOFError"
    assert "raise EOFError()" in accept and "self._accept_method(sock)" in accept and "self.clients.add(sock)" in accept
    serve = inspect.getsource(Server._authenticate_and_serve_client)
    assert "self._serve_client(sock2, credentials)" in serve and "self.clients.discard(sock)" in serve
    assert "self.service._connect(Channel(SocketStream(sock)), config)" in inspect.getsource(Server._serve_client)
    assert "self._config" in inspect.getsource(Connection.__init__)


def test_rpyc_channel_frame_layout_bounded_channel_reads():
    from rpyc.core.channel import Channel

    assert Channel.FRAME_HEADER.size == 5 and Channel.FLUSHER == b"\n"
    assert "stream" in Channel.__slots__ and list(inspect.signature(Channel.recv).parameters) == ["self"]
    recv = inspect.getsource(Channel.recv)
    assert "self.FRAME_HEADER.unpack(header)" in recv and "len(self.FLUSHER)" in recv


def test_rpyc_server_base_hooks_serve_a_real_connection():
    import socket

    import rpyc
    from rpyc.core.channel import Channel

    seen: dict[str, object] = {}

    class Echo(rpyc.Service):
        def on_connect(self, conn):
            seen["who"] = compat.credentials(conn)

        def exposed_echo(self, text):
            return text

    class Counting(Channel):
        __slots__ = ()

        def recv(self):
            seen["frames"] = int(seen.get("frames", 0)) + 1
            return super().recv()

    class Hooked(compat.server_base()):
        def hand_off(self, sock):
            seen["handed"] = True
            self.serve_in_thread(sock)

        def channel(self, stream):
            return Counting(stream)

    server = Hooked(Echo, hostname="127.0.0.1", port=0, authenticator=lambda sock: (sock, "alice"),
                    protocol_config={"allow_public_attrs": False})
    compat.listen_now(server)
    serving = threading.Thread(target=server.start, daemon=True)
    serving.start()
    try:
        conn = rpyc.connect("127.0.0.1", server.port)
        assert conn.root.echo("hi") == "hi"
        conn.close()
        assert seen["who"] == "alice" and seen["handed"] is True and int(seen["frames"]) >= 1
        # a socket dropped before serving is closed and forgotten
        a, b = socket.socketpair()
        server.clients.add(a)
        server.drop(a)
        assert a.fileno() == -1 and a not in server.clients
        b.close()
    finally:
        server.close()
        serving.join(5)
    assert not serving.is_alive()


def test_rpyc_server_base_accept_failed_keeps_serving_while_open():
    import errno

    import rpyc

    failures: list[int] = []

    class Starved:
        def accept(self):
            raise OSError(errno.EMFILE, "Too many open files")

    class Hooked(compat.server_base()):
        def accept_failed(self):
            failures.append(1)

    server = Hooked(rpyc.VoidService, hostname="127.0.0.1", port=0)
    compat.listen_now(server)
    real, server.listener = server.listener, Starved()
    try:
        server.accept()  # rpyc raises EOFError here; the hook is called instead
        assert failures == [1]
        plain = compat.server_base()(rpyc.VoidService, hostname="127.0.0.1", port=0)
        compat.listen_now(plain)
        plain_real, plain.listener = plain.listener, Starved()
        with pytest.raises(EOFError):
            plain.accept()  # by default: as rpyc, the end of serving
        plain.listener = plain_real
        plain.close()
    finally:
        server.listener = real
        server.close()


def test_rpyc_server_base_close_keeps_clients_when_asked():
    import socket

    import rpyc

    server = compat.server_base()(rpyc.VoidService, hostname="127.0.0.1", port=0)
    held, kept = socket.socketpair()
    server.clients.add(held)
    server.keep_clients = True
    server.close()
    assert held.fileno() != -1
    held.close()
    kept.close()
