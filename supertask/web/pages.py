"""The pages: server-rendered (Jinja2, templates/), buttons as htmx posts, a run's log
streamed by server-sent events while it runs. Every page's state is in its URL
(filters, the page of runs), so a link is shareable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from supertask.log import get_logger
from supertask.web import actions, data
from supertask.web.auth import COOKIE, Gate
from supertask.web.request import (
    changing,
    count,
    int_param,
    peer,
    read_body,
    run_filters,
    secret_of,
    store_of,
    viewer_of,
)

log = get_logger("supertask.web")
LOG_POLL = 0.2
JOBS_PAGE = 100
TIMELINE_BARS = 60


def _render(request: Request, name: str, viewer: data.Viewer, **context: Any) -> Response:
    gate: Gate = request.app.state.gate
    secret, _ = secret_of(request)
    return request.app.state.templates.TemplateResponse(  # type: ignore[no-any-return]
        request, name, {"viewer": viewer, "csrf": gate.csrf(secret), "path": request.url.path, **context})


def overview(request: Request) -> Response:
    viewer = viewer_of(request)
    return _render(request, "overview.html", viewer, data=data.overview(store_of(request), viewer))


def jobs(request: Request) -> Response:
    viewer = viewer_of(request)
    q = request.query_params
    ns, search = q.get("ns") or None, q.get("q") or None
    rows = data.jobs(store_of(request), viewer, ns, search=search, after=q.get("after") or None, limit=JOBS_PAGE)
    shown = {k: v for k, v in (("ns", ns), ("q", search)) if v}
    more = ("/jobs?" + urlencode({**shown, "after": f"{rows[-1]['namespace']}/{rows[-1]['name']}"})
            if len(rows) == JOBS_PAGE else None)
    return _render(request, "jobs.html", viewer, jobs=rows, ns=ns, search=search, more=more,
                   namespaces=viewer.namespaces(store_of(request)))


def job(request: Request) -> Response:
    viewer = viewer_of(request)
    p = request.path_params
    return _render(request, "job.html", viewer, job=data.job(store_of(request), viewer, p["ns"], p["job"]))


def runs(request: Request) -> Response:
    viewer = viewer_of(request)
    q = request.query_params
    filters = {k: q.get(k) or None for k in ("ns", "job", "status", "q", "since", "until")}  # as the URL has them
    chosen = run_filters(request)
    limit = count(request, "limit", 50)
    rows = data.runs(store_of(request), viewer, **chosen, before=int_param(request, "before"), limit=limit)
    shown = {k: v for k, v in filters.items() if v}
    more = "/runs?" + urlencode({**shown, "before": rows[-1]["id"]}) if len(rows) == limit else None
    strip = data.timeline(store_of(request), viewer, **chosen, buckets=TIMELINE_BARS)
    for bar in strip["buckets"]:  # a bar links to its runs: the same filters, its slice of time
        bar["href"] = "/runs?" + urlencode({**shown, "since": bar["from"], "until": bar["to"]})
    return _render(request, "runs.html", viewer, runs=rows, filters=filters, more=more, statuses=data.STATUSES,
                   timeline=strip, hours=data.TIMELINE_HOURS, namespaces=viewer.namespaces(store_of(request)))


def upcoming(request: Request) -> Response:
    viewer = viewer_of(request)
    return _render(request, "upcoming.html", viewer, fires=data.upcoming(store_of(request), viewer, 24))


def run(request: Request) -> Response:
    viewer = viewer_of(request)
    run_id = request.path_params["run_id"]
    found = data.run(store_of(request), viewer, run_id)
    first = data.read_log(store_of(request), viewer, run_id, 0)
    return _render(request, "run.html", viewer, run=found["run"], attempts=found["attempts"], log=first,
                   can_kill=request.app.state.service is not None and found["run"]["status"] == "running")


def audit(request: Request) -> Response:
    viewer = viewer_of(request)
    q = request.query_params
    rows = data.audit(store_of(request), viewer, namespace=q.get("ns") or None, job=q.get("job") or None,
                      before=int_param(request, "before"))
    more = "/audit?" + urlencode({"before": rows[-1]["id"]}) if len(rows) == 50 else None
    return _render(request, "audit.html", viewer, rows=rows, more=more)


async def log_events(request: Request) -> Response:
    """``text/event-stream`` of a run's log: a ``log`` event per chunk, ``end`` when it ended."""
    viewer = viewer_of(request)
    st, run_id = store_of(request), request.path_params["run_id"]
    offset = count(request, "offset", 0, least=0)
    await run_in_threadpool(data.run, st, viewer, run_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        import anyio

        nonlocal offset
        while not await request.is_disconnected():
            chunk = await run_in_threadpool(data.read_log, st, viewer, run_id, offset)
            if chunk["data"]:
                yield f"event: log\ndata: {json.dumps(chunk['data'])}\n\n"
            offset = chunk["offset"]
            if chunk["finished"]:
                yield f"event: end\ndata: {json.dumps({'status': chunk['status'], 'exit_code': chunk['exit_code']})}\n\n"
                return
            if not chunk["data"]:
                await anyio.sleep(LOG_POLL)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


async def act(request: Request) -> Response:
    """A button: run now, pause, resume (an htmx post gets the new state as a fragment)."""
    viewer = await changing(request)
    p, st = request.path_params, store_of(request)
    action, form = p["action"], request.state.form if p["action"] == "edit" else {}
    values = {key: form[key] for key in ("when", "timezone") if form.get(key)}
    result = await run_in_threadpool(actions.perform, st, viewer, p["ns"], p["job"], action, values)
    if action == "trigger":
        message, target = f"queued run {result['run_id']}", f"/runs/{result['run_id']}"
    else:
        message = {"pause": "paused", "resume": "resumed", "edit": "changed"}[action]
        target = f"/jobs/{p['ns']}/{p['job']}"
    if request.headers.get("hx-request"):
        return Response(f'<span class="done">{message} — <a href="{target}">open</a></span>',
                        media_type="text/html", headers={"HX-Refresh": "false"})
    return RedirectResponse(target, status_code=303)


async def kill(request: Request) -> Response:
    viewer = await changing(request)
    run_id = request.path_params["run_id"]
    await run_in_threadpool(actions.kill, store_of(request), viewer, request.app.state.service, run_id)
    if request.headers.get("hx-request"):
        return Response('<span class="done">ending</span>', media_type="text/html")
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


async def login(request: Request) -> Response:
    gate: Gate = request.app.state.gate
    target = request.query_params.get("next") or "/"
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    if request.method == "GET":
        return request.app.state.templates.TemplateResponse(  # type: ignore[no-any-return]
            request, "login.html", {"viewer": None, "csrf": "", "next": target, "message": None})
    client = peer(request)
    wait = gate.login_blocked(client)
    if wait > 0:
        log.warning("login refused", peer=client, reason="too many failed logins", retry_in=round(wait))
        return Response(f"too many failed logins: try again in {wait:.0f}s", status_code=429,
                        headers={"Retry-After": str(int(wait) + 1)})
    body = (await read_body(request, 4096)).decode("utf-8", "replace")
    from urllib.parse import parse_qsl

    secret = dict(parse_qsl(body)).get("token", "").strip()
    token = await run_in_threadpool(gate.lookup, secret) if secret else None
    if token is None:
        gate.login_failed(client)
        log.warning("login failed", peer=client, reason="unknown or revoked token" if secret else "no token given")
        return request.app.state.templates.TemplateResponse(  # type: ignore[no-any-return]
            request, "login.html", {"viewer": None, "csrf": "", "next": target,
                                    "message": "unknown or revoked token"}, status_code=401)
    log.info("login", peer=client, token=token.name)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, secret, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        path="/")
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def routes() -> list[Route]:
    return [
        Route("/", overview),
        Route("/jobs", jobs),
        Route("/jobs/{ns}/{job}", job),
        Route("/jobs/{ns}/{job}/{action}", act, methods=["POST"]),
        Route("/runs", runs),
        Route("/upcoming", upcoming),
        Route("/runs/{run_id:int}", run),
        Route("/runs/{run_id:int}/kill", kill, methods=["POST"]),
        Route("/events/runs/{run_id:int}/log", log_events),
        Route("/audit", audit),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
