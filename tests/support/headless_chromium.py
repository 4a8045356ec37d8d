"""Debian's chromium, headless, driven over the Chrome DevTools Protocol with cdp-use.

Why cdp-use: it is a typed (TypedDict per command and event, py.typed) asyncio client for the
protocol itself, kept current with Chromium's protocol by browser-use, and adds one small
package to the lock (its httpx, websockets and typing-extensions are pinned already). Selenium
would need chromedriver beside the browser and speaks WebDriver, which shows the console and
network events this module reports only through its CDP bridge or BiDi; Playwright needs a
browser build of its own, which this machine cannot download; pycdp/python-cdp have had no
release since 2023.

The browser gets a fresh profile in a temporary directory, listens on a port of its choosing
(`--remote-debugging-port=0`, read back from the profile's DevToolsActivePort) and always dies
with its whole process group when `launch` exits, and its profile is removed.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from cdp_use.client import CDPClient

if TYPE_CHECKING:
    from cdp_use.cdp.log.events import EntryAddedEvent
    from cdp_use.cdp.network.events import (
        LoadingFailedEvent,
        RequestWillBeSentEvent,
        ResponseReceivedEvent,
    )
    from cdp_use.cdp.page.events import LoadEventFiredEvent
    from cdp_use.cdp.runtime.events import ConsoleAPICalledEvent, ExceptionThrownEvent

# The flags of a quiet, reproducible headless run as root: no sandbox (chromium refuses to start
# one as root), no GPU, and nothing that phones home or updates itself, so the only traffic is
# the test's own.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
START_TIMEOUT_S = 30.0
LOAD_TIMEOUT_S = 15.0
EXIT_TIMEOUT_S = 10.0
# A command the browser does not answer (a hung renderer) fails the test instead of hanging it.
COMMAND_TIMEOUT_S = 10.0
T = TypeVar("T")


async def _within(command: Awaitable[T]) -> T:
    try:
        return await asyncio.wait_for(command, COMMAND_TIMEOUT_S)
    except TimeoutError:
        raise AssertionError(f"chromium did not answer within {COMMAND_TIMEOUT_S} s") from None


@dataclass
class Tab:
    """One page target, attached in flat mode: every command carries its session id."""

    client: CDPClient
    session: str
    # Console errors, uncaught exceptions, failed requests and HTTP errors, as they happen.
    problems: list[str] = field(default_factory=list)
    _loaded: asyncio.Event = field(default_factory=asyncio.Event)
    _document_request: str | None = None
    _urls: dict[str, str] = field(default_factory=dict)  # request id -> URL, for failures

    async def open(self, url: str) -> None:
        """Navigates and returns once the page's load event fired (images included)."""
        self._loaded.clear()
        answer = await _within(
            self.client.send.Page.navigate({"url": url}, session_id=self.session)
        )
        if "errorText" in answer:
            raise AssertionError(f"navigating to {url}: {answer['errorText']}")
        await self._wait_loaded(url)

    async def reload(self) -> None:
        """Reloads like a visitor pressing F5: same profile, cookies kept, cache allowed."""
        self._loaded.clear()
        await _within(self.client.send.Page.reload({"ignoreCache": False}, session_id=self.session))
        await self._wait_loaded("reload")

    async def evaluate(self, expression: str) -> object:
        """The expression's value in the page (JSON-serialisable); a thrown error fails."""
        answer = await _within(
            self.client.send.Runtime.evaluate(
                {"expression": expression, "returnByValue": True, "awaitPromise": True},
                session_id=self.session,
            )
        )
        if "exceptionDetails" in answer:
            raise AssertionError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def screenshot(self) -> bytes:
        answer = await _within(
            self.client.send.Page.captureScreenshot({"format": "png"}, session_id=self.session)
        )
        return base64.b64decode(answer["data"])

    async def cookies(self) -> dict[str, str]:
        """The cookies the browser would send to the current page, HttpOnly ones included."""
        answer = await _within(self.client.send.Network.getCookies(session_id=self.session))
        return {cookie["name"]: cookie["value"] for cookie in answer["cookies"]}

    async def document_source(self) -> str:
        """The bytes the browser received for the current page, as text: what it parsed, not
        the DOM serialised back (which would have lost the doctype and any parse repair)."""
        if self._document_request is None:
            raise AssertionError("no document has loaded yet")
        answer = await _within(
            self.client.send.Network.getResponseBody(
                {"requestId": self._document_request}, session_id=self.session
            )
        )
        body = answer["body"]
        return base64.b64decode(body).decode() if answer["base64Encoded"] else body

    async def _wait_loaded(self, what: str) -> None:
        try:
            await asyncio.wait_for(self._loaded.wait(), LOAD_TIMEOUT_S)
        except TimeoutError:
            raise AssertionError(f"{what}: no load event within {LOAD_TIMEOUT_S} s") from None

    def _listen(self) -> None:
        register = self.client.register

        def loaded(event: LoadEventFiredEvent, session: str | None) -> None:
            self._loaded.set()

        def sent(event: RequestWillBeSentEvent, session: str | None) -> None:
            self._urls[event["requestId"]] = event["request"]["url"]

        def response(event: ResponseReceivedEvent, session: str | None) -> None:
            if event["type"] == "Document":
                self._document_request = event["requestId"]
            status = event["response"]["status"]
            if status >= 400:
                self.problems.append(f"HTTP {status}: {event['response']['url']}")

        def failed(event: LoadingFailedEvent, session: str | None) -> None:
            url = self._urls.get(event["requestId"], "?")
            self.problems.append(f"request failed: {event['errorText']} ({event['type']}): {url}")

        def console(event: ConsoleAPICalledEvent, session: str | None) -> None:
            if event["type"] in ("error", "assert"):
                texts = [str(arg.get("value", arg.get("description", ""))) for arg in event["args"]]
                self.problems.append(f"console.{event['type']}: {' '.join(texts)}")

        def thrown(event: ExceptionThrownEvent, session: str | None) -> None:
            self.problems.append(f"uncaught: {event['exceptionDetails']['text']}")

        def logged(event: EntryAddedEvent, session: str | None) -> None:
            # The browser's own messages: "Failed to load resource", blocked mixed content, CSP.
            entry = event["entry"]
            if entry["level"] == "error":
                where = f" ({entry['url']})" if "url" in entry else ""
                self.problems.append(f"log ({entry['source']}): {entry['text']}{where}")

        register.Page.loadEventFired(loaded)
        register.Network.requestWillBeSent(sent)
        register.Network.responseReceived(response)
        register.Network.loadingFailed(failed)
        register.Runtime.consoleAPICalled(console)
        register.Runtime.exceptionThrown(thrown)
        register.Log.entryAdded(logged)


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise AssertionError(
            "chromium is not installed: scripts/bootstrap.sh (make install) installs Debian's"
        )
    return path


