"""Certification rules for the candidate (SPEC §3): state, data, ID photo, face, review.

A certification moves face_pending → certified through a live face check, or, when the
machine cannot decide (3 failed face checks, a register mismatch, another document, no
portrait to compare with), review_required → in_review → certified | rejected by a person.
Every refusal leads somewhere: a retry, manual entry, a manual review or an appeal.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from io import BytesIO
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from vexam.accounts import service as accounts
from vexam.core import audit
from vexam.core.context import Ctx, Principal, Role
from vexam.core.crypto import blind_index, encrypt_text
from vexam.core.db import after_rollback
from vexam.core.errors import CountedRefusal, VexamError, field_invalid
from vexam.core.i18n import N_, Msg
from vexam.identity import schemas
from vexam.identity.engines import IdentityEngines
from vexam.identity.idnumbers import IdNumberError, IdNumberReason, mask_id_number, parse_id_number
from vexam.identity.models import (
    Appeal,
    Identity,
    IdentityPhoto,
    ManualReview,
)
from vexam.identity.registers import IdRegister

Status = schemas.Status
ID_NUMBER_CONTEXT = "identity.id_number"
IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
# Certifying may start again from these: a person closed the last try, or nothing is open.
RESTARTABLE = {Status.face_pending, Status.review_required, Status.rejected, Status.revoked}

REASON_TEXTS = {
    IdNumberReason.length: Msg(N_("it must have 18 characters")),
    IdNumberReason.characters: Msg(N_("only digits, and X as the last character")),
    IdNumberReason.check_character: Msg(N_("the last character does not fit the others")),
    IdNumberReason.province: Msg(N_("the first two digits are not a province")),
    IdNumberReason.birth_date: Msg(N_("the birth date in it is not a real date")),
    IdNumberReason.birth_date_mismatch: Msg(N_("it does not match the birth date you gave")),
}
OTHER_DOCUMENT_TEXT = Msg(N_("use 5 to 20 letters and digits"))


def engines(ctx: Ctx) -> IdentityEngines:
    """The process's face engine and ID-card reader."""
    found: IdentityEngines = ctx.extra["identity_engines"]
    return found


def season_of(ctx: Ctx) -> str:
    """The exam season now: configured, else the year its summer falls in (Sep-Aug)."""
    if ctx.settings.exam_season:
        return ctx.settings.exam_season
    today = ctx.now().date()
    return str(today.year + 1 if today.month >= 9 else today.year)


def index_of(ctx: Ctx, number: str) -> str:
    """The blind index of a normalised document number."""
    return blind_index(ctx.settings.data_key, number, kind="id_number")


def encrypt_number(ctx: Ctx, number: str) -> str:
    """The stored form of a document number."""
    return encrypt_text(ctx.settings.data_key, number, context=ID_NUMBER_CONTEXT)


# ------------------------------------------------------------------ reading the state


async def identity_of(ctx: Ctx, user_id: int) -> Identity | None:
    """The certification of an account, if it ever started one."""
    found = await ctx.session.execute(select(Identity).where(Identity.user_id == user_id))
    return found.scalar_one_or_none()


async def is_certified(ctx: Ctx, user_id: int) -> bool:
    """Whether the account holds a certified identity now."""
    identity = await identity_of(ctx, user_id)
    return identity is not None and identity.status == Status.certified


def _next_step(status: Status) -> str:
    return {
        Status.not_started: "submit_identity",
        Status.face_pending: "verify_face",
        Status.review_required: "request_review",
        Status.in_review: "wait_for_review",
        Status.certified: "none",
        Status.rejected: "submit_identity",
        Status.revoked: "submit_identity",
    }[status]


def review_out(review: ManualReview) -> schemas.ReviewOut:
    """A review as its candidate sees it."""
    return schemas.ReviewOut(
        id=review.id,
        status=review.status,
        reason=review.reason,
        created_at=review.created_at,
        due_at=review.due_at,
        decided_at=review.decided_at,
        decision_reason=review.decision_reason,
    )


