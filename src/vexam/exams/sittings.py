"""Sittings (SPEC §5): starting an exam, the one exam device, face and device checks, status.

A sitting is one candidate taking one exam: the formal sitting (one per candidate and exam)
or a numbered mock sitting (as many as `Exam.mock_limit` allows, never reviewed). Before a
recording starts, the device that will record must have passed an exam-time face
verification and a device check; both are bound to that device.

One active exam device per candidate, across all schools (SPEC §2): `ExamDeviceLock` is keyed
by user id. A device claims it by inserting the row, keeps it by a conditional update on its
own device id, and takes it over only when the request asks for a handover; the database
decides between two devices starting at once. Recording attempts and submissions live in
`attempts`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from vexam.core import audit
from vexam.core.context import Ctx, Principal
from vexam.core.db import execute_flushed
from vexam.core.errors import CountedRefusal, VexamError, field_invalid
from vexam.core.i18n import N_, Msg
from vexam.exams import accommodations, enrollment, schemas, service
from vexam.exams import recording_statements as statements
from vexam.exams.models import (
    Application,
    DeviceCheck,
    Exam,
    ExamDeviceLock,
    FaceVerification,
    PaymentOrder,
    Sitting,
    Subject,
)
from vexam.identity import service as identity

# Face results that let the candidate go on.
PASSING = frozenset({"passed", "walkthrough", "no_reference"})
# Below these the device check passes with a warning (a formal exam may fail on them).
LOW_STORAGE_BYTES = 2 * 1024**3
SLOW_UPLOAD_KBPS = 1000
RULE_TEXTS = {
    "camera": Msg(N_("the camera permission is not granted")),
    "microphone": Msg(N_("the microphone permission is not granted")),
    "device_class": Msg(N_("this kind of device is not allowed; use a phone")),
    "os_name": Msg(N_("its operating system is not supported")),
    "os_version": Msg(N_("its operating system is older than this exam allows")),
}


def device_of(ctx: Ctx) -> str:
    """The caller's device id; exam calls need one (`device_id_invalid` without)."""
    if not ctx.device_id:
        raise VexamError("device_id_invalid")
    return ctx.device_id


# ------------------------------------------------------------------ the one exam device


async def claim_device(
    ctx: Ctx, user_id: int, sitting_id: int, *, handover: bool = False
) -> str | None:
    """Hold the candidate's one exam device for this call; the old device id on a handover.

    Held by this device: a conditional update keeps it (one statement, the usual case).
    Free: the insert claims it. Held by another device: `exam_active_on_other_device`, unless
    `handover` asks to take it over, which ends the other device (its running recordings are
    voided, its calls refused).
    """
    device = device_of(ctx)
    now = ctx.now()
    if await _keep_device(ctx, user_id, device, sitting_id):
        return None
    try:
        async with ctx.session.begin_nested():
            ctx.session.add(
                ExamDeviceLock(
                    user_id=user_id, device_id=device, sitting_id=sitting_id, acquired_at=now
                )
            )
    except IntegrityError:
        # Claimed meanwhile: by this device (another call of it at once) it is kept.
        if await _keep_device(ctx, user_id, device, sitting_id):
            return None
    else:
        await audit.record(ctx, "exam_device.claimed", "user", user_id, sitting_id=sitting_id)
        return None
    if not handover:
        raise VexamError("exam_active_on_other_device")
    old = (
        await ctx.session.execute(
            select(ExamDeviceLock.device_id).where(ExamDeviceLock.user_id == user_id)
        )
    ).scalar_one_or_none()
    taken = await ctx.session.execute(
        update(ExamDeviceLock)
        .where(ExamDeviceLock.user_id == user_id, ExamDeviceLock.device_id == old)
        .values(device_id=device, sitting_id=sitting_id, acquired_at=now)
        .execution_options(synchronize_session=False)
    )
    if old is None or taken.rowcount != 1:  # type: ignore[attr-defined]
        raise VexamError("exam_active_on_other_device")
    voided = await void_open(ctx, user_id=user_id, device_id=old, reason="handover")
    await audit.record(
        ctx,
        "exam_device.handed_over",
        "user",
        user_id,
        from_device=old,
        sitting_id=sitting_id,
        voided_recordings=voided,
    )
    return old


