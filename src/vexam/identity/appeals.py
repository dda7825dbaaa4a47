"""Appeals: a candidate contests a conflict or a wrong certification; support decides (§3)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from vexam.core import audit
from vexam.core.context import Ctx, Principal, Role
from vexam.core.errors import VexamError, field_invalid
from vexam.identity import schemas
from vexam.identity.idnumbers import IdNumberError, mask_id_number, parse_id_number
from vexam.identity.models import Appeal, Identity
from vexam.identity.service import (
    Status,
    appeal_out,
    check_candidate_number,
    encrypt_number,
    holder_by_candidate_number,
    holder_by_index,
    identity_of,
    index_of,
    invalid_number,
    season_of,
)
from vexam.support import service as support


async def open_appeal(ctx: Ctx, principal: Principal, body: schemas.AppealIn) -> schemas.AppealOut:
    """Open (or return the already open) appeal of this kind, due in service hours."""
    if principal.role is not Role.candidate:
        raise VexamError("forbidden")
    holder: Identity | None = None
    number = masked = encrypted = None
    candidate_number = check_candidate_number(body.candidate_number)
    if body.kind == "identity_conflict":
        if not body.id_number:
            raise field_invalid("id_number")
        try:
            number = parse_id_number(body.id_number).number
        except IdNumberError as exc:
            raise invalid_number(exc.reason) from None
        holder = await holder_by_index(ctx, index_of(ctx, number))
    elif body.kind == "candidate_number_taken":
        if candidate_number is None:
            raise field_invalid("candidate_number")
        holder = await holder_by_candidate_number(ctx, f"{season_of(ctx)}:{candidate_number}")
    else:
        holder = await identity_of(ctx, principal.user_id)
        if holder is None or holder.status != Status.certified:
            raise VexamError("identity_not_ready")
    if number is not None:
        masked, encrypted = mask_id_number(number), encrypt_number(ctx, number)
    now = ctx.now()
    appeal = Appeal(
        user_id=principal.user_id,
        open_key=f"{principal.user_id}:{body.kind}",
        kind=body.kind,
        status="open",
        name=" ".join(body.name.split()) if body.name else None,
        id_number_enc=encrypted,
        id_number_masked=masked,
        candidate_number=candidate_number,
        holder_identity_id=holder.id if holder else None,
        message=body.message.strip(),
        created_at=now,
        due_at=support.due_at(ctx, now),
    )
    try:
        async with ctx.session.begin_nested():
            ctx.session.add(appeal)
    except IntegrityError:
        existing = (
            await ctx.session.execute(
                select(Appeal).where(Appeal.open_key == f"{principal.user_id}:{body.kind}")
            )
        ).scalar_one()
        return appeal_out(existing)
    await audit.record(ctx, "identity.appeal_opened", "appeal", appeal.id, kind=body.kind)
    return appeal_out(appeal)


async def cancel_appeal(ctx: Ctx, principal: Principal, appeal_id: int) -> schemas.AppealOut:
    """Withdraw one's own open appeal; `appeal_not_open` once it is decided or cancelled."""
    appeal = await ctx.session.get(Appeal, appeal_id)
    if appeal is None or appeal.user_id != principal.user_id:
        raise VexamError("not_found")
    done = await ctx.session.execute(
        update(Appeal)
        .where(Appeal.id == appeal_id, Appeal.status == "open")
        .values(status="cancelled", open_key=None, decided_at=ctx.now())
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise VexamError("appeal_not_open")
    await ctx.session.refresh(appeal)
    await audit.record(ctx, "identity.appeal_cancelled", "appeal", appeal.id)
    return appeal_out(appeal)
