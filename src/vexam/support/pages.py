"""zh/en pages of self-help for candidates (SPEC §7): help centre and device self-check."""

from __future__ import annotations

from vexam.core.web import make_router

router = make_router(include_in_schema=False)
