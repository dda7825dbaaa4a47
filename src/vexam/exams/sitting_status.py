"""What a sitting looks like (SPEC §5): one status for the candidate and for the school.

"absent" is computed, not stored: a subject with no submission once the candidate's window
has ended shows as absent.

The candidate's app polls the status call all through the exam, so it reads what it shows in
one statement, built once (`my_status`): the sitting with its exam and accommodation, joined
to the subjects with their attempts used, submissions, newest uploads and recordings (with
their flagged events). Flags raised while nothing was recording take a second, only when
there are any; overdue recordings are voided (and the recordings read again) only when one of
those it read is overdue. Other callers, which hold the sitting already, read the subjects'
part alone (`status`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, FromClause, Select, and_, bindparam, exists, select

from vexam.core.context import Ctx, Principal
from vexam.core.db import execute_flushed
from vexam.core.direct_reads import DirectSelect
from vexam.core.errors import VexamError
from vexam.exams import accommodations, media_jobs, schemas, service, sittings, uploads
from vexam.exams.models import (
    Exam,
    ExamEvent,
    Recording,
    Sitting,
    Subject,
    SubjectProgress,
    Submission,
    Upload,
)
from vexam.exams.sittings import PASSING, Loaded, load, void_open

# The status call's statements, built once (with parameters): on a poll their construction
# and cache keys cost more CPU than running them. They are Core statements over the tables,
# selecting only the columns the status shows, read as plain tuples (`SubjectFacts`,
# `SubmissionFacts`, `uploads.UploadFacts`, `RecordingFacts`): the ORM's objects, identity
# map and attribute instrumentation cost more than the statements themselves.
_FLAGS = (
    select(ExamEvent.recording_id, ExamEvent.kind)
    .where(ExamEvent.sitting_id == bindparam("sitting_id"), ExamEvent.action == "flag")
    .order_by(ExamEvent.id)
)


class SubjectFacts(NamedTuple):
    """What the status call reads of a subject."""

    id: int
    position: int
    name: str
    name_en: str | None
    camera: str
    orientation: str
    prompt: str
    max_seconds: int
    face_check_seconds: int
    attempts: int


class SubmissionFacts(NamedTuple):
    """What a receipt reads of a submission."""

    id: int
    sitting_id: int
    subject_id: int
    recording_id: int
    sha256: str
    size_bytes: int
    submitted_at: datetime
    upload_state: str


class RecordingFacts(NamedTuple):
    """What the status call reads of a recording."""

    id: int
    subject_id: int
    attempt: int
    state: str
    void_reason: str | None
    orientation: str
    max_seconds: int
    started_at: datetime
    ends_by: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    device_id: str


_SUBJECT_T = Subject.__table__
_PROGRESS_T = SubjectProgress.__table__
_SUBMISSION_T = Submission.__table__
_UPLOAD_T = Upload.__table__
_RECORDING_T = Recording.__table__
_EVENT_T = ExamEvent.__table__


def _columns(table: FromClause, facts: type[tuple[Any, ...]]) -> list[ColumnElement[Any]]:
    """The columns of `table` named by the fields of `facts`, in their order."""
    return _columns_named(table, facts._fields)  # type: ignore[attr-defined]


def _columns_named(table: FromClause, names: Sequence[str]) -> list[ColumnElement[Any]]:
    """The columns of `table` named in `names`, in their order."""
    return [table.c[name] for name in names]


# The newest upload of a submission (by creation).
_OLDER = _UPLOAD_T.alias("older")
_NEWEST_UPLOAD = (
    select(_OLDER.c.id)
    .where(_OLDER.c.submission_id == _SUBMISSION_T.c.id)
    .order_by(_OLDER.c.created_at.desc(), _OLDER.c.id.desc())
    .limit(1)
    .correlate(_SUBMISSION_T)
    .scalar_subquery()
)
_IS_FLAG = _EVENT_T.c.action == "flag"
# Flagged events while nothing was recording (rare): read only when the subjects' statement
# says there are some.
_LOOSE = and_(
    _EVENT_T.c.sitting_id == bindparam("sitting_id"), _IS_FLAG, _EVENT_T.c.recording_id.is_(None)
)
_LOOSE_FLAGS = select(_EVENT_T.c.kind).where(_LOOSE).order_by(_EVENT_T.c.id)
# A recording's flagged events (joined to its row; both statements below).
_FLAG_OF_RECORDING = and_(
    _EVENT_T.c.sitting_id == _RECORDING_T.c.sitting_id,
    _EVENT_T.c.recording_id == _RECORDING_T.c.id,
    _IS_FLAG,
)
# The exam's subjects with the sitting's attempts used and submission of each (both unique
# per sitting and subject), the submission's newest upload, whether loose flags exist, and
# the subject's recordings, each with its flagged events' kinds: a row per subject, recording
# and flag, in order.
_SUBJECT_COLUMNS = _columns(_SUBJECT_T, SubjectFacts)
_SUBMISSION_COLUMNS = _columns(_SUBMISSION_T, SubmissionFacts)
_UPLOAD_COLUMNS = _columns(_UPLOAD_T, uploads.UploadFacts)
_RECORDING_COLUMNS = _columns(_RECORDING_T, RecordingFacts)
_USED_AT = len(_SUBJECT_COLUMNS)  # where in a row each part starts
_SUBMISSION_AT = _USED_AT + 1
_UPLOAD_AT = _SUBMISSION_AT + len(_SUBMISSION_COLUMNS)
_LOOSE_AT = _UPLOAD_AT + len(_UPLOAD_COLUMNS)
_RECORDING_AT = _LOOSE_AT + 1
_SUBJECT_ROW = (
    *_SUBJECT_COLUMNS,
    _PROGRESS_T.c.used,
    *_SUBMISSION_COLUMNS,
    *_UPLOAD_COLUMNS,
    exists().where(_LOOSE).correlate(None),  # the sitting's, not the joined flag's
    *_RECORDING_COLUMNS,
    _EVENT_T.c.kind,
)
_SUBJECT_ORDER = (_SUBJECT_T.c.position, _SUBJECT_T.c.id, _RECORDING_T.c.id, _EVENT_T.c.id)


def _joined_to_subjects(statement: Select[Any]) -> Select[Any]:
    """`statement`, whose FROM ends at the subjects, outer-joined to what `_SUBJECT_ROW`
    reads of each (for the sitting `sitting_id`)."""
    return (
        statement.outerjoin(
            _PROGRESS_T,
            and_(
                _PROGRESS_T.c.subject_id == _SUBJECT_T.c.id,
                _PROGRESS_T.c.sitting_id == bindparam("sitting_id"),
            ),
        )
        .outerjoin(
            _SUBMISSION_T,
            and_(
                _SUBMISSION_T.c.subject_id == _SUBJECT_T.c.id,
                _SUBMISSION_T.c.sitting_id == bindparam("sitting_id"),
            ),
        )
        .outerjoin(_UPLOAD_T, _UPLOAD_T.c.id == _NEWEST_UPLOAD)
        .outerjoin(
            _RECORDING_T,
            and_(
                _RECORDING_T.c.sitting_id == bindparam("sitting_id"),
                _RECORDING_T.c.subject_id == _SUBJECT_T.c.id,
            ),
        )
        .outerjoin(_EVENT_T, _FLAG_OF_RECORDING)
    )


_SUBJECTS = (
    _joined_to_subjects(select(*_SUBJECT_ROW).select_from(_SUBJECT_T))
    .where(_SUBJECT_T.c.exam_id == bindparam("exam_id"))
    .order_by(*_SUBJECT_ORDER)
)
# What a poll shows of its sitting and exam, as columns: a row per subject, recording and
# flag repeats them, and the ORM's entities on every row (the live face's embedding among
# their columns) cost more than the statement did.
_SITTING_KEYS = [
    "user_id",
    "id",
    "mode",
    "number",
    "reviewable",
    "state",
    "failed_reason",
    "device_id",
    "face_state",
    "face_device_id",
    "face_check_required",
    "device_ok_id",
    "flags",
    "warnings",
]
_EXAM_KEYS = ["id", "name", "formal_starts_at", "formal_ends_at", "upload_grace_minutes"]
_SITTING_SHOWN = _columns_named(Sitting.__table__, _SITTING_KEYS)
_EXAM_SHOWN = _columns_named(Exam.__table__, _EXAM_KEYS)
# A poll's one statement: the sitting, its exam and what the candidate is granted (as
# `sittings.own_sitting` reads them), then `_SUBJECT_ROW` from `_PART_AT` on; a row per
# subject, recording and flag, and one with no subject when the exam has none.
_OWN_STATUS = DirectSelect(
    _joined_to_subjects(
        accommodations.with_granted(
            select(
                *_SITTING_SHOWN, *_EXAM_SHOWN, *accommodations.GRANTED_COLUMNS, *_SUBJECT_ROW
            ).join(Exam, Exam.id == Sitting.exam_id),
            Sitting.user_id,
            Sitting.exam_id,
        ).outerjoin(_SUBJECT_T, _SUBJECT_T.c.exam_id == Sitting.exam_id)
    )
    .where(Sitting.id == bindparam("sitting_id"))
    .order_by(*_SUBJECT_ORDER)
)
_EXAM_AT = len(_SITTING_SHOWN)
_GRANTED_AT = _EXAM_AT + len(_EXAM_SHOWN)
_PART_AT = _GRANTED_AT + len(accommodations.GRANTED_COLUMNS)
# The sitting's recordings, each with its flagged events' kinds (a row per flag): read again
# after overdue recordings were voided.
_RECORDINGS = (
    select(*_RECORDING_COLUMNS, _EVENT_T.c.kind)
    .select_from(_RECORDING_T.outerjoin(_EVENT_T, _FLAG_OF_RECORDING))
    .where(_RECORDING_T.c.sitting_id == bindparam("sitting_id"))
    .order_by(_RECORDING_T.c.id, _EVENT_T.c.id)
)


async def flags_by_recording(ctx: Ctx, sitting_id: int) -> dict[int | None, list[str]]:
    """Flagged event kinds per recording (None: events while nothing was recording)."""
    found = await ctx.session.execute(_FLAGS, {"sitting_id": sitting_id})
    out: dict[int | None, list[str]] = {}
    for recording_id, kind in found.all():
        out.setdefault(recording_id, []).append(kind)
    return out


def recording_out(recording: Recording | RecordingFacts, flags: list[str]) -> schemas.RecordingOut:
    """A recording as its candidate and school see it."""
    return schemas.RecordingOut(
        id=recording.id,
        subject_id=recording.subject_id,
        attempt=recording.attempt,
        state=recording.state,
        void_reason=recording.void_reason,
        orientation=recording.orientation,
        max_seconds=recording.max_seconds,
        started_at=recording.started_at,
        ends_by=recording.ends_by,
        finished_at=recording.finished_at,
        duration_seconds=recording.duration_seconds,
        flags=flags,
        device_id=recording.device_id,
    )


_UPLOAD_ERRORS = {"hash_mismatch": "upload_checksum_mismatch", "invalid": "recording_invalid"}


def receipt(
    submission: Submission | SubmissionFacts, progress: uploads.Progress | None = None
) -> schemas.SubmissionReceipt:
    """The receipt of a submission, with its upload's progress and checks when known."""
    media = progress.media if progress else {}
    media_state, media_flags, poster = media_jobs.summary(media)
    return schemas.SubmissionReceipt(
        upload_id=progress.upload_id if progress else None,
        upload_offset=progress.offset if progress else 0,
        upload_error=_UPLOAD_ERRORS.get(submission.upload_state),
        upload_media=media_jobs.probe_part(media) or None,
        media_state=media_state,
        media_flags=media_flags,
        poster_available=poster,
        submission_id=submission.id,
        sitting_id=submission.sitting_id,
        subject_id=submission.subject_id,
        recording_id=submission.recording_id,
        sha256=submission.sha256,
        size_bytes=submission.size_bytes,
        submitted_at=submission.submitted_at,
        upload_state=submission.upload_state,
    )


