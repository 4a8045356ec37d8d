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

Validation errors from FastAPI become 422 and starlette's HTTP errors keep their status. A Redis
or MySQL connection failure or timeout that a route did not handle itself is a 503. Anything
unforeseen is caught by the request-context middleware (requestctx.py): a 500 problem naming the
request id, the stack trace in the log only.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pymysql.err import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from services.common.logs import request_id_var
from services.common.responses import ProblemResponse

# Failures of a data store's connection: the request may be retried, so 503 rather than 500.
STORE_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OperationalError,
    InterfaceError,
)


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


async def _service_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return problem(exc.status, exc.detail, headers=exc.headers)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
    return problem(exc.status_code, detail, headers=dict(exc.headers or {}))


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
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for store_error in STORE_ERRORS:
        app.add_exception_handler(store_error, _store_unavailable)
