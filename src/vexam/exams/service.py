"""Exam setup rules (SPEC §4): an exam belongs to one school; its staff alone may see it.

Settings are checked here, each broken rule answering its own code, so a school admin is
told exactly what to fix: `exam_window_invalid` for a window that ends before it starts,
`exam_setting_invalid` (with `field` and `reason`) for everything else.
"""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from vexam.core import audit
from vexam.core.context import Ctx, Principal, Role
from vexam.core.errors import VexamError
from vexam.core.policy import policy_now
from vexam.exams import schemas
from vexam.exams.models import Exam, Sitting, Subject
from vexam.schools import service as schools

MAX_ATTEMPTS = 50
MAX_RECORDING_SECONDS = 2 * 60 * 60
MAX_GRACE_MINUTES = 7 * 24 * 60
CODE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")
VERSION_CHARS = set("0123456789.")


def setting_invalid(field: str, reason: str) -> VexamError:
    """`exam_setting_invalid` naming the setting and the rule it broke."""
    return VexamError("exam_setting_invalid", field=field, reason=reason)


def can_manage(principal: Principal, school_id: int) -> bool:
    """Operators manage every school's exams; a school admin only their own school's."""
    if principal.role is Role.operator:
        return True
    return principal.role is Role.school_admin and principal.school_id == school_id


def _check_subject(index: int, subject: schemas.SubjectIn) -> None:
    where = f"subjects.{index}"
    if not subject.name.strip():
        raise setting_invalid(f"{where}.name", "required")
    if not 1 <= subject.attempts <= MAX_ATTEMPTS:
        raise setting_invalid(f"{where}.attempts", f"between 1 and {MAX_ATTEMPTS}")
    if not 10 <= subject.max_seconds <= MAX_RECORDING_SECONDS:
        raise setting_invalid(f"{where}.max_seconds", f"between 10 and {MAX_RECORDING_SECONDS}")
    if subject.face_check_seconds != 0 and not 10 <= subject.face_check_seconds <= 600:
        raise setting_invalid(f"{where}.face_check_seconds", "0, or between 10 and 600")
    for number, criterion in enumerate(subject.rubric.criteria):
        if not criterion.name.strip() or criterion.max_points <= 0:
            raise setting_invalid(f"{where}.rubric.criteria.{number}", "a name and points above 0")
    if subject.rubric.step <= 0:
        raise setting_invalid(f"{where}.rubric.step", "above 0")


def _check_policies(body: schemas.ExamIn) -> None:
    classes = body.device_policy.allowed_classes
    if not classes or any(kind not in schemas.DEVICE_CLASSES for kind in classes):
        raise setting_invalid("device_policy.allowed_classes", "phone, tablet or desktop")
    for os_name, version in body.device_policy.min_os.items():
        if os_name not in schemas.OS_NAMES:
            raise setting_invalid(f"device_policy.min_os.{os_name}", "android, harmonyos or ios")
        if not version or not set(version) <= VERSION_CHARS or version.startswith("."):
            raise setting_invalid(f"device_policy.min_os.{os_name}", "a version such as 7 or 10.3")
    for kind, action in body.anti_cheat.items():
        if kind not in schemas.EVENT_KINDS:
            raise setting_invalid(f"anti_cheat.{kind}", "unknown event kind")
        if action not in schemas.EVENT_ACTIONS:
            raise setting_invalid(f"anti_cheat.{kind}", "void_attempt, fail_exam or flag")


