"""Headless Chromium for the report tests, driven over the Chrome DevTools Protocol on a
pipe (``--remote-debugging-pipe``: commands on fd 3, replies on fd 4, each message JSON
ended by a NUL byte). No WebDriver, no extra package, no network port. Networking is off:
every host name resolves to nothing and every proxied request goes to a closed port, so a
page that needs anything from outside shows it as a failed request."""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: What the page reports about itself once loaded (evaluated in the page).
_PROBE = """(() => {
  const box = e => { const r = e.getBoundingClientRect();
                     return {top: r.top + scrollY, bottom: r.bottom + scrollY,
                             width: r.width, height: r.height}; };
  return {
    title: document.title,
    viewport: [innerWidth, innerHeight],
    pageWidth: document.documentElement.scrollWidth,
    images: [...document.images].map(i => ({src: i.getAttribute('src'),
              loaded: i.complete && i.naturalWidth > 0, ...box(i)})),
    tables: [...document.querySelectorAll('table')].map(t => ({rows: t.rows.length,
              cls: t.className, ...box(t)})),
    rankings: [...document.querySelectorAll('.first table.compact')].map(box),
    matrix: [...document.querySelectorAll('.first table.matrix')].map(box),
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
    sources: [...document.querySelectorAll('[src]')].map(e => e.getAttribute('src')),
  };
})()"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


@dataclass
class PageReport:
    url: str
    probe: dict[str, Any]
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # exceptions and console errors
    screenshot: bytes = b""


class Chromium:
    """One headless browser; ``open(url)`` loads a page and reports on it."""

    def __init__(self, binary: str, profile_dir: Path) -> None:
        cmd_read, self._cmd = os.pipe()
        self._out, out_write = os.pipe()
        args = [
            binary,
            "--headless",
            "--remote-debugging-pipe",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--hide-scrollbars",
            f"--user-data-dir={profile_dir}",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=http://127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>",
            "about:blank",
        ]
        # bash moves the two pipe ends onto fds 3 and 4, where Chromium expects them.
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{cmd_read} 4>&{out_write}', *args],
            pass_fds=(cmd_read, out_write),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(cmd_read)
        os.close(out_write)
        self._buf = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (OSError, TimeoutError, EOFError, RuntimeError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd)
        os.close(self._out)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the protocol ----------------------------------------------------------------------
    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._out], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._out, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed its DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 60,
    ) -> dict[str, Any]:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for e in self.events[seen:]:
                if e.get("method") == method and e.get("sessionId") == session:
                    return e
            seen = len(self.events)
            self.events.append(self._read(deadline))

    # -- a page ----------------------------------------------------------------------------
    def open(self, url: str, width: int = 1440, height: int = 900) -> PageReport:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        start = len(self.events)
        self.send("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired", session)
        probe = self.send(
            "Runtime.evaluate", {"expression": _PROBE, "returnByValue": True}, session
        )["result"]["value"]
        shot = self.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
        report = PageReport(url, probe, screenshot=base64.b64decode(shot))
        for e in self.events[start:]:
            if e.get("sessionId") != session:
                continue
            p = e.get("params", {})
            if e["method"] == "Network.requestWillBeSent":
                report.requests.append(p["request"]["url"])
            elif e["method"] == "Network.loadingFailed":
                report.failed.append(f"{p.get('errorText')} ({p.get('requestId')})")
            elif e["method"] == "Runtime.exceptionThrown":
                report.errors.append(json.dumps(p.get("exceptionDetails", {}))[:300])
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                report.errors.append(p["entry"].get("text", ""))
        self.send("Target.closeTarget", {"targetId": target})
        return report
