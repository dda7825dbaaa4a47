"""The live face check and the manual review it falls back to (SPEC §3).

A check spends a server-chosen head-turn challenge, proves liveness from the frames, compares
the most frontal frame with the reference portrait, and certifies. Failures are counted and
kept; the last allowed one opens the manual review, which a support agent decides within
the service-hours SLA.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

from sqlalchemy import update

from vexam.core import audit
from vexam.core.context import Ctx, Principal
from vexam.core.errors import CountedRefusal, VexamError, field_invalid
from vexam.identity import schemas
from vexam.identity.models import FaceAttempt, Identity, LivenessChallenge, ManualReview
from vexam.identity.service import (
    Status,
    certify,
    check_photo_size,
    embed_portrait,
    engines,
    identity_of,
    review_out,
    store_photo,
)
from vexam.support import service as support

# ------------------------------------------------------------------ the live face check


async def new_challenge(ctx: Ctx, principal: Principal) -> schemas.ChallengeOut:
    """A head-turn challenge for the caller: a random side, valid for a short while."""
    from vexam.identity.liveness import MAX_FRAMES, MIN_FRAMES

    identity = await identity_of(ctx, principal.user_id)
    _ensure_face_step(ctx, identity)
    now = ctx.now()
    challenge = LivenessChallenge(
        user_id=principal.user_id,
        token=secrets.token_urlsafe(18),
        direction=secrets.choice(("left", "right")),
        purpose="certification",
        created_at=now,
        expires_at=now + timedelta(seconds=ctx.settings.liveness_challenge_seconds),
    )
    ctx.session.add(challenge)
    await ctx.session.flush()
    return schemas.ChallengeOut(
        challenge_id=challenge.token,
        direction=challenge.direction,
        expires_at=challenge.expires_at,
        min_frames=MIN_FRAMES,
        max_frames=MAX_FRAMES,
    )


def _ensure_face_step(ctx: Ctx, identity: Identity | None) -> Identity:
    if identity is None:
        raise VexamError("identity_not_ready")
    if identity.status == Status.certified:
        raise VexamError("identity_already_certified")
    if identity.status == Status.review_required and identity.review_reason == (
        "face_attempts_exhausted"
    ):
        raise VexamError("face_attempts_exhausted")
    if identity.status != Status.face_pending:
        raise VexamError("identity_not_ready")
    return identity


async def _use_challenge(ctx: Ctx, user_id: int, token: str) -> str:
    """Spend a challenge once (a conditional update decides between two racing uses)."""
    used = await ctx.session.execute(
        update(LivenessChallenge)
        .where(
            LivenessChallenge.token == token,
            LivenessChallenge.user_id == user_id,
            LivenessChallenge.used_at.is_(None),
            LivenessChallenge.expires_at > ctx.now(),
        )
        .values(used_at=ctx.now())
        .returning(LivenessChallenge.direction)
    )
    direction = used.scalar_one_or_none()
    if direction is None:
        raise VexamError("liveness_challenge_invalid")
    return direction


async def verify_face(
    ctx: Ctx, principal: Principal, token: str, frames: list[bytes]
) -> schemas.FaceResultOut:
    """Judge a head-turn clip: live, the face of the ID portrait, then certify.

    Failures count (and are kept even though the request is refused); the last allowed
    failure opens the manual review (`face_attempts_exhausted`).
    """
    import numpy as np

    from vexam.identity.liveness import MAX_FRAMES, Direction, check_head_turn

    identity = _ensure_face_step(ctx, await identity_of(ctx, principal.user_id))
    direction = await _use_challenge(ctx, principal.user_id, token)
    if not frames or len(frames) > MAX_FRAMES:
        raise field_invalid("frames")
    for frame in frames:
        check_photo_size(ctx, frame)
    face_engine = await asyncio.to_thread(engines(ctx).faces)
    result = await asyncio.to_thread(check_head_turn, face_engine, frames, Direction(direction))
    distance = None
    if not result.passed:
        outcome = "face_not_found" if result.reason == "no_face" else "liveness_failed"
    else:
        assert result.frontal_embedding is not None
        assert identity.portrait_embedding is not None
        comparison = face_engine.compare(
            result.frontal_embedding, np.asarray(identity.portrait_embedding, dtype=np.float64)
        )
        distance = round(comparison.distance, 4)
        outcome = "passed" if comparison.match else "face_mismatch"
    selfie = await store_photo(ctx, principal.user_id, "selfie", frames[0])
    ctx.session.add(
        FaceAttempt(
            identity_id=identity.id,
            direction=direction,
            frames=len(frames),
            liveness_passed=result.passed,
            liveness_reason=result.reason,
            yaws=[round(float(y), 4) for y in result.yaws],
            distance=distance,
            result=outcome,
            selfie_photo_id=selfie.id,
            created_at=ctx.now(),
        )
    )
    await audit.record(
        ctx,
        "identity.face_checked",
        "identity",
        identity.id,
        result=outcome,
        liveness=result.reason,
        distance=distance,
    )
    if outcome != "passed":
        await _count_face_failure(ctx, identity, outcome, result.reason)
    await certify(ctx, identity, via="face", from_status=Status.face_pending)
    return schemas.FaceResultOut(status=Status.certified, distance=distance or 0.0)


async def _count_face_failure(
    ctx: Ctx, identity: Identity, outcome: str, reason: str | None
) -> None:
    failures = (
        await ctx.session.execute(
            update(Identity)
            .where(Identity.id == identity.id)
            .values(face_failures=Identity.face_failures + 1, updated_at=ctx.now())
            .returning(Identity.face_failures)
        )
    ).scalar_one()
    left = ctx.settings.face_max_attempts - failures
    if left <= 0:
        await ctx.session.execute(
            update(Identity)
            .where(Identity.id == identity.id, Identity.status == Status.face_pending)
            .values(status=Status.review_required, review_reason="face_attempts_exhausted")
        )
        await audit.record(ctx, "identity.review_required", "identity", identity.id)
        raise CountedRefusal("face_attempts_exhausted", attempts_left=0)
    raise CountedRefusal(outcome, attempts_left=left, reason=reason)


# ------------------------------------------------------------------ manual review


async def request_review(
    ctx: Ctx, principal: Principal, id_photo: bytes, selfie: bytes
) -> schemas.ReviewOut:
    """Hand the certification to a person: the card's portrait side and a live selfie.

    Open once the machine route has ended (review_required); due within the support SLA
    counted in service hours.
    """
    identity = await identity_of(ctx, principal.user_id)
    if identity is None or identity.status != Status.review_required:
        raise VexamError("identity_not_ready")
    id_photo_row = await store_photo(ctx, principal.user_id, "id_card", id_photo)
    selfie_row = await store_photo(ctx, principal.user_id, "selfie", selfie)
    distance = await _advisory_distance(ctx, id_photo, selfie)
    now = ctx.now()
    moved = await ctx.session.execute(
        update(Identity)
        .where(Identity.id == identity.id, Identity.status == Status.review_required)
        .values(status=Status.in_review, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise VexamError("identity_not_ready")
    review = ManualReview(
        identity_id=identity.id,
        open_key=identity.id,
        reason=identity.review_reason or "requested",
        status="open",
        id_photo_id=id_photo_row.id,
        selfie_photo_id=selfie_row.id,
        distance=distance,
        created_at=now,
        due_at=support.due_at(ctx, now),
    )
    ctx.session.add(review)
    await ctx.session.flush()
    await ctx.session.refresh(identity)
    await audit.record(
        ctx, "identity.review_requested", "manual_review", review.id, reason=review.reason
    )
    return review_out(review)


async def _advisory_distance(ctx: Ctx, id_photo: bytes, selfie: bytes) -> float | None:
    """The machine's face distance, shown to the agent as a hint (None when it finds no face)."""
    from vexam.identity.faces import FaceNotFound, ImageUndecodable, load_image

    portrait = await embed_portrait(ctx, id_photo)
    if portrait is None:
        return None
    face_engine = await asyncio.to_thread(engines(ctx).faces)
    try:
        image = await asyncio.to_thread(load_image, selfie)
        embedding = await asyncio.to_thread(face_engine.embed_largest, image)
    except (FaceNotFound, ImageUndecodable):
        return None
    import numpy as np

    comparison = face_engine.compare(embedding, np.asarray(portrait, dtype=np.float64))
    return round(comparison.distance, 4)
