"""The SQL statements of the upload service's hot paths (`uploads`), built once at import:
constructing a statement costs more than running it from SQLAlchemy's compiled cache.

Statements, not functions: `uploads` runs them with their parameters and owns the rules.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Integer,
    LargeBinary,
    String,
    Table,
    and_,
    bindparam,
    column,
    func,
    or_,
    select,
    table,
)

from vexam.exams.models import Accommodation, Exam, Sitting, StagedPiece, Submission, Upload

FINISHED = ("received", "verified")

# Read by table name, as the exams models refer to them: the identity and schools domains'
# models are theirs (`sittings.load` reaches the same rows through their services).
IDENTITIES = table("identities", column("user_id"), column("id_number_index"))
ROSTER_ROWS = table("roster_rows", column("id"), column("exam_id"), column("id_number_index"))


def _uploads_of_submission(*states: str) -> Any:
    return (
        select(func.count())
        .where(Upload.submission_id == Submission.id, Upload.state.in_(states))
        .scalar_subquery()
    )


# What a creation checks of a submission, in one round trip: its owner,
# declared size, upload period (the candidate's window end, as `sittings.load` and
# `accommodations.Granted.window_end` define it, plus the exam's grace) and how many
# uploads it has finished and receiving.
CREATION_FACTS = (
    select(
        Submission.size_bytes,
        Sitting.user_id,
        Exam.formal_ends_at,
        Exam.upload_grace_minutes,
        Accommodation.window_ends_at,
        _uploads_of_submission(*FINISHED).label("finished"),
        _uploads_of_submission("receiving").label("receiving"),
    )
    .select_from(Submission)
    .join(Sitting, Sitting.id == Submission.sitting_id)
    .join(Exam, Exam.id == Sitting.exam_id)
    .outerjoin(IDENTITIES, IDENTITIES.c.user_id == Sitting.user_id)
    .outerjoin(
        ROSTER_ROWS,
        and_(
            ROSTER_ROWS.c.exam_id == Exam.id,
            ROSTER_ROWS.c.id_number_index == IDENTITIES.c.id_number_index,
        ),
    )
    .outerjoin(Accommodation, Accommodation.roster_row_id == ROSTER_ROWS.c.id)
    .where(Submission.id == bindparam("submission_id"))
)
UPLOADS = cast(Table, Upload.__table__)
SUBMISSIONS = cast(Table, Submission.__table__)
# Its values come as parameters: `.values(row)` would build and key a new statement per upload.
CREATE_UPLOAD = UPLOADS.insert()
# What a completion reads: the upload with its submission's declared hash.
COMPLETION_FACTS = (
    select(
        Upload.state,
        Upload.length,
        Upload.multipart_id,
        Upload.parts_done,
        Upload.submission_id,
        Submission.sha256,
    )
    .join(Submission, Submission.id == Upload.submission_id)
    .where(Upload.id == bindparam("upload_id"))
)

# A settled upload's state copied to its submission.
SETTLE_SUBMISSION = (
    SUBMISSIONS.update()
    .where(SUBMISSIONS.c.id == bindparam("submission_key"))
    .values(upload_state=bindparam("settled_state"))
)

_RECEIVING = UPLOADS.c.state == "receiving"


def _settle(state: Any, *checks: Any) -> Any:
    """A receiving upload's row settled as `state` (parameters `upload_id`, `digest` and
    `now`) while `checks` hold: every byte counted, the hash kept; returns its state,
    submission and length, or no row."""
    return (
        UPLOADS.update()
        .where(UPLOADS.c.id == bindparam("upload_id"), _RECEIVING, *checks)
        .values(
            state=state,
            sha256=bindparam("digest"),
            received=UPLOADS.c.length,
            completed_at=bindparam("now"),
            updated_at=bindparam("now"),
        )
        .returning(UPLOADS.c.state, UPLOADS.c.submission_id, UPLOADS.c.length)
    )


# A local upload's row settled as received in one statement, when the running hash is its
# submission's declared hash (else no row: the general path confirms the mismatch).
SETTLE_LOCAL = _settle(
    "received",
    select(Submission.sha256).where(Submission.id == UPLOADS.c.submission_id).scalar_subquery()
    == bindparam("digest"),
)
# A settlement as `uploads.complete` decides it (`settled_state` and the hash it found),
# unless another request settled the upload first (then no row).
SETTLE = _settle(bindparam("settled_state"))
# The local store's mirror of the bytes on disk (`uploads.receive`, now and then).
COUNT_RECEIVED = (
    UPLOADS.update()
    .where(UPLOADS.c.id == bindparam("upload_id"), _RECEIVING)
    .values(received=bindparam("counted"), updated_at=bindparam("now"))
)

# The S3 store's lease on a receiving upload (`upload_s3`): taken by a conditional UPDATE that
# returns what the row counts; only its holder (`token`) records progress, renews it
# (`until`) and gives it up.
_HOLDER = and_(UPLOADS.c.id == bindparam("upload_id"), UPLOADS.c.lease_token == bindparam("token"))
TAKE_LEASE = (
    UPLOADS.update()
    .where(
        UPLOADS.c.id == bindparam("upload_id"),
        _RECEIVING,
        or_(UPLOADS.c.lease_token.is_(None), UPLOADS.c.lease_until <= bindparam("now")),
    )
    .values(lease_token=bindparam("token"), lease_until=bindparam("until"))
    .returning(
        UPLOADS.c.received,
        UPLOADS.c.multipart_id,
        UPLOADS.c.part_size,
        UPLOADS.c.parts_done,
        UPLOADS.c.s3_staged,
    )
)
# Said by the lease holder, and committed, before it puts a staged object in S3.
MARK_S3_STAGED = (
    UPLOADS.update()
    .where(_HOLDER, _RECEIVING)
    .values(s3_staged=True, lease_until=bindparam("until"))
)
RENEW_LEASE = UPLOADS.update().where(_HOLDER, _RECEIVING).values(lease_until=bindparam("until"))
COUNT_PARTS = (
    UPLOADS.update()
    .where(_HOLDER, _RECEIVING)
    .values(
        lease_until=bindparam("until"),
        received=bindparam("counted"),
        parts_done=bindparam("parts"),
    )
)
COUNT_AND_RELEASE = (
    UPLOADS.update()
    .where(_HOLDER, _RECEIVING)
    .values(
        lease_token=None,
        lease_until=None,
        received=bindparam("counted"),
        parts_done=bindparam("parts"),
        updated_at=bindparam("now"),
    )
)
RELEASE_LEASE = UPLOADS.update().where(_HOLDER).values(lease_token=None, lease_until=None)

# Bytes staged in the database (`StagedPiece`): written with the count that includes them.
PIECES = cast(Table, StagedPiece.__table__)
STAGE_PIECE = PIECES.insert()
_COUNTED = COUNT_AND_RELEASE.returning(UPLOADS.c.id).cte("counted")
# PostgreSQL: the count and the piece in one statement (a row only when the holder counted).
COUNT_STAGE_AND_RELEASE = PIECES.insert().from_select(
    ["upload_id", "parts", "start", "data"],
    select(
        _COUNTED.c.id,
        bindparam("piece_parts", type_=Integer),
        bindparam("piece_start", type_=BigInteger),
        bindparam("piece_data", type_=LargeBinary),
    ),
)
READ_PIECES = (
    select(PIECES.c.start, PIECES.c.data)
    .where(PIECES.c.upload_id == bindparam("upload_id"), PIECES.c.parts == bindparam("parts"))
    .order_by(PIECES.c.start)
)
# The pieces of the parts before `parts` (sent), or, with `EVERY_PART`, all of them.
EVERY_PART = 2**31 - 1
DROP_PIECES = PIECES.delete().where(
    PIECES.c.upload_id == bindparam("upload_id", type_=String),
    PIECES.c.parts < bindparam("parts", type_=Integer),
)
DROP_EXPIRED_PIECES = PIECES.delete().where(
    PIECES.c.upload_id.in_(bindparam("upload_ids", expanding=True))
)