def _window(ctx: Ctx, loaded: Loaded) -> str:
    if loaded.sitting.mode != "formal":
        return "always"
    now = ctx.now()
    if now < loaded.exam.formal_starts_at:
        return "not_open"
    return "open" if now < loaded.window_end else "closed"


def _subject_state(
    window: str, used: int, allowed: int, recordings: list[RecordingFacts], submitted: bool
) -> str:
    if submitted:
        return "submitted"
    if window == "closed":
        # Computed, not stored: a subject with no submission at the window's end is absent.
        return "absent"
    if any(recording.state == "recording" for recording in recordings):
        return "recording"
    if any(recording.state == "completed" for recording in recordings):
        return "ready_to_submit"
    return "exhausted" if used >= allowed else "not_started"


def _next_step(loaded: Loaded, window: str, device_id: str | None, states: list[str]) -> str:
    sitting = loaded.sitting
    if sitting.state == "failed":
        return "failed"
    if window in ("not_open", "closed"):
        return window
    if all(state in ("submitted", "exhausted") for state in states):
        return "done"
    if "ready_to_submit" in states:
        return "submit"
    if sitting.face_check_required or sitting.face_device_id != device_id:
        return "verify_face"
    if sitting.device_ok_id != device_id:
        return "check_device"
    return "record"


