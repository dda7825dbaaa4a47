"""Refusals of the review domain, added to the one catalogue of codes (core.errors)."""

from __future__ import annotations

from vexam.core.errors import CATALOGUE, ErrorSpec
from vexam.core.i18n import N_

REVIEW_ERRORS = {
    "review_item_not_found": ErrorSpec(404, N_("No such submission in your review queue.")),
    "scores_locked": ErrorSpec(
        409,
        N_("The school has published the results of this exam: its scores can no longer change."),
    ),
    "score_invalid": ErrorSpec(
        422,
        N_(
            "Give every criterion its points: {criterion} takes 0 to {max_points} points in "
            "steps of {step}."
        ),
    ),
    "rubric_invalid": ErrorSpec(
        409,
        N_("This subject's rubric cannot be used for scoring. Ask the school to correct it."),
    ),
    "reviewer_not_found": ErrorSpec(404, N_("No such active reviewer at this school.")),
    "assignment_not_found": ErrorSpec(404, N_("No such reviewer assignment for this exam.")),
    "review_setting_invalid": ErrorSpec(
        422, N_("The review setting {field} is not valid: {reason}.")
    ),
    "playback_unavailable": ErrorSpec(
        503, N_("The video cannot be played yet. Try again in a few minutes.")
    ),
}

# Registered once at import: the codes are constants, like the core catalogue itself.
for _code, _spec in REVIEW_ERRORS.items():
    CATALOGUE.setdefault(_code, _spec)
