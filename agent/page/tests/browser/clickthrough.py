#!/usr/bin/env python3
"""Drive headless Chromium through the page with WebDriver (chromedriver over
loopback, standard library only): log in, load the search page and save
screenshots at desktop and phone width, then install -> start -> publish an
app template by clicking the page's own buttons.

usage: clickthrough.py BASE_URL PASSWORD CHROMEDRIVER_PORT OUT_DIR [TEMPLATE]
BASE_URL is the built-in server's root (http://127.0.0.1:PORT). Exits 0 when
every step worked, 1 with the failing step otherwise.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webdriver import Browser, fail  # noqa: E402

base, password, driver_port, out_dir = sys.argv[1:5]
template = sys.argv[5] if len(sys.argv) > 5 else "website"

b = Browser(driver_port, out_dir)
try:
    b.login(base, password, "/search")

    b.go(base + "/search?scope=global")
    b.find("//table//td[@data-l='Description']")
    if "<script>alert(\"pwned\")</script>" not in b.script("return document.body.innerText"):
        fail("the peer's description is not shown as text")
    if b.script("return document.scripts.length") != 0:
        fail("a script element made it into the page")
    b.shot("page-search.png")
    b.resize(400, 860)
    b.go(base + "/search?scope=global")
    b.find("//table")
    b.shot("page-search-phone.png")
    b.resize(1280, 900)

    b.go(base + "/apps")
    b.click(f"//tr[td[@data-l='Template'][normalize-space()='{template}']]//button[normalize-space()='Install']")
    row = f"//tr[td[@data-l='Name'][normalize-space()='{template}']]"
    b.click(row + "//button[normalize-space()='Start']")
    b.find(row + "//td[@data-l='State'][contains(translate(., 'running', 'RUNNING'), 'RUNNING')]")
    b.click(row + "//button[normalize-space()='Publish']")
    b.find(row + "//td[@data-l='Published'][normalize-space()='yes']")
    b.shot("page-apps.png")
    print("clickthrough: install -> start -> publish done")
    for name, path in [("overview", "/"), ("members", "/members"), ("services", "/services"), ("events", "/events")]:
        b.go(base + path)
        b.find("//main/h1")
        b.shot(f"page-{name}.png")
    b.resize(400, 860)
    b.go(base + "/apps")
    b.find("//main/h1")
    b.shot("page-apps-phone.png")
finally:
    b.close()
