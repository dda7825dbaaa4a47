"""Names of the codes support pages show (ticket states and topics, audit actions and what
they are about): msgids, translated where shown, so no agent or candidate reads a raw code."""

from __future__ import annotations

from vexam.core.i18n import N_
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
