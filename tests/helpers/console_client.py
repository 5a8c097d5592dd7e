"""Signing in to the console in tests (Starlette's test client over the real app): the origin its CSRF check
accepts, the CSRF token a page's form carries, and a client signed in with an analyst's token."""

from __future__ import annotations

import re

ORIGIN = "http://127.0.0.1:8050"


def form_csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def client_for(app, **kwargs):
    from starlette.testclient import TestClient

    return TestClient(app, base_url=ORIGIN, **kwargs)


def signed_in(app, token: str):
    """A client of `app` signed in with `token`: the sign-in form answered 303."""
    client = client_for(app)
    page = client.get("/login")
    done = client.post(
        "/login", data={"token": token, "csrf_token": form_csrf(page.text), "next": "/"}, follow_redirects=False
    )
    assert done.status_code == 303, done.status_code
    return client
