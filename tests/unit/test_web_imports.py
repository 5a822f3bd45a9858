"""The web stack is imported only by the commands that serve it (issue 17): `--help`, a
one-shot run, a live `list-jobs` and the reading commands start without starlette,
uvicorn, jinja2 or supertask.web (their start-up figures stay as measured)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

WEB = ("supertask.web", "starlette", "uvicorn", "jinja2", "httpx")

PROBE = """
import json, os, sys
sys.argv = ["supertask", *json.loads(os.environ["ARGS"])]
try:
    from supertask.entry import main
    main()
except SystemExit:
    pass
finally:
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("starlette", "uvicorn", "jinja2", "httpx")
                    or m.startswith("supertask.web"))
    os.write(int(os.environ["FD"]), json.dumps(loaded).encode())
"""


@pytest.mark.parametrize("args", [
    ["--help"], ["run", "--", "cmd:true"], ["list-jobs"], ["list-jobs", "--json"], ["history"],
    ["tokens", "list"], ["audit"], ["jobs", "--help"], ["status"],
])
def test_commands_that_do_not_serve_never_import_the_web_stack(args: list[str], tmp_path: Path) -> None:
    import os

    read, write = os.pipe()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERTASK_")}
    env.update(SUPERTASK_HOME=str(tmp_path / "home"), ARGS=json.dumps(args), FD=str(write), COLUMNS="80")
    subprocess.run([sys.executable, "-c", PROBE], env=env, pass_fds=(write,), capture_output=True, timeout=120,
                   cwd=tmp_path)
    os.close(write)
    with os.fdopen(read) as fh:
        loaded = json.loads(fh.read())
    assert loaded == [], f"supertask {' '.join(args)} imported {loaded}"


def test_the_probe_sees_the_web_stack_where_it_is_imported(tmp_path: Path) -> None:
    """The check above can fail: `web --help` builds its command, importing none, but
    the app module imports starlette."""
    code = "import sys; import supertask.web.app; print(sorted({m.split('.')[0] for m in sys.modules} & {'starlette', 'jinja2'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.strip() == "['jinja2', 'starlette']"

