"""Headless Chromium for tests, driven by the DevTools protocol over a pipe (no port, no extra package).

`--remote-debugging-pipe` makes Chromium read protocol messages from its fd 3 and answer on its
fd 4, each a JSON object ended by a NUL byte: what Playwright and Puppeteer use, without the
race of finding a free port or the need for a websocket client.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package, what .ci/run installs
# quiet flags: without the background-networking ones Chromium floods refused connections offline
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
)  # fmt: skip


class BrowserError(RuntimeError):
    """Chromium answered a command with an error, died, or kept us waiting."""


@dataclass
class Rendered:
    """What a page did in the browser: its console errors, a measurement script's value, a screenshot."""

    errors: list[str]
    measured: Any
    screenshot: bytes = field(repr=False)


class Chromium:
    """One headless Chromium with a fresh profile; a context manager that always ends it."""

    def __init__(self, executable: Path = CHROMIUM, *, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="genre-hpc-chromium-")
        self._log = Path(self._profile) / "stderr.log"
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Chromium wants the pipe on fds 3 and 4 exactly. posix_spawn's dup2 puts it there without a
        # preexec_fn (unsafe beside the test's Dask threads); the ends are first moved above 9 so that
        # neither dup2 overwrites the other's source, and close-on-exec drops those copies
        child_in, child_out = (
            fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_r, from_browser_w)
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        argv = [str(executable), *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self._profile}",
                "about:blank"]  # fmt: skip
        try:
            self._pid = os.posix_spawn(
                argv[0], argv, os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 2, str(self._log), os.O_WRONLY | os.O_CREAT, 0o600),
                    (os.POSIX_SPAWN_DUP2, child_in, 3),
                    (os.POSIX_SPAWN_DUP2, child_out, 4),
                ],
            )  # fmt: skip
        finally:
            os.close(child_in)
            os.close(child_out)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(BrowserError, OSError):
            self.send("Browser.close")
        deadline = time.monotonic() + 10
        while os.waitpid(self._pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(self._pid, signal.SIGKILL)
                os.waitpid(self._pid, 0)
                break
            time.sleep(0.05)
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    def stderr(self) -> str:
        """The end of what Chromium logged: why it failed, when it did."""
        try:
            return self._log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    # --- the protocol ---------------------------------------------------------------------
    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """One command; returns its result once it arrives, keeping the events that came before it."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise BrowserError(f"Chromium is gone, so {method} cannot be sent: {self.stderr()}") from None
        while True:
            reply = self._receive(f"the answer to {method}")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> dict[str, Any]:
        """The first event `method` of `session`, already received or still to come."""
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            self.events.append(self._receive(method))

    def _receive(self, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, left))
            if not ready:
                raise BrowserError(f"Chromium sent nothing for {self.timeout:.0f} s while waiting for {what}")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium closed its pipe while waiting for {what}: {self.stderr()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    # --- what the tests ask ----------------------------------------------------------------
    def render(self, url: str, *, width: int, height: int, measure: str) -> Rendered:
        """Load `url` in a `width` x `height` window, wait for its load event (every image fetched),
        evaluate the expression `measure` and capture the window as a PNG."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session)
        self.send(
            "Emulation.setDeviceMetricsOverride", session,
            width=width, height=height, deviceScaleFactor=1, mobile=False,
        )  # fmt: skip
        self.events.clear()  # only this page's events from here on
        navigated = self.send("Page.navigate", session, url=url)
        if navigated.get("errorText"):
            raise BrowserError(f"{url}: {navigated['errorText']}")
        self.wait_for("Page.loadEventFired", session)
        value = self.send("Runtime.evaluate", session, expression=measure, returnByValue=True)
        if "exceptionDetails" in value:
            raise BrowserError(f"the measuring script failed: {value['exceptionDetails']}")
        shot = self.send(
            "Page.captureScreenshot", session, format="png",
            clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        )  # fmt: skip
        # drain what arrived meanwhile (a console error logged late still counts)
        self.send("Runtime.evaluate", session, expression="0")
        errors = [text for event in self.events if (text := _error_text(event, session))]
        self.send("Target.closeTarget", targetId=target)
        return Rendered(errors, value["result"].get("value"), base64.b64decode(shot["data"]))


def _error_text(event: dict[str, Any], session: str) -> str | None:
    """The text of an event that is an error on the page's console, else None."""
    if event.get("sessionId") != session:
        return None
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        return details.get("exception", {}).get("description") or details.get("text", "exception")
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        return " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", []))
    if method == "Log.entryAdded" and params["entry"].get("level") == "error":
        entry = params["entry"]
        return f"{entry.get('text')} {entry.get('url', '')}".strip()
    return None
