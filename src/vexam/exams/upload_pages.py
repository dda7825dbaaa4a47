"""zh/en pages of a candidate's uploads in the phone browser (SPEC §5)."""

from __future__ import annotations

from vexam.core.web import make_router

router = make_router(include_in_schema=False)
