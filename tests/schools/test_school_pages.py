"""SPEC §4 school console pages: exam forms, roster preview and commit, corrections and
accommodations, each school's admins seeing only their own school (zh/en pages)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from tests.exams.test_exam_setup import exam_body, new_school
from tests.helpers import bearer, staff
from tests.schools.test_roster import candidate, csv_bytes, id_number
from vexam.core.audit import AuditEntry

pytestmark = pytest.mark.usefixtures("app")
HTML = {"Accept": "text/html"}


def exam_form(**changes: Any) -> dict[str, list[str]]:
    """A new-exam form as a browser posts it: two subjects, their fields repeated in order."""
    fields = {
        "code": "piano-form",
        "name": "钢琴演奏",
        "name_en": "Piano performance",
        "season": "2027",
        "starts": "2027-01-10T09:00",
        "ends": "2027-01-12T18:00",
        "grace_hours": "36",
        "mock_enabled": "on",
        "mock_limit": "3",
        "fee_yuan": "180.50",
        "published": "on",
        "min_os_android": "8",
        "min_os_harmonyos": "2",
        "min_os_ios": "12",
        "anti_cheat_phone_call": "flag",
        "anti_cheat_screenshot": "fail_exam",
        "action": "save",
    }
    fields.update(changes.pop("fields", {}))
    subjects = changes.pop(
        "subjects",
        [
            {
                "name": "练习曲",
                "attempts": "2",
                "max_seconds": "300",
                "rubric": "技巧: 50\n音乐性：50",
            },
            {"name": "乐曲", "attempts": "10", "max_seconds": "600", "camera": "back"},
        ],
    )
    posted = [(key, value) for key, value in fields.items()]
    posted += [("device_class", kind) for kind in changes.pop("devices", ["phone", "tablet"])]
    for subject in subjects:
        values = {
            "name": "",
            "name_en": "",
            "attempts": "2",
            "max_seconds": "300",
            "prompt": "",
            "camera": "either",
            "orientation": "choice",
            "face_check_seconds": "60",
            "mock_face_checks": "walkthrough",
            "rubric": "",
            "rubric_step": "0.5",
            **subject,
        }
        posted += [(f"subject_{key}", value) for key, value in values.items()]
    assert not changes
    form: dict[str, list[str]] = {}
    for key, value in posted:
        form.setdefault(key, []).append(value)
    return form


def subject_count(html: str) -> int:
    """How many subjects the form shows (not counting the blank one JavaScript copies)."""
    return len(re.findall(r'data-testid="subject" data-index="\d+"', html))


def marked(html: str, element_id: str) -> bool:
    """Whether the form control with this id is marked invalid."""
    match = re.search(rf'<[^>]*id="{re.escape(element_id)}"[^>]*>', html)
    assert match, element_id
    return 'aria-invalid="true"' in match.group(0)


@pytest.fixture
async def school(app, client, new_phone) -> dict[str, Any]:
    """A school and its admin (API token)."""
    school_id = await new_school(app)
    admin = bearer(await staff(app, client, new_phone(), "school_admin", school_id))
    return {"id": school_id, "admin": {**admin, **HTML}, "api": admin}


async def api_exam(client, school) -> dict[str, Any]:
    created = await client.post(
        f"/api/v1/schools/{school['id']}/exams", json=exam_body(), headers=school["api"]
    )
    assert created.status_code == 201, created.text
    exam: dict[str, Any] = created.json()
    return exam


async def test_create_exam_by_form_then_edit_it(client, school) -> None:
    """§4: the form's local times, hours, yuan, policies and subjects become the exam; edit
    shows them back and saves the whole form again."""
    home = await client.get("/school", headers=school["admin"])
    assert home.status_code == 200 and 'data-testid="no-exams"' in home.text
    blank = await client.get("/school/exams/new", headers=school["admin"])
    assert blank.status_code == 200 and 'data-testid="exam-form"' in blank.text
    created = await client.post("/school/exams/new", data=exam_form(), headers=school["admin"])
    assert created.status_code == 303, created.text
    exam_id = int(created.headers["location"].split("/")[3])
    exam = (await client.get(f"/api/v1/exams/{exam_id}", headers=school["api"])).json()
    assert exam["formal_starts_at"].startswith("2027-01-10T01:00")  # 09:00 in Asia/Shanghai
    assert (exam["upload_grace_minutes"], exam["fee_cents"], exam["mock_limit"]) == (
        36 * 60,
        18050,
        3,
    )
    assert exam["published"] and exam["mock_enabled"]
    assert exam["device_policy"] == {
        "allowed_classes": ["phone", "tablet"],
        "min_os": {"android": "8", "harmonyos": "2", "ios": "12"},
    }
    assert exam["anti_cheat"]["phone_call"] == "flag"
    assert exam["anti_cheat"]["screenshot"] == "fail_exam"
    assert exam["anti_cheat"]["left_page"] == "void_attempt"
    assert [(s["name"], s["attempts"], s["camera"]) for s in exam["subjects"]] == [
        ("练习曲", 2, "either"),
        ("乐曲", 10, "back"),
    ]
    assert exam["subjects"][0]["rubric"]["criteria"] == [
        {"name": "技巧", "max_points": 50.0},
        {"name": "音乐性", "max_points": 50.0},
    ]
    listed = await client.get("/school", headers={**school["admin"], "Accept-Language": "en"})
    assert 'data-testid="exam-piano-form"' in listed.text and "180.50" in listed.text
    assert "2027-01-10 09:00 (Asia/Shanghai)" in listed.text

    form = await client.get(f"/school/exams/{exam_id}/edit", headers=school["admin"])
    assert 'value="2027-01-10T09:00"' in form.text and 'value="36"' in form.text
    assert "技巧: 50" in form.text and 'value="180.50"' in form.text
    # Without JavaScript, "remove" posts the form and comes back without that subject.
    trimmed = await client.post(
        f"/school/exams/{exam_id}/edit",
        data=exam_form(fields={"action": "remove_subject-0"}),
        headers=school["admin"],
    )
    assert trimmed.status_code == 200 and subject_count(trimmed.text) == 1
    saved = await client.post(
        f"/school/exams/{exam_id}/edit",
        data=exam_form(
            fields={"name": "钢琴演奏（改）", "fee_yuan": "200", "ends": "2027-01-13T18:00"},
            subjects=[{"name": "乐曲", "attempts": "3"}],
        ),
        headers=school["admin"],
    )
    assert saved.status_code == 303, saved.text
    exam = (await client.get(f"/api/v1/exams/{exam_id}", headers=school["api"])).json()
    assert (exam["name"], exam["fee_cents"], len(exam["subjects"])) == ("钢琴演奏（改）", 20000, 1)
    assert exam["formal_ends_at"].startswith("2027-01-13T10:00")


async def test_refused_exam_forms_show_the_field_and_keep_what_was_typed(client, school) -> None:
    """§4: a window ending before it starts answers exam_window_invalid on both times; zero
    attempts names that subject's field; nothing is created and the typing is kept."""
    backwards = await client.post(
        "/school/exams/new",
        data=exam_form(fields={"code": "kept-code", "ends": "2027-01-09T09:00"}),
        headers=school["admin"],
    )
    assert backwards.status_code == 422
    assert 'data-code="exam_window_invalid"' in backwards.text
    assert marked(backwards.text, "starts") and marked(backwards.text, "ends")
    assert not marked(backwards.text, "code")
    assert 'value="kept-code"' in backwards.text and "练习曲" in backwards.text

    zero = await client.post(
        "/school/exams/new",
        data=exam_form(
            subjects=[{"name": "练习曲"}, {"name": "乐曲", "attempts": "0"}],
        ),
        headers={**school["admin"], "Accept-Language": "en"},
    )
    assert zero.status_code == 422
    assert 'data-code="exam_setting_invalid"' in zero.text
    assert 'data-field="subjects.1.attempts"' in zero.text
    assert marked(zero.text, "subject-1-attempts") and not marked(zero.text, "subject-0-attempts")
    assert "Subject 2 · Attempts" in zero.text and "between 1 and 50" in zero.text

    words = await client.post(
        "/school/exams/new",
        data=exam_form(fields={"fee_yuan": "lots"}),
        headers=school["admin"],
    )
    assert words.status_code == 422 and marked(words.text, "fee_yuan")
    listed = await client.get(f"/api/v1/schools/{school['id']}/exams", headers=school["api"])
    assert listed.json() == []

    first = await client.post("/school/exams/new", data=exam_form(), headers=school["admin"])
    assert first.status_code == 303
    again = await client.post("/school/exams/new", data=exam_form(), headers=school["admin"])
    assert again.status_code == 409 and 'data-code="exam_code_taken"' in again.text
    assert marked(again.text, "code")