async def _devtools_url(browser: asyncio.subprocess.Process, profile: Path, log: Path) -> str:
    """The browser's websocket, once it has written DevToolsActivePort (port, then path)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    active = profile / "DevToolsActivePort"
    while True:
        lines = active.read_text().split() if active.exists() else []
        # Two lines, or it is still being written.
        if len(lines) == 2:
            port, path = lines
            return f"ws://127.0.0.1:{port}{path}"
        if browser.returncode is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:]
            raise AssertionError(
                f"chromium gave no DevTools port (exit {browser.returncode}): {tail}"
            )
        await asyncio.sleep(0.05)


async def _stop(browser: asyncio.subprocess.Process) -> None:
    """The browser and every helper process it forked (its own process group): asked to go,
    then killed if it has not gone within EXIT_TIMEOUT_S."""
    with suppress(ProcessLookupError):
        os.killpg(browser.pid, signal.SIGTERM)
    with suppress(TimeoutError):
        await asyncio.wait_for(browser.wait(), EXIT_TIMEOUT_S)
    # Renderers outlive a killed parent by a moment; none may outlive the test.
    with suppress(ProcessLookupError):
        os.killpg(browser.pid, signal.SIGKILL)
    await asyncio.wait_for(browser.wait(), EXIT_TIMEOUT_S)


@asynccontextmanager
async def launch(width: int = 800, height: int = 600) -> AsyncIterator[Tab]:
    """A fresh headless chromium with one tab of width x height CSS pixels (scale 1, so a
    screenshot is exactly that many pixels)."""
    scratch = Path(tempfile.mkdtemp(prefix="quartet-chromium-"))
    profile = scratch / "profile"
    log = scratch / "chromium.log"
    try:
        with log.open("wb") as log_file:
            browser = await asyncio.create_subprocess_exec(
                _chromium(),
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so _stop reaches its children
            )
        try:
            client = CDPClient(await _devtools_url(browser, profile, log))
            # cdp-use leaves start/stop unannotated; they take and return nothing.
            await client.start()  # type: ignore[no-untyped-call]
            try:
                yield await _tab(client, width, height)
            finally:
                await client.stop()  # type: ignore[no-untyped-call]
        finally:
            await _stop(browser)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def _tab(client: CDPClient, width: int, height: int) -> Tab:
    target = await _within(client.send.Target.createTarget({"url": "about:blank"}))
    attached = await _within(
        client.send.Target.attachToTarget({"targetId": target["targetId"], "flatten": True})
    )
    tab = Tab(client, attached["sessionId"])
    tab._listen()
    for enable in (
        client.send.Page.enable,
        client.send.Network.enable,
        client.send.Runtime.enable,
        client.send.Log.enable,
    ):
        await _within(enable(session_id=tab.session))
    await _within(
        client.send.Emulation.setDeviceMetricsOverride(
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session_id=tab.session,
        )
    )
    return tab
