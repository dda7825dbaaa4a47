"""zh/en pages of the schools domain."""

from __future__ import annotations

from vexam.core.web import make_router

router = make_router(include_in_schema=False)