def check_exam(body: schemas.ExamIn) -> None:
    """Refuse settings a school could not run an exam with; each rule has its own answer."""
    if not body.code or not set(body.code) <= CODE_CHARS:
        raise setting_invalid("code", "lowercase letters, digits and dashes")
    if not body.name.strip():
        raise setting_invalid("name", "required")
    if not body.season.isdigit() or len(body.season) != 4:
        raise setting_invalid("season", "a year such as 2027")
    if body.formal_starts_at.tzinfo is None or body.formal_ends_at.tzinfo is None:
        raise setting_invalid("formal_starts_at", "with a time zone, e.g. +08:00")
    if body.formal_ends_at <= body.formal_starts_at:
        raise VexamError("exam_window_invalid")
    if not 0 <= body.upload_grace_minutes <= MAX_GRACE_MINUTES:
        raise setting_invalid("upload_grace_minutes", f"between 0 and {MAX_GRACE_MINUTES}")
    if body.mock_limit is not None and body.mock_limit < 1:
        raise setting_invalid("mock_limit", "empty for unlimited, or 1 and more")
    if body.fee_cents < 0:
        raise setting_invalid("fee_cents", "0 or more")
    if not body.subjects:
        raise setting_invalid("subjects", "at least one subject")
    for index, subject in enumerate(body.subjects):
        _check_subject(index, subject)
    _check_policies(body)


def effective_anti_cheat(configured: dict[str, str]) -> dict[str, str]:
    """Every event kind's action: what the school chose, else void the attempt (SPEC §5)."""
    return {kind: configured.get(kind, "void_attempt") for kind in schemas.EVENT_KINDS}


def _values(body: schemas.ExamIn) -> dict[str, Any]:
    return {
        "code": body.code,
        "name": body.name.strip(),
        "name_en": (body.name_en or "").strip() or None,
        "season": body.season,
        "formal_starts_at": body.formal_starts_at.astimezone(UTC),
        "formal_ends_at": body.formal_ends_at.astimezone(UTC),
        "upload_grace_minutes": body.upload_grace_minutes,
        "mock_enabled": body.mock_enabled,
        "mock_limit": body.mock_limit,
        "fee_cents": body.fee_cents,
        "device_policy": body.device_policy.model_dump(),
        "anti_cheat": effective_anti_cheat(body.anti_cheat),
        "published": body.published,
    }


def _subjects(ctx: Ctx, exam_id: int, body: schemas.ExamIn) -> list[Subject]:
    now = ctx.now()
    return [
        Subject(
            exam_id=exam_id,
            position=position,
            name=subject.name.strip(),
            name_en=(subject.name_en or "").strip() or None,
            attempts=subject.attempts,
            max_seconds=subject.max_seconds,
            prompt=subject.prompt,
            camera=subject.camera,
            orientation=subject.orientation,
            face_check_seconds=subject.face_check_seconds,
            mock_face_checks=subject.mock_face_checks,
            rubric=subject.rubric.model_dump(),
            created_at=now,
            updated_at=now,
        )
        for position, subject in enumerate(body.subjects, start=1)
    ]


async def create_exam(
    ctx: Ctx, principal: Principal, school_id: int, body: schemas.ExamIn
) -> schemas.ExamOut:
    """Create an exam with its subjects for a school the caller manages."""
    await schools.get_school(ctx, school_id)
    if not can_manage(principal, school_id):
        raise VexamError("school_not_found")
    if "device_policy" not in body.model_fields_set:  # the platform's defaults (operator)
        devices = await policy_now(ctx)
        body = body.model_copy(
            update={
                "device_policy": schemas.DevicePolicy(
                    allowed_classes=list(devices.device_classes), min_os=dict(devices.min_os)
                )
            }
        )
    check_exam(body)
    now = ctx.now()
    exam = Exam(school_id=school_id, created_at=now, updated_at=now, **_values(body))
    try:
        async with ctx.session.begin_nested():
            ctx.session.add(exam)
    except IntegrityError:
        raise VexamError("exam_code_taken") from None
    ctx.session.add_all(_subjects(ctx, exam.id, body))
    await ctx.session.flush()
    await audit.record(ctx, "exam.created", "exam", exam.id, school_id=school_id, code=body.code)
    return await exam_out(ctx, exam)


def shift_years(moment: datetime, years: int, timezone: str) -> datetime:
    """`moment` the same wall-clock time `years` later in `timezone` (29 Feb → 28 Feb), UTC."""
    local = moment.astimezone(ZoneInfo(timezone))
    try:
        moved = local.replace(year=local.year + years)
    except ValueError:  # 29 February into a year without one
        moved = local.replace(year=local.year + years, day=28)
    return moved.astimezone(UTC)


