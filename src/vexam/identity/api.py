"""JSON routes of identity certification for the candidate, under /api/v1/identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import File, Form, Response, UploadFile, status

from vexam.core.auth import Candidate, CurrentPrincipal, ServiceCtx
from vexam.core.errors import VexamError
from vexam.core.web import make_router
from vexam.identity import appeals, schemas, service, verification

router = make_router(prefix="/api/v1/identity", tags=["identity"])


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """The bytes of an uploaded file, refusing (without reading on) past `limit`."""
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise VexamError("image_too_large", max_mb=round(limit / 1_000_000, 1))
    return data


@router.get("")
async def get_identity(principal: CurrentPrincipal, ctx: ServiceCtx) -> schemas.IdentityOut:
    """Your certification state and the next step (poll it: changes show at once)."""
    return await service.status(ctx, principal)


@router.post("/id-photo", status_code=status.HTTP_201_CREATED)
async def upload_id_photo(
    principal: Candidate,
    ctx: ServiceCtx,
    file: Annotated[UploadFile, File(description="photo of the ID card's portrait side")],
    document_type: Annotated[schemas.DocumentType, Form()] = schemas.DocumentType.resident_id,
    read: Annotated[bool, Form(description="prefill the details by OCR")] = True,
) -> schemas.IdPhotoOut:
    """Upload the card's portrait side; OCR prefills the details for you to confirm.

    `id_photo_unclear` keeps the photo (its `photo_id` is in the problem): retake it, or type
    the details by hand and still use it for the face comparison.
    """
    data = await read_upload(file, ctx.settings.id_photo_max_bytes)
    return await service.upload_id_photo(ctx, principal, data, document_type, read)


@router.post("/certification")
async def submit_identity(
    body: schemas.CertificationIn, principal: Candidate, ctx: ServiceCtx
) -> schemas.IdentityOut:
    """State your identity (typed, or the OCR prefill you checked); says what comes next."""
    return await service.submit(ctx, principal, body)


@router.post("/face/challenge", status_code=status.HTTP_201_CREATED)
async def face_challenge(principal: Candidate, ctx: ServiceCtx) -> schemas.ChallengeOut:
    """Start a live check: face the camera, then turn your head to `direction`."""
    return await verification.new_challenge(ctx, principal)


@router.post("/face")
async def verify_face(
    principal: Candidate,
    ctx: ServiceCtx,
    challenge_id: Annotated[str, Form(max_length=64)],
    frames: Annotated[list[UploadFile], File(description="JPEG camera frames, in order")],
) -> schemas.FaceResultOut:
    """Send the live check's frames; a pass with a matching face certifies you."""
    limit = ctx.settings.id_photo_max_bytes
    data = [await read_upload(frame, limit) for frame in frames[:64]]
    return await verification.verify_face(ctx, principal, challenge_id, data)


@router.post("/manual-review", status_code=status.HTTP_201_CREATED)
async def request_review(
    principal: Candidate,
    ctx: ServiceCtx,
    id_photo: Annotated[UploadFile, File(description="the ID card's portrait side")],
    selfie: Annotated[UploadFile, File(description="a live selfie")],
) -> schemas.ReviewOut:
    """Ask a person to certify you (open after the machine route ended)."""
    limit = ctx.settings.id_photo_max_bytes
    return await verification.request_review(
        ctx, principal, await read_upload(id_photo, limit), await read_upload(selfie, limit)
    )


@router.post("/appeals", status_code=status.HTTP_201_CREATED)
async def open_appeal(
    body: schemas.AppealIn, principal: Candidate, ctx: ServiceCtx
) -> schemas.AppealOut:
    """Appeal a conflict, a taken candidate number, or your own wrong certification."""
    return await appeals.open_appeal(ctx, principal, body)


@router.post("/appeals/{appeal_id}/cancel")
async def cancel_appeal(appeal_id: int, principal: Candidate, ctx: ServiceCtx) -> schemas.AppealOut:
    """Withdraw your open appeal."""
    return await appeals.cancel_appeal(ctx, principal, appeal_id)


@router.get("/photos/{photo_id}", response_class=Response)
async def photo(photo_id: int, principal: CurrentPrincipal, ctx: ServiceCtx) -> Response:
    """An identity photo: only its owner and support agents may see it."""
    data, content_type = await service.read_photo(ctx, principal, photo_id)
    return Response(
        data,
        media_type=content_type,
        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
    )
