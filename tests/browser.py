"""A headless Chromium driven through the Chrome DevTools Protocol over a pipe, for page tests.

Debian's ``chromium`` alone is needed: no WebDriver binary, no Python package, nothing fetched.
``--remote-debugging-pipe`` makes Chromium read protocol commands (JSON, each ended by a NUL
byte) on file descriptor 3 and answer on 4. Typing and clicking go through the protocol's input
events, as a person's would (a click lands on the element's centre, so a covered or hidden
button is not clicked); waiting polls a condition in the page until a deadline, never sleeps.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root in CI containers
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--no-first-run",
    "--no-default-browser-check",
    "--remote-debugging-pipe",
)
REPLY_TIMEOUT_S = 30.0


def chromium_or_skip() -> str:
    """Debian's chromium; the test is skipped without it, and fails under REQUIRE_CHROMIUM (CI)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("REQUIRE_CHROMIUM"):
            pytest.fail("chromium is not installed (REQUIRE_CHROMIUM is set): apt-get install chromium")
        pytest.skip("chromium is not installed; `.ci/run` installs it")
    return found


class BrowserError(AssertionError):
    """The browser did not do what the test asked (a protocol error, an exception in the page)."""


class Browser:
    """One headless Chromium with one page."""

    def __init__(self, executable: str, profile: Path, width: int = 1280, height: int = 900) -> None:
        to_browser, self._commands = os.pipe()
        self._replies, from_browser = os.pipe()
        # The pipe ends the browser needs become its fds 3 and 4 (through bash's redirections,
        # so nothing runs in the forked child before exec).
        self.process = subprocess.Popen(
            [
                "/bin/bash",  # dash redirects single-digit descriptors only
                "-c",
                f'exec "$@" 3<&{to_browser} 4>&{from_browser}',
                "bash",
                executable,
                *FLAGS,
                f"--user-data-dir={profile}",
            ],
            pass_fds=(to_browser, from_browser),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None
        target = self.command("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.command("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.command("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def command(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one protocol command (to the page once attached) and return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode("utf-8") + b"\0")
        reply = self._reply(self._next_id)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply["result"]
        return result

    def _reply(self, wanted: int) -> dict[str, Any]:
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message: dict[str, Any] = json.loads(raw)
                if message.get("id") == wanted:
                    return message  # events and other replies are not waited for
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise BrowserError(f"chromium did not answer within {REPLY_TIMEOUT_S} s")
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                raise BrowserError(f"chromium closed its pipe (exit status {self.process.poll()})")
            self._buffer += chunk

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.command("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30, what: str | None = None) -> None:
        """Poll ``expression`` until it is truthy and the page has loaded."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"document.readyState === 'complete' && !!({expression})"):
            if time.monotonic() > deadline:
                where = self.evaluate("location.href + ': ' + (document.body?.innerText ?? '').slice(0, 300)")
                raise BrowserError(f"timed out after {timeout} s waiting for {what or expression}; the page is {where}")
            time.sleep(0.05)  # between polls of the page, not instead of waiting for it

    def open(self, url: str) -> None:
        self.command("Page.navigate", url=url)
        self.wait_for(f"location.href === {json.dumps(url)} || location.href.startsWith({json.dumps(url)})", what=url)

    def _centre(self, selector: str) -> tuple[float, float]:
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        if box is None:
            raise BrowserError(f"no element matches {selector}")
        return float(box[0]), float(box[1])

    def click(self, selector: str) -> None:
        """A left click on the element's centre, as a mouse would."""
        x, y = self._centre(selector)
        for kind in ("mousePressed", "mouseReleased"):
            self.command("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type(self, selector: str, text: str) -> None:
        """Click into the field and type ``text``."""
        self.click(selector)
        self.command("Input.insertText", text=text)

    def text(self, selector: str) -> str:
        return str(self.evaluate(f"document.querySelector({json.dumps(selector)})?.innerText ?? ''"))

    def screenshot(self, path: Path) -> Path:
        """The whole page (beyond the window) as a PNG."""
        size = self.command("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.command("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        try:
            self._session = None
            self.command("Browser.close")
        except (BrowserError, OSError):
            self.process.kill()
        finally:
            self.process.wait(timeout=30)
            os.close(self._commands)
            os.close(self._replies)