def _copy_years(exam: Exam, now: datetime, timezone: str) -> int:
    """Whole years to move a copied window: one, or more until it opens in the future."""
    years = 1
    while shift_years(exam.formal_starts_at, years, timezone) <= now and years < 100:
        years += 1
    return years


async def _free_code(ctx: Ctx, school_id: int, wanted: str) -> str:
    """`wanted`, or `wanted-2`, `wanted-3`... the first code the school does not use yet."""
    taken = set(
        (await ctx.session.scalars(select(Exam.code).where(Exam.school_id == school_id))).all()
    )
    code, number = wanted, 1
    while code in taken:
        number += 1
        suffix = f"-{number}"
        code = wanted[: 64 - len(suffix)] + suffix
    return code


async def copy_exam(ctx: Ctx, principal: Principal, exam_id: int) -> schemas.ExamOut:
    """A new unpublished exam with the settings and subjects of `exam_id` (never its roster,
    applications, payments, sittings or submissions), its window moved by whole years to
    the next season that opens after now (wall-clock times kept in the school's zone). The
    season becomes that year; the old season in the code and names is replaced by the new
    one (else the code gets `-<season>`), and a code already in use gets `-2`, `-3`..."""
    source = await get_exam(ctx, principal, exam_id)
    school = await schools.get_school(ctx, source.school_id)
    now = ctx.now()
    years = _copy_years(source, now, school.timezone)
    season = str(int(source.season) + years) if source.season.isdigit() else source.season

    def renamed(value: str) -> str:
        return value.replace(source.season, season) if source.season in value else value

    wanted = renamed(source.code) if source.season in source.code else f"{source.code}-{season}"
    exam = Exam(
        school_id=source.school_id,
        code=await _free_code(ctx, source.school_id, wanted[:64]),
        name=renamed(source.name),
        name_en=renamed(source.name_en) if source.name_en else None,
        season=season,
        formal_starts_at=shift_years(source.formal_starts_at, years, school.timezone),
        formal_ends_at=shift_years(source.formal_ends_at, years, school.timezone),
        upload_grace_minutes=source.upload_grace_minutes,
        mock_enabled=source.mock_enabled,
        mock_limit=source.mock_limit,
        fee_cents=source.fee_cents,
        device_policy=deepcopy(source.device_policy),
        anti_cheat=deepcopy(source.anti_cheat),
        published=False,
        created_at=now,
        updated_at=now,
    )
    try:
        async with ctx.session.begin_nested():
            ctx.session.add(exam)
    except IntegrityError:  # another copy took the code between the check and the insert
        raise VexamError("exam_code_taken") from None
    ctx.session.add_all(
        Subject(
            exam_id=exam.id,
            created_at=now,
            updated_at=now,
            position=subject.position,
            **{field: deepcopy(getattr(subject, field)) for field in SUBJECT_FIELDS},
        )
        for subject in await subjects_of(ctx, source.id)
    )
    await ctx.session.flush()
    await audit.record(
        ctx,
        "exam.copied",
        "exam",
        exam.id,
        school_id=exam.school_id,
        source_exam_id=source.id,
        code=exam.code,
        years=years,
    )
    return await exam_out(ctx, exam)


async def get_exam(ctx: Ctx, principal: Principal, exam_id: int) -> Exam:
    """An exam the caller manages; `exam_not_found` for absent and other schools' exams."""
    exam = await ctx.session.get(Exam, exam_id)
    if exam is None or not can_manage(principal, exam.school_id):
        raise VexamError("exam_not_found")
    return exam


async def subjects_of(ctx: Ctx, exam_id: int) -> list[Subject]:
    """An exam's subjects in order."""
    rows = await ctx.session.execute(
        select(Subject).where(Subject.exam_id == exam_id).order_by(Subject.position)
    )
    return list(rows.scalars())


