"""SPEC §6 blind review: every response and page a reviewer gets (JSON, HTML, errors,
redirects, in both languages) is free of the candidate's name, ID number, phone and candidate
number, raw or masked, and of ids that lead back to them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.review.conftest import Candidate, assign, queue, verified_candidate

pytestmark = pytest.mark.usefixtures("app")
# Keys that would name or lead back to a candidate ("name" is allowed: rubric criteria have
# names; the values themselves are searched for every candidate's name).
FORBIDDEN_KEYS = {
    "user_id",
    "submission_id",
    "sitting_id",
    "recording_id",
    "roster_row_id",
    "phone",
    "id_number",
    "id_number_masked",
    "candidate_number",
    "upload_id",
    "device_id",
    "filename",
}


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {key for child in value.values() for key in _keys(child)}
    if isinstance(value, list):
        return {key for child in value for key in _keys(child)}
    return set()


class Walker:
    """Records every response a reviewer got and checks it for the candidates' identity."""

    def __init__(self, client: httpx.AsyncClient, who: dict[str, str], people: list[Candidate]):
        self.client = client
        self.who = who
        self.people = people
        self.seen = 0

    async def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        for language in ("zh-CN", "en"):
            headers = {**self.who, "Accept-Language": language, **kwargs.pop("headers", {})}
            response = await self.client.request(method, url, headers=headers, **kwargs)
            self.check(response)
            if response.status_code in (302, 303) and "location" in response.headers:
                self.check(await self.client.get(response.headers["location"], headers=headers))
        return response

    def check(self, response: httpx.Response) -> None:
        self.seen += 1
        where = f"{response.request.method} {response.request.url}"
        text = response.text + json.dumps(dict(response.headers)) + str(response.request.url)
        for person in self.people:
            for secret in person.secrets():
                assert secret not in text, f"{secret!r} leaked in {where}"
        if response.headers.get("content-type", "").startswith("application/"):
            keys = _keys(response.json())
            assert not keys & FORBIDDEN_KEYS, f"{keys & FORBIDDEN_KEYS} in {where}"


async def test_reviewers_never_learn_who_they_score(app, client, inbox, new_phone, review):
    people = [
        await verified_candidate(
            app,
            client,
            inbox,
            new_phone,
            review,
            flags=[{"kind": "other_person", "from_s": 5, "to_s": 9}],
            events=("phone_call",),
        ),
        await verified_candidate(app, client, inbox, new_phone, review, position=1),
    ]
    await assign(client, review, 0)
    await assign(client, review, 0, position=1)
    walker = Walker(client, review.reviewers[0], people)
    entries = await queue(client, review.reviewers[0])
    assert len(entries) == 2

    await walker.call("GET", "/api/v1/review/queue")
    await walker.call("GET", "/review")
    for entry in entries:
        code = entry["code"]
        item = await walker.call("GET", f"/api/v1/review/items/{code}")
        body = item.json()
        await walker.call("GET", f"/api/v1/review/items/{code}/playback")
        page = await walker.call("GET", f"/review/items/{code}")
        assert page.status_code == 200
        points = [0.5] * len(body["rubric"]["criteria"])
        await walker.call(
            "PUT", f"/api/v1/review/items/{code}/score", json={"points": [999] * len(points)}
        )
        await walker.call("PUT", f"/api/v1/review/items/{code}/score", json={"points": points})
        form = {f"points-{i}": "x" for i in range(len(points))}
        refused = await walker.call("POST", f"/review/items/{code}", data=form)
        assert refused.status_code == 422
        form = {f"points-{i}": "1" for i in range(len(points))} | {"comment": "好"}
        saved = await walker.call("POST", f"/review/items/{code}", data=form)
        assert saved.status_code == 303
    flagged = next(e for e in entries if e["flagged"])
    detail = (await walker.call("GET", f"/api/v1/review/items/{flagged['code']}")).json()
    assert detail["face_flags"] == [{"kind": "other_person", "from_s": 5.0, "to_s": 9.0}]
    assert [(e["kind"], e["action"]) for e in detail["events"]] == [("phone_call", "flag")]
    page = await walker.call("GET", f"/review/items/{flagged['code']}")
    assert 'data-testid="face-flag"' in page.text and 'data-testid="event-mark"' in page.text
    await walker.call("GET", "/api/v1/review/items/R-NOSUCH22")
    await walker.call("GET", "/review/items/R-NOSUCH22")
    await walker.call("GET", "/api/v1/review/queue")
    await walker.call("GET", "/review")
    assert walker.seen >= 40

    # The school's admin sees the same codes in the console, still without identity there.
    admin = Walker(client, review.admin, people)
    console = await admin.call("GET", f"/school/exams/{review.exam['id']}/review")
    assert console.status_code == 200 and entries[0]["code"] in console.text
    await admin.call("GET", f"/api/v1/exams/{review.exam['id']}/review/progress")
