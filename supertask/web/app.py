"""The ASGI application: pages (:mod:`supertask.web.pages`) and the JSON API
(:mod:`supertask.web.api`) over one store, behind the gate of :mod:`supertask.web.auth`.

Handlers are plain functions (Starlette runs them in its worker threads, as the store
is synchronous); what they raise is mapped to an HTTP status here: a job, run or
namespace the viewer cannot see 404, bad input 400, a scope too small 403, no token
401 (an API path) or the login page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from supertask.errors import JobNotFound, RunNotFound, SupertaskError, UsageError
from supertask.store.base import Store
from supertask.web.actions import Conflict, Forbidden
from supertask.web.auth import Gate, WrongHost
from supertask.web.request import CsrfMissing, TooLarge, Unauthorized

HERE = Path(__file__).parent


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, status: int, message: str) -> Response:
    if _is_api(request) or request.headers.get("hx-request"):
        return JSONResponse({"error": message, "status": status}, status_code=status)
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, "error.html", {"status": status, "message": message,
                                                              "viewer": None, "csrf": ""}, status_code=status)


async def _unauthorized(request: Request, exc: Exception) -> Response:
    if _is_api(request):
        return JSONResponse({"error": str(exc), "status": 401}, status_code=401,
                            headers={"WWW-Authenticate": 'Bearer realm="supertask"'})
    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(request, 404, str(exc).strip("'\""))


async def _bad(request: Request, exc: Exception) -> Response:
    return _error(request, 400, str(exc))


async def _forbidden(request: Request, exc: Exception) -> Response:
    return _error(request, 403, str(exc))


async def _conflict(request: Request, exc: Exception) -> Response:
    return _error(request, 409, str(exc))


async def _too_large(request: Request, exc: Exception) -> Response:
    return _error(request, 413, str(exc))


async def _http(request: Request, exc: Any) -> Response:
    return _error(request, exc.status_code, exc.detail)


def build_app(store: Store, *, user: str, title: str = "supertask", service: Any = None) -> Starlette:
    """The application over ``store``; ``user``: who acts while no token exists;
    ``service``: the scheduler beside it (``run --http``: an
    :class:`~supertask.web.actions.SchedulerLink`), which can end its own runs."""
    from starlette.exceptions import HTTPException

    from supertask.web import api, pages

    routes = [*pages.routes(), Mount("/api/v1", routes=api.routes()),
              Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
              Route("/healthz", lambda _r: JSONResponse({"ok": True}))]
    app = Starlette(routes=routes, exception_handlers={
        Unauthorized: _unauthorized, JobNotFound: _not_found, RunNotFound: _not_found, LookupError: _not_found,
        UsageError: _bad, SupertaskError: _bad, ValueError: _bad, Forbidden: _forbidden, CsrfMissing: _forbidden, WrongHost: _forbidden, Conflict: _conflict,
        TooLarge: _too_large,
        HTTPException: _http,
    })
    app.state.store = store
    app.state.service = service
    app.state.gate = Gate(store, user)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals["title"] = title
    from supertask.cli.output import zone_time
    from supertask.units import format_duration

    templates.env.filters["zone_time"] = lambda iso, zone=None: zone_time(iso, zone)
    templates.env.filters["duration"] = lambda s: "-" if s is None else format_duration(max(0.0, float(s)))
    app.state.templates = templates
    return app
