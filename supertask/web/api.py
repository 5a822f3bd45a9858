"""``/api/v1/...``: the JSON API, each listing the shape of the CLI's ``--json`` for the
same thing (:mod:`supertask.web.data`); the OpenAPI description at
``/api/v1/openapi.json`` (:mod:`supertask.web.openapi`)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from supertask.web import actions, data
from supertask.web.request import changing, count, int_param, run_filters, store_of, viewer_of


def _json(value: Any) -> JSONResponse:
    return JSONResponse(value)


def overview(request: Request) -> JSONResponse:
    return _json(data.overview(store_of(request), viewer_of(request)))


def namespaces(request: Request) -> JSONResponse:
    return _json(data.namespaces(store_of(request), viewer_of(request)))


def jobs(request: Request) -> JSONResponse:
    q = request.query_params
    return _json(data.jobs(store_of(request), viewer_of(request), q.get("ns") or None, search=q.get("q") or None,
                           after=q.get("after") or None, limit=count(request, "limit", data.MAX_JOBS)))


def job(request: Request) -> JSONResponse:
    p = request.path_params
    return _json(data.job(store_of(request), viewer_of(request), p["ns"], p["job"]))


def runs(request: Request) -> JSONResponse:
    return _json(data.runs(store_of(request), viewer_of(request), **run_filters(request),
                           before=int_param(request, "before"), limit=count(request, "limit", 50)))


def timeline(request: Request) -> JSONResponse:
    return _json(data.timeline(store_of(request), viewer_of(request), **run_filters(request),
                               buckets=count(request, "buckets", 60)))


def upcoming(request: Request) -> JSONResponse:
    return _json(data.upcoming(store_of(request), viewer_of(request), float(count(request, "hours", 24))))


def run(request: Request) -> JSONResponse:
    return _json(data.run(store_of(request), viewer_of(request), request.path_params["run_id"]))


def log(request: Request) -> JSONResponse:
    return _json(data.read_log(store_of(request), viewer_of(request), request.path_params["run_id"],
                               count(request, "offset", 0, least=0)))


def hosts(request: Request) -> JSONResponse:
    return _json(data.overview(store_of(request), viewer_of(request))["hosts"])


def audit(request: Request) -> JSONResponse:
    q = request.query_params
    return _json(data.audit(store_of(request), viewer_of(request), namespace=q.get("ns") or None,
                            job=q.get("job") or None, before=int_param(request, "before"),
                            limit=count(request, "limit", 50)))


async def act(request: Request) -> JSONResponse:
    viewer = await changing(request)
    p, st = request.path_params, store_of(request)
    body = request.state.json if p["action"] == "edit" else None
    values = body.get("set") if isinstance(body, dict) else None
    result = await run_in_threadpool(actions.perform, st, viewer, p["ns"], p["job"], p["action"], values)
    return JSONResponse(result, status_code=202) if p["action"] == "trigger" else _json(result)


async def kill(request: Request) -> JSONResponse:
    viewer = await changing(request)
    return _json(await run_in_threadpool(actions.kill, store_of(request), viewer, request.app.state.service,
                                         request.path_params["run_id"]))


def openapi(request: Request) -> JSONResponse:
    from supertask.web.openapi import document

    return _json(document())


def routes() -> list[Route]:
    return [
        Route("/openapi.json", openapi),
        Route("/overview", overview),
        Route("/namespaces", namespaces),
        Route("/jobs", jobs),
        Route("/jobs/{ns}/{job}", job),
        Route("/jobs/{ns}/{job}/{action}", act, methods=["POST"]),
        Route("/runs", runs),
        Route("/runs/timeline", timeline),
        Route("/upcoming", upcoming),
        Route("/runs/{run_id:int}", run),
        Route("/runs/{run_id:int}/log", log),
        Route("/runs/{run_id:int}/kill", kill, methods=["POST"]),
        Route("/hosts", hosts),
        Route("/audit", audit),
    ]
