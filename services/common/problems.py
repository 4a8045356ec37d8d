"""Errors a service raises on purpose, and the one place that turns any error into problem+json.

    ServiceError                 every foreseeable failure; `status` is its HTTP status
     ├── BadInput                400  the request is well-formed but its values are not acceptable
     ├── Unauthorized            401  missing or wrong admin token
     ├── Unprocessable           422  a value the route parses itself is malformed
     ├── NotFound                404  no such resource
     ├── Gone                    410  the resource ran out (an empty gift-code pool)
     ├── OverLimit               429  a capacity limit; carries Retry-After
     ├── DependencyUnavailable   503  Redis, MySQL or a peer did not answer
     └── DeadlineExceeded        504  the caller's deadline passed

Validation errors from FastAPI become 422 and starlette's HTTP errors keep their status (a 405
lists every method the path takes in `Allow`). A Redis or MySQL connection failure or timeout
that a route did not handle itself is a 503. Anything unforeseen is caught by the request-context
middleware (requestctx.py): a 500 problem naming the request id, the stack trace in the log only.

The OpenAPI document says the same: every error a route declares (`problem_responses(...)`), the
422 of its validation and the 429/503 any route may answer are `application/problem+json` with
the `Problem` schema (`install_handlers` rewrites FastAPI's generated document).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from services.common.logs import request_id_var
from services.common.responses import ProblemResponse
from services.common.store_errors import STORE_UNAVAILABLE


class ServiceError(Exception):
    status = 500

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class BadInput(ServiceError):
    status = 400


class Unauthorized(ServiceError):
    status = 401


class Unprocessable(ServiceError):
    status = 422


class NotFound(ServiceError):
    status = 404


class Gone(ServiceError):
    status = 410


class OverLimit(ServiceError):
    status = 429

    def __init__(self, detail: str, *, retry_after_s: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_s))})


class DependencyUnavailable(ServiceError):
    status = 503


class DeadlineExceeded(ServiceError):
    status = 504


def problem(
    status: int,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    title = HTTPStatus(status).phrase
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    return ProblemResponse(body, status_code=status, headers=headers)


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "an RFC 9457 problem document",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {},
    },
}
_PROBLEM_CONTENT = {
    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
}
# Answers any route may give: the in-flight cap (429) and a data store that did not answer (503).
ANY_ROUTE = (429, 503)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that answers these error statuses (problem+json)."""
    return {status: _problem_entry(status) for status in statuses}


def _problem_entry(status: int, description: str | None = None) -> dict[str, Any]:
    return {"description": description or HTTPStatus(status).phrase, "content": _PROBLEM_CONTENT}


def _document_problems(schema: dict[str, Any]) -> None:
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status in ANY_ROUTE:
                responses.setdefault(str(status), _problem_entry(status))
            if "requestBody" in operation:
                # A body that is not JSON at all: FastAPI's 400 "error parsing the body".
                responses.setdefault("400", _problem_entry(400, "the body is not JSON"))
            for code, entry in responses.items():
                if code[:1] == "2":
                    _drop_string_type(entry)
                # An error a route documents in another type (the banner's HTML 404 page) keeps
                # it; every other error is a problem document.
                if code[:1] in ("4", "5") and "text/html" not in entry.get("content", {}):
                    entry["content"] = _PROBLEM_CONTENT
                    if code == "422":
                        entry["description"] = "the request does not match the API"
    # FastAPI's own validation-error shapes are never sent (the 422 is a problem document).
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)


# A bound that is a setting: `Query(json_schema_extra={MAXIMUM_SETTING: "MAX_TIMEOUT_MS"})` puts
# the deployment's value into the document as `maximum`, so the schema states the real limit.
MAXIMUM_SETTING = "x-maximum-setting"


def _resolve_settings(node: Any, settings: Any) -> None:
    if isinstance(node, dict):
        name = node.pop(MAXIMUM_SETTING, None)
        if name is not None:
            node["maximum"] = getattr(settings, name)
        for value in node.values():
            _resolve_settings(value, settings)
    elif isinstance(node, list):
        for value in node:
            _resolve_settings(value, settings)


def _drop_string_type(entry: dict[str, Any]) -> None:
    """A success declared with `responses={200: {"model": ...}}` gets the model's schema merged
    over FastAPI's `{"type": "string"}` (our response class is not a JSONResponse): the model's."""
    for media in entry.get("content", {}).values():
        schema = media.get("schema", {})
        if "type" in schema and ("$ref" in schema or "anyOf" in schema):
            del schema["type"]


def _install_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _document_problems(schema)
            _resolve_settings(schema, getattr(app.state, "settings", None))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _allowed_methods(request: Request) -> str:
    methods: set[str] = set()
    path = request.scope["path"]
    pending = list(request.app.router.routes)
    while pending:
        route = pending.pop()
        # An included router (FastAPI keeps it whole): its own routes.
        pending.extend(getattr(getattr(route, "original_router", route), "routes", None) or ())
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _service_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return problem(exc.status, exc.detail, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # starlette names the methods of the first route of the path only.
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return problem(exc.status_code, detail, headers=headers)


async def _store_unavailable(_: Request, exc: Exception) -> Response:
    return problem(503, f"a data store did not answer ({type(exc).__name__})")


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # Only location, message and type: echoing the rejected input back could reflect megabytes.
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    return problem(422, "the request does not match the API", errors=errors)


def install_handlers(app: FastAPI) -> None:
    _install_openapi(app)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for store_error in STORE_UNAVAILABLE:
        app.add_exception_handler(store_error, _store_unavailable)