_KEEP_DEVICE = (
    update(ExamDeviceLock)
    .where(
        ExamDeviceLock.user_id == bindparam("lock_user_id"),
        ExamDeviceLock.device_id == bindparam("lock_device_id"),
    )
    .values(sitting_id=bindparam("lock_sitting_id"))
    .execution_options(synchronize_session=False)
)


async def _keep_device(ctx: Ctx, user_id: int, device: str, sitting_id: int) -> bool:
    """Whether this device holds the lock (now pointing at `sitting_id`)."""
    kept = await ctx.session.execute(
        _KEEP_DEVICE,
        {"lock_user_id": user_id, "lock_device_id": device, "lock_sitting_id": sitting_id},
    )
    return bool(kept.rowcount == 1)  # type: ignore[attr-defined]


async def release_device(ctx: Ctx, principal: Principal) -> bool:
    """Let go of the exam device from the device holding it (running recordings are voided)."""
    device = device_of(ctx)
    released = await ctx.session.execute(
        delete(ExamDeviceLock)
        .where(ExamDeviceLock.user_id == principal.user_id, ExamDeviceLock.device_id == device)
        .execution_options(synchronize_session=False)
    )
    if released.rowcount != 1:  # type: ignore[attr-defined]
        return False
    voided = await void_open(ctx, user_id=principal.user_id, device_id=device, reason="released")
    await audit.record(
        ctx, "exam_device.released", "user", principal.user_id, voided_recordings=voided
    )
    return True


async def void_open(
    ctx: Ctx,
    *,
    reason: str,
    user_id: int | None = None,
    device_id: str | None = None,
    sitting_id: int | None = None,
    recording_id: int | None = None,
    overdue_only: bool = False,
) -> list[int]:
    """Void running recordings (attempts stay used) chosen by the filters; their ids."""
    statement = statements.void_running(
        by_user=user_id is not None,
        by_device=device_id is not None,
        by_sitting=sitting_id is not None,
        by_recording=recording_id is not None,
        overdue_only=overdue_only,
    )
    done = await execute_flushed(
        ctx.session,
        statement,
        {
            "of_user": user_id,
            "on_device": device_id,
            "in_sitting": sitting_id,
            "recording": recording_id,
            "reason": reason,
            "now": ctx.now(),
        },
    )
    ids = sorted(done.scalars())
    for recording in ids:
        await audit.record(ctx, "recording.voided", "recording", recording, reason=reason)
    return ids


# ------------------------------------------------------------------ finding a sitting


@dataclass
class Loaded:
    """A sitting with its exam and what the candidate is granted on top of it."""

    sitting: Sitting
    exam: Exam
    granted: accommodations.Granted

    @property
    def window_end(self) -> datetime:
        """The end of this candidate's formal window (a later one where granted)."""
        return self.granted.window_end(self.exam)


# A loaded sitting's exam and what the candidate is granted, in one statement.
_EXAM_AND_GRANTED = accommodations.with_granted(
    select(Exam, *accommodations.GRANTED_COLUMNS)
    .select_from(Sitting)
    .join(Exam, Exam.id == Sitting.exam_id),
    Sitting.user_id,
    Sitting.exam_id,
).where(Sitting.id == bindparam("sitting_id"))


async def load(ctx: Ctx, sitting: Sitting) -> Loaded:
    """The sitting with its exam and accommodation (one statement)."""
    found = (await ctx.session.execute(_EXAM_AND_GRANTED, {"sitting_id": sitting.id})).one()
    exam, attempts, seconds, ends_at = found
    return Loaded(sitting, exam, accommodations.granted_from(attempts, seconds, ends_at))


# Built once (with a parameter): a hot statement's construction and cache key cost more CPU
# than its execution. The sitting, its exam and what the candidate is granted.
_OWN_SITTING = accommodations.with_granted(
    select(Sitting, Exam, *accommodations.GRANTED_COLUMNS).join(Exam, Exam.id == Sitting.exam_id),
    Sitting.user_id,
    Sitting.exam_id,
).where(Sitting.id == bindparam("sitting_id"))