async def test_roster_preview_commit_correct_and_accommodate(app, client, school) -> None:
    """§4: upload → preview with each bad row's reason → import the valid rows → correct a
    row (audited) → grant an accommodation with a reason."""
    exam = await api_exam(client, school)
    base = f"/school/exams/{exam['id']}/roster"
    good, other = id_number(), id_number()
    wrong = good[:17] + ("0" if good[17] != "0" else "1")
    rows = [
        ["张三", good, "北京", candidate(), "钢琴"],
        ["李四", wrong, "北京", candidate(), ""],
        ["王五", other, "广东", candidate(), "声乐"],
        ["赵六", good, "北京", candidate(), ""],
    ]
    sent = await client.post(
        f"{base}/imports", files={"file": ("名单.csv", csv_bytes(rows))}, headers=school["admin"]
    )
    assert sent.status_code == 303, sent.text
    preview_url = sent.headers["location"]
    preview = await client.get(preview_url, headers={**school["admin"], "Accept-Language": "en"})
    assert preview.status_code == 200
    assert re.search(r'data-testid="total-rows">4<', preview.text)
    assert re.search(r'data-testid="error-rows">2<', preview.text)
    assert 'data-row="3" data-reason="check_character"' in preview.text
    assert 'data-row="5" data-reason="duplicate"' in preview.text
    assert "the last character does not match" in preview.text and "repeats row 2" in preview.text
    # A left-out row is not on the roster, so it is fixed in the file (it said "or correct the
    # rows afterwards", which a new admin looked for in vain).
    assert "import it again: the rows already imported are updated" in preview.text
    assert "afterwards" not in preview.text
    assert wrong not in preview.text
    assert (await client.get(base, headers=school["admin"])).text.count("roster-row") == 0

    import_id = preview_url.rsplit("/", 1)[1]
    refused = await client.post(f"{base}/imports/{import_id}/commit", headers=school["admin"])
    assert refused.status_code == 422 and 'data-code="roster_invalid"' in refused.text
    done = await client.post(
        f"{base}/imports/{import_id}/commit", data={"skip_invalid": "1"}, headers=school["admin"]
    )
    assert done.status_code == 303, done.text
    page = await client.get(done.headers["location"], headers=school["admin"])
    assert page.text.count('data-testid="roster-row"') == 2
    assert 'role="status"' in page.text  # the "imported" notice
    assert good not in page.text and good[-4:] in page.text
    listed = (await client.get(f"/api/v1/exams/{exam['id']}/roster", headers=school["api"])).json()
    row_id = listed["rows"][0]["id"]

    bad_province = await client.post(
        f"{base}/{row_id}/correct",
        data={"name": "张叁", "province": "火星", "candidate_number": "", "major": "钢琴"},
        headers=school["admin"],
    )
    assert bad_province.status_code == 422 and 'data-code="invalid_request"' in bad_province.text
    assert marked(bad_province.text, f"correct-{row_id}-province")
    assert 'value="火星"' in bad_province.text
    fixed = await client.post(
        f"{base}/{row_id}/correct",
        data={"name": "张叁", "province": "河北", "candidate_number": "", "major": "钢琴"},
        headers=school["admin"],
    )
    assert fixed.status_code == 303
    row = (await client.get(f"/api/v1/exams/{exam['id']}/roster", headers=school["api"])).json()
    assert (row["rows"][0]["name"], row["rows"][0]["province"]) == ("张叁", "河北")
    assert row["rows"][0]["candidate_number"] is None
    async with app.state.db.unit_of_work() as session:
        audit = (
            await session.execute(
                select(AuditEntry).where(
                    AuditEntry.action == "roster.row_corrected",
                    AuditEntry.subject_id == str(row_id),
                )
            )
        ).scalar_one()
        assert "张三" in str(audit.detail) and "张叁" in str(audit.detail)

    no_reason = await client.post(
        f"{base}/{row_id}/accommodation",
        data={"extra_attempts": "2", "extra_seconds": "", "window_ends_at": "", "reason": ""},
        headers=school["admin"],
    )
    assert no_reason.status_code == 422 and marked(no_reason.text, f"acc-{row_id}-reason")
    granted = await client.post(
        f"{base}/{row_id}/accommodation",
        data={
            "extra_attempts": "2",
            "extra_seconds": "120",
            "window_ends_at": "2027-01-13T18:00",
            "reason": "右手骨折，医院证明已存档",
        },
        headers=school["admin"],
    )
    assert granted.status_code == 303, granted.text
    listed_acc = (
        await client.get(f"/api/v1/exams/{exam['id']}/accommodations", headers=school["api"])
    ).json()
    assert [(a["roster_row_id"], a["extra_attempts"], a["extra_seconds"]) for a in listed_acc] == [
        (row_id, 2, 120)
    ]
    assert listed_acc[0]["window_ends_at"].startswith("2027-01-13T10:00")
    page = await client.get(base, headers=school["admin"])
    assert 'data-testid="accommodation"' in page.text and "右手骨折" in page.text


