"""A headless Chromium driven over WebDriver (chromedriver on loopback), with
the standard library only: what the page's browser tests share.

Every wait is bounded; a step that cannot finish raises SystemExit with
"FAIL: ..." so the calling script exits 1 with the failing step.
"""
import base64
import json
import os
import tempfile
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
# Everything the tests fetch is local: never through a proxy from the environment.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fail(msg):
    raise SystemExit(f"FAIL: {msg}")


class Browser:
    """One WebDriver session of a fresh headless Chromium profile."""

    def __init__(self, driver_port, out_dir, width=1280, height=900):
        self.wd = f"http://127.0.0.1:{driver_port}"
        self.out_dir = out_dir
        # The profile lives under TMPDIR, which the calling script points at
        # its own work directory, so its cleanup removes it.
        profile = tempfile.mkdtemp(prefix="nuvol-chromium-")
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-quic", f"--user-data-dir={profile}",
                f"--window-size={width},{height}", "--hide-scrollbars"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": os.environ.get("CHROMIUM", "/usr/bin/chromium"), "args": args}}}}
        self.session = "/session/" + self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.wd + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with DIRECT.open(req, timeout=120) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            fail(f"WebDriver {method} {path}: {e.read()[:400]!r}")

    def s(self, method, path, body=None):
        return self.call(method, self.session + path, body)

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def url(self):
        return self.s("GET", "/url")

    def elements(self, xpath):
        found = self.s("POST", "/elements", {"using": "xpath", "value": xpath})
        return [f[ELEMENT] for f in found or []]

    def find(self, xpath, seconds=5):
        """The first element matching `xpath`, waiting up to `seconds`."""
        end = time.monotonic() + seconds
        while True:
            found = self.elements(xpath)
            if found:
                return found[0]
            if time.monotonic() > end:
                fail(f"no element {xpath} on {self.url()}")
            time.sleep(0.1)

    def click(self, xpath, seconds=5):
        self.s("POST", f"/element/{self.find(xpath, seconds)}/click", {})

    def type(self, xpath, text):
        self.s("POST", f"/element/{self.find(xpath)}/value", {"text": text})

    def source(self):
        return self.s("GET", "/source")

    def script(self, js):
        return self.s("POST", "/execute/sync", {"script": js, "args": []})

    def resize(self, width, height):
        self.s("POST", "/window/rect", {"width": width, "height": height})

    def shot(self, name):
        png = base64.b64decode(self.s("GET", "/screenshot"))
        path = os.path.join(self.out_dir, name)
        with open(path, "wb") as f:
            f.write(png)
        print(f"screenshot {path} ({len(png)} bytes)")
        return path

    def login(self, base, password, path="/"):
        """Opens `path` below `base`, which must ask for the built-in login
        first, and logs in."""
        self.go(base + path)
        if "type=\"password\"" not in self.source() and "type=password" not in self.source():
            fail(f"{base}{path} did not ask for a login first")
        self.type("//input[@name='password']", password)
        self.click("//button[normalize-space()='Log in']")
        self.find("//h1[contains(., ' in ')]")  # the overview after login

    def close(self):
        self.call("DELETE", self.session)
