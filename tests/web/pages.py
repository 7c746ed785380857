"""Helpers for dashboard tests: signing in, reading CSRF tokens, posting forms."""

from __future__ import annotations

import re

import httpx

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    response = await client.post("/signin", content=f"key={key}", headers={"content-type": FORM})
    assert response.status_code == 303, response.text
    return response


FORM = "application/x-www-form-urlencoded"


async def post_form(client: httpx.AsyncClient, path: str, fields: dict[str, str]) -> httpx.Response:
    from urllib.parse import urlencode

    return await client.post(path, content=urlencode(fields), headers={"content-type": FORM})