async def own_sitting(ctx: Ctx, principal: Principal, sitting_id: int) -> Loaded:
    """The caller's sitting; `sitting_not_found` for absent and other people's sittings.

    One statement: the sitting, its exam and what the candidate is granted.
    """
    found = (await ctx.session.execute(_OWN_SITTING, {"sitting_id": sitting_id})).one_or_none()
    if found is None or found[0].user_id != principal.user_id:
        raise VexamError("sitting_not_found")
    sitting, exam, attempts, seconds, ends_at = found
    return Loaded(sitting, exam, accommodations.granted_from(attempts, seconds, ends_at))


def ensure_open(ctx: Ctx, loaded: Loaded) -> None:
    """Refuse a failed sitting (`exam_failed`) and a formal one outside its window."""
    if loaded.sitting.state == "failed":
        raise VexamError("exam_failed", reason=loaded.sitting.failed_reason)
    if loaded.sitting.mode != "formal":
        return
    now = ctx.now()
    if now < loaded.exam.formal_starts_at:
        raise VexamError("exam_not_open", starts_at=loaded.exam.formal_starts_at)
    if now >= loaded.window_end:
        raise VexamError("exam_closed", ended_at=loaded.window_end)


# ------------------------------------------------------------------ starting


async def start(ctx: Ctx, principal: Principal, exam_id: int, body: schemas.SittingIn) -> Loaded:
    """Open the formal sitting (or continue it), or a new mock sitting, on this device.

    Formal: enrolled, paid where a fee applies, inside the window (the candidate's later
    end where granted). Mock: as `enrollment.ensure_mock_open` says, up to `mock_limit`.
    """
    exam = await ctx.session.get(Exam, exam_id)
    if exam is None or not exam.published:
        raise VexamError("exam_not_found")
    if not await identity.is_certified(ctx, principal.user_id):
        raise VexamError("identity_not_certified")
    application = (
        await ctx.session.execute(
            select(Application).where(
                Application.user_id == principal.user_id, Application.exam_id == exam_id
            )
        )
    ).scalar_one_or_none()
    if body.mode == "mock":
        await enrollment.ensure_mock_open(ctx, principal.user_id, exam_id)
    else:
        order = (
            await ctx.session.execute(
                select(PaymentOrder).where(
                    PaymentOrder.user_id == principal.user_id, PaymentOrder.exam_id == exam_id
                )
            )
        ).scalar_one_or_none()
        state = enrollment.mock_state(exam, application, order)
        if state == "not_enrolled":
            raise VexamError("not_in_roster")
        if state == "payment_required":
            raise VexamError("payment_required", amount_cents=exam.fee_cents)
    assert application is not None
    sitting = await _create(ctx, principal, exam, application, body.mode)
    loaded = await load(ctx, sitting)
    ensure_open(ctx, loaded)
    await claim_device(ctx, principal.user_id, sitting.id, handover=body.handover)
    if sitting.device_id != ctx.device_id:
        sitting.device_id = ctx.device_id
        sitting.updated_at = ctx.now()
        await ctx.session.flush()
    return loaded


async def _create(
    ctx: Ctx, principal: Principal, exam: Exam, application: Application, mode: str
) -> Sitting:
    """The formal sitting (created once), or the next mock sitting; the unique key decides."""
    mine = (Sitting.user_id == principal.user_id, Sitting.exam_id == exam.id, Sitting.mode == mode)
    if mode == "formal":
        number = 1
        existing = (await ctx.session.execute(select(Sitting).where(*mine))).scalar_one_or_none()
        if existing is not None:
            return existing
    else:
        last = (await ctx.session.execute(select(func.max(Sitting.number)).where(*mine))).scalar()
        number = (last or 0) + 1
        if exam.mock_limit is not None and number > exam.mock_limit:
            raise VexamError("mock_limit_reached", mock_limit=exam.mock_limit)
    now = ctx.now()
    sitting = Sitting(
        user_id=principal.user_id,
        exam_id=exam.id,
        school_id=exam.school_id,
        roster_row_id=application.roster_row_id,
        mode=mode,
        number=number,
        reviewable=mode == "formal",
        state="open",
        face_state="none",
        face_check_required=False,
        device_id=ctx.device_id,
        flags=[],
        warnings=[],
        created_at=now,
        updated_at=now,
    )
    try:
        async with ctx.session.begin_nested():
            ctx.session.add(sitting)
    except IntegrityError:
        # Started twice at once: the row the other request created is this sitting.
        twin = await ctx.session.execute(select(Sitting).where(*mine, Sitting.number == number))
        return twin.scalar_one()
    await audit.record(
        ctx, "sitting.started", "sitting", sitting.id, exam_id=exam.id, mode=mode, number=number
    )
    return sitting