def _recordings_of(
    rows: Sequence[Any], at: int
) -> tuple[list[RecordingFacts], dict[int, list[str]]]:
    """The recordings in `rows` (their columns from `at`, then a flag's kind; rows without a
    recording skipped) in order, and the flagged event kinds of each."""
    recordings: dict[int, RecordingFacts] = {}
    flags: dict[int, list[str]] = {}
    flag_at = at + len(_RECORDING_COLUMNS)
    for row in rows:
        recording_id = row[at]
        if recording_id is None:
            continue
        if recording_id not in recordings:
            recordings[recording_id] = RecordingFacts._make(row[at:flag_at])
        if row[flag_at] is not None:
            flags.setdefault(recording_id, []).append(row[flag_at])
    return sorted(recordings.values(), key=lambda r: r.id), flags


async def _recordings(
    ctx: Ctx, sitting_id: int
) -> tuple[list[RecordingFacts], dict[int, list[str]]]:
    """The sitting's recordings in order, and the flagged event kinds of each."""
    found = await ctx.session.execute(_RECORDINGS, {"sitting_id": sitting_id})
    return _recordings_of(found.all(), 0)


def _overdue(ctx: Ctx, recordings: list[RecordingFacts]) -> bool:
    now = ctx.now()
    return any(r.state == "recording" and r.ends_by < now for r in recordings)


