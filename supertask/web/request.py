"""One request's facts: the token it gives, who it is from, who is asking (a
:class:`~supertask.web.data.Viewer`), and the checks of a state-changing request."""

from __future__ import annotations

import json

from starlette.requests import Request

from supertask.errors import UsageError
from supertask.store.base import Store
from supertask.web.auth import COOKIE, Gate
from supertask.web.data import Viewer

MAX_BODY = 64 * 1024


class Unauthorized(Exception):
    """No token, or one the store does not know (or has revoked)."""


class TooLarge(Exception):
    """A body over :data:`MAX_BODY` (413)."""


class CsrfMissing(Exception):
    """A state-changing request riding on a cookie without the page's CSRF token."""


def secret_of(request: Request) -> tuple[str | None, bool]:
    """The token a request gives and whether it came as a bearer header."""
    header = request.headers.get("authorization", "")
    if header:
        kind, _, value = header.partition(" ")
        if kind.lower() != "bearer" or not value.strip():
            raise UsageError("Authorization: expected 'Bearer TOKEN'")
        return value.strip(), True
    return request.cookies.get(COOKIE) or None, False


def peer(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def viewer_of(request: Request) -> Viewer:
    gate: Gate = request.app.state.gate
    secret, _bearer = secret_of(request)
    viewer = gate.viewer(secret, peer(request), request.headers.get("host", ""))
    if viewer is None:
        raise Unauthorized("this server needs a token: Authorization: Bearer TOKEN, or log in at /login")
    return viewer


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, read no further than ``limit`` bytes whatever the header says (TooLarge past it)."""
    length = request.headers.get("content-length") or "0"
    if not length.isdigit():
        raise UsageError(f"Content-Length {length!r}: expected a number of bytes")
    if int(length) > limit:
        raise TooLarge(f"a body of {int(length)} bytes: at most {limit} are taken")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"a body of more than {limit} bytes: at most {limit} are taken")
    return body


async def changing(request: Request) -> Viewer:
    """The viewer of a state-changing request, its body checked (size, JSON) and its CSRF token."""
    body = await read_body(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    form: dict[str, str] = {}
    request.state.json = None
    if kind == "application/json" and body:
        try:
            request.state.json = json.loads(body)
        except ValueError:
            raise UsageError("the body is not JSON") from None
    elif kind == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qsl

        form = dict(parse_qsl(body.decode("utf-8", "replace")))
    request.state.form = form
    viewer = viewer_of(request)
    secret, bearer = secret_of(request)
    gate: Gate = request.app.state.gate
    if not bearer and kind != "application/json":
        if not gate.csrf_ok(secret, form.get("csrf") or request.headers.get("x-csrf-token")):
            raise CsrfMissing("this form needs the page's CSRF token: reload the page and try again")
    return viewer


def store_of(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


def int_param(request: Request, name: str, default: int | None = None) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{name}={text!r}: expected a whole number") from None


def count(request: Request, name: str, default: int, least: int | None = None) -> int:
    """A whole-number parameter (``default`` when absent); below ``least``: bad input."""
    value = int_param(request, name, default)
    assert value is not None
    if least is not None and value < least:
        raise UsageError(f"{name}={value}: at least {least}")
    return value


def run_filters(request: Request) -> dict[str, str | None]:
    """The runs page's filters in the query (``ns``, ``job``, ``status``, ``q``, ``since``,
    ``until``) as :func:`supertask.web.data.runs` takes them; an empty one is none."""
    q = request.query_params
    return {"namespace": q.get("ns") or None, "job": q.get("job") or None, "status": q.get("status") or None,
            "search": q.get("q") or None, "since": q.get("since") or None, "until": q.get("until") or None}
