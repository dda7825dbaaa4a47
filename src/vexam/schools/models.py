"""Tables of the schools domain."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from vexam.core.models import Base, CreatedMixin, IdMixin


class School(IdMixin, CreatedMixin, Base):
    """A school that runs exams; its time zone is how its deadlines are shown."""

    __tablename__ = "schools"

    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
