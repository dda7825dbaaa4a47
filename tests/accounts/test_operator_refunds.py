"""Issue 9 / SPEC §4: the operator finds paid orders — by order number, by the candidate's
phone (whole or masked), by exam or school — a page at a time, and refunds from the list."""

from __future__ import annotations

import re

import pytest

from tests.accounts.test_operator_pages import browsers, follow  # noqa: F401 - a fixture
from tests.exams.test_enrollment import enrolled_with_order, world  # noqa: F401 - a fixture
from tests.helpers import app_ctx
from vexam.accounts.models import User
from vexam.accounts.phones import mask_phone

pytestmark = pytest.mark.usefixtures("app")


def listed(html: str) -> list[str]:
    """The order numbers the page lists."""
    return re.findall(r'data-testid="order-row" data-id="(\d+)"', html)


async def test_paid_orders_are_found_and_refunded_from_the_list(
    app,
    client,
    inbox,
    new_phone,
    world,  # noqa: F811
    browsers,  # noqa: F811
) -> None:
    who, order = await enrolled_with_order(app, client, inbox, new_phone, world)
    _, unpaid = await enrolled_with_order(app, client, inbox, new_phone, world)
    await client.post(order["pay_url"], headers=who)
    me = (await client.get("/api/v1/me", headers=who)).json()
    async with app_ctx(app) as ctx:
        phone = (await ctx.session.get(User, int(me["id"]))).phone
    operator = browsers(world["operator"]["Authorization"].split()[1], "en")
    number, code = str(order["id"]), world["exam"]["code"]

    page = await operator.get("/operator/refunds")
    assert number in listed(page.text) and str(unpaid["id"]) not in listed(page.text)
    assert mask_phone(phone) in page.text and phone not in page.text
    # On English pages the exam goes by its English name; a school with none keeps its own.
    row = re.search(rf'data-id="{number}".*?</tr>', page.text, re.S)
    assert row and "Piano performance" in row.group(0) and "钢琴演奏" not in row.group(0)
    assert "音乐学院" in row.group(0)
    for query in (number, phone, mask_phone(phone), code, code.upper()):
        found = await operator.get("/operator/refunds", q=query)
        assert listed(found.text) == [number], query
    for query in ("13900000000", "139****0000", "no-such-exam", "999999"):
        found = await operator.get("/operator/refunds", q=query)
        assert listed(found.text) == [] and 'data-testid="no-orders"' in found.text, query
    every = await operator.get("/operator/refunds", q=code, status="all")
    assert sorted(listed(every.text)) == sorted([number, str(unpaid["id"])])

    await operator.get("/operator/refunds", q=mask_phone(phone))
    done = await operator.post("/operator/refunds", order_id=number, reason="exam cancelled")
    notice = await follow(operator, done)
    assert number in notice.text and "180.00" in notice.text
    assert number not in listed(notice.text)
    refunded = await operator.get("/operator/refunds", status="refunded", q=number)
    assert listed(refunded.text) == [number]
    assert 'data-testid="order-refund-form"' not in refunded.text
