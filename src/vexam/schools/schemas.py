"""Request and response bodies of the roster (SPEC §4)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class RosterErrorOut(BaseModel):
    """One bad row of a preview: where it is and which rule it broke."""

    row: int = Field(description="row number as the spreadsheet shows it (header is row 1)")
    column: str = Field(description="name, id_number, province, candidate_number or major")
    reason: str = Field(
        description="missing, too_long, unknown, format, duplicate, or an ID number reason "
        "(length, characters, check_character, province, birth_date)"
    )
    other_row: int | None = Field(None, description="for a duplicate: the row it repeats")


class RosterImportOut(BaseModel):
    """A roster import: counts, state, and one page of its bad rows."""

    id: int
    exam_id: int
    filename: str
    status: str = Field(description="previewed | committed | expired")
    total_rows: int
    valid_rows: int
    error_rows: int
    inserted_rows: int | None
    updated_rows: int | None
    created_at: datetime
    committed_at: datetime | None
    errors: list[RosterErrorOut]
    page: int
    page_size: int


class CommitIn(BaseModel):
    """How to commit a preview."""

    skip_invalid: bool = Field(False, description="import the valid rows, leave out the bad")


class RosterRowOut(BaseModel):
    """A roster row as staff see it: the ID number masked."""

    id: int
    name: str
    id_number_masked: str
    province: str
    candidate_number: str | None
    major: str | None
    updated_at: datetime


class RosterPageOut(BaseModel):
    """One page of an exam's roster."""

    total: int
    page: int
    page_size: int
    rows: list[RosterRowOut]


class RowCorrectionIn(BaseModel):
    """The fields a school admin may correct; omitted fields stay as they are."""

    name: str | None = Field(None, max_length=100)
    province: str | None = Field(None, description="short or official name, or 2-digit code")
    candidate_number: str | None = Field(None, max_length=32)
    major: str | None = Field(None, max_length=200)


class SchoolIn(BaseModel):
    """A new school."""

    slug: str = Field(max_length=64, examples=["central-conservatory"])
    name: str = Field(max_length=200, examples=["中央示范音乐学院"])
    name_en: str | None = Field(None, max_length=200)
    timezone: str = Field("Asia/Shanghai", max_length=64)


class SchoolOut(BaseModel):
    """A school."""

    id: int
    slug: str
    name: str
    name_en: str | None
    timezone: str
    created_at: datetime
