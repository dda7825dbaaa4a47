"""Every page names the site's icon, served from /static: without it the browser asked for
/favicon.ico, got a 404 and logged a console error on the first page of every visit."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.usefixtures("app")


async def test_pages_name_an_icon_that_is_served(client) -> None:
    page = await client.get("/login", headers={"Accept": "text/html"})
    assert page.status_code == 200
    link = re.search(r'<link rel="icon" href="([^"]+)"', page.text)
    assert link and link.group(1).startswith("/static/")
    icon = await client.get(link.group(1))
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.lstrip().startswith("<svg")
