"""A headless Chromium that loads a page of the report site and says what went wrong: console
errors, uncaught exceptions, failed loads, images that do not decode; with the page's links and
a screenshot. It speaks the DevTools protocol over a pipe (no server, no network, no extra
package); `icsim report --check` and the site's tests use it."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote, urlparse


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    try:  # Playwright's Chromium, if that is what is installed
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            return p.chromium.executable_path
    except Exception:  # noqa: BLE001 - not installed, or no browser downloaded
        return None


class Page:
    """What a page did when loaded: console errors, exceptions, failed loads, broken images,
    links, and a PNG screenshot."""

    def __init__(self):
        self.errors: list[str] = []
        self.broken_images: list[str] = []
        self.links: list[str] = []
        self.images: list[str] = []
        self.screenshot: bytes = b""


def load_page(chromium: str, url: str, width: int = 1200, height: int = 1600) -> Page:
    """Open `url` in headless Chromium over the DevTools pipe (fds 3/4), wait for `load`, and
    record every console error, uncaught exception and failed resource, the images that did not
    decode, the links, and a screenshot."""
    r_in, w_in = os.pipe()  # we write commands -> chromium reads fd 3
    r_out, w_out = os.pipe()  # chromium writes fd 4 -> we read
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
            f"--window-size={width},{height}", "--no-first-run", "about:blank"]  # fmt: skip

    def fds():  # dup2'd descriptors are inheritable, so 3 and 4 survive the exec
        a, b = os.dup(r_in), os.dup(w_out)  # in case r_in or w_out is itself 3 or 4
        os.dup2(a, 3)
        os.dup2(b, 4)

    proc = subprocess.Popen(args, preexec_fn=fds, close_fds=False,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    os.close(r_in), os.close(w_out)
    reader, writer = os.fdopen(r_out, "rb"), os.fdopen(w_in, "wb")
    page, buf, ids, events = Page(), b"", iter(range(1, 10**6)), []

    def call(method, session=None, **params):
        nonlocal buf
        i = next(ids)
        msg = {"id": i, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        writer.write(json.dumps(msg).encode() + b"\0")
        writer.flush()
        deadline = time.time() + 60
        while time.time() < deadline:
            while b"\0" not in buf:
                chunk = os.read(reader.fileno(), 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                buf += chunk
            raw, buf = buf.split(b"\0", 1)
            m = json.loads(raw)
            if m.get("id") == i:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            events.append(m)
        raise TimeoutError(method)

    try:
        target = call("Target.createTarget", url="about:blank")["targetId"]
        s = call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            call(f"{domain}.enable", s)
        call("Page.navigate", s, url=url)
        for _ in range(200):  # until the load event
            if any(e.get("method") == "Page.loadEventFired" for e in events):
                break
            call("Runtime.evaluate", s, expression="1")
            time.sleep(0.05)
        js = ("JSON.stringify({broken: Array.from(document.images).filter(i => !i.complete || "
              "i.naturalWidth === 0).map(i => i.src), images: Array.from(document.images)"
              ".map(i => i.src), links: Array.from(document.links).map(a => a.href)})")  # fmt: skip
        found = json.loads(call("Runtime.evaluate", s, expression=js)["result"]["value"])
        page.broken_images, page.images = found["broken"], found["images"]
        page.links = found["links"]
        shot = call("Page.captureScreenshot", s, format="png", captureBeyondViewport=True)
        page.screenshot = base64.b64decode(shot["data"])
        for e in events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                page.errors.append(p["exceptionDetails"].get("text", "exception"))
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") == "error":
                page.errors.append(str([a.get("value") for a in p.get("args", [])]))
            elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
                page.errors.append(p["entry"]["text"] + " " + p["entry"].get("url", ""))
    finally:
        writer.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        reader.close()
    return page


def problems(page: Page) -> list[str]:
    """What is wrong with a loaded page of the site: errors, broken images, links that do not
    point at a file (the site is read from disk)."""
    bad = [f"error: {e}" for e in page.errors]
    bad += [f"broken image: {i}" for i in page.broken_images]
    for link in page.links:
        target = Path(unquote(urlparse(link).path))
        if not (link.startswith("file://") and target.is_file()):
            bad.append(f"link to no file: {link}")
    return bad