async def status(
    ctx: Ctx, loaded: Loaded, *, device_id: str | None, void_overdue: bool = False
) -> schemas.SittingOut:
    """The whole sitting: subjects with attempts, recordings, submissions; what comes next.

    With `void_overdue`, running recordings past their limit are voided first (as
    `void_open(overdue_only=True)` does), the statement run only when one of them is.
    """
    found = await execute_flushed(
        ctx.session, _SUBJECTS, {"sitting_id": loaded.sitting.id, "exam_id": loaded.exam.id}
    )
    return await _status_of(ctx, loaded, found.all(), device_id, void_overdue)


async def _status_of(
    ctx: Ctx,
    loaded: Loaded,
    rows: Sequence[Sequence[Any]],
    device_id: str | None,
    void_overdue: bool,
) -> schemas.SittingOut:
    """`status` from the rows of `_SUBJECT_ROW` (a row with no subject is skipped)."""
    sitting, exam = loaded.sitting, loaded.exam
    subjects: list[SubjectFacts] = []
    used: dict[int, int] = {}
    submissions: dict[int, SubmissionFacts] = {}
    progress: dict[int, uploads.Progress] = {}
    for row in rows:
        if row[0] is None or (subjects and subjects[-1].id == row[0]):
            continue  # no subject at all, or the same subject's next recording or flag
        subject = SubjectFacts._make(row[:_USED_AT])
        subjects.append(subject)
        used[subject.id] = row[_USED_AT] or 0
        if row[_SUBMISSION_AT] is None:
            continue
        done = SubmissionFacts._make(row[_SUBMISSION_AT:_UPLOAD_AT])
        submissions[subject.id] = done
        if row[_UPLOAD_AT] is not None:
            upload = uploads.UploadFacts._make(row[_UPLOAD_AT:_LOOSE_AT])
            progress[done.id] = await uploads.progress(ctx, upload)
    recordings, flags = _recordings_of(rows, _RECORDING_AT)
    if void_overdue and _overdue(ctx, recordings):
        await void_open(ctx, sitting_id=sitting.id, reason="too_long", overdue_only=True)
        recordings, flags = await _recordings(ctx, sitting.id)
    loose: list[str] = []
    if any(row[_LOOSE_AT] for row in rows):
        kinds = await ctx.session.execute(_LOOSE_FLAGS, {"sitting_id": sitting.id})
        loose = list(kinds.scalars())
    window = _window(ctx, loaded)
    out: list[schemas.SubjectStatus] = []
    for subject in subjects:
        allowed = subject.attempts + loaded.granted.extra_attempts
        spent = int(used.get(subject.id, 0))
        mine = [recording for recording in recordings if recording.subject_id == subject.id]
        submission = submissions.get(subject.id)
        out.append(
            schemas.SubjectStatus(
                subject_id=subject.id,
                position=subject.position,
                name=subject.name,
                name_en=subject.name_en,
                camera=subject.camera,
                orientation=subject.orientation,
                prompt=subject.prompt,
                max_seconds=subject.max_seconds + loaded.granted.extra_seconds,
                face_check_seconds=subject.face_check_seconds,
                attempts_allowed=allowed,
                attempts_used=spent,
                attempts_left=max(0, allowed - spent),
                state=_subject_state(window, spent, allowed, mine, submission is not None),
                recordings=[recording_out(r, flags.get(r.id, [])) for r in mine],
                submission=receipt(submission, progress.get(submission.id)) if submission else None,
            )
        )
    sitting_flags = [*sitting.flags, *(f"event:{kind}" for kind in loose)]
    return schemas.SittingOut(
        id=sitting.id,
        exam_id=exam.id,
        exam_name=exam.name,
        mode=sitting.mode,
        number=sitting.number,
        reviewable=sitting.reviewable,
        state=sitting.state,
        failed_reason=sitting.failed_reason,
        window_starts_at=exam.formal_starts_at,
        window_ends_at=loaded.window_end,
        upload_ends_at=loaded.window_end + timedelta(minutes=exam.upload_grace_minutes),
        window=window,
        device_id=sitting.device_id,
        face_state=sitting.face_state,
        face_verified_on_this_device=device_id is not None
        and sitting.face_device_id == device_id
        and sitting.face_state in PASSING,
        face_check_required=sitting.face_check_required,
        device_checked_on_this_device=device_id is not None and sitting.device_ok_id == device_id,
        flags=sitting_flags,
        warnings=list(sitting.warnings),
        subjects=out,
        next_step=_next_step(loaded, window, device_id, [s.state for s in out]),
    )


