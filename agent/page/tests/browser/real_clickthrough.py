#!/usr/bin/env python3
"""The page's click-through against real agents (tests/suite/page-real.sh).

On agent A's page: log in, click Install on the template; once the
supervisor runs it, click Stop and then Start; once it is published (the
template publishes by default), click Unpublish, wait until agent B's
`nuvol search --json` no longer has the record, then click Publish and wait
until B has it again. Then B's own page must list it on its search page,
which is saved as a screenshot, and its "Open" link must reach the app.
Every wait is bounded; the page is reloaded
while waiting, since it is plain HTML.

usage: real_clickthrough.py A_URL B_URL PASSWORD DRIVER_PORT OUT_DIR NUVOL B_SOCKET [TEMPLATE]
Prints `timing NAME MS` lines for the steps. Exits 0 when every step
worked, 1 with the failing step otherwise.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webdriver import DIRECT, Browser, fail  # noqa: E402

a_url, b_url, password, driver_port, out_dir, nuvol, b_sock = sys.argv[1:8]
template = sys.argv[8] if len(sys.argv) > 8 else "website"
row = f"//tr[td[@data-l='Name'][normalize-space()='{template}']]"
state = row + "//td[@data-l='State']"
published = row + "//td[@data-l='Published']"


def now_ms():
    return time.monotonic() * 1000


def timing(name, since):
    print(f"timing {name} {now_ms() - since:.0f}")


def reload_until(b, url, xpath, seconds, what):
    """Loads `url` until `xpath` matches, for at most `seconds`."""
    end = time.monotonic() + seconds
    while True:
        b.go(url)
        if b.elements(xpath):
            return
        if time.monotonic() > end:
            b.shot("page-real-failed.png")
            fail(f"{what}: not after {seconds} s (page source in the screenshot)")
        time.sleep(0.5)


def b_records():
    """The http records agent B knows, from `nuvol --json search`."""
    out = subprocess.run([nuvol, "--control", b_sock, "--json", "search", "--type", "http"],
                         capture_output=True, text=True, timeout=10)
    if out.returncode != 0:
        fail(f"nuvol search on B: exit {out.returncode}: {out.stderr.strip()}")
    found = json.loads(out.stdout or "[]")
    # The app's records carry txt app=NAME (the template's name here).
    return [r for r in found if isinstance(r, dict) and (r.get("txt") or {}).get("app") == template]


def until_b(want, seconds, what):
    end = time.monotonic() + seconds
    while (len(b_records()) > 0) != want:
        if time.monotonic() > end:
            fail(f"{what}: not after {seconds} s; B has {b_records()}")
        time.sleep(0.2)


b = Browser(driver_port, out_dir)
try:
    b.login(a_url, password, "/apps")
    apps = a_url + "/apps"
    b.go(apps)
    t = now_ms()
    b.click(f"//tr[td[@data-l='Template'][normalize-space()='{template}']]//button[normalize-space()='Install']")
    b.find(row, 60)
    timing("install-click-to-installed", t)
    # The supervisor starts an installed app by itself.
    reload_until(b, apps, state + "[normalize-space()='RUNNING']", 60, "running after install")
    timing("install-click-to-running", t)

    b.click(row + "//button[normalize-space()='Stop']")
    reload_until(b, apps, state + "[normalize-space()='STOPPED']", 60, "stopped after Stop")
    t = now_ms()
    b.click(row + "//button[normalize-space()='Start']")
    reload_until(b, apps, state + "[normalize-space()='RUNNING']", 60, "running after Start")
    timing("start-click-to-running", t)

    # Publish by default: once healthy it is published; take it back first
    # so the Publish click below is what brings the record to B.
    reload_until(b, apps, published + "[normalize-space()='yes']", 60, "published once healthy")
    timing("start-click-to-published", t)
    b.click(row + "//button[normalize-space()='Unpublish']")
    reload_until(b, apps, published + "[normalize-space()='no']", 30, "unpublished after Unpublish")
    until_b(False, 30, "the record gone from B after Unpublish")
    t = now_ms()
    b.click(row + "//button[normalize-space()='Publish']")
    until_b(True, 30, "the record on B after Publish")
    timing("publish-click-to-found-on-b", t)
    reload_until(b, apps, published + "[normalize-space()='yes']", 30, "published after Publish")
    b.shot("page-real-apps.png")
    print(f"B finds: {json.dumps(b_records())}")

    b.close()
    b = Browser(driver_port, out_dir)
    b.login(b_url, password, "/search")
    search = b_url + "/search?type=http"
    reload_until(b, search, "//td[@data-l='Description'][normalize-space()='Static web site']",
                 30, "the record on B's search page")
    if b.script("return document.scripts.length") != 0:
        fail("a script element made it into the page")
    b.shot("page-real-search.png")
    # The row's "Open" link is built by the page from the record's IP and
    # port; following it must reach the app in its container.
    href = b.script("return document.querySelector('a.open').href")
    t = now_ms()
    try:
        with DIRECT.open(href, timeout=10) as r:
            body = r.read(65536).decode("utf-8", "replace")
    except OSError as e:
        fail(f"the Open link {href} does not answer: {e}")
    if "Hello from nuvol" not in body:
        fail(f"the Open link {href} answered something else: {body[:200]!r}")
    timing("open-link-fetch", t)
    print(f"Open link {href} reaches the app")
    print("real clickthrough: install -> stop/start -> unpublish/publish -> found on B")
finally:
    b.close()
