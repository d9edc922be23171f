"""The dashboard and status page in real headless Chromium (Debian's, driven by Playwright):
pages render without console errors, live numbers move under simulator traffic, the report
button files a report (with the script, and as a plain form without it), signing out ends the
session, and an incident the simulator causes appears. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY
from tests.web.conftest import chat

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _missing(reason: str) -> None:
    if os.environ.get("OUTLAST_REQUIRE_SERVICES") == "1":
        pytest.fail(reason + " (OUTLAST_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        _missing("Chromium is not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, health_gateway: Any, sim: Any) -> Iterator[Any]:
    context = browser.new_context(base_url=health_gateway.url)
    page = context.new_page()
    page.errors = []  # console errors and uncaught exceptions
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto("/ui/")
    page.fill("input[name=key]", MASTER_KEY)
    page.click("button")
    page.wait_for_url("**/ui/")
    ARTIFACTS.mkdir(exist_ok=True)
    yield page
    context.close()


def until(check: Any, seconds: float = 15.0) -> None:
    """Polls from Python: the pages' CSP forbids the string evaluation ``wait_for_function`` uses."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the page did not change in time")
        time.sleep(0.2)


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def traffic(url: str, stop: threading.Event, model: str = "to-anthropic") -> None:
    with httpx.Client(base_url=url, timeout=10, headers={"authorization": f"Bearer {MASTER_KEY}"}) as client:
        while not stop.is_set():
            chat(client, model)
            time.sleep(0.05)


def test_every_page_renders_without_console_errors(page: Any) -> None:
    for path, name, heading in (("/ui/", "overview", "Overview"), ("/ui/incidents", "incidents", "Incidents"),
                                ("/ui/providers", "providers", "Providers"),
                                ("/ui/conversations", "conversations", "Conversations"),
                                ("/status", "status", "outlast status")):
        page.goto(path)
        assert page.locator("h1").first.inner_text() == heading
        shot(page, name)
    page.goto("/ui/")
    page.wait_for_timeout(2500)  # one refresh of the live numbers
    assert page.errors == []


def test_live_numbers_move_under_simulator_traffic(page: Any, health_gateway: Any) -> None:
    page.goto("/ui/")
    before = int(page.locator("#requests-total").inner_text())
    stop = threading.Event()
    sender = threading.Thread(target=traffic, args=(health_gateway.url, stop))
    sender.start()
    try:
        until(lambda: int(page.locator("#requests-total").inner_text()) > before + 5)
    finally:
        stop.set()
        sender.join()
    assert page.locator("#req-rate").inner_text() != "0/min"
    shot(page, "overview-live")
    assert page.errors == []


def test_report_button_files_a_report(page: Any, health_gateway: Any) -> None:
    page.goto("/ui/")
    page.select_option("select[name=component]", "openai")
    page.fill("input[name=note]", "answers are blank")
    page.click("#report-button")
    until(lambda: "Report filed" in page.locator("#report-result").inner_text(), 10)
    reports = httpx.get(f"{health_gateway.url}/outlast/v1/reports",
                        headers={"authorization": f"Bearer {MASTER_KEY}"}).json()["reports"]
    assert reports[0]["component"] == "openai" and reports[0]["note"] == "answers are blank"
    shot(page, "report-filed")
    assert page.errors == []


def test_the_report_form_works_without_javascript(browser: Any, health_gateway: Any, sim: Any) -> None:
    context = browser.new_context(base_url=health_gateway.url, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/ui/")
        page.fill("input[name=key]", MASTER_KEY)
        page.click("button")
        page.wait_for_url("**/ui/")
        page.select_option("select[name=component]", "anthropic")
        page.fill("input[name=note]", "no script here")
        page.click("#report-button")  # a plain form post, then back to the overview
        page.wait_for_url("**/ui/?reported=anthropic*")
        assert page.locator("#report-result").inner_text() == "Report filed for anthropic. Thank you."
        reports = httpx.get(f"{health_gateway.url}/outlast/v1/reports",
                            headers={"authorization": f"Bearer {MASTER_KEY}"}).json()["reports"]
        assert reports[0]["component"] == "anthropic" and reports[0]["note"] == "no script here"
        shot(page, "report-filed-without-script")
    finally:
        context.close()


def test_sign_out_ends_the_session(page: Any) -> None:
    page.goto("/ui/providers")
    page.click("form.sign-out button")
    page.wait_for_url("**/ui/login")
    page.goto("/ui/")
    assert page.url.endswith("/ui/login")  # the session is gone: back to signing in
    assert page.locator("h1").inner_text() == "Sign in"
    assert page.errors == []


def test_an_incident_opened_by_the_simulator_appears(page: Any, health_gateway: Any, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", model="claude-sonnet-4-6", mode="status", status=529)
    stop = threading.Event()
    sender = threading.Thread(target=traffic, args=(health_gateway.url, stop))
    sender.start()
    try:
        page.goto("/ui/")
        until(lambda: "Overloaded" in page.locator("#live-incidents").inner_text(), 20)
        shot(page, "incident-open")
        page.click("#live-incidents a")
        assert "Overloaded" in page.locator("h1").inner_text()
        assert page.locator("text=investigating").count() > 0
        shot(page, "incident-detail")
    finally:
        stop.set()
        sender.join()
        sim.clear_faults()
    assert page.errors == []