async def start(
    ctx: Ctx, principal: Principal, exam_id: int, body: schemas.SittingIn
) -> schemas.SittingOut:
    """Open the formal sitting or a new mock sitting on this device (see `sittings.start`)."""
    loaded = await sittings.start(ctx, principal, exam_id, body)
    return await status(ctx, loaded, device_id=ctx.device_id)


async def my_status(ctx: Ctx, principal: Principal, sitting_id: int) -> schemas.SittingOut:
    """The caller's sitting; running recordings past their limit are voided first.
    `sitting_not_found` for absent and other people's sittings (as `sittings.own_sitting`).

    One statement, `_OWN_STATUS`: what `own_sitting` and `status` read, joined.
    """
    found = await _OWN_STATUS.rows(ctx.session, {"sitting_id": sitting_id})
    if not found or found[0][0] != principal.user_id:
        raise VexamError("sitting_not_found")
    first = found[0]
    # Detached objects holding what the status reads (as `uploads.create` returns its row).
    sitting = Sitting(**dict(zip(_SITTING_KEYS, first, strict=False)))
    exam = Exam(**dict(zip(_EXAM_KEYS, first[_EXAM_AT:], strict=False)))
    granted = accommodations.granted_from(*first[_GRANTED_AT:_PART_AT])
    loaded = Loaded(sitting, exam, granted)
    rows = [row[_PART_AT:] for row in found]
    return await _status_of(ctx, loaded, rows, ctx.device_id, void_overdue=True)


async def my_sittings(ctx: Ctx, principal: Principal) -> list[schemas.SittingOut]:
    """The caller's sittings, newest first."""
    found = await ctx.session.execute(
        select(Sitting).where(Sitting.user_id == principal.user_id).order_by(Sitting.id.desc())
    )
    return [
        await status(ctx, await load(ctx, sitting), device_id=ctx.device_id)
        for sitting in found.scalars()
    ]


async def school_view(
    ctx: Ctx, principal: Principal, exam_id: int, row_id: int
) -> list[schemas.SittingOut]:
    """The sittings of one roster row's candidate, for the school's admins and operators.

    `exam_not_found` for other schools' exams; `roster_row_not_found` for another exam's row;
    an empty list while the candidate has not applied or started.
    """
    from vexam.schools import roster as rosters

    exam = await service.get_exam(ctx, principal, exam_id)
    row = await rosters.get_row(ctx, principal, exam.id, row_id)
    found = await ctx.session.execute(
        select(Sitting)
        .where(Sitting.exam_id == exam.id, Sitting.roster_row_id == row.id)
        .order_by(Sitting.mode, Sitting.number)
    )
    return [
        await status(ctx, await load(ctx, sitting), device_id=None) for sitting in found.scalars()
    ]
