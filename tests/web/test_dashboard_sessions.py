"""The dashboard's sessions and CSRF protection: random sessions that expire and end at sign-out, a
token in every form that posts, state-changing requests refused without it or from another site,
and the report form working without the script while API clients keep posting JSON."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from outlast.web.session import Sessions, same_origin
from tests.conftest import MASTER_KEY, gateway_document
from tests.web.conftest import HEALTH

EVIL = "https://evil.example"
KEY = {"authorization": f"Bearer {MASTER_KEY}"}


@contextlib.contextmanager
def signed_in(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=10) as client:
        login = client.post("/ui/login", data={"key": MASTER_KEY})
        assert login.status_code == 303 and login.headers["location"] == "/ui/"
        yield client


def token(client: httpx.Client, path: str = "/ui/") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'<input type="hidden" name="csrf" value="([^"]+)">', page.text)
    assert found is not None, "no CSRF field on " + path
    return found.group(1)


def reports(url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.get(f"{url}/outlast/v1/reports", headers=KEY).json()["reports"]
    return found


def own(url: str) -> dict[str, str]:
    return {"origin": url}


# --------------------------------------------------------------------------- cross-site requests


def test_a_cross_site_report_without_the_token_is_refused_and_with_it_is_filed(health_gateway: Any) -> None:
    url = health_gateway.url
    with signed_in(url) as browser:
        csrf = token(browser)
        before = len(reports(url))
        # what another site can make a browser send: the cookie goes along, the token cannot
        forged = browser.post("/outlast/v1/reports", data={"component": "openai", "note": "forged"},
                              headers={"origin": EVIL})
        assert forged.status_code == 403 and "CSRF token" in forged.json()["error"]
        no_token = browser.post("/outlast/v1/reports", data={"component": "openai", "note": "forged"},
                                headers=own(url))
        assert no_token.status_code == 403
        wrong_token = browser.post("/outlast/v1/reports", data={"component": "openai", "csrf": "x" * 43},
                                   headers=own(url))
        assert wrong_token.status_code == 403
        elsewhere = browser.post("/outlast/v1/reports", data={"component": "openai", "csrf": csrf},
                                 headers={"origin": EVIL})
        assert elsewhere.status_code == 403  # the right token, but from another site's page
        by_referer = browser.post("/outlast/v1/reports", data={"component": "openai", "csrf": csrf},
                                  headers={"referer": f"{EVIL}/page"})
        assert by_referer.status_code == 403
        marked = browser.post("/outlast/v1/reports", json={"component": "openai"}, headers={"x-outlast-ui": "1"})
        assert marked.status_code == 403  # the old marker header alone no longer changes anything
        assert len(reports(url)) == before

        filed = browser.post("/outlast/v1/reports", data={"component": "openai", "note": "from the form",
                                                          "csrf": csrf}, headers=own(url))
        assert filed.status_code == 303 and filed.headers["location"] == "/ui/?reported=openai#report-form"
        assert "Report filed for openai. Thank you." in browser.get("/ui/?reported=openai").text
        scripted = browser.post("/outlast/v1/reports", json={"component": "anthropic", "note": "from the script"},
                                headers={"x-outlast-csrf": csrf, **own(url)})
        assert scripted.status_code == 201 and scripted.json()["component"] == "anthropic"
    notes = [r["note"] for r in reports(url)[:2]]
    assert notes == ["from the script", "from the form"]


def test_api_clients_with_the_master_key_still_post_json(health_gateway: Any) -> None:
    filed = httpx.post(f"{health_gateway.url}/outlast/v1/reports", headers=KEY, json={"component": "openai"})
    assert filed.status_code == 201 and filed.json()["component"] == "openai"
    assert httpx.post(f"{health_gateway.url}/outlast/v1/reports", json={"component": "openai"}).status_code == 401


def test_the_report_form_says_what_went_wrong_after_redirecting_back(health_gateway: Any) -> None:
    url = health_gateway.url
    with signed_in(url) as browser:
        csrf = token(browser)
        unknown = browser.post("/outlast/v1/reports", data={"component": "<b>nobody</b>", "csrf": csrf},
                               headers=own(url))
        assert unknown.status_code == 303 and unknown.headers["location"] == "/ui/?report_error=unknown#report-form"
        page = browser.get("/ui/?report_error=unknown").text
        assert "Not filed: outlast does not know that component." in page and "nobody" not in page
        # the page names only components it knows, whatever the address says
        assert "Report filed" not in browser.get("/ui/?reported=%3Cscript%3E").text


def test_signing_in_from_another_sites_page_is_refused(health_gateway: Any) -> None:
    with httpx.Client(base_url=health_gateway.url, timeout=10) as browser:
        refused = browser.post("/ui/login", data={"key": MASTER_KEY}, headers={"origin": EVIL})
        assert refused.status_code == 403 and "set-cookie" not in refused.headers
        assert browser.post("/ui/login", data={"key": MASTER_KEY},
                            headers=own(health_gateway.url)).status_code == 303


# --------------------------------------------------------------------------- sessions


def test_sign_out_ends_the_session_everywhere_it_was_used(health_gateway: Any) -> None:
    url = health_gateway.url
    with signed_in(url) as browser:
        cookie = browser.cookies["outlast_session"]
        csrf = token(browser)
        assert 'action="/ui/logout"' in browser.get("/ui/providers").text  # a sign-out button on every page
        assert browser.post("/ui/logout", data={}, headers=own(url)).status_code == 403  # no token: not signed out
        assert browser.get("/ui/").status_code == 200
        assert browser.get("/ui/logout").status_code == 200  # a page asking to confirm, with the form
        out = browser.post("/ui/logout", data={"csrf": csrf}, headers=own(url))
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
        assert "outlast_session=;" in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]
    # the old cookie, replayed, opens nothing
    with httpx.Client(base_url=url, timeout=10, cookies={"outlast_session": cookie}) as replay:
        page = replay.get("/ui/")
        assert page.status_code == 303 and page.headers["location"] == "/ui/login"
        assert replay.get("/outlast/v1/health", headers={"x-outlast-ui": "1"}).status_code == 401
        assert replay.post("/outlast/v1/reports", data={"component": "openai", "csrf": csrf},
                           headers=own(url)).status_code == 401
        assert replay.get("/ui/usage").status_code == 303


def test_session_cookies_are_random_http_only_strict_and_secure_over_https(health_gateway: Any) -> None:
    url = health_gateway.url
    ids = set()
    for headers in ({}, {"x-forwarded-proto": "https"}):
        login = httpx.post(f"{url}/ui/login", data={"key": MASTER_KEY}, headers=headers)
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie and "Max-Age=" in cookie
        assert ("; Secure" in cookie) == bool(headers)
        value = cookie.split(";")[0].split("=", 1)[1]
        assert len(value) >= 40 and MASTER_KEY not in cookie
        ids.add(value)
    assert len(ids) == 2  # a new random session each time, not a value derived from the key


def test_every_posting_form_carries_the_sessions_token_and_every_header_cell_its_scope(health_gateway: Any) -> None:
    with signed_in(health_gateway.url) as browser:
        csrf = token(browser)
        for path in ("/ui/", "/ui/incidents", "/ui/providers", "/ui/conversations", "/ui/conversations?q=x",
                     "/ui/usage", "/ui/logout"):
            html = browser.get(path).text
            forms = re.findall(r"<form[^>]*>.*?</form>", html, flags=re.S)
            posting = [f for f in forms if re.search(r'method="?post', f, flags=re.I)]
            assert posting, path
            for form in posting:
                assert f'<input type="hidden" name="csrf" value="{csrf}">' in form, (path, form)
            assert all("scope=" in th for th in re.findall(r"<th\b[^>]*>", html)), path


def test_sessions_expire_when_idle_and_after_their_lifetime() -> None:
    now = [1000.0]
    sessions = Sessions(b"master", clock=lambda: now[0], idle=60, lifetime=300, limit=3)

    def cookie(session: Any) -> dict[str, str]:
        return {"cookie": f"other=1; outlast_session={session.id}"}

    one = sessions.open()
    assert sessions.get(cookie(one)) is one
    now[0] += 59
    assert sessions.get(cookie(one)) is one  # used: idle time starts again
    now[0] += 59
    assert sessions.get(cookie(one)) is one
    now[0] += 61
    assert sessions.get(cookie(one)) is None  # idle too long
    two = sessions.open()
    for _ in range(6):  # kept busy, it still ends at its lifetime
        now[0] += 50
        assert sessions.get(cookie(two)) is two
    now[0] += 50
    assert sessions.get(cookie(two)) is None
    first, *rest = [sessions.open() for _ in range(4)]
    assert sessions.get(cookie(first)) is None and all(sessions.get(cookie(s)) is s for s in rest)  # at most 3
    assert sessions.get({"cookie": "outlast_session=made-up"}) is None
    assert one.csrf != two.csrf and not sessions.token_ok(two, None) and sessions.token_ok(two, two.csrf)


@pytest.mark.parametrize(("headers", "same"), [
    ({"host": "gw:8484", "origin": "http://gw:8484"}, True),
    ({"host": "gw:8484", "origin": "http://gw:9999"}, False),
    ({"host": "gw.example.com", "origin": "https://gw.example.com"}, True),  # behind a TLS proxy
    ({"host": "gw.example.com", "origin": "https://evil.example"}, False),
    ({"host": "gw:443", "origin": "https://gw"}, True),
    ({"host": "gw", "referer": "https://gw/ui/"}, True),
    ({"host": "gw", "referer": "https://evil.example/ui/"}, False),
    ({"host": "gw", "origin": "null"}, False),
    ({"host": "internal:8484", "x-forwarded-host": "gw.example.com", "origin": "https://gw.example.com"}, True),
    ({"host": "[::1]:8484", "origin": "http://[::1]:8484"}, True),
    ({"host": "gw"}, True),  # neither header (privacy tools strip them): the token decides
])
def test_same_origin(headers: dict[str, str], same: bool) -> None:
    assert same_origin({"scheme": "http"}, headers) is same


# --------------------------------------------------------------------------- without a master key


@pytest.fixture(scope="module")
def open_gateway(sim_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from outlast.app import build_gateway
    from outlast.config import validate
    from outlast.serving import BackgroundServer

    directory: Path = tmp_path_factory.mktemp("open-gateway")
    document = gateway_document(sim_server.url, health=HEALTH, store=f"sqlite:///{directory / 'outlast.db'}")
    del document["master_key"]
    gateway = build_gateway(validate(document), data_directory=directory)
    with BackgroundServer(gateway) as server:
        yield server


def test_an_open_dashboard_still_gives_its_forms_a_token_and_checks_it(open_gateway: Any) -> None:
    url = open_gateway.url
    with httpx.Client(base_url=url, timeout=10) as browser:
        page = browser.get("/ui/")
        assert page.status_code == 200 and "outlast_session" in browser.cookies  # an anonymous session
        assert 'action="/ui/logout"' not in page.text  # nobody signed in, nobody to sign out
        csrf = token(browser)
        assert browser.post("/outlast/v1/reports", data={"component": "openai"},
                            headers={"origin": EVIL}).status_code == 403
        filed = browser.post("/outlast/v1/reports", data={"component": "openai", "csrf": csrf}, headers=own(url))
        assert filed.status_code == 303
        login = browser.get("/ui/login")  # no master key: nothing to sign in to
        assert login.status_code == 303 and login.headers["location"] == "/ui/"
    # the API is open without a master key, as documented
    assert httpx.post(f"{url}/outlast/v1/reports", json={"component": "openai"}).status_code == 201
