"""The workers' HTTP protocol: uvicorn's httptools one, but a request it cannot parse (a header
value with a control character, which nginx passes on) is answered with a problem document like
every other error, not uvicorn's plain-text "Invalid HTTP request received."

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