# ------------------------------------------------------------------ face


def _face_is_real(loaded: Loaded, subjects: list[Subject]) -> bool:
    """Formal sittings always compare; a mock one compares when any subject says `real`."""
    if loaded.sitting.mode == "formal":
        return True
    return any(subject.mock_face_checks == "real" for subject in subjects)


async def judge_face(
    ctx: Ctx, sitting: Sitting, frame: bytes, *, real: bool
) -> tuple[str, float | None, list[float] | None]:
    """(result, distance, live embedding) of one live frame against the certified face.

    A walkthrough records the procedure and passes without comparing. Without any reference
    face the live face is the result `no_reference` (it passes; reviewers are told), and
    later frames are compared with the live face kept on the sitting.
    """
    identity.check_photo_size(ctx, frame)
    if identity.image_format(frame) not in ("image/jpeg", "image/png"):
        raise VexamError("image_invalid")
    if not real:
        return "walkthrough", None, None
    import numpy as np

    from vexam.identity.faces import FaceEngine, FaceNotFound, ImageUndecodable, load_image

    engines = identity.engines(ctx)

    def embed() -> tuple[FaceEngine, Any]:
        # One trip to a worker thread: the engine (built on first use), decoding, embedding.
        engine = engines.faces()
        return engine, engine.embed_largest(load_image(frame))

    try:
        engine, live = await asyncio.to_thread(embed)
    except FaceNotFound:
        return "face_not_found", None, None
    except ImageUndecodable:
        raise VexamError("image_invalid") from None
    embedding = [float(x) for x in live]
    reference = await identity.reference_embedding(ctx, sitting.user_id) or sitting.live_embedding
    if reference is None:
        return "no_reference", None, embedding
    comparison = engine.compare(live, np.asarray(reference, dtype=np.float64))
    distance = round(comparison.distance, 4)
    return ("passed" if comparison.match else "face_mismatch"), distance, embedding


def refusal_code(result: str) -> str:
    """The problem code of a failed face result."""
    return "face_not_found" if result == "face_not_found" else "exam_face_mismatch"


async def verify_face(
    ctx: Ctx, principal: Principal, sitting_id: int, frame: bytes
) -> schemas.FaceCheckOut:
    """The exam-time face verification on this device; clears `face_check_required`.

    Failures are kept (`face_not_found`, `exam_face_mismatch` with the distance).
    """
    loaded = await own_sitting(ctx, principal, sitting_id)
    ensure_open(ctx, loaded)
    sitting = loaded.sitting
    await claim_device(ctx, principal.user_id, sitting.id)
    device = device_of(ctx)
    subjects = await service.subjects_of(ctx, loaded.exam.id)
    result, distance, embedding = await judge_face(
        ctx, sitting, frame, real=_face_is_real(loaded, subjects)
    )
    now = ctx.now()
    ctx.session.add(
        FaceVerification(
            sitting_id=sitting.id,
            kind="verification",
            result=result,
            distance=distance,
            device_id=device,
            created_at=now,
        )
    )
    await audit.record(
        ctx, "sitting.face_verified", "sitting", sitting.id, result=result, distance=distance
    )
    if result not in PASSING:
        await ctx.session.flush()
        raise CountedRefusal(refusal_code(result), result=result, distance=distance)
    sitting.face_state = result
    sitting.face_device_id = device
    sitting.face_verified_at = now
    sitting.face_check_required = False
    if result == "no_reference":
        sitting.live_embedding = embedding
        if "no_reference" not in sitting.flags:
            sitting.flags = [*sitting.flags, "no_reference"]
    sitting.updated_at = now
    await ctx.session.flush()
    return schemas.FaceCheckOut(result=result, passed=True, distance=distance)


