"""SPEC §6 exports: scores and submission/upload status per exam as CSV and XLSX; candidate
identity joined back only for the school's admin."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook

from tests.helpers import bearer, staff
from tests.review.conftest import assign, queue, score, settings, verified_candidate
from vexam.identity.idnumbers import mask_id_number

pytestmark = pytest.mark.usefixtures("app")


async def test_csv_and_xlsx_with_identity_for_the_admin_only(
    app, client, inbox, new_phone, review
) -> None:
    scored = await verified_candidate(app, client, inbox, new_phone, review)
    waiting = await verified_candidate(app, client, inbox, new_phone, review, position=1)
    await settings(client, review, reviewers_per_submission=1, max_reviewers=1)
    await assign(client, review, 0)
    (entry,) = await queue(client, review.reviewers[0])
    assert (await score(client, review.reviewers[0], entry["code"], [50, 30.5])).status_code == 200
    exam_id = review.exam["id"]

    answer = await client.get(
        f"/api/v1/exams/{exam_id}/review/export.csv",
        headers={**review.admin, "Accept-Language": "en"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    assert answer.content.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert len(rows) == 2
    by_name = {row["Name"]: row for row in rows}
    first = by_name[scored.name]
    assert first["ID number"] == mask_id_number(scored.id_number)
    assert scored.id_number not in answer.text
    assert first["Candidate number"] == scored.candidate_number
    assert first["Review code"] == entry["code"] and first["Subject"] == "Étude"
    assert first["Upload"] == "Verified" and first["Review state"] == "Complete"
    assert first["Score 1"] == "80.5" and first["Aggregate"] == "80.5"
    assert first["Published"] == "No"
    second = by_name[waiting.name]
    assert second["Review state"] == "Waiting for scores" and second["Score 1"] == ""

    book = await client.get(
        f"/api/v1/exams/{exam_id}/review/export.xlsx",
        headers={**review.admin, "Accept-Language": "zh-CN"},
    )
    assert book.status_code == 200
    assert book.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(book.content)).active
    assert sheet is not None
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    header = values[0]
    assert header[0] == "姓名"
    lines = {row[0]: dict(zip(header, row, strict=True)) for row in values[1:]}
    assert lines[scored.name][header[header.index("姓名") + 2]] == scored.candidate_number
    assert 80.5 in lines[scored.name].values()
    assert lines[scored.name]["科目"] == "练习曲"  # the English name only in English

    # An operator exports codes only; reviewers and candidates not at all.
    operator = bearer(await staff(app, client, new_phone(), "operator"))
    plain = await client.get(f"/api/v1/exams/{exam_id}/review/export.csv", headers=operator)
    assert plain.status_code == 200
    for secret in scored.secrets() + waiting.secrets():
        assert secret not in plain.content.decode("utf-8-sig")
    assert entry["code"] in plain.content.decode("utf-8-sig")
    for who in (review.reviewers[0], scored.who):
        refused = await client.get(f"/api/v1/exams/{exam_id}/review/export.xlsx", headers=who)
        assert refused.status_code == 403


async def test_export_quotes_formulas(app, client, inbox, new_phone, review) -> None:
    """A name starting like a spreadsheet formula is written as text."""
    from sqlalchemy import update

    from tests.helpers import app_ctx
    from vexam.schools.models import RosterRow

    candidate = await verified_candidate(app, client, inbox, new_phone, review)
    async with app_ctx(app) as ctx:
        await ctx.session.execute(
            update(RosterRow)
            .where(RosterRow.candidate_number == candidate.candidate_number)
            .values(name="=HYPERLINK(1)")
        )
    answer = await client.get(
        f"/api/v1/exams/{review.exam['id']}/review/export.csv", headers=review.admin
    )
    assert "'=HYPERLINK(1)" in answer.content.decode("utf-8-sig")
