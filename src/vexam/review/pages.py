"""zh/en pages of review (SPEC §6)."""

from __future__ import annotations

from vexam.core.web import make_router

router = make_router(include_in_schema=False)
