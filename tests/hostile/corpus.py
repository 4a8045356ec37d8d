"""Hostile requests, as raw bytes (so invalid UTF-8 and malformed framing reach the gateway as
sent), and what every answer must be: a JSON problem with a 4xx status, or the endpoint's
documented success; never a 5xx (the fan-out endpoints' documented 502/504 aside), never nginx's
or uvicorn's own HTML or text pages."""

from __future__ import annotations

import contextlib
import json
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # "{id}" is where a hostile id goes
    valid_id: str
    query: str = ""  # the attacked parameter, with a valid value: "days=7"
    json_body: bytes | None = None
    admin: bool = False
    fanout: bool = False  # may answer its documented 502/504
    success_types: tuple[str, ...] = ("application/json",)

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}" + (f"?{self.query}" if self.query else "")


ENDPOINTS = [
    Endpoint("POST", "/visits/{id}", "home"),
    Endpoint("GET", "/visits/{id}", "home"),
    Endpoint("GET", "/visits/{id}/daily", "home", query="days=7"),
    Endpoint("GET", "/campaigns/{id}", "1001", success_types=("text/html",)),
    Endpoint("GET", "/api/campaigns/{id}/banner", "1001"),
    Endpoint("GET", "/api/campaigns/{id}/banners", "1001", query="quarter=1"),
    Endpoint("GET", "/images/image_{id}.png", "10001", success_types=("image/",)),
    Endpoint(
        "POST", "/api/campaigns/{id}/gift-codes", "1001", json_body=b'{"count": 1}', admin=True
    ),
    Endpoint("POST", "/api/campaigns/{id}/gift-code", "1001"),
    Endpoint("GET", "/recommend/{id}", "1"),
    Endpoint("GET", "/batch-recommend", "", query="user_ids=1,2"),
    Endpoint(
        "POST", "/users/{id}/events", "1", json_body=b'{"type": "search", "category": "books"}'
    ),
    Endpoint("POST", "/invalidate-cache/{id}", "1", admin=True),
    Endpoint("GET", "/api/all", "", query="timeout=50", fanout=True),
    Endpoint("GET", "/api/first", "", query="timeout=50", fanout=True),
    Endpoint("GET", "/api/within-timeout", "", query="timeout=50", fanout=True),
    Endpoint("GET", "/api/smart", "", query="timeout=50", fanout=True),
    Endpoint("GET", "/api/page/{id}", "home", query="user_id=1&timeout=300", fanout=True),
]

# Ids that str.isdigit() takes and int() refuses, or int() takes though they are no ASCII
# number, overlong, past int64, and invalid UTF-8 (percent-encoded, then raw).
HOSTILE_IDS: dict[str, bytes] = {
    "superscript-two": b"%C2%B2",
    "circled-one": b"1%E2%91%A0",
    "arabic-indic-one": b"%D9%A1",
    "fullwidth-one": b"%EF%BC%91",
    "overlong-id": b"9" * 5000,
    "int64-overflow": str(2**63).encode(),
    "negative": b"-1",
    "invalid-utf8-encoded": b"%FF%FE%C3",
    "invalid-utf8-raw": b"\xff\xfe",
    "nul": b"%00",
}
HOSTILE_VALUES: dict[str, bytes] = {
    "superscript-two": b"%C2%B2",
    "circled-one": b"1,%E2%91%A0",
    "int64-overflow": str(2**63).encode(),
    "int-4300-digits": b"1" * 5000,
    "invalid-utf8-encoded": b"%FF",
    "invalid-utf8-raw": b"\xff",
    "empty": b"",
}
NESTED = b"[" * 10_000 + b"]" * 10_000


@dataclass(frozen=True)
class Hostile:
    """One hostile variation of an endpoint's valid request."""

    name: str
    path_id: bytes | None = None
    query_value: bytes | None = None
    repeat_query: bytes | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()
    content_type: bytes | None = None
    body: bytes | None = None
    expect: int | None = None  # the one status this input must get (nginx's limits)


