"""Names of the codes support pages show (ticket states and topics, audit actions and what
they are about): msgids, translated where shown, so no agent or candidate reads a raw code."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vexam.core.context import Role
from vexam.core.i18n import N_
from vexam.exams import labels as exam_labels
from vexam.exams.sittings import RULE_TEXTS
from vexam.identity import labels as identity_labels
from vexam.support.help_topics import SECTIONS

TICKET_STATE_LABELS = {
    "open": N_("Waiting for support"),
    "answered": N_("Answered"),
    "closed": N_("Closed"),
}
# A question's topic: what the help centre's sections are about, or anything else.
TOPIC_LABELS = {
    **{key: SECTIONS[key] for key in ("account", "identity", "apply", "exam", "upload", "device")},
    "other": N_("Something else"),
}


# What each audit action did (`core.audit` entries), as the audit search shows it.
AUDIT_ACTION_LABELS = {
    "account.created": N_("Account created"),
    "account.locked": N_("Account locked after failed sign-ins"),
    "account.password_reset": N_("Password reset"),
    "account.profile_changed": N_("Profile changed"),
    "login.failed": N_("Sign-in failed"),
    "session.started": N_("Signed in"),
    "session.revoked": N_("Signed out a session"),
    "sms_code.sent": N_("SMS code sent"),
    "staff.created": N_("Staff account created"),
    "staff.activated": N_("Staff account enabled"),
    "staff.deactivated": N_("Staff account disabled"),
    "school.created": N_("School created"),
    "policy.updated": N_("Platform policy changed"),
    "policy.reset": N_("Platform policy reset to the defaults"),
    "audit.searched": N_("Audit log searched"),
    "identity.id_photo_uploaded": N_("ID card photo uploaded"),
    "identity.submitted": N_("Identity details submitted"),
    "identity.face_checked": N_("Live face check"),
    "identity.certified": N_("Identity certified"),
    "identity.review_required": N_("Manual review required"),
    "identity.review_requested": N_("Manual review requested"),
    "identity.review_viewed": N_("Manual review opened by support"),
    "identity.review_approved": N_("Manual review approved"),
    "identity.review_rejected": N_("Manual review rejected"),
    "identity.revoked": N_("Certification revoked"),
    "identity.appeal_opened": N_("Appeal opened"),
    "identity.appeal_cancelled": N_("Appeal cancelled"),
    "identity.appeal_upheld": N_("Appeal upheld"),
    "identity.appeal_dismissed": N_("Appeal dismissed"),
    "exam.created": N_("Exam created"),
    "exam.copied": N_("Exam copied"),
    "exam.updated": N_("Exam changed"),
    "exam.event": N_("Anti-cheat event during the exam"),
    "exam.event_ignored": N_("Anti-cheat event ignored (another device)"),
    "exam_device.claimed": N_("Exam phone registered"),
    "exam_device.handed_over": N_("Exam moved to another phone"),
    "exam_device.released": N_("Exam phone released"),
    "roster.previewed": N_("Roster import checked"),
    "roster.committed": N_("Roster imported"),
    "roster.row_corrected": N_("Roster row corrected"),
    "accommodation.granted": N_("Accommodation granted"),
    "accommodation.removed": N_("Accommodation removed"),
    "application.matched": N_("Application matched to the roster"),
    "application.enrolled": N_("Enrolled in the exam"),
    "payment.order_created": N_("Payment order created"),
    "payment.callback_charged": N_("Payment received"),
    "payment.callback_ignored": N_("Payment notice ignored (already handled)"),
    "payment.refunded": N_("Payment refunded"),
    "sitting.started": N_("Exam started"),
    "sitting.device_checked": N_("Exam device checked"),
    "sitting.face_verified": N_("Face verified before the exam"),
    "sitting.face_check_required": N_("Face check required during the exam"),
    "sitting.failed": N_("Exam failed by its rules"),
    "recording.started": N_("Recording started"),
    "recording.completed": N_("Recording finished"),
    "recording.face_check_failed": N_("Face check of a recording failed"),
    "recording.voided": N_("Recording attempt voided"),
    "submission.created": N_("Recording submitted"),
    "upload.created": N_("Upload started"),
    "upload.received": N_("Upload received"),
    "upload.checksum_mismatch": N_("Upload does not match the declared file"),
    "upload.verified": N_("Upload verified"),
    "upload.invalid": N_("Upload is not a playable video"),
    "upload.expired": N_("Upload period ended"),
    "upload.terminated": N_("Upload cancelled"),
    "upload.media_checked": N_("Video checked"),
    "upload.media_failed": N_("Video check failed"),
    "review.settings_changed": N_("Review settings changed"),
    "review.assigned": N_("Reviewer assigned"),
    "review.unassigned": N_("Reviewer unassigned"),
    "review.scored": N_("Scored"),
    "review.score_revised": N_("Score revised"),
    "review.escalated": N_("Sent to another reviewer (scores too far apart)"),
    "review.published": N_("Results published"),
    "review.exported": N_("Results exported"),
    "ticket.opened": N_("Ticket opened"),
    "ticket.message_added": N_("Candidate wrote in a ticket"),
    "ticket.answered": N_("Ticket answered"),
    "ticket.closed": N_("Ticket closed"),
}
# Who acted, when it is not a signed-in account's role (a gateway's callback).
AUDIT_ACTOR_LABELS = {
    "payment_provider": N_("Payment provider"),
}
# What an audit entry is about (its subject type).
AUDIT_SUBJECT_LABELS = {
    "user": N_("Account"),
    "phone": N_("Phone"),
    "school": N_("School"),
    "platform_policy": N_("Platform policy"),
    "audit_log": N_("Audit log"),
    "identity": N_("Identity"),
    "identity_photo": N_("ID card photo"),
    "manual_review": N_("Manual review"),
    "appeal": N_("Appeal"),
    "exam": N_("Exam"),
    "roster_import": N_("Roster import"),
    "roster_row": N_("Roster row"),
    "application": N_("Application"),
    "payment_order": N_("Payment order"),
    "sitting": N_("Exam sitting"),
    "recording": N_("Recording"),
    "submission": N_("Submission"),
    "upload": N_("Upload"),
    "review_assignment": N_("Reviewer assignment"),
    "review_item": N_("Submission under review"),
    "support_ticket": N_("Ticket"),
}


def label(labels: dict[str, str], code: str | None) -> str:
    """The msgid naming `code` in `labels` (the code itself when unknown, or "")."""
    if code is None:
        return ""
    return labels.get(code, code)


# ------------------------------------------------------------------ audit details
# What an audit entry's detail keys mean; a key not named here is shown as its code.
AUDIT_DETAIL_KEY_LABELS = {
    "status": N_("Status"),
    "document_type": N_("Document"),
    "identity_type": N_("Candidate type"),
    "id_number": N_("ID number"),
    "review_reason": N_("Reason for manual review"),
    "register": N_("Register check"),
    "result": N_("Result"),
    "liveness": N_("Live check"),
    "distance": N_("Face distance"),
    "via": N_("Certified by"),
    "reason": N_("Reason"),
    "revoked_holder": N_("Holder's certification revoked"),
    "identity_id": N_("Identity"),
    "kind": N_("Kind"),
    "policy": N_("What the exam's rules did"),
    "topic": N_("Topic"),
    "method": N_("Signed in with"),
    "session_id": N_("Session"),
    "role": N_("Role"),
    "phone": N_("Phone"),
    "locale": N_("Language"),
    "display_name": N_("Display name"),
    "locked_until": N_("Locked until"),
    "exam_id": N_("Exam"),
    "sitting_id": N_("Exam sitting"),
    "recording_id": N_("Recording"),
    "submission_id": N_("Submission"),
    "mode": N_("Mode"),
    "amount": N_("Amount (fen)"),
    "event_id": N_("Payment notice"),
    "overdue": N_("Answered late"),
    "reopened": N_("Reopened"),
    "voided_recordings": N_("Recordings voided"),
    "in_a_row": N_("Failures in a row"),
    "attempt": N_("Attempt"),
    "duration_seconds": N_("Duration (seconds)"),
    "found": N_("Accounts found"),
    "by_id_number": N_("By ID number"),
    "user_id": N_("Account id"),
    "number": N_("Sitting number"),
    "subject": N_("Subject"),
    "orientation": N_("Orientation"),
    "size_bytes": N_("Size (bytes)"),
    "length": N_("Size (bytes)"),
    "received": N_("Bytes received"),
    "reviewable": N_("Can be reviewed"),
    "from_device": N_("Previous device"),
    "check_id": N_("Device check"),
    "rule": N_("Refused because"),
    "device_class": N_("Device type"),
    "os": N_("Operating system"),
    "final": N_("Last try"),
    "poster": N_("Poster image made"),
    "transcoded": N_("Converted for playback"),
}
REVIEW_REASON_LABELS = {  # the same texts as the review queue's (identity/templates)
    "no_reference_portrait": N_("No portrait to compare with (typed without a card photo)"),
    "face_attempts_exhausted": N_("The live face check failed too often"),
    "other_document": N_("Another document than the resident ID card"),
    "requested": N_("Asked for by the candidate"),
    "register_mismatch": N_("The register did not confirm the details"),
}
UPLOAD_REASON_LABELS = {  # why a received file is not a playable video
    "no_video_stream": N_("The file holds no video"),
    "no_frames": N_("The video has no frames"),
    "undecodable": N_("The file could not be read"),
}
VOID_REASON_LABELS = {
    "too_long": N_("Recording ran too long"),
    "face_checks_failed": N_("Face checks failed"),
    "exam_failed": N_("Exam failed by its rules"),
    "handover": N_("Exam moved to another phone"),
    "released": N_("Exam phone released"),
}
APPEAL_KIND_LABELS = {  # the same texts as the candidate's appeal form
    "identity_conflict": N_("Someone else is certified with my ID number"),
    "candidate_number_taken": N_("My candidate number is taken"),
    "wrong_certification": N_("A certification was made wrongly"),
}
_YES_NO = {"true": N_("Yes"), "false": N_("No")}
# The known values of a detail key (codes); other values (free text, numbers) stay as they are.
AUDIT_DETAIL_VALUE_LABELS: dict[str, dict[str, str]] = {
    "status": identity_labels.IDENTITY_STATUS_LABELS,
    "document_type": identity_labels.DOCUMENT_LABELS,
    "identity_type": {"gaokao": N_("Gaokao candidate"), "other": N_("Other candidate")},
    "review_reason": REVIEW_REASON_LABELS,
    "register": identity_labels.REGISTER_RESULT_LABELS,
    "result": {
        **identity_labels.FACE_RESULT_LABELS,
        "no_reference": N_("No portrait to compare with"),
        "walkthrough": N_("Not compared (mock exam)"),
    },
    "liveness": identity_labels.LIVENESS_REASON_LABELS,
    "via": {"face": N_("Live face check"), "manual_review": N_("Manual review")},
    "reason": {
        **REVIEW_REASON_LABELS,
        **VOID_REASON_LABELS,
        **UPLOAD_REASON_LABELS,
        **exam_labels.EVENT_LABELS,
    },
    "rule": {rule: str(text) for rule, text in RULE_TEXTS.items()},
    "device_class": {
        "phone": N_("Mobile phone"),
        "tablet": N_("Tablet"),
        "desktop": N_("Computer"),
    },
    "orientation": {"portrait": N_("Portrait"), "landscape": N_("Landscape")},
    "kind": {**APPEAL_KIND_LABELS, **exam_labels.EVENT_LABELS},
    "policy": exam_labels.ACTION_LABELS,
    "topic": TOPIC_LABELS,
    "method": {
        "password": N_("With password"),
        "sms": N_("With SMS code"),
        "register": N_("Registration"),
    },
    "role": {role.value: role.label for role in Role},
    "locale": {"zh_CN": N_("Chinese"), "en": N_("English")},
    "mode": {"mock": N_("Mock exam"), "formal": N_("Formal exam")},
}


@dataclass(frozen=True)
class DetailLine:
    """One detail of an audit entry as shown: `name` is a msgid when `named` (else the raw
    key); `value` is a msgid when `code` is set (the raw code it names), else the text (an
    ISO time when `at` holds it, to show in the reader's zone)."""

    key: str
    name: str
    named: bool
    value: str
    code: str | None
    at: datetime | None = None


def detail_lines(detail: dict[str, Any]) -> list[DetailLine]:
    """The (already masked) details of an entry with their keys and known codes named.

    Free text and numbers are kept as they are; lists and objects as JSON; times (ISO text
    under a `_TIME_KEYS` key) as times.
    """
    lines = []
    for key, raw in detail.items():
        name = AUDIT_DETAIL_KEY_LABELS.get(key)
        code = _code(raw)
        known = AUDIT_DETAIL_VALUE_LABELS.get(key, {})
        if isinstance(raw, bool):
            value = _YES_NO[code or ""]
        elif code is not None and code in known:
            value = known[code]
        elif code is not None and key == "review_reason" and code.startswith("register_"):
            value = REVIEW_REASON_LABELS["register_mismatch"]
        else:
            value, code = (
                (raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)),
                None,
            )
        at = _time(value) if key in _TIME_KEYS and code is None else None
        lines.append(DetailLine(key, name or key, name is not None, value, code, at))
    return lines


_TIME_KEYS = {"locked_until"}


def _time(text: str) -> datetime | None:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _code(raw: Any) -> str | None:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return raw if isinstance(raw, str) else None
