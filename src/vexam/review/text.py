"""What review pages say: labels of states, events, face flags and settings (msgids)."""

from __future__ import annotations

from vexam.core.i18n import N_
from vexam.exams.labels import ACTION_LABELS as ACTION_LABELS
from vexam.exams.labels import EVENT_LABELS as EVENT_LABELS

STATE_LABELS = {
    "open": N_("Waiting for scores"),
    "escalated": N_("Escalated: a further score is due"),
    "complete": N_("Complete"),
    "disputed": N_("Disputed: reviewers disagree"),
    "not_ready": N_("Not reviewable yet"),
}
FLAG_LABELS = {
    "no_face": N_("No face"),
    "several_faces": N_("More than one face"),
    "other_person": N_("Face does not match the certified identity"),
}
SETTING_LABELS = {
    "aggregate": N_("Combine scores by"),
    "reviewers_per_submission": N_("Reviewers per submission"),
    "escalation_threshold": N_("Escalate when two totals differ by more than (points)"),
    "max_reviewers": N_("Most reviewers per submission (with escalation)"),
    "share_percent": N_("Share of submissions (per cent)"),
    "subject_id": N_("Subject"),
    "reviewer_id": N_("Reviewer"),
}
# The reasons the review service gives, as msgids.
REASONS = (
    N_("between 1 and 10"),
    N_("at least the reviewers per submission, at most 10"),
    N_("0 or more points"),
    N_("a subject of this exam"),
    N_("between 1 and 100"),
)
