"""SPEC §2, §3, §7 and issue 9: the operator edits the platform policy — minimum app version,
a new exam's device rules, support hours and the review deadline. Stored values override the
settings; bad values answer `policy_setting_invalid` naming the field; changes are audited;
readers use a per-process cache that never reads the database per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from tests.accounts.test_operator_pages import browsers, follow, marked  # noqa: F401
from tests.exams.test_exam_setup import exam_body, new_school
from tests.helpers import app_ctx, bearer, staff
from vexam.accounts import policy as policies
from vexam.accounts.models import PlatformPolicyRow
from vexam.core.audit import AuditEntry
from vexam.core.policy import RESOURCE, PlatformPolicy, PolicyCache, current_policy
from vexam.support import service as support

pytestmark = pytest.mark.usefixtures("app")

GOOD = {
    "min_client_version": "2.5.0",
    "device_class": ["phone", "tablet"],
    "min_os_android": "9",
    "min_os_harmonyos": "3",
    "min_os_ios": "",
    "support_hours_start": "09:00",
    "support_hours_end": "21:00",
    "support_sla_minutes": "60",
}


async def forget_policy(app: Any) -> None:
    """Delete the stored policy: the run's other tests share this database."""
    async with app_ctx(app) as ctx:
        await ctx.session.execute(delete(PlatformPolicyRow))


@pytest.fixture
async def operator(app, client, new_phone, browsers) -> AsyncIterator[Any]:  # noqa: F811
    """An operator's browser on the policy page (its form token kept); the stored policy is
    removed again after the test."""
    await forget_policy(app)
    browser = browsers(await staff(app, client, new_phone(), "operator"))
    page = await browser.get("/operator/policy")
    assert page.status_code == 200 and 'data-stored="no"' in page.text
    try:
        yield browser
    finally:
        await forget_policy(app)


async def updates(app: Any) -> int:
    """How many policy changes the audit log holds."""
    async with app_ctx(app) as ctx:
        found = select(func.count()).where(AuditEntry.action == "policy.updated")
        return int(await ctx.session.scalar(found) or 0)


def cache_of(app: Any) -> PolicyCache:
    cache = app.state.resources[RESOURCE]
    assert isinstance(cache, PolicyCache)
    return cache


async def test_operator_saves_the_policy_and_every_reader_follows(
    app, client, operator, new_phone
) -> None:
    """Saved from the form: stored, audited (before/after), shown back; the version gate,
    a new exam's device rules and the support deadline use it at once in this process."""
    settings = app.state.settings
    saved = await operator.post("/operator/policy", **GOOD)
    page = await follow(operator, saved)
    assert 'data-stored="yes"' in page.text and 'value="2.5.0"' in page.text
    assert 'id="device-tablet" checked' in page.text.replace('"\n', '"')
    async with app_ctx(app) as ctx:
        row = await ctx.session.get(PlatformPolicyRow, policies.ROW_ID)
        assert row is not None
        assert (row.min_client_version, row.device_classes, row.min_os) == (
            "2.5.0",
            ["phone", "tablet"],
            {"android": "9", "harmonyos": "3"},
        )
        entry = await ctx.session.scalar(
            select(AuditEntry)
            .where(AuditEntry.action == "policy.updated")
            .order_by(AuditEntry.id.desc())
            .limit(1)
        )
        assert entry is not None and entry.actor_role == "operator"
        assert entry.detail["before"]["min_client_version"] == settings.min_client_version
        assert entry.detail["after"]["support_sla_minutes"] == 60

    # The version gate: 2.4 is now too old, 2.5.0 is fine.
    old = await client.get("/api/v1/me", headers={"X-Client-Version": "2.4.9"})
    assert old.status_code == 426 and old.json()["min_version"] == "2.5.0"
    ok = await client.get("/api/v1/me", headers={"X-Client-Version": "2.5.0"})
    assert ok.status_code == 401  # past the gate: not signed in

    # A new exam without device rules takes the platform's; its form starts from them.
    school_id = await new_school(app)
    admin = bearer(await staff(app, client, new_phone(), "school_admin", school_id))
    body = exam_body()
    created = await client.post(f"/api/v1/schools/{school_id}/exams", json=body, headers=admin)
    assert created.json()["device_policy"] == {
        "allowed_classes": ["phone", "tablet"],
        "min_os": {"android": "9", "harmonyos": "3"},
    }
    form = await client.get("/school/exams/new", headers={**admin, "Accept": "text/html"})
    assert 'value="9"' in form.text

    # Support's service hours and deadline (09:00–21:00 Shanghai, 60 minutes).
    policy = current_policy(app.state.settings, app.state.resources)
    assert (policy.support_hours_start, policy.support_sla_minutes) == ("09:00", 60)
    async with app_ctx(app) as ctx:
        ctx.extra = app.state.resources  # as requests and jobs get them
        made = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)  # 20:30 in Shanghai: 30 min left today
        assert support.due_at(ctx, made) == datetime(2026, 6, 2, 1, 30, tzinfo=UTC)  # 09:30
    helped = await client.get("/help", headers={"Accept": "text/html"})
    assert "21:00" in helped.text

    # Back to the server's defaults: the row goes (audited) and the gate follows at once.
    assert 'data-testid="reset-policy-form"' in page.text
    reset = await follow(operator, await operator.post("/operator/policy/reset"))
    assert 'data-stored="no"' in reset.text and 'data-testid="reset-policy-form"' not in reset.text
    assert f'value="{settings.min_client_version}"' in reset.text
    again = await client.get("/api/v1/me", headers={"X-Client-Version": "2.4.9"})
    assert again.status_code == 401
    async with app_ctx(app) as ctx:
        assert await ctx.session.get(PlatformPolicyRow, policies.ROW_ID) is None
        entry = await ctx.session.scalar(
            select(AuditEntry)
            .where(AuditEntry.action == "policy.reset")
            .order_by(AuditEntry.id.desc())
            .limit(1)
        )
        assert entry is not None and entry.detail["before"]["min_client_version"] == "2.5.0"


