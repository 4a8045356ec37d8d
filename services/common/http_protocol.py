"""The workers' HTTP protocol: uvicorn's httptools one, but a request it cannot parse (a header
value with a control character, which nginx passes on) is answered with a problem document like
every other error, not uvicorn's plain-text "Invalid HTTP request received.", and uvicorn's own
access line is off at the source.

The kit writes one access line per request with its request id (requestctx.py), and logs.py
disables the `uvicorn.access` logger. Disabling the logger is not enough: uvicorn decides once
per connection from `hasHandlers()` (true through the root logger) and then formats the client
address and path of every request before the disabled logger drops them, about 6 % of a fast
request's CPU in a profile of the aggregator.

`gunicorn_conf.py` names the worker below; the worker hands uvicorn the protocol class.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

_BODY = orjson.dumps(
    {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": "the request is not valid HTTP (a malformed request line or header)",
    }
)


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False

    def send_400_response(self, msg: str) -> None:
        # `msg` is uvicorn's own text; the client gets the same meaning as a problem document.
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head += [
            b"content-type: application/problem+json\r\n",
            b"content-length: " + str(len(_BODY)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + _BODY)
        self.transport.close()


class ProblemUvicornWorker(UvicornWorker):  # type: ignore[misc]  # uvicorn-worker has no types
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS,
        "http": ProblemHttpToolsProtocol,
    }
