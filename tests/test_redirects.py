"""Every redirect that carries user input stays on this site (issue 8, item 2's
siblings): the login redirect of a protected page, whatever its path, leads back only to
a path of this site after login."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from yarl import URL

from tests.helpers import demo_password

HOSTILE_PAGES = [
    "/cases/%2F%2Fevil.example",
    "/cases/%5C%5Cevil.example",
    "/cases/%09%2Fevil.example",
    "/sessions/%2F%2Fevil.example",
    "/cases?q=x&next=%2F%2Fevil.example",
    "/cases/new?matter=%2F%2Fevil.example",
]


def on_this_site(location: str) -> bool:
    parts = urlsplit(location)
    return (
        location.startswith("/")
        and not location.startswith("//")
        and not parts.scheme
        and not parts.netloc
        and not any(ch <= " " or ch == "\\" for ch in location)
    )


@pytest.mark.parametrize("target", HOSTILE_PAGES)
async def test_the_login_redirect_of_any_page_path_stays_on_this_site(anonymous, data_dir, target):
    """An anonymous request for a protected page with encoded slashes, backslashes or
    tabs in its path or query is sent to /login; the page it returns to after login is a
    path of this site."""
    first = await anonymous.get(URL(target, encoded=True), allow_redirects=False)
    assert first.status == 302
    location = first.headers["Location"]
    assert location.startswith("/login?next=")
    back = parse_qs(urlsplit(location).query)["next"][0]
    page = await (await anonymous.get("/login", params={"next": back})).text()
    token = re.findall(r'name="_csrf" value="([^"]+)"', page)[-1]
    carried = re.search(r'name="next" value="([^"]*)"', page)
    assert carried is not None
    response = await anonymous.post(
        "/login",
        data={
            "username": "chuangkou",
            "password": demo_password(data_dir, "chuangkou"),
            "next": html.unescape(carried.group(1)),
            "_csrf": token,
        },
        allow_redirects=False,
    )
    assert response.status == 302
    assert on_this_site(response.headers["Location"]), response.headers["Location"]