# ------------------------------------------------------------------ device


def _version(text: str) -> tuple[int, ...]:
    parts = text.strip().split(".")
    if not text.strip() or not all(part.isdigit() for part in parts) or len(parts) > 6:
        raise field_invalid("os_version")
    return tuple(int(part) for part in parts)


def judge_device(policy: dict[str, object], body: schemas.DeviceCheckIn) -> str | None:
    """The device-policy rule a device breaks (SPEC §2), or None."""
    if not body.camera:
        return "camera"
    if not body.microphone:
        return "microphone"
    allowed = policy.get("allowed_classes") or ["phone"]
    if not isinstance(allowed, list) or body.device_class not in allowed:
        return "device_class"
    minimum = policy.get("min_os")
    minimum = minimum if isinstance(minimum, dict) else dict(schemas.DEFAULT_MIN_OS)
    version = _version(body.os_version)
    if body.device_class == "phone" and body.os_name not in schemas.OS_NAMES:
        return "os_name"
    floor = minimum.get(body.os_name)
    if isinstance(floor, str) and version < _version(floor):
        return "os_version"
    return None


async def _last_mock_device(ctx: Ctx, user_id: int, exam_id: int) -> str | None:
    found = await ctx.session.execute(
        select(Sitting.device_id)
        .where(Sitting.user_id == user_id, Sitting.exam_id == exam_id, Sitting.mode == "mock")
        .order_by(Sitting.number.desc())
        .limit(1)
    )
    return found.scalar_one_or_none()


async def check_device(
    ctx: Ctx, principal: Principal, sitting_id: int, body: schemas.DeviceCheckIn
) -> schemas.DeviceCheckOut:
    """Record what the device reports and judge it by the exam's device policy.

    Formal: a broken rule is `device_not_allowed` naming it. Mock: only a missing camera or
    microphone permission refuses; other rules warn (`formal_would_refuse:<rule>`). A formal
    sitting on another device than the last mock warns `device_differs_from_mock`.
    """
    loaded = await own_sitting(ctx, principal, sitting_id)
    ensure_open(ctx, loaded)
    sitting = loaded.sitting
    await claim_device(ctx, principal.user_id, sitting.id)
    device = device_of(ctx)
    rule = judge_device(loaded.exam.device_policy or {}, body)
    warnings: list[str] = []
    if rule is not None and sitting.mode == "mock" and rule not in ("camera", "microphone"):
        warnings.append(f"formal_would_refuse:{rule}")
        rule = None
    if body.free_bytes < LOW_STORAGE_BYTES:
        warnings.append("low_storage")
    if body.upload_kbps < SLOW_UPLOAD_KBPS:
        warnings.append("slow_upload")
    if sitting.mode == "formal":
        mock_device = await _last_mock_device(ctx, principal.user_id, loaded.exam.id)
        if mock_device is not None and mock_device != device:
            warnings.append("device_differs_from_mock")
    check = DeviceCheck(
        sitting_id=sitting.id,
        device_id=device,
        device_class=body.device_class,
        os_name=body.os_name,
        os_version=body.os_version.strip(),
        camera=body.camera,
        microphone=body.microphone,
        free_bytes=body.free_bytes,
        upload_kbps=body.upload_kbps,
        allowed=rule is None,
        rule=rule,
        warnings=warnings,
        created_at=ctx.now(),
    )
    ctx.session.add(check)
    await ctx.session.flush()
    await audit.record(
        ctx,
        "sitting.device_checked",
        "sitting",
        sitting.id,
        check_id=check.id,
        allowed=rule is None,
        rule=rule,
        warnings=warnings,
        device_class=body.device_class,
        os=f"{body.os_name} {body.os_version.strip()}",
    )
    if rule is not None:
        raise CountedRefusal(
            "device_not_allowed", rule=rule, rule_text=RULE_TEXTS[rule], check_id=check.id
        )
    sitting.device_ok_id = device
    sitting.warnings = sorted({*sitting.warnings, *warnings})
    sitting.updated_at = ctx.now()
    await ctx.session.flush()
    return schemas.DeviceCheckOut(id=check.id, device_id=device, allowed=True, warnings=warnings)
