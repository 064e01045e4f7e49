#!/usr/bin/env python3
"""Drive headless Chromium through the page with WebDriver (chromedriver over
loopback, standard library only): log in, load the search page and save
screenshots at desktop and phone width, then install -> start -> publish an
app template by clicking the page's own buttons.

usage: clickthrough.py BASE_URL PASSWORD CHROMEDRIVER_PORT OUT_DIR [TEMPLATE]
BASE_URL is the built-in server's root (http://127.0.0.1:PORT). Exits 0 when
every step worked, 1 with the failing step otherwise.
"""
import base64
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

base, password, driver_port, out_dir = sys.argv[1:5]
template = sys.argv[5] if len(sys.argv) > 5 else "website"
WD = f"http://127.0.0.1:{driver_port}"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(WD + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"{}").get("value")
    except urllib.error.HTTPError as e:
        raise SystemExit(f"FAIL: WebDriver {method} {path}: {e.read()[:400]!r}")


def fail(msg):
    raise SystemExit(f"FAIL: {msg}")


profile = tempfile.mkdtemp(prefix="nuvol-chromium-")
args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-quic", f"--user-data-dir={profile}",
        "--window-size=1280,900", "--hide-scrollbars"]
caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
    "binary": os.environ.get("CHROMIUM", "/usr/bin/chromium"), "args": args}}}}
session = call("POST", "/session", caps)["sessionId"]
S = f"/session/{session}"


def go(path):
    call("POST", S + "/url", {"url": base + path})


def find(xpath):
    for _ in range(50):
        found = call("POST", S + "/elements", {"using": "xpath", "value": xpath})
        if found:
            return found[0][ELEMENT]
        time.sleep(0.1)
    fail(f"no element {xpath} on {call('GET', S + '/url')}")


def click(xpath):
    call("POST", S + f"/element/{find(xpath)}/click", {})


def source():
    return call("GET", S + "/source")


def shot(name):
    png = base64.b64decode(call("GET", S + "/screenshot"))
    path = os.path.join(out_dir, name)
    with open(path, "wb") as f:
        f.write(png)
    print(f"screenshot {path} ({len(png)} bytes)")


try:
    go("/search")
    if "type=\"password\"" not in source() and "type=password" not in source():
        fail("the search page did not ask for a login first")
    field = find("//input[@name='password']")
    call("POST", S + f"/element/{field}/value", {"text": password})
    click("//button[normalize-space()='Log in']")
    find("//h1[contains(., ' in ')]")  # the overview after login

    go("/search?scope=global")
    find("//table//td[@data-l='Description']")
    texts = call("POST", S + "/execute/sync", {"script": "return document.body.innerText", "args": []})
    if "<script>alert(\"pwned\")</script>" not in texts:
        fail("the peer's description is not shown as text")
    if call("POST", S + "/execute/sync", {"script": "return document.scripts.length", "args": []}) != 0:
        fail("a script element made it into the page")
    shot("page-search.png")
    call("POST", S + "/window/rect", {"width": 400, "height": 860})
    go("/search?scope=global")
    find("//table")
    shot("page-search-phone.png")
    call("POST", S + "/window/rect", {"width": 1280, "height": 900})

    go("/apps")
    click(f"//tr[td[@data-l='Template'][normalize-space()='{template}']]//button[normalize-space()='Install']")
    row = f"//tr[td[@data-l='Name'][normalize-space()='{template}']]"
    click(row + "//button[normalize-space()='Start']")
    find(row + "//td[@data-l='State'][contains(translate(., 'running', 'RUNNING'), 'RUNNING')]")
    click(row + "//button[normalize-space()='Publish']")
    find(row + "//td[@data-l='Published'][normalize-space()='yes']")
    shot("page-apps.png")
    print("clickthrough: install -> start -> publish done")
    for name, path in [("overview", "/"), ("members", "/members"), ("services", "/services"), ("events", "/events")]:
        go(path)
        find("//main/h1")
        shot(f"page-{name}.png")
    call("POST", S + "/window/rect", {"width": 400, "height": 860})
    go("/apps")
    find("//main/h1")
    shot("page-apps-phone.png")
finally:
    call("DELETE", S)