SUBJECT_FIELDS = (
    "name",
    "name_en",
    "attempts",
    "max_seconds",
    "prompt",
    "camera",
    "orientation",
    "face_check_seconds",
    "mock_face_checks",
    "rubric",
)


async def _replace_subjects(ctx: Ctx, exam: Exam, wanted: list[Subject]) -> None:
    """Subjects are changed in place, position by position, so their ids (which attempts,
    recordings and submissions name) stay; removing one is refused once anyone has sat
    the exam, since their recordings would lose their subject."""
    current = await subjects_of(ctx, exam.id)
    for existing, new in zip(current, wanted, strict=False):
        for field in SUBJECT_FIELDS:
            setattr(existing, field, getattr(new, field))
        existing.updated_at = new.updated_at
    removed = current[len(wanted) :]
    if removed:
        started = await ctx.session.scalar(
            select(func.count()).select_from(Sitting).where(Sitting.exam_id == exam.id)
        )
        if started:
            raise setting_invalid(
                "subjects", "a subject cannot be removed once candidates have started"
            )
        await ctx.session.execute(
            delete(Subject).where(Subject.id.in_([subject.id for subject in removed]))
        )
    ctx.session.add_all(wanted[len(current) :])
    await ctx.session.flush()


async def update_exam(
    ctx: Ctx, principal: Principal, exam_id: int, body: schemas.ExamIn
) -> schemas.ExamOut:
    """Replace an exam's settings and subjects (the whole form, as the console sends it)."""
    exam = await get_exam(ctx, principal, exam_id)
    check_exam(body)
    before = {"formal_ends_at": exam.formal_ends_at.isoformat(), "code": exam.code}
    for key, value in _values(body).items():
        setattr(exam, key, value)
    exam.updated_at = ctx.now()
    try:
        async with ctx.session.begin_nested():
            await ctx.session.flush()
    except IntegrityError:
        raise VexamError("exam_code_taken") from None
    await _replace_subjects(ctx, exam, _subjects(ctx, exam.id, body))
    await audit.record(ctx, "exam.updated", "exam", exam.id, before=before)
    return await exam_out(ctx, exam)


async def list_exams(ctx: Ctx, principal: Principal, school_id: int) -> list[schemas.ExamOut]:
    """The exams of a school the caller manages, newest window first."""
    await schools.get_school(ctx, school_id)
    if not can_manage(principal, school_id):
        raise VexamError("school_not_found")
    rows = await ctx.session.execute(
        select(Exam).where(Exam.school_id == school_id).order_by(Exam.formal_starts_at.desc())
    )
    return [await exam_out(ctx, exam) for exam in rows.scalars()]


async def exam_out(ctx: Ctx, exam: Exam) -> schemas.ExamOut:
    """An exam with its subjects and the derived end of uploads."""
    subjects = await subjects_of(ctx, exam.id)
    return schemas.ExamOut(
        id=exam.id,
        school_id=exam.school_id,
        code=exam.code,
        name=exam.name,
        name_en=exam.name_en,
        season=exam.season,
        formal_starts_at=exam.formal_starts_at,
        formal_ends_at=exam.formal_ends_at,
        upload_ends_at=exam.formal_ends_at + timedelta(minutes=exam.upload_grace_minutes),
        upload_grace_minutes=exam.upload_grace_minutes,
        mock_enabled=exam.mock_enabled,
        mock_limit=exam.mock_limit,
        fee_cents=exam.fee_cents,
        device_policy=exam.device_policy,
        anti_cheat=exam.anti_cheat,
        published=exam.published,
        subjects=[
            schemas.SubjectOut(
                id=subject.id,
                position=subject.position,
                name=subject.name,
                name_en=subject.name_en,
                attempts=subject.attempts,
                max_seconds=subject.max_seconds,
                prompt=subject.prompt,
                camera=subject.camera,
                orientation=subject.orientation,
                face_check_seconds=subject.face_check_seconds,
                mock_face_checks=subject.mock_face_checks,
                rubric=schemas.Rubric.model_validate(subject.rubric),
            )
            for subject in subjects
        ],
    )
