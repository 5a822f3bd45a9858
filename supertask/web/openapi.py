"""The OpenAPI 3.1 description of ``/api/v1`` (served at ``/api/v1/openapi.json``)."""

from __future__ import annotations

from typing import Any

from supertask import __version__

_NS = {"name": "ns", "in": "path", "required": True, "schema": {"type": "string"}}
_JOB = {"name": "job", "in": "path", "required": True, "schema": {"type": "string"}}
_RUN = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "integer"}}


def _q(name: str, kind: str, text: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind}, "description": text}


def _get(summary: str, *params: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": list(params),
                    "responses": {"200": {"description": "OK (JSON)"}, "401": {"description": "a token is needed"},
                                  "404": {"description": "not there, or in a namespace the token does not see"}}}}


def _post(summary: str) -> dict[str, Any]:
    return {"post": {"summary": summary, "parameters": [_NS, _JOB],
                     "responses": {"200": {"description": "the job (as list-jobs --json)"},
                                   "202": {"description": "a run queued (trigger)"},
                                   "403": {"description": "the token's scope does not allow it"},
                                   "404": {"description": "no such job the token sees"}}}}


def document() -> dict[str, Any]:
    filters = (_q("ns", "string", "namespace"), _q("job", "string", "job"),  # the runs page's
               _q("status", "string", "statuses, comma-separated"), _q("q", "string", "a part of the job's name"),
               _q("since", "string", "scheduled at or after: ISO time or an age (24h)"),
               _q("until", "string", "scheduled before: ISO time or an age"))
    return {
        "openapi": "3.1.0",
        "info": {"title": "supertask", "version": __version__,
                 "description": "The dashboard's API: the same JSON as the CLI's --json. Authenticate with "
                                "`Authorization: Bearer TOKEN` (supertask tokens create) once any token exists."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/overview": _get("Runs in flight, failures in the last 24 h, hosts"),
            "/api/v1/namespaces": _get("Namespaces (list-namespaces --json)"),
            "/api/v1/jobs": _get("Jobs (list-jobs --json) with schedule, fires, last",
                                 _q("ns", "string", "only this namespace")),
            "/api/v1/jobs/{ns}/{job}": _get("One job and its last runs", _NS, _JOB),
            "/api/v1/jobs/{ns}/{job}/trigger": _post("Run the job now (a manual run queued for a scheduler)"),
            "/api/v1/jobs/{ns}/{job}/pause": _post("Pause the job on every scheduler"),
            "/api/v1/jobs/{ns}/{job}/resume": _post("Resume the job"),
            "/api/v1/jobs/{ns}/{job}/edit": _post('Change timetable keys (admin): body {"set": {"when": "0 4 * * *"}}, '
                                                  "each value as `jobs edit --set KEY=VALUE` takes it"),
            "/api/v1/runs": _get("Runs newest first (history --json)", *filters,
                                 _q("before", "integer", "only ids below this (the next page)"),
                                 _q("limit", "integer", "1-500, default 50")),
            "/api/v1/runs/timeline": _get("The runs a filter selects, counted by outcome in equal slices of its time "
                                          "range (without since: the 24 hours before until or now)", *filters,
                                          _q("buckets", "integer", "1-500, default 60")),
            "/api/v1/upcoming": _get("Fires of the next hours, soonest first", _q("hours", "integer", "1-168, default 24")),
            "/api/v1/runs/{run_id}": _get("A run and the attempts of its fire", _RUN),
            "/api/v1/runs/{run_id}/log": _get("Up to 64 KiB of a run's log from offset", _RUN,
                                              _q("offset", "integer", "byte offset")),
            "/api/v1/runs/{run_id}/kill": {"post": {
                "summary": "End a run in flight (run scope), when the scheduler beside this server runs it",
                "parameters": [_RUN], "responses": {"200": {"description": "ending"},
                                                    "409": {"description": "not run by this server's scheduler"}}}},
            "/api/v1/hosts": _get("Schedulers sharing the store (hosts --json)"),
            "/api/v1/audit": _get("Audit rows newest first (audit --json)", _q("ns", "string", "namespace"),
                                  _q("job", "string", "job"), _q("before", "integer", "next page"),
                                  _q("limit", "integer", "1-500")),
        },
    }
