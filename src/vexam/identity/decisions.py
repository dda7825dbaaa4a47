"""Support's side of certification: manual reviews, appeals and revocations (SPEC §3, §7).

Only people move a certification between accounts: an agent approves or rejects a review,
upholds or dismisses an appeal, or revokes a wrong certification, always with a written
reason that the audit log keeps together with who decided.
"""

from __future__ import annotations

from sqlalchemy import select, update

from vexam.accounts import service as accounts
from vexam.core import audit
from vexam.core.context import Ctx, Principal
from vexam.core.crypto import decrypt_text
from vexam.core.errors import VexamError
from vexam.identity import schemas
from vexam.identity.models import Appeal, FaceAttempt, Identity, ManualReview
from vexam.identity.service import ID_NUMBER_CONTEXT, Status, certify


async def identity_facts(ctx: Ctx, identity: Identity) -> schemas.IdentityFacts:
    """Everything an agent needs to decide on `identity`, with the full number."""
    user = await accounts.get_user(ctx.session, identity.user_id)
    attempts = (
        await ctx.session.execute(
            select(FaceAttempt)
            .where(FaceAttempt.identity_id == identity.id)
            .order_by(FaceAttempt.id)
        )
    ).scalars()
    return schemas.IdentityFacts(
        identity_id=identity.id,
        user_id=identity.user_id,
        phone=accounts.mask_phone(user.phone),
        status=identity.status,
        identity_type=identity.identity_type,
        document_type=identity.document_type,
        document_kind=identity.document_kind,
        entry_method=identity.entry_method,
        name=identity.name,
        sex=identity.sex,
        ethnicity=identity.ethnicity,
        birth_date=identity.birth_date,
        address=identity.address,
        id_number=decrypt_text(
            ctx.settings.data_key, identity.id_number_enc, context=ID_NUMBER_CONTEXT
        ),
        id_expires_on=identity.id_expires_on,
        candidate_number=identity.candidate_number,
        ocr_flags=identity.ocr_flags or {},
        register_result=identity.register_result,
        register_reason=identity.register_reason,
        review_reason=identity.review_reason,
        face_failures=identity.face_failures,
        id_photo_id=identity.id_photo_id,
        attempts=[
            schemas.FaceAttemptOut(
                at=attempt.created_at,
                result=attempt.result,
                liveness_reason=attempt.liveness_reason,
                distance=attempt.distance,
                selfie_photo_id=attempt.selfie_photo_id,
            )
            for attempt in attempts
        ],
    )


def _review_row(ctx: Ctx, review: ManualReview, identity: Identity) -> schemas.SupportReviewOut:
    return schemas.SupportReviewOut(
        id=review.id,
        status=review.status,
        reason=review.reason,
        created_at=review.created_at,
        due_at=review.due_at,
        overdue=review.status == "open" and review.due_at < ctx.now(),
        name=identity.name,
        id_number=identity.id_number_masked,
        distance=review.distance,
        decided_at=review.decided_at,
        decision_reason=review.decision_reason,
    )


async def list_reviews(ctx: Ctx, state: str = "open") -> list[schemas.SupportReviewOut]:
    """Manual reviews in `state`, the most urgent first."""
    rows = await ctx.session.execute(
        select(ManualReview, Identity)
        .join(Identity, Identity.id == ManualReview.identity_id)
        .where(ManualReview.status == state)
        .order_by(ManualReview.due_at, ManualReview.id)
        .limit(500)
    )
    return [_review_row(ctx, review, identity) for review, identity in rows.all()]


async def _review_and_identity(ctx: Ctx, review_id: int) -> tuple[ManualReview, Identity]:
    review = await ctx.session.get(ManualReview, review_id)
    if review is None:
        raise VexamError("not_found")
    identity = await ctx.session.get(Identity, review.identity_id)
    assert identity is not None
    return review, identity


async def review_detail(ctx: Ctx, review_id: int) -> schemas.SupportReviewDetail:
    """One review with the photos' ids, OCR flags, face distances and the full number."""
    review, identity = await _review_and_identity(ctx, review_id)
    row = _review_row(ctx, review, identity)
    await audit.record(ctx, "identity.review_viewed", "manual_review", review.id)
    return schemas.SupportReviewDetail(
        **row.model_dump(),
        id_photo_id=review.id_photo_id,
        selfie_photo_id=review.selfie_photo_id,
        identity=await identity_facts(ctx, identity),
    )


