"""zh/en pages of the exams domain."""

from __future__ import annotations

from vexam.core.web import make_router

router = make_router(include_in_schema=False)