@pytest.mark.parametrize(
    ("change", "element"),
    [
        ({"min_client_version": "two"}, "min_client_version"),
        ({"device_class": []}, "device-phone"),
        ({"device_class": ["phone", "watch"]}, "device-phone"),
        ({"min_os_android": "7a"}, "min_os_android"),
        ({"support_hours_start": "25:00"}, "support_hours_start"),
        ({"support_hours_end": "08:00"}, "support_hours_end"),
        ({"support_sla_minutes": "0"}, "support_sla_minutes"),
        ({"support_sla_minutes": "soon"}, "support_sla_minutes"),
    ],
)
async def test_bad_values_are_refused_by_field(app, operator, change, element) -> None:
    """Each bad value: 422 policy_setting_invalid, its field marked, the typed value kept,
    nothing stored and nothing audited."""
    typed = {**GOOD, **change}
    before = await updates(app)
    refused = await operator.post("/operator/policy", **typed)
    assert refused.status_code == 422, refused.text
    assert 'data-code="policy_setting_invalid"' in refused.text
    assert marked(refused.text, element)
    if change.get("support_sla_minutes") == "soon":
        assert 'value="soon"' in refused.text
    async with app_ctx(app) as ctx:
        assert await ctx.session.get(PlatformPolicyRow, policies.ROW_ID) is None
    assert await updates(app) == before


async def test_other_processes_follow_within_the_ttl_and_requests_do_not_read(
    app, client, operator
) -> None:
    """Another process's cache keeps its snapshot until its TTL passes, then reads the stored
    policy once; many API requests in a row cost at most one read."""
    ticks = [0.0]
    other = PolicyCache(app.state.settings, policies.stored, ttl=30, monotonic=lambda: ticks[0])
    async with app_ctx(app) as ctx:
        assert (await other.refresh_in(ctx.session)).stored is False
    await operator.post("/operator/policy", **GOOD)
    async with app_ctx(app) as ctx:
        ticks[0] = 29.0
        assert (await other.refresh_in(ctx.session)).min_client_version != "2.5.0"
        ticks[0] = 30.0
        assert (await other.refresh_in(ctx.session)).min_client_version == "2.5.0"

    cache = cache_of(app)
    reads: list[int] = []
    real = cache.read
    assert real is not None

    async def counted(session: Any) -> PlatformPolicy | None:
        reads.append(1)
        return await real(session)

    cache.read = counted
    for _ in range(20):
        await client.get("/api/v1/me", headers={"X-Client-Version": "2.5.0"})
    assert len(reads) <= 1


def test_defaults_come_from_the_settings(app) -> None:
    """No stored policy: the settings' values and SPEC's device rules."""
    policy = PlatformPolicy.defaults(app.state.settings)
    assert policy.device_classes == ("phone",)
    assert dict(policy.min_os) == {"android": "7", "harmonyos": "2", "ios": "10"}
    assert policy.support_hours_start == app.state.settings.support_hours_start
