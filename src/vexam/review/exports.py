"""Exports of an exam's results (SPEC §6): one row per submission with its upload and review
state, each reviewer's total and the aggregate, as CSV (UTF-8 with BOM, for Excel) or XLSX.

Texts are in the request's language (`ctx.locale`): headers, states and, in English, the
subjects' English names where the school gave them.

Candidate identity (name, masked ID number, candidate number, province) is joined back only
for the school's admin; anyone else who may export (operators) gets codes only.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from vexam.core import audit
from vexam.core.context import Ctx, Principal, Role
from vexam.core.i18n import N_, format_datetime, gettext
from vexam.exams import service as exams
from vexam.exams.labels import UPLOAD_LABELS
from vexam.exams.models import Sitting, Subject, Submission
from vexam.review import rules, service
from vexam.review.models import ReviewItem, ReviewScore
from vexam.review.text import STATE_LABELS
from vexam.schools import service as schools
from vexam.schools.models import RosterRow

IDENTITY_COLUMNS = (
    N_("Name"),
    N_("ID number"),
    N_("Candidate number"),
    N_("Exam province"),
)
COLUMNS = (
    N_("Review code"),
    N_("Subject"),
    N_("Submitted at"),
    N_("Upload"),
    N_("Review state"),
    N_("Scores"),
    N_("Scores needed"),
)
TAIL = (N_("Aggregate"), N_("Spread"), N_("Published"))
SCORE_COLUMN = N_("Score {number}")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Table:
    """An export as rows of cells: a header, then one row per submission."""

    filename: str
    header: list[str]
    rows: list[list[Any]]


def _safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula is quoted (CSV/formula injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


async def table(ctx: Ctx, principal: Principal, exam_id: int) -> Table:
    """The exam's results; identity columns only for the school's admin. Audited."""
    exam = await service.managed_exam(ctx, principal, exam_id)
    await service.sync_items(ctx, exam.id)
    settings = await service.settings_row(ctx, exam)
    school = await schools.get_school(ctx, exam.school_id)
    with_identity = principal.role is Role.school_admin
    subjects = {subject.id: subject for subject in await exams.subjects_of(ctx, exam.id)}
    found = await ctx.session.execute(
        select(Submission, Sitting.roster_row_id, ReviewItem)
        .join(Sitting, Sitting.id == Submission.sitting_id)
        .outerjoin(ReviewItem, ReviewItem.submission_id == Submission.id)
        .where(Sitting.exam_id == exam.id, Sitting.mode == "formal")
        .order_by(Submission.subject_id, Submission.submitted_at, Submission.id)
    )
    rows = found.all()
    item_ids = [item.id for _, _, item in rows if item is not None]
    totals: dict[int, list[float]] = {}
    if item_ids:
        scored = await ctx.session.execute(
            select(ReviewScore.item_id, ReviewScore.total)
            .where(ReviewScore.item_id.in_(item_ids))
            .order_by(ReviewScore.created_at, ReviewScore.id)
        )
        for item_id, total in scored.all():
            totals.setdefault(item_id, []).append(total)
    people: dict[int, RosterRow] = {}
    roster_ids = [row_id for _, row_id, _ in rows if row_id is not None]
    if with_identity and roster_ids:
        found_rows = await ctx.session.execute(
            select(RosterRow).where(RosterRow.id.in_(roster_ids))
        )
        people = {row.id: row for row in found_rows.scalars()}
    width = max((len(values) for values in totals.values()), default=0)
    width = max(width, settings.reviewers_per_submission)

    def say(text: str) -> str:
        return gettext(ctx.locale, text)

    header = [say(name) for name in IDENTITY_COLUMNS] if with_identity else []
    header += [say(name) for name in COLUMNS]
    header += [say(SCORE_COLUMN).format(number=n) for n in range(1, width + 1)]
    header += [say(name) for name in TAIL]
    published = say(N_("Yes")) if settings.published_at else say(N_("No"))
    out_rows: list[list[Any]] = []
    for submission, roster_row_id, item in rows:
        line: list[Any] = []
        if with_identity:
            person = people.get(roster_row_id) if roster_row_id is not None else None
            line += [
                person.name if person else "",
                person.id_number_masked if person else "",
                (person.candidate_number or "") if person else "",
                person.province if person else "",
            ]
        subject = subjects.get(submission.subject_id)
        given = totals.get(item.id, []) if item is not None else []
        state = service.item_state(item, settings) if item is not None else "not_ready"
        line += [
            item.code if item is not None else "",
            _subject_name(subject, ctx.locale),
            _when(submission.submitted_at, school.timezone, ctx.locale),
            say(UPLOAD_LABELS.get(submission.upload_state, submission.upload_state)),
            say(STATE_LABELS[state]),
            len(given),
            rules.needed(
                settings.reviewers_per_submission,
                item.escalations if item else 0,
                settings.max_reviewers,
            ),
        ]
        line += given + [None] * (width - len(given))
        line += [
            item.aggregate if item is not None else None,
            item.spread if item is not None else None,
            published,
        ]
        out_rows.append([_safe(value) for value in line])
    await audit.record(
        ctx, "review.exported", "exam", exam.id, rows=len(out_rows), identity=with_identity
    )
    return Table(f"{exam.code}-results", header, out_rows)


def _subject_name(subject: Subject | None, locale: str) -> str:
    """The subject's name in the export's language: its English name in English when it has
    one (as the review console shows it), else the school's own."""
    if subject is None:
        return ""
    return (subject.name_en if locale == "en" else None) or subject.name


def _when(value: datetime, timezone: str, locale: str) -> str:
    return format_datetime(value, timezone, locale)


def as_csv(data: Table) -> bytes:
    """The table as CSV in UTF-8 with a byte-order mark (Excel opens it in Chinese)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(data.header)
    for row in data.rows:
        writer.writerow(["" if value is None else value for value in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def as_xlsx(data: Table) -> bytes:
    """The table as one XLSX sheet, header row frozen."""
    # Imported here: openpyxl adds about 6 MiB to a process, and exports are rare.
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "results"
    sheet.append(data.header)
    for row in data.rows:
        sheet.append(row)
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