async def decide_review(
    ctx: Ctx, principal: Principal, review_id: int, body: schemas.DecisionIn
) -> schemas.SupportReviewOut:
    """Approve (certify) or reject an open review; `review_not_open` when already decided."""
    review, identity = await _review_and_identity(ctx, review_id)
    now = ctx.now()
    closed = await ctx.session.execute(
        update(ManualReview)
        .where(ManualReview.id == review.id, ManualReview.status == "open")
        .values(
            status="approved" if body.decision == "approve" else "rejected",
            open_key=None,
            decided_at=now,
            decided_by=principal.user_id,
            decision_reason=body.reason.strip(),
        )
        .execution_options(synchronize_session=False)
    )
    if closed.rowcount != 1:  # type: ignore[attr-defined]
        raise VexamError("review_not_open")
    if body.decision == "approve":
        # A conflict found here rolls the whole decision back: the review stays open.
        await certify(ctx, identity, via="manual_review", from_status=Status.in_review)
    else:
        await ctx.session.execute(
            update(Identity)
            .where(Identity.id == identity.id, Identity.status == Status.in_review)
            .values(status=Status.rejected, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    await ctx.session.refresh(review)
    await ctx.session.refresh(identity)
    await audit.record(
        ctx,
        f"identity.review_{review.status}",
        "manual_review",
        review.id,
        identity_id=identity.id,
        reason=review.decision_reason,
    )
    return _review_row(ctx, review, identity)


async def revoke(ctx: Ctx, principal: Principal, identity_id: int, reason: str) -> None:
    """Revoke a certification: it frees its number and candidate number for the right owner."""
    done = await ctx.session.execute(
        update(Identity)
        .where(Identity.id == identity_id, Identity.status == Status.certified)
        .values(
            status=Status.revoked,
            certified_index=None,
            candidate_number_claim=None,
            revoked_at=ctx.now(),
            revoked_reason=reason.strip(),
            updated_at=ctx.now(),
        )
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        if await ctx.session.get(Identity, identity_id) is None:
            raise VexamError("not_found")
        raise VexamError("identity_not_ready")
    await audit.record(
        ctx,
        "identity.revoked",
        "identity",
        identity_id,
        reason=reason.strip(),
        by=principal.user_id,
    )


async def _appeal_row(ctx: Ctx, appeal: Appeal) -> schemas.SupportAppealOut:
    user = await accounts.get_user(ctx.session, appeal.user_id)
    holder = None
    if appeal.holder_identity_id is not None:
        found = await ctx.session.get(Identity, appeal.holder_identity_id)
        holder = await identity_facts(ctx, found) if found else None
    number = (
        decrypt_text(ctx.settings.data_key, appeal.id_number_enc, context=ID_NUMBER_CONTEXT)
        if appeal.id_number_enc
        else None
    )
    return schemas.SupportAppealOut(
        id=appeal.id,
        kind=appeal.kind,
        status=appeal.status,
        created_at=appeal.created_at,
        due_at=appeal.due_at,
        overdue=appeal.status == "open" and appeal.due_at < ctx.now(),
        appellant_phone=accounts.mask_phone(user.phone),
        name=appeal.name,
        id_number=number,
        candidate_number=appeal.candidate_number,
        message=appeal.message,
        holder=holder,
        decided_at=appeal.decided_at,
        decision_reason=appeal.decision_reason,
    )


async def list_appeals(ctx: Ctx, state: str = "open") -> list[schemas.SupportAppealOut]:
    """Appeals in `state`, the most urgent first, with both sides' facts."""
    rows = await ctx.session.execute(
        select(Appeal).where(Appeal.status == state).order_by(Appeal.due_at, Appeal.id).limit(200)
    )
    return [await _appeal_row(ctx, appeal) for appeal in rows.scalars()]


async def decide_appeal(
    ctx: Ctx, principal: Principal, appeal_id: int, body: schemas.AppealDecisionIn
) -> schemas.SupportAppealOut:
    """Uphold or dismiss an open appeal; upholding may revoke the holder's certification."""
    appeal = await ctx.session.get(Appeal, appeal_id)
    if appeal is None:
        raise VexamError("not_found")
    done = await ctx.session.execute(
        update(Appeal)
        .where(Appeal.id == appeal_id, Appeal.status == "open")
        .values(
            status="upheld" if body.decision == "uphold" else "dismissed",
            open_key=None,
            decided_at=ctx.now(),
            decided_by=principal.user_id,
            decision_reason=body.reason.strip(),
        )
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise VexamError("appeal_not_open")
    if body.decision == "uphold" and body.revoke_holder and appeal.holder_identity_id:
        await revoke(ctx, principal, appeal.holder_identity_id, body.reason)
    await ctx.session.refresh(appeal)
    await audit.record(
        ctx,
        f"identity.appeal_{appeal.status}",
        "appeal",
        appeal.id,
        reason=appeal.decision_reason,
        revoked_holder=bool(body.decision == "uphold" and body.revoke_holder),
    )
    return await _appeal_row(ctx, appeal)


async def audit_subjects(
    ctx: Ctx, *, user_ids: set[int], id_index: str | None = None
) -> tuple[set[int], set[tuple[str, str]]]:
    """What the audit log may name for a candidate: for the audit search of support.

    Takes the accounts already found and, optionally, the blind index of an ID number (whose
    identities' owners join the accounts). Returns the accounts and every (subject_type,
    subject_id) that belongs to them: the account, its identities, their manual reviews and
    its appeals.
    """
    users = set(user_ids)
    if id_index is not None:
        owners = await ctx.session.execute(
            select(Identity.user_id).where(Identity.id_number_index == id_index)
        )
        users.update(owners.scalars())
    subjects: set[tuple[str, str]] = {("user", str(user_id)) for user_id in users}
    if not users:
        return users, subjects
    identities = list(
        (
            await ctx.session.execute(select(Identity.id).where(Identity.user_id.in_(users)))
        ).scalars()
    )
    subjects.update(("identity", str(identity_id)) for identity_id in identities)
    if identities:
        reviews = await ctx.session.execute(
            select(ManualReview.id).where(ManualReview.identity_id.in_(identities))
        )
        subjects.update(("manual_review", str(review_id)) for review_id in reviews.scalars())
    appeals = await ctx.session.execute(select(Appeal.id).where(Appeal.user_id.in_(users)))
    subjects.update(("appeal", str(appeal_id)) for appeal_id in appeals.scalars())
    return users, subjects