async def test_unreadable_roster_file_is_refused_in_words(client, school) -> None:
    """§4: a file that is no CSV/XLSX answers roster_invalid on the roster page; none chosen too."""
    exam = await api_exam(client, school)
    base = f"/school/exams/{exam['id']}/roster"
    junk = await client.post(
        f"{base}/imports",
        files={"file": ("roster.xlsx", b"PK\x03\x04 not really a workbook")},
        headers={**school["admin"], "Accept-Language": "en"},
    )
    assert junk.status_code == 422 and 'data-code="roster_invalid"' in junk.text
    assert "not a readable CSV or XLSX file" in junk.text
    missing = await client.post(
        f"{base}/imports",
        files={"file": ("", b"")},
        headers={**school["admin"], "Accept-Language": "en"},
    )
    assert missing.status_code == 422 and "no file was chosen" in missing.text


async def test_other_schools_and_other_roles_get_nothing(app, client, school, new_phone) -> None:
    """§4: an admin of school B gets none of school A's pages or forms; reviewers, support and
    candidates are refused; operators pick any school."""
    exam = await api_exam(client, school)
    rows = [["张三", id_number(), "北京", candidate(), ""]]
    sent = await client.post(
        f"/school/exams/{exam['id']}/roster/imports",
        files={"file": ("r.csv", csv_bytes(rows))},
        headers=school["admin"],
    )
    preview_url = sent.headers["location"]
    await client.post(f"{preview_url}/commit", data={"skip_invalid": "1"}, headers=school["admin"])
    listed = (await client.get(f"/api/v1/exams/{exam['id']}/roster", headers=school["api"])).json()
    row_id = listed["rows"][0]["id"]

    other_school = await new_school(app)
    other = {
        **bearer(await staff(app, client, new_phone(), "school_admin", other_school)),
        **HTML,
    }
    base = f"/school/exams/{exam['id']}"
    assert (await client.get(f"/school?school_id={school['id']}", headers=other)).status_code == 404
    own = await client.get("/school", headers=other)
    assert own.status_code == 200 and exam["code"] not in own.text
    for url in (f"{base}/edit", f"{base}/roster", preview_url):
        refused = await client.get(url, headers=other)
        assert refused.status_code == 404, url
        assert "张三" not in refused.text and exam["code"] not in refused.text
    posts: list[tuple[str, dict[str, Any]]] = [
        (f"{base}/edit", {"data": exam_form()}),
        (f"{base}/roster/imports", {"files": {"file": ("r.csv", csv_bytes(rows))}}),
        (f"{preview_url}/commit", {"data": {"skip_invalid": "1"}}),
        (f"{base}/roster/{row_id}/correct", {"data": {"name": "黑客", "province": "北京"}}),
        (
            f"{base}/roster/{row_id}/accommodation",
            {"data": {"extra_attempts": "9", "reason": "想要"}},
        ),
    ]
    for url, body in posts:
        refused = await client.post(url, headers=other, **body)
        assert refused.status_code == 404, (url, refused.status_code)
    after = (await client.get(f"/api/v1/exams/{exam['id']}/roster", headers=school["api"])).json()
    assert after["rows"][0]["name"] == "张三"
    exam_now = (await client.get(f"/api/v1/exams/{exam['id']}", headers=school["api"])).json()
    assert exam_now["code"] == exam["code"]
    accs = await client.get(f"/api/v1/exams/{exam['id']}/accommodations", headers=school["api"])
    assert accs.json() == []

    for role, school_id in (("reviewer", school["id"]), ("support", None), ("candidate", None)):
        who = {**bearer(await staff(app, client, new_phone(), role, school_id)), **HTML}
        assert (await client.get("/school", headers=who)).status_code == 403, role
        assert (await client.get(f"{base}/roster", headers=who)).status_code == 403, role
        posted = await client.post("/school/exams/new", data=exam_form(), headers=who)
        assert posted.status_code == 403, role

    operator = {**bearer(await staff(app, client, new_phone(), "operator")), **HTML}
    picker = await client.get("/school", headers=operator)
    assert picker.status_code == 200 and f"/school?school_id={school['id']}" in picker.text
    chosen = await client.get(f"/school?school_id={school['id']}", headers=operator)
    assert f'data-testid="exam-{exam["code"]}"' in chosen.text
    assert f"/school/exams/new?school_id={school['id']}" in chosen.text
    assert (await client.get(f"{base}/roster", headers=operator)).status_code == 200


async def test_exam_list_and_roster_name_the_exam_in_the_page_language(client, school) -> None:
    """The exam list's column is the exam (考试), not a person's name (姓名); the roster's
    browser title shows the English name on English pages, like its heading."""
    exam = await api_exam(client, school)
    home = await client.get("/school", headers=school["admin"])
    header = re.search(r"<thead>(.*?)</thead>", home.text, re.S)
    assert header and "<th>考试</th>" in header.group(1) and "姓名" not in header.group(1)
    english = {**school["admin"], "Accept-Language": "en"}
    roster = await client.get(f"/school/exams/{exam['id']}/roster", headers=english)
    assert "<title>Roster · Piano performance</title>" in roster.text
