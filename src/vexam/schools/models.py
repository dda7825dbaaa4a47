"""Tables of the schools domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vexam.core.models import Base, BigId, CreatedMixin, IdMixin, UTCDateTime


class School(IdMixin, CreatedMixin, Base):
    """A school that runs exams; its time zone is how its deadlines are shown."""

    __tablename__ = "schools"

    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")


class RosterRow(IdMixin, CreatedMixin, Base):
    """One candidate on an exam's roster (考生名单); found by the ID number's blind index."""

    __tablename__ = "roster_rows"
    __table_args__ = (UniqueConstraint("exam_id", "id_number_index"),)

    school_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("schools.id", ondelete="RESTRICT"), index=True
    )
    # By table name: the schools domain does not import the exams domain's models.
    exam_id: Mapped[int] = mapped_column(BigId, ForeignKey("exams.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    id_number_enc: Mapped[str] = mapped_column(String(255))
    id_number_index: Mapped[str] = mapped_column(String(64))
    id_number_masked: Mapped[str] = mapped_column(String(32))
    province: Mapped[str] = mapped_column(String(16))  # short name (北京, 广西, ...)
    candidate_number: Mapped[str | None] = mapped_column(String(32))
    major: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RosterImport(IdMixin, CreatedMixin, Base):
    """An uploaded roster file: previewed first, committed at most once, or expired."""

    __tablename__ = "roster_imports"

    school_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("schools.id", ondelete="RESTRICT"), index=True
    )
    exam_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("exams.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))  # previewed | committed | expired
    total_rows: Mapped[int] = mapped_column(default=0)
    valid_rows: Mapped[int] = mapped_column(default=0)
    error_rows: Mapped[int] = mapped_column(default=0)
    inserted_rows: Mapped[int | None]
    updated_rows: Mapped[int | None]
    created_by: Mapped[int | None]  # user id; None from the console
    committed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RosterStagedRow(Base):
    """One data row of an import as parsed: its values, or the first rule it broke.

    Staged in the database so a big file's preview is never held in memory and its commit is
    one set-based upsert.
    """

    __tablename__ = "roster_staged_rows"
    # No secondary index: duplicates are found by one grouping query per import, and an
    # index would cost more while loading a big file than it saves.

    import_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("roster_imports.id", ondelete="CASCADE"), primary_key=True
    )
    row_number: Mapped[int] = mapped_column(primary_key=True)  # as the spreadsheet shows it
    name: Mapped[str | None] = mapped_column(String(100))
    id_number_enc: Mapped[str | None] = mapped_column(String(255))
    id_number_index: Mapped[str | None] = mapped_column(String(64))
    id_number_masked: Mapped[str | None] = mapped_column(String(32))
    province: Mapped[str | None] = mapped_column(String(16))
    candidate_number: Mapped[str | None] = mapped_column(String(32))
    major: Mapped[str | None] = mapped_column(String(200))
    error_column: Mapped[str | None] = mapped_column(String(32))
    error_reason: Mapped[str | None] = mapped_column(String(32))
    other_row: Mapped[int | None]  # the earlier row a duplicate repeats
