"""Blind review (SPEC §6): assignments, scoring by rubric, aggregation, escalation, exports."""
