"""zh/en pages of taking an exam in the phone browser (SPEC §5): the recording page."""

from __future__ import annotations

from vexam.core.web import make_router

router = make_router(include_in_schema=False)