def appeal_out(appeal: Appeal) -> schemas.AppealOut:
    """An appeal as its author sees it (numbers masked)."""
    return schemas.AppealOut(
        id=appeal.id,
        kind=appeal.kind,
        status=appeal.status,
        id_number=appeal.id_number_masked,
        candidate_number=appeal.candidate_number,
        message=appeal.message,
        created_at=appeal.created_at,
        due_at=appeal.due_at,
        decided_at=appeal.decided_at,
        decision_reason=appeal.decision_reason,
    )


async def status(ctx: Ctx, principal: Principal) -> schemas.IdentityOut:
    """The caller's certification state, read fresh (changes show without signing in again)."""
    appeals = (
        await ctx.session.execute(
            select(Appeal).where(Appeal.user_id == principal.user_id).order_by(Appeal.id.desc())
        )
    ).scalars()
    appeal_views = [appeal_out(appeal) for appeal in appeals]
    identity = await identity_of(ctx, principal.user_id)
    if identity is None:
        return schemas.IdentityOut(
            status=Status.not_started, next_step="submit_identity", appeals=appeal_views
        )
    state = Status(identity.status)
    review = (
        await ctx.session.execute(
            select(ManualReview)
            .where(ManualReview.identity_id == identity.id)
            .order_by(ManualReview.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    return schemas.IdentityOut(
        status=state,
        next_step=_next_step(state),
        identity_type=identity.identity_type,
        document_type=identity.document_type,
        name=identity.name,
        id_number=identity.id_number_masked,
        candidate_number=identity.candidate_number,
        season=identity.season,
        review_reason=identity.review_reason,
        face_attempts_left=max(0, ctx.settings.face_max_attempts - identity.face_failures),
        certified_at=identity.certified_at,
        review=review_out(review) if review else None,
        appeals=appeal_views,
    )


# ------------------------------------------------------------------ photos


def image_format(data: bytes) -> str:
    """The MIME type of a JPEG, PNG or WebP picture; `image_invalid` for anything else."""
    from PIL import Image

    try:
        with Image.open(BytesIO(data)) as image:
            kind = image.format or ""
            image.verify()
    except Exception:
        # Pillow answers hostile input with many types (OSError, SyntaxError, EOFError,
        # struct.error, DecompressionBombError for a small file of huge dimensions...).
        raise VexamError("image_invalid") from None
    if kind not in IMAGE_TYPES:
        raise VexamError("image_invalid")
    return IMAGE_TYPES[kind]


def check_photo_size(ctx: Ctx, data: bytes) -> None:
    """`image_too_large` above the configured limit, `image_invalid` when empty."""
    if not data:
        raise VexamError("image_invalid")
    limit = ctx.settings.id_photo_max_bytes
    if len(data) > limit:
        raise VexamError("image_too_large", max_mb=round(limit / 1_000_000, 1))


async def store_photo(ctx: Ctx, user_id: int, kind: str, data: bytes) -> IdentityPhoto:
    """Keep a picture in the blob store and record it (owner and support may read it)."""
    check_photo_size(ctx, data)
    content_type = image_format(data)
    key = f"identity/{user_id}/{kind}-{uuid.uuid4().hex}"
    store = ctx.blobs
    await store.put(key, data, content_type=content_type)

    async def _forget() -> None:
        await store.delete(key)

    # A refused request keeps no photo that no row names (a counted refusal keeps both).
    after_rollback(ctx.session, _forget)
    photo = IdentityPhoto(
        user_id=user_id,
        kind=kind,
        blob_key=key,
        content_type=content_type,
        size=len(data),
        created_at=ctx.now(),
    )
    ctx.session.add(photo)
    await ctx.session.flush()
    return photo


async def upload_id_photo(
    ctx: Ctx, principal: Principal, data: bytes, document_type: schemas.DocumentType, read: bool
) -> schemas.IdPhotoOut:
    """Store the portrait side of an ID card and, unless `read` is off, prefill it by OCR.

    Only the resident ID card can be read (`document_manual_only` for the others). A photo
    OCR cannot read is kept (`id_photo_unclear` carries its `photo_id`) so the candidate can
    type the details by hand and still use the photo's portrait.
    """
    if document_type is not schemas.DocumentType.resident_id:
        raise VexamError("document_manual_only")
    photo = await store_photo(ctx, principal.user_id, "id_card", data)
    await audit.record(ctx, "identity.id_photo_uploaded", "identity_photo", photo.id)
    if not read:
        return schemas.IdPhotoOut(photo_id=photo.id)
    from vexam.identity.ocr import IdPhotoUnclear

    reader = await asyncio.to_thread(engines(ctx).reader)
    try:
        reading = await asyncio.to_thread(reader.read, data)
    except IdPhotoUnclear as exc:
        raise CountedRefusal("id_photo_unclear", reason=exc.reason, photo_id=photo.id) from None
    fields = {
        name: schemas.OcrFieldOut(
            value=field.value, confidence=field.confidence, doubtful=field.doubtful, note=field.note
        )
        for name, field in reading.fields().items()
    }
    return schemas.IdPhotoOut(photo_id=photo.id, fields=fields)


async def _own_photo(ctx: Ctx, user_id: int, photo_id: int, kind: str) -> IdentityPhoto:
    photo = await ctx.session.get(IdentityPhoto, photo_id)
    if photo is None or photo.user_id != user_id or photo.kind != kind:
        raise VexamError("not_found")
    return photo


async def read_photo(ctx: Ctx, principal: Principal, photo_id: int) -> tuple[bytes, str]:
    """The bytes of an identity photo, for its owner and support agents only."""
    photo = await ctx.session.get(IdentityPhoto, photo_id)
    allowed = photo is not None and (
        photo.user_id == principal.user_id or principal.role is Role.support
    )
    if photo is None or not allowed:
        # The same answer for "absent" and "not yours": ids reveal nothing.
        raise VexamError("not_found")
    return await ctx.blobs.get(photo.blob_key), photo.content_type


# ------------------------------------------------------------------ stating the identity


def invalid_number(reason: IdNumberReason) -> VexamError:
    """`id_number_invalid` with the machine reason and a sentence about it."""
    return VexamError("id_number_invalid", reason=reason.value, reason_text=REASON_TEXTS[reason])


def _check_number(
    body: schemas.CertificationIn, today: date
) -> tuple[str, date | None, str | None]:
    """The normalised number, and birth date and sex as the number says (ID cards)."""
    if body.document_type is schemas.DocumentType.other:
        number = "".join(body.id_number.split()).upper()
        if not (5 <= len(number) <= 20 and number.isascii() and number.isalnum()):
            raise VexamError(
                "id_number_invalid", reason="other_format", reason_text=OTHER_DOCUMENT_TEXT
            )
        return number, body.birth_date, body.sex
    try:
        parsed = parse_id_number(body.id_number, today=today, stated_birth_date=body.birth_date)
    except IdNumberError as exc:
        raise invalid_number(exc.reason) from None
    if body.sex is not None and body.sex != parsed.sex:
        raise field_invalid("sex")
    return parsed.number, parsed.birth_date, parsed.sex


def check_candidate_number(raw: str | None) -> str | None:
    """A candidate number (考生号) upper-cased, or None; 4-20 letters and digits."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip().upper()
    if not (4 <= len(value) <= 20 and value.isascii() and value.isalnum()):
        raise field_invalid("candidate_number")
    return value


async def holder_by_index(ctx: Ctx, index: str) -> Identity | None:
    """The identity certified with the number of blind index `index`, if any."""
    found = await ctx.session.execute(select(Identity).where(Identity.certified_index == index))
    return found.scalar_one_or_none()


async def holder_by_candidate_number(ctx: Ctx, claim: str) -> Identity | None:
    """The identity certified with candidate number claim `season:number`, if any."""
    found = await ctx.session.execute(
        select(Identity).where(Identity.candidate_number_claim == claim)
    )
    return found.scalar_one_or_none()


async def conflict_error(ctx: Ctx, holder: Identity) -> VexamError:
    """`identity_conflict` naming, masked, the phone of the account holding the number."""
    user = await accounts.get_user(ctx.session, holder.user_id)
    return VexamError("identity_conflict", holder_phone=accounts.mask_phone(user.phone))


async def submit(
    ctx: Ctx, principal: Principal, body: schemas.CertificationIn
) -> schemas.IdentityOut:
    """State (or correct) the identity; the answer says what comes next.

    Refused at once when the number is invalid, already certified on another account
    (`identity_conflict`) or the candidate number is taken this season.
    """
    if principal.role is not Role.candidate:
        raise VexamError("forbidden")
    now = ctx.now()
    number, birth_date, sex = _check_number(body, now.date())
    if body.document_type is schemas.DocumentType.other and body.document_kind is None:
        raise field_invalid("document_kind")
    name = " ".join(body.name.split())
    candidate_number = check_candidate_number(body.candidate_number)
    index = index_of(ctx, number)
    season = season_of(ctx)
    identity = await identity_of(ctx, principal.user_id)
    if identity is not None and identity.status == Status.certified:
        raise VexamError("identity_already_certified")
    if identity is not None and identity.status == Status.in_review:
        raise VexamError("identity_not_ready")
    holder = await holder_by_index(ctx, index)
    if holder is not None and holder.user_id != principal.user_id:
        raise await conflict_error(ctx, holder)
    claim = f"{season}:{candidate_number}" if candidate_number else None
    if claim and await holder_by_candidate_number(ctx, claim) is not None:
        raise VexamError("candidate_number_taken")

    photo = None
    if body.id_photo_id is not None:
        photo = await _own_photo(ctx, principal.user_id, body.id_photo_id, "id_card")
    portrait_source, embedding = await _portrait(ctx, photo)
    register: IdRegister = ctx.extra["id_register"]
    checked = await register.check(name, body.document_type.value, number)
    if embedding is None and checked.portrait is not None:
        embedding = await embed_portrait(ctx, checked.portrait)
        portrait_source = "register" if embedding is not None else None

    review_reason = None
    if body.document_type is schemas.DocumentType.other:
        review_reason = "other_document"
    elif checked.status == "mismatch":
        review_reason = f"register_{checked.reason or 'mismatch'}"[:48]
    elif embedding is None:
        review_reason = "no_reference_portrait"

    fresh_start = identity is None or identity.status in (Status.rejected, Status.revoked)
    if identity is None:
        identity = Identity(user_id=principal.user_id, created_at=now, face_failures=0)
        ctx.session.add(identity)
    exhausted = identity.face_failures >= ctx.settings.face_max_attempts and not fresh_start
    if review_reason is None and exhausted:
        review_reason = "face_attempts_exhausted"
    values: dict[str, Any] = {
        "status": Status.review_required if review_reason else Status.face_pending,
        "identity_type": body.identity_type.value,
        "document_type": body.document_type.value,
        "document_kind": body.document_kind.value if body.document_kind else None,
        "entry_method": "ocr"
        if photo is not None and body.document_type.value == "resident_id"
        else "manual",
        "name": name,
        "sex": sex,
        "ethnicity": (body.ethnicity or "").strip().removesuffix("族") or None,
        "birth_date": birth_date,
        "address": " ".join((body.address or "").split()) or None,
        "id_expires_on": body.id_expires_on,
        "id_number_enc": encrypt_number(ctx, number),
        "id_number_index": index,
        "id_number_masked": mask_id_number(number),
        "season": season,
        "candidate_number": candidate_number,
        "id_photo_id": photo.id if photo else None,
        "portrait_source": portrait_source,
        "portrait_embedding": [float(x) for x in embedding] if embedding is not None else None,
        "register_result": checked.status,
        "register_reason": checked.reason,
        "review_reason": review_reason,
        "updated_at": now,
        "revoked_at": None,
        "revoked_reason": None,
    }
    if fresh_start:
        values["face_failures"] = 0
    for key, value in values.items():
        setattr(identity, key, value)
    await ctx.session.flush()
    await audit.record(
        ctx,
        "identity.submitted",
        "identity",
        identity.id,
        document_type=identity.document_type,
        identity_type=identity.identity_type,
        id_number=identity.id_number_masked,
        status=identity.status,
        review_reason=review_reason,
        register=checked.status,
    )
    return await status(ctx, principal)


async def embed_portrait(ctx: Ctx, data: bytes) -> list[float] | None:
    """The embedding of the largest face in an ID photo (or register portrait), else None."""
    from vexam.identity.faces import FaceNotFound, ImageUndecodable

    face_engine = await asyncio.to_thread(engines(ctx).faces)
    try:
        _, embedding = await asyncio.to_thread(face_engine.portrait_from_id_photo, data)
    except (FaceNotFound, ImageUndecodable):
        return None
    return [float(x) for x in embedding]


async def _portrait(ctx: Ctx, photo: IdentityPhoto | None) -> tuple[str | None, list[float] | None]:
    """The reference face from the card photo; `face_not_found` if the card shows none."""
    if photo is None:
        return None, None
    embedding = await embed_portrait(ctx, await ctx.blobs.get(photo.blob_key))
    if embedding is None:
        raise VexamError("face_not_found", where="id_photo")
    return "id_photo", embedding


async def certify(ctx: Ctx, identity: Identity, *, via: str, from_status: Status) -> None:
    """Certify, claiming the number and candidate number; the database refuses a double claim."""
    now = ctx.now()
    claim = f"{identity.season}:{identity.candidate_number}" if identity.candidate_number else None
    try:
        async with ctx.session.begin_nested():
            done = await ctx.session.execute(
                update(Identity)
                .where(Identity.id == identity.id, Identity.status == from_status)
                .values(
                    status=Status.certified,
                    certified_index=identity.id_number_index,
                    candidate_number_claim=claim,
                    certified_at=now,
                    certified_via=via,
                    review_reason=None,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
    except IntegrityError:
        holder = await holder_by_index(ctx, identity.id_number_index)
        if holder is not None and holder.id != identity.id:
            raise await conflict_error(ctx, holder) from None
        raise VexamError("candidate_number_taken") from None
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise VexamError("identity_not_ready")
    await ctx.session.refresh(identity)
    await audit.record(
        ctx,
        "identity.certified",
        "identity",
        identity.id,
        via=via,
        id_number=identity.id_number_masked,
    )


async def reference_embedding(ctx: Ctx, user_id: int) -> list[float] | None:
    """The certified face of an account to compare exam-time photos with (SPEC §5).

    The portrait embedding the certification kept (ID photo or register), else the face in
    the selfie of the approved manual review that certified it; None when the account is not
    certified or neither holds a usable face. Engine work runs in the thread pool.
    """
    identity = await identity_of(ctx, user_id)
    if identity is None or identity.status != Status.certified:
        return None
    if identity.portrait_embedding:
        return [float(x) for x in identity.portrait_embedding]
    review = (
        await ctx.session.execute(
            select(ManualReview)
            .where(ManualReview.identity_id == identity.id, ManualReview.status == "approved")
            .order_by(ManualReview.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    selfie = await ctx.session.get(IdentityPhoto, review.selfie_photo_id) if review else None
    if selfie is None:
        return None
    from vexam.identity.faces import FaceNotFound, ImageUndecodable, load_image

    data = await ctx.blobs.get(selfie.blob_key)
    face_engine = await asyncio.to_thread(engines(ctx).faces)
    try:
        image = await asyncio.to_thread(load_image, data)
        embedding = await asyncio.to_thread(face_engine.embed_largest, image)
    except (FaceNotFound, ImageUndecodable):
        return None
    return [float(x) for x in embedding]
