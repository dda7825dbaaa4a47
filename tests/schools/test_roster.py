"""SPEC §4 roster import: CSV/XLSX preview with per-row reasons, commit, re-import, correction."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.exams.test_exam_setup import exam_body, new_school
from tests.helpers import app_ctx, bearer, register, staff
from vexam.core.audit import AuditEntry
from vexam.core.crypto import blind_index
from vexam.identity.idnumbers import check_character
from vexam.schools import roster, roster_files
from vexam.schools.models import RosterImport, RosterStagedRow

pytestmark = pytest.mark.usefixtures("app")

_serial = itertools.count(1)
HEADER_ZH = ["姓名", "身份证号", "高考省份", "考生号", "专业"]


def id_number(region: str = "110105") -> str:
    """A valid ID number, different every call in this run."""
    n = next(_serial)
    first17 = f"{region}2008{1 + n // 28 % 12:02d}{1 + n % 28:02d}{n % 1000:03d}"
    return first17 + check_character(first17)


def candidate() -> str:
    return f"27{next(_serial):012d}"


def csv_bytes(
    rows: list[list[str]], header: list[str] = HEADER_ZH, encoding: str = "utf-8"
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[Any]], header: list[str]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.fixture
async def exam(app, client, new_phone) -> dict[str, Any]:
    """A school, its admin and an exam."""
    school_id = await new_school(app)
    admin = bearer(await staff(app, client, new_phone(), "school_admin", school_id))
    created = await client.post(
        f"/api/v1/schools/{school_id}/exams", json=exam_body(), headers=admin
    )
    assert created.status_code == 201, created.text
    return {"id": created.json()["id"], "school_id": school_id, "admin": admin}


async def upload(client, exam, data: bytes, filename: str = "roster.csv") -> Any:
    return await client.post(
        f"/api/v1/exams/{exam['id']}/roster/imports",
        files={"file": (filename, data)},
        headers=exam["admin"],
    )


async def commit(client, exam, import_id: int, **body: Any) -> Any:
    return await client.post(
        f"/api/v1/exams/{exam['id']}/roster/imports/{import_id}/commit",
        json=body,
        headers=exam["admin"],
    )


async def rows_of(client, exam) -> list[dict[str, Any]]:
    listed = await client.get(f"/api/v1/exams/{exam['id']}/roster", headers=exam["admin"])
    assert listed.status_code == 200, listed.text
    return list(listed.json()["rows"])


async def actions(app, subject_type: str) -> list[AuditEntry]:
    async with app.state.db.unit_of_work() as session:
        found = await session.execute(
            select(AuditEntry)
            .where(AuditEntry.subject_type == subject_type)
            .order_by(AuditEntry.id)
        )
        return list(found.scalars())


async def test_csv_preview_then_commit(app, client, exam) -> None:
    """§4: a clean UTF-8 CSV previews with no bad rows, commits once, rows listed masked."""
    numbers = [id_number(), id_number(), id_number()[:17] + "x"]
    numbers[2] = numbers[2][:17] + check_character(numbers[2][:17])
    rows = [
        ["张三", numbers[0], "北京", candidate(), "钢琴"],
        [" 李 四 ", numbers[1], "广东省", candidate(), ""],
        ["王五", numbers[2], "44", "", "声乐"],
    ]
    previewed = await upload(client, exam, csv_bytes(rows))
    assert previewed.status_code == 201, previewed.text
    body = previewed.json()
    assert (body["status"], body["total_rows"], body["valid_rows"], body["errors"]) == (
        "previewed",
        3,
        3,
        [],
    )
    assert await rows_of(client, exam) == []  # nothing imported before commit
    done = await commit(client, exam, body["id"])
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["inserted_rows"], done.json()["updated_rows"]) == (
        "committed",
        3,
        0,
    )
    again = await commit(client, exam, body["id"])
    assert again.status_code == 422
    assert (again.json()["code"], again.json()["reason"]) == ("roster_invalid", "already_committed")
    listed = await rows_of(client, exam)
    assert [(r["name"], r["province"], r["major"]) for r in listed] == [
        ("张三", "北京", "钢琴"),
        ("李 四", "广东", None),
        ("王五", "广东", "声乐"),
    ]
    assert listed[0]["id_number_masked"] == numbers[0][:6] + "********" + numbers[0][-4:]
    assert numbers[0] not in str(listed)
    assert [e.action for e in await actions(app, "roster_import")][-2:] == [
        "roster.previewed",
        "roster.committed",
    ]
    # The blind index is the identity domain's: an application finds the row by it.
    key = app.state.settings.data_key
    async with app_ctx(app) as ctx:
        found = await roster.find_row(
            ctx, exam["id"], blind_index(key, numbers[0], kind="id_number")
        )
        assert found is not None and found.name == "张三"


async def test_xlsx_with_english_headers(client, exam) -> None:
    """§4: XLSX (openpyxl) with English headers in any case and spacing; numeric cells."""
    number = id_number("450102")
    header = [" Name ", "ID_Number", "PROVINCE", "Candidate Number", "Major"]
    rows = [["韦六", number, "广西壮族自治区", int("27450102000001"), "舞蹈"]]
    previewed = await upload(client, exam, xlsx_bytes(rows, header), "roster.xlsx")
    assert previewed.status_code == 201, previewed.text
    assert previewed.json()["valid_rows"] == 1
    assert (await commit(client, exam, previewed.json()["id"])).status_code == 200
    (row,) = await rows_of(client, exam)
    assert (row["province"], row["candidate_number"]) == ("广西", "27450102000001")


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig"])
async def test_csv_as_excel_in_china_saves_it(client, exam, encoding: str) -> None:
    """§4: GBK / GB18030 and UTF-8 with BOM are all read, Chinese headers and names intact."""
    rows = [["欧阳娜娜", id_number(), "浙江", candidate(), "小提琴"]]
    previewed = await upload(client, exam, csv_bytes(rows, encoding=encoding))
    assert previewed.status_code == 201, previewed.text
    assert previewed.json()["valid_rows"] == 1
    await commit(client, exam, previewed.json()["id"])
    assert [r["name"] for r in await rows_of(client, exam)] == ["欧阳娜娜"]


async def test_bad_rows_each_with_reason_and_duplicates(client, exam) -> None:
    """§4: every bad row is listed with its column and reason; duplicates name both rows."""
    good, twin = id_number(), id_number()
    wrong_check = good[:17] + ("0" if good[17] != "0" else "1")
    shared = candidate()
    rows = [
        ["张三", good, "北京", shared, "钢琴"],  # row 2: fine
        ["", id_number(), "北京", candidate(), ""],  # 3: no name
        ["李四", wrong_check, "北京", candidate(), ""],  # 4
        ["王五", "1101051990", "北京", candidate(), ""],  # 5
        ["赵六", id_number(), "火星", candidate(), ""],  # 6
        ["钱七", id_number(), "北京", "AB", ""],  # 7
        ["孙八", good, "北京", candidate(), ""],  # 8: same ID number as row 2
        ["周九", twin, "北京", shared, ""],  # 9: same candidate number as row 2
        ["吴十", id_number(), "", candidate(), ""],  # 10
    ]
    previewed = await upload(client, exam, csv_bytes(rows))
    assert previewed.status_code == 201, previewed.text
    body = previewed.json()
    assert (body["total_rows"], body["valid_rows"], body["error_rows"]) == (9, 1, 8)
    assert [(e["row"], e["column"], e["reason"], e["other_row"]) for e in body["errors"]] == [
        (3, "name", "missing", None),
        (4, "id_number", "check_character", None),
        (5, "id_number", "length", None),
        (6, "province", "unknown", None),
        (7, "candidate_number", "format", None),
        (8, "id_number", "duplicate", 2),
        (9, "candidate_number", "duplicate", 2),
        (10, "province", "missing", None),
    ]
    page = await client.get(
        f"/api/v1/exams/{exam['id']}/roster/imports/{body['id']}?page=2&page_size=3",
        headers=exam["admin"],
    )
    assert [e["row"] for e in page.json()["errors"]] == [6, 7, 8]
    refused = await commit(client, exam, body["id"])
    assert refused.status_code == 422
    assert (refused.json()["code"], refused.json()["reason"]) == (
        "roster_invalid",
        "preview_has_errors",
    )
    skipped = await commit(client, exam, body["id"], skip_invalid=True)
    assert skipped.status_code == 200, skipped.text
    assert skipped.json()["inserted_rows"] == 1
    assert [r["name"] for r in await rows_of(client, exam)] == ["张三"]


async def test_reimport_updates_by_id_number(client, exam) -> None:
    """§4: importing again updates the rows of known ID numbers and adds the new ones."""
    kept, fresh = id_number(), id_number()
    first = await upload(client, exam, csv_bytes([["张三", kept, "北京", candidate(), "钢琴"]]))
    await commit(client, exam, first.json()["id"])
    second = await upload(
        client,
        exam,
        csv_bytes([["张叁", kept, "河北", candidate(), "声乐"], ["李四", fresh, "天津", "", ""]]),
    )
    done = await commit(client, exam, second.json()["id"])
    assert (done.json()["inserted_rows"], done.json()["updated_rows"]) == (1, 1)
    listed = await rows_of(client, exam)
    assert [(r["name"], r["province"], r["major"]) for r in listed] == [
        ("张叁", "河北", "声乐"),
        ("李四", "天津", None),
    ]


async def test_preview_expires(app, client, clock, exam) -> None:
    """A preview left for more than 24 hours cannot be committed; it is marked expired."""
    previewed = await upload(client, exam, csv_bytes([["张三", id_number(), "北京", "", ""]]))
    clock.advance(hours=25)
    late = await commit(client, exam, previewed.json()["id"])
    assert (late.status_code, late.json()["reason"]) == (422, "preview_expired")
    async with app.state.db.unit_of_work() as session:
        job = await session.get(RosterImport, previewed.json()["id"])
        assert job is not None and job.status == "expired"
    # The next preview clears the staged rows of previews older than 24 hours.
    await upload(client, exam, csv_bytes([["李四", id_number(), "天津", "", ""]]))
    async with app.state.db.unit_of_work() as session:
        left = await session.scalar(
            select(func.count())
            .select_from(RosterStagedRow)
            .where(RosterStagedRow.import_id == previewed.json()["id"])
        )
    assert left == 0


async def test_admin_corrects_a_row_audited(app, client, exam) -> None:
    """§4: a school admin corrects name and province; the change is in the audit log."""
    previewed = await upload(client, exam, csv_bytes([["张三", id_number(), "北京", "", ""]]))
    await commit(client, exam, previewed.json()["id"])
    (row,) = await rows_of(client, exam)
    url = f"/api/v1/exams/{exam['id']}/roster/{row['id']}"
    fixed = await client.patch(
        url,
        json={"name": "张 叁", "province": "13", "candidate_number": "27110101000009"},
        headers=exam["admin"],
    )
    assert fixed.status_code == 200, fixed.text
    assert (fixed.json()["name"], fixed.json()["province"]) == ("张 叁", "河北")
    assert fixed.json()["candidate_number"] == "27110101000009"
    entry = (await actions(app, "roster_row"))[-1]
    assert entry.action == "roster.row_corrected" and entry.subject_id == str(row["id"])
    assert entry.detail["changes"]["province"] == {"from": "北京", "to": "河北"}
    bad = await client.patch(url, json={"province": "火星"}, headers=exam["admin"])
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_request"
    missing = await client.patch(
        f"/api/v1/exams/{exam['id']}/roster/999999", json={"name": "x"}, headers=exam["admin"]
    )
    assert missing.status_code == 404 and missing.json()["code"] == "roster_row_not_found"


@pytest.mark.parametrize(
    ("data", "filename", "reason"),
    [
        (bytes(range(256)) * 40, "roster.csv", "unreadable"),
        (b"PK\x03\x04 this is not a zip archive", "roster.xlsx", "unreadable"),
        ("姓名,专业\n张三,钢琴\n".encode(), "roster.csv", "missing_columns"),
        (b"", "roster.csv", "empty"),
        ("姓名,身份证号,高考省份\n".encode(), "roster.csv", "empty"),
    ],
)
async def test_roster_invalid_for_unusable_files(
    client, exam, data: bytes, filename: str, reason: str
) -> None:
    """§4 `roster_invalid`: garbage, a broken XLSX, missing columns, no rows at all."""
    refused = await upload(client, exam, data, filename)
    assert refused.status_code == 422, refused.text
    assert (refused.json()["code"], refused.json()["reason"]) == ("roster_invalid", reason)
    if reason == "missing_columns":
        assert refused.json()["columns"] == ["id_number", "province"]


async def test_other_schools_and_candidates_get_404(app, client, inbox, new_phone, exam) -> None:
    """Staff of another school and candidates cannot see that the exam exists."""
    previewed = await upload(client, exam, csv_bytes([["张三", id_number(), "北京", "", ""]]))
    import_id = previewed.json()["id"]
    await commit(client, exam, import_id)
    (row,) = await rows_of(client, exam)
    other = bearer(await staff(app, client, new_phone(), "school_admin", await new_school(app)))
    user = bearer((await register(client, inbox, new_phone()))["token"])
    base = f"/api/v1/exams/{exam['id']}/roster"
    for headers in (other, user):
        attempts = [
            await client.post(f"{base}/imports", files={"file": ("r.csv", b"x")}, headers=headers),
            await client.get(f"{base}/imports/{import_id}", headers=headers),
            await client.post(f"{base}/imports/{import_id}/commit", json={}, headers=headers),
            await client.get(base, headers=headers),
            await client.patch(f"{base}/{row['id']}", json={"name": "x"}, headers=headers),
        ]
        assert [(r.status_code, r.json()["code"]) for r in attempts] == [
            (404, "exam_not_found")
        ] * 5


def test_cli_roster_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`vexam roster import FILE --school --exam`: preview with bad rows, then --commit."""
    from vexam.cli import CONSOLE, _cli_ctx, app
    from vexam.config import Settings
    from vexam.exams import schemas as exam_schemas
    from vexam.exams import service as exams

    env = {
        "VEXAM_ENV": "development",
        "VEXAM_DATA_DIR": str(tmp_path / "data"),
        "VEXAM_DATABASE_URL": "",
        "VEXAM_QUEUE_URL": "",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    assert runner.invoke(app, ["roster", "import", "--help"]).exit_code == 0
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    made = runner.invoke(
        app, ["school", "create", "--slug", "music", "--name", "音乐学院"], env=env
    )
    assert made.exit_code == 0, made.output

    async def _exam() -> None:
        async with _cli_ctx(Settings()) as ctx:
            body = exam_schemas.ExamIn(**exam_body(code="piano"))
            await exams.create_exam(ctx, CONSOLE, 1, body)

    asyncio.run(_exam())
    path = tmp_path / "roster.csv"
    good = [["张三", id_number(), "北京", candidate(), "钢琴"] for _ in range(3)]
    path.write_bytes(csv_bytes([*good, ["李四", "123", "北京", "", ""]], encoding="gbk"))
    args = ["roster", "import", str(path), "--school", "music", "--exam", "piano"]
    previewed = runner.invoke(app, args, env=env)
    assert previewed.exit_code == 0, previewed.output
    assert "4 rows, 3 valid, 1 bad" in previewed.output
    assert "row 5" in previewed.output and "length" in previewed.output
    refused = runner.invoke(app, [*args, "--commit"], env=env)
    assert refused.exit_code == 1 and "not imported" in refused.output
    done = runner.invoke(app, [*args, "--commit", "--skip-invalid"], env=env)
    assert done.exit_code == 0, done.output
    assert "added 3, updated 0" in done.output
    unknown = runner.invoke(
        app, ["roster", "import", str(path), "--school", "music", "--exam", "nope"], env=env
    )
    assert unknown.exit_code == 1 and "exam_not_found" in unknown.output


# ------------------------------------------------------------------ fast path (bench/roster)


def _mixed_rows() -> list[list[str]]:
    """Good rows, bad rows and text that COPY's text format must escape."""
    good = id_number()
    return [
        ["张\\三", good, "北京", candidate(), "钢琴\\独奏"],
        ["", id_number(), "北京", candidate(), ""],
        ["李四", good[:17] + ("0" if good[17] != "0" else "1"), "广东", "", ""],
        ["王五", id_number(), "火星", "A\tB", ""],
        ["赵六", good, "北京", candidate(), ""],
        ["钱七", id_number("440106"), "广东省", candidate(), "声乐"],
        ["孙八", id_number("310104"), "31", "", "a\\tb"],
    ]


async def _checked(data: bytes, workers: int, key: str) -> list[roster.Staged]:
    from datetime import date

    from vexam.schools.roster_files import checked_batches

    batches = checked_batches(
        7, io.BytesIO(data), today=date(2026, 6, 1), data_key=key, batch_rows=2, workers=workers
    )
    return [staged for batch in [b async for b in batches] for staged in batch.staged]


def _comparable(staged: list[roster.Staged], key: str) -> list[tuple[Any, ...]]:
    """Staged rows with each (randomly nonced) ciphertext replaced by its clear text."""
    from vexam.core.crypto import decrypt_text

    return [
        (*s[:3], s[3] and decrypt_text(key, s[3], context=roster.ID_NUMBER_CONTEXT), *s[4:])
        for s in staged
    ]


async def test_pool_and_serial_checks_stage_the_same_rows(monkeypatch) -> None:
    """Worker processes check batches exactly as one thread does, in file order, row numbers
    kept; without a pool (none can start, or it breaks) the result is the same again."""
    from concurrent.futures.process import BrokenProcessPool

    key = "test-data-key-for-the-roster-pool"
    data = csv_bytes(_mixed_rows())
    serial = _comparable(await _checked(data, 0, key), key)
    assert [s[1] for s in serial] == list(range(2, 9))
    assert serial[0][3] is not None and serial[0][4] == blind_index(
        key, serial[0][3], kind="id_number"
    )
    assert _comparable(await _checked(data, 1, key), key) == serial
    assert _comparable(await _checked(data, 2, key), key) == serial
    monkeypatch.setattr(roster_files, "_start_pool", lambda workers: None)
    assert _comparable(await _checked(data, 2, key), key) == serial

    class Broken:
        def submit(self, *args: Any) -> Any:
            raise BrokenProcessPool("gone")

        def shutdown(self, **kwargs: Any) -> None:
            pass

    monkeypatch.setattr(roster_files, "_start_pool", lambda workers: Broken())
    assert _comparable(await _checked(data, 2, key), key) == serial


def test_copy_text_escapes_what_copy_would_misread() -> None:
    """COPY text made in the workers: NULLs as \\N, backslashes and tabs escaped."""
    from vexam.schools.roster_files import copy_text

    line = copy_text([(1, 2, "a\\b", None, "ff", "11*", "北京", "X\tY", "m\nn", None, None, 5)])
    assert line == "1\t2\ta\\\\b\t\\N\tff\t11*\t北京\tX\\tY\tm\\nn\t\\N\t\\N\t5\n".encode()


async def test_batched_pool_import_through_the_database(app, client, exam, monkeypatch) -> None:
    """Many small batches checked by worker processes and staged (PostgreSQL: one COPY of
    worker-made text) give the same errors, duplicates and rows as the one-batch path."""
    monkeypatch.setattr(roster, "BATCH_ROWS", 2)
    monkeypatch.setattr(roster, "POOL_WORKERS", 2)
    rows = _mixed_rows()
    previewed = await upload(client, exam, csv_bytes(rows))
    assert previewed.status_code == 201, previewed.text
    body = previewed.json()
    assert [(e["row"], e["column"], e["reason"], e["other_row"]) for e in body["errors"]] == [
        (3, "name", "missing", None),
        (4, "id_number", "check_character", None),
        (5, "province", "unknown", None),
        (6, "id_number", "duplicate", 2),
    ]
    assert (body["total_rows"], body["valid_rows"]) == (7, 3)
    done = await commit(client, exam, body["id"], skip_invalid=True)
    assert done.status_code == 200, done.text
    listed = await rows_of(client, exam)
    assert [(r["name"], r["province"], r["major"]) for r in listed] == [
        ("张\\三", "北京", "钢琴\\独奏"),
        ("钱七", "广东", "声乐"),
        ("孙八", "上海", "a\\tb"),
    ]
    key = app.state.settings.data_key
    async with app_ctx(app) as ctx:
        found = await roster.find_row(
            ctx, exam["id"], blind_index(key, rows[0][1], kind="id_number")
        )
        assert found is not None and found.name == "张\\三"


async def test_unreadable_after_many_batches_is_refused(client, exam, monkeypatch) -> None:
    """A file that turns unreadable after rows were staged is refused (`encoding`) and
    leaves nothing behind: the COPY ends cleanly and the preview rolls back."""
    monkeypatch.setattr(roster, "BATCH_ROWS", 2)
    monkeypatch.setattr(roster_files, "SAMPLE_BYTES", 64)  # read as UTF-8 from its start
    rows = [["张三", id_number(), "北京", "", ""] for _ in range(400)]  # past one decode chunk
    refused = await upload(client, exam, csv_bytes(rows) + b"\xff\xfe,bad\n")
    assert refused.status_code == 422, refused.text
    assert (refused.json()["code"], refused.json()["reason"]) == ("roster_invalid", "encoding")
    assert await rows_of(client, exam) == []
    again = await upload(client, exam, csv_bytes(rows[:3]))
    assert again.status_code == 201, again.text
    assert again.json()["total_rows"] == 3


async def test_checking_leaves_the_event_loop_free() -> None:
    """Reading and checking run off the event loop: other requests keep being served."""
    from datetime import date

    from vexam.schools.roster_files import checked_batches

    data = csv_bytes([["张三", id_number(), "北京", candidate(), ""] for _ in range(3000)])
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    batches = checked_batches(
        1, io.BytesIO(data), today=date(2026, 6, 1), data_key="k", batch_rows=3000, workers=0
    )
    async for _batch in batches:
        pass
    done.set()
    await task
    assert ticks > 10
