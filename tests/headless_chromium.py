"""A headless Chromium driven over the DevTools protocol through a pipe, with the standard
library only (no websocket client, no port): ``--remote-debugging-pipe`` makes Chromium read
NUL-terminated JSON commands on fd 3 and write replies and events on fd 4.

    with Chromium() as browser:
        page = browser.open("file:///.../report.html")    # waits for the load event
        page.evaluate("document.title")
        page.console_errors, page.requests
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio"]


TRAMPOLINE = ("import os, sys; a, b = int(sys.argv[1]), int(sys.argv[2]); os.dup2(a, 3); "
              "os.dup2(b, 4); os.close(a); os.close(b); os.execv(sys.argv[3], sys.argv[3:])")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    def __init__(self, timeout: float = 30.0, width: int = 1200, height: int = 900):
        self.timeout, self.size = timeout, (width, height)
        self.proc = None

    def __enter__(self) -> Chromium:
        exe = chromium_path()
        if exe is None:
            raise RuntimeError("chromium is not installed")
        self.profile = tempfile.mkdtemp(prefix="bptt-chromium-")
        r, self._w = os.pipe()                    # we write commands; chromium reads fd 3
        self._r, w = os.pipe()                    # chromium writes fd 4; we read
        # The child's ends go above 9 (so that moving them cannot clobber each other) and a small
        # Python trampoline puts them on fds 3 and 4 before exec'ing chromium (no preexec_fn:
        # that is unsafe in a process with threads, such as BLAS workers).
        child = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (r, w)]
        for fd in (r, w):
            os.close(fd)
        width, height = self.size
        args = [exe, *FLAGS, f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
                "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", TRAMPOLINE, *map(str, child), *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=child)
        for fd in child:
            os.close(fd)
        self._buf, self._next_id, self.events = b"", 0, []
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self.send("Browser.close")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)
        shutil.rmtree(self.profile, ignore_errors=True)

    # ------------------------------------------------------------ protocol

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("no reply from chromium")
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                raise RuntimeError(f"chromium closed the pipe (exit {self.proc.poll()})")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        cmd = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            cmd["sessionId"] = session
        os.write(self._w, json.dumps(cmd).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._read_message(deadline)
            if msg.get("id") == self._next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, session: str | None = None) -> dict:
        deadline = time.monotonic() + self.timeout
        seen = 0
        while True:
            for ev in self.events[seen:]:
                if ev.get("method") == method and ev.get("sessionId") == session:
                    self.events.remove(ev)
                    return ev["params"]
            seen = len(self.events)
            self.events.append(self._read_message(deadline))

    def open(self, url: str) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        w, h = self.size
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False},
                  session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_event("Page.loadEventFired", session)
        return page


class Page:
    def __init__(self, browser: Chromium, session: str):
        self.browser, self.session = browser, session

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, self.session)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (JSON-serializable), raising on an exception."""
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression!r} threw: {r['exceptionDetails']}")
        return r["result"].get("value")

    def click(self, element: str) -> None:
        """A real mouse click (press and release) at the centre of an element, given as a
        JavaScript expression (``"document.querySelector('#x')"``)."""
        box = self.evaluate(
            f"(() => {{ const e = {element};"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1],
                                                   "button": "left", "clickCount": 1})

    def screenshot(self, path, full_page: bool = True) -> None:
        params = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            w, h = self.evaluate("[document.documentElement.scrollWidth,"
                                 " document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}
        data = self.send("Page.captureScreenshot", params)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def _events(self, method: str) -> list[dict]:
        self.evaluate("0")                        # flush: events sent before this reply arrive
        return [e["params"] for e in self.browser.events
                if e.get("sessionId") == self.session and e.get("method") == method]

    @property
    def console_errors(self) -> list[str]:
        """Uncaught exceptions, console.error/assert calls and error log entries (CSP, loads)."""
        out = [str(p["exceptionDetails"]) for p in self._events("Runtime.exceptionThrown")]
        out += [str(p["args"]) for p in self._events("Runtime.consoleAPICalled")
                if p["type"] in ("error", "assert")]
        out += [p["entry"]["text"] for p in self._events("Log.entryAdded")
                if p["entry"]["level"] == "error"]
        return out

    @property
    def requests(self) -> list[str]:
        """URLs of every request the page made."""
        return [p["request"]["url"] for p in self._events("Network.requestWillBeSent")]