def variants(endpoint: Endpoint) -> list[Hostile]:
    found: list[Hostile] = []
    if "{id}" in endpoint.path:
        found += [Hostile(f"id-{name}", path_id=raw) for name, raw in HOSTILE_IDS.items()]
    if endpoint.query:
        found += [Hostile(f"query-{n}", query_value=raw) for n, raw in HOSTILE_VALUES.items()]
        found.append(Hostile("query-repeated", repeat_query=b"%FF"))
    found += [
        Hostile("header-invalid-utf8", headers=((b"X-Request-ID", b"\xff\xfe<"),)),
        Hostile("idempotency-key-invalid-utf8", headers=((b"Idempotency-Key", b"\xff\xfe"),)),
        Hostile("authorization-invalid-utf8", headers=((b"Authorization", b"Bearer \xff"),)),
        Hostile("cookie-invalid-utf8", headers=((b"Cookie", b"qv=\xff\xfe; x=\x80"),)),
        Hostile("cookie-garbage", headers=((b"Cookie", b'qv="a;b"; ===; ;;qv=' + b"z" * 4000),)),
        Hostile("header-oversized", headers=((b"X-Padding", b"a" * 9000),), expect=431),
        # nginx passes it on; the service's parser refuses it (services/common/http_protocol.py).
        Hostile("header-control-character", headers=((b"X-Note", b"a\x01b"),), expect=400),
        Hostile("cookie-oversized", headers=((b"Cookie", b"qv=" + b"a" * 9000),), expect=431),
        Hostile("body-too-large", content_type=b"application/json", body=b"1" * 70_000, expect=413),
        Hostile("body-nested-10000", content_type=b"application/json", body=NESTED),
        Hostile("body-invalid-utf8", content_type=b"application/json", body=b'{"a": "\xff\xfe"}'),
        Hostile("body-wrong-type", content_type=b"text/plain", body=endpoint.json_body or b"x"),
        Hostile("body-form", content_type=b"application/x-www-form-urlencoded", body=b"count=1"),
        Hostile("body-multipart-no-boundary", content_type=b"multipart/form-data", body=b"--"),
        Hostile("transfer-coding-unknown", headers=((b"Transfer-Encoding", b"gzip"),)),
        Hostile("method-unknown", headers=((b":method", b"FOO"),)),
    ]
    return found


def build(endpoint: Endpoint, hostile: Hostile, host: str, admin_token: str) -> bytes:
    method = endpoint.method.encode()
    headers = dict(hostile.headers)
    method = headers.pop(b":method", method)
    path = endpoint.path.encode().replace(
        b"{id}", hostile.path_id if hostile.path_id is not None else endpoint.valid_id.encode()
    )
    if endpoint.query:
        first, _, others = endpoint.query.encode().partition(b"&")  # the first one is attacked
        name, _, valid = first.partition(b"=")
        value = hostile.query_value if hostile.query_value is not None else valid
        query = name + b"=" + value
        if hostile.repeat_query is not None:
            query += b"&" + name + b"=" + hostile.repeat_query
        path += b"?" + query + (b"&" + others if others else b"")
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: " + host.encode()]
    if endpoint.admin and b"Authorization" not in headers:
        lines.append(b"Authorization: Bearer " + admin_token.encode())
    body = hostile.body
    if body is None and hostile.content_type is None:
        body = endpoint.json_body
        content_type = b"application/json" if body is not None else None
    else:
        content_type = hostile.content_type
    chunked = headers.get(b"Transfer-Encoding") is not None
    lines += [name + b": " + value for name, value in headers.items()]
    if content_type is not None:
        lines.append(b"Content-Type: " + content_type)
    if body is not None and not chunked:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if chunked else (body or b""))


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def send(base_url: str, request: bytes, timeout_s: float = 10) -> Answer:
    url = urlsplit(base_url)
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout_s) as s:
        # nginx may answer (413) and close before it read the whole body.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(request)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    match = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    assert match, f"not an HTTP answer: {data[:200]!r}"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return Answer(int(match.group(1)), headers, body)


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += body[:size]
        body = body[size + 2 :]
    return out


def problems_with(endpoint: Endpoint, hostile: Hostile, answer: Answer) -> list[str]:
    """What is wrong with the answer to a hostile request (empty: nothing)."""
    wrong: list[str] = []
    status = answer.status
    if hostile.expect is not None and status != hostile.expect:
        wrong.append(f"expected {hostile.expect}, got {status}")
    if 200 <= status < 300 or status == 304:
        if not answer.content_type.startswith(endpoint.success_types) and status != 304:
            wrong.append(f"success with an undocumented type {answer.content_type!r}")
        return wrong
    if status >= 500 and not (endpoint.fanout and status in (502, 504)):
        wrong.append(f"a server error: {status}")
    if not 400 <= status < 600:
        wrong.append(f"unexpected status {status}")
    if answer.content_type != "application/problem+json":
        wrong.append(
            f"an error that is not problem+json: {answer.content_type!r} {answer.body[:80]!r}"
        )
        return wrong
    try:
        document = json.loads(answer.body)
    except ValueError:
        wrong.append(f"a problem body that is not JSON: {answer.body[:80]!r}")
        return wrong
    if document.get("status") != status:
        wrong.append(
            f"a problem whose status {document.get('status')} is not the answer's {status}"
        )
    return wrong
