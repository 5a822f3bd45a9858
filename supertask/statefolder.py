"""The state folder is trusted only when it is ours, as OpenSSH (StrictModes) and cron
(its spool) trust theirs.

- The folder, every folder above it and every folder in it that supertask writes to
  must belong to the user supertask runs as (or root) and must not be writable by
  anyone else: not by all (a sticky folder of root's such as /tmp, or a tmpfs, may be
  above it or in it, not be it), not by a group other than the user's own. Otherwise the command stops (exit 2) and
  says what to fix; nothing is read from or written to it. A folder owned by another
  user could hand supertask a token, a store or symlinks of that user's choosing.
- What supertask makes there is private whatever the umask: folders 0700, files 0600
  (the store, run logs, the token, sockets, boot marks).
- Files are opened without following symlinks (``O_NOFOLLOW``) and created exclusively
  (``O_EXCL``) where they are new; a file found in their place that is not ours, or
  has other names (hard links), is refused.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from supertask.errors import UsageError

#: Folders checked in this process (a run's log folder is checked once, not per run).
_checked: set[str] = set()


class UnsafeStateFolder(UsageError):
    """A state folder (or a folder in or above it) that others could write to."""

    def __init__(self, path: Path | str, why: str, fix: str):
        super().__init__(f"refusing to use {path}: {why}; {fix} (or point --home / SUPERTASK_HOME elsewhere)")
        self.path, self.why, self.fix = str(path), why, fix


def check_namespace(namespace: str, option: str = "--ns") -> str:
    """A namespace given on the command line: it becomes folder and file names in the
    state folder (logs/, control/, boot/), so it follows the timetable's name rule."""
    from supertask.model import name_problem

    problem = name_problem(namespace, "namespace")
    if problem:
        raise UsageError(f"{option} {problem}")
    return namespace


def _owner_problem(path: Path | str, st: os.stat_result, *, above: bool) -> UnsafeStateFolder | None:
    """Why a folder (``above``: one above the state folder) is not safe to write in."""
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        return UnsafeStateFolder(path, f"it belongs to another user (uid {st.st_uid})",
                                 f"chown {_user(me)} {path}")
    mode = stat.S_IMODE(st.st_mode)
    if above and mode & stat.S_ISVTX and st.st_uid == 0:
        return None  # /tmp: others write in it, but cannot rename or remove what is ours
    if mode & 0o002:
        return UnsafeStateFolder(path, f"anyone can write to it (mode {mode:o})", f"chmod o-w {path}")
    if mode & 0o020 and st.st_gid != os.getegid():
        return UnsafeStateFolder(path, f"group {st.st_gid} can write to it (mode {mode:o})", f"chmod g-w {path}")
    return None


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return str(uid)


def secure_home(home: Path, *, create: bool = True) -> Path:
    """Check ``home`` and the folders above it; with ``create``, make it (0700, and any
    missing folder above it 0700) when it is not there. Raises :class:`UnsafeStateFolder`
    (exit 2)."""
    home = Path(os.path.realpath(home))
    key = str(home)
    if key in _checked:
        return home
    missing: list[Path] = []
    folder = home
    while True:
        try:
            st = os.lstat(folder)
            break
        except FileNotFoundError:
            missing.append(folder)
            folder = folder.parent
    for above in [*reversed(folder.parents), folder]:
        st = os.lstat(above)
        if not stat.S_ISDIR(st.st_mode):  # realpath resolved every symlink that existed
            raise UnsafeStateFolder(above, "it is not a folder", f"remove {above} or choose another folder")
        problem = _owner_problem(above, st, above=above != home)
        if problem:
            raise problem
    if not create:
        return home
    for made in reversed(missing):
        try:
            os.mkdir(made, 0o700)
        except FileExistsError:  # made meanwhile: check it as any other
            pass
        check_folder(made, above=made != home)
    _checked.add(key)
    return home


def check_folder(path: Path, *, above: bool = False) -> None:
    """``path`` is a folder that is ours and only ours to write (``above``: or a sticky
    one of root's). A symlink counts as the folder it points to when the link itself is
    ours or root's (logs/ on another disk): in a state folder only we can write to, no
    one else could have made it."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        if st.st_uid not in (os.geteuid(), 0):
            raise UnsafeStateFolder(path, f"it is a symlink of another user's (uid {st.st_uid})", f"remove {path}")
        st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeStateFolder(path, "it is not a folder", f"remove {path}")
    problem = _owner_problem(path, st, above=above)
    if problem:
        raise problem


def private_dir(path: Path, home: Path) -> Path:
    """``path`` (a folder inside the checked ``home``) made 0700 where missing, each
    folder from ``home`` down to it checked once per process."""
    key = str(path)
    if key in _checked:
        return path
    home = secure_home(home)
    relative = Path(os.path.relpath(path, home))
    if relative.parts[:1] == ("..",) or relative.is_absolute():
        raise UnsafeStateFolder(path, f"it is outside the state folder {home}", "use a name without '/' or '..'")
    folder = Path(home)
    for part in relative.parts:
        if part == ".":
            continue
        folder = folder / part
        if str(folder) in _checked:
            continue
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
        # a sticky folder of root's (a tmpfs mounted for logs/) is fine inside too: what we
        # make in it is checked in turn, and no one else can rename or remove it
        check_folder(folder, above=True)
        _checked.add(str(folder))
    return path


def open_private(path: Path | str, flags: int = os.O_WRONLY | os.O_APPEND) -> int:
    """A descriptor of ``path``: created 0600 and exclusively when new, else the file that
    is there if it is a regular file of ours with no other name; never through a symlink."""
    base = flags | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, base | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    fd = os.open(path, base)  # ELOOP on a symlink
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_nlink != 1:
            raise PermissionError(13, "not a private file of ours (another owner, a hard link or not a file)",
                                  str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def private_file(path: Path | str) -> None:
    """Make ``path`` an empty 0600 file if it is not there (for SQLite, which then keeps
    that mode for its journal files); refuse a symlink or a file that is not ours."""
    os.close(open_private(path, os.O_RDONLY))


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: written to a new private file beside it, then renamed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = open_private(tmp, os.O_WRONLY)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def looser_than_private(home: Path, limit: int = 2000) -> list[str]:
    """What in ``home`` others may read or write (for ``doctor``): the folder, its
    files and folders, and the folders and files one level inside those (at most ``limit``
    entries looked at)."""
    found: list[str] = []
    seen = 0

    def look(path: Path, depth: int) -> None:
        nonlocal seen
        if seen >= limit:
            return
        seen += 1
        try:
            st = os.lstat(path)
        except OSError:
            return
        if stat.S_ISLNK(st.st_mode):
            found.append(f"{path} (a symlink)")
            return
        if stat.S_IMODE(st.st_mode) & 0o077:
            found.append(f"{path} (mode {stat.S_IMODE(st.st_mode):o})")
        if stat.S_ISDIR(st.st_mode) and depth < 3:
            try:
                children = sorted(os.listdir(path))
            except OSError:
                return
            for child in children:
                look(path / child, depth + 1)

    look(Path(home), 0)
    return found
