"""Names of the identity codes support's console shows (statuses, documents, how details were
entered, register and face-check outcomes): msgids, translated where shown."""

from __future__ import annotations

from vexam.core.i18n import N_

IDENTITY_STATUS_LABELS = {
    "not_started": N_("Not certified yet"),
    "face_pending": N_("Waiting for the live face check"),
    "review_required": N_("Manual review required"),
    "in_review": N_("In manual review"),
    "certified": N_("Certified"),
    "rejected": N_("Rejected"),
    "revoked": N_("Revoked"),
}
REVIEW_STATUS_LABELS = {
    "open": N_("Open"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
}
APPEAL_STATUS_LABELS = {
    "open": N_("Open"),
    "upheld": N_("Upheld"),
    "dismissed": N_("Dismissed"),
    "cancelled": N_("Cancelled by the candidate"),
}
DOCUMENT_LABELS = {
    "resident_id": N_("Resident ID card"),
    "temporary_id": N_("Temporary resident ID card"),
    "other": N_("Another document (permit, passport)"),
    "hk_macao_permit": N_("Mainland travel permit for Hong Kong and Macao residents"),
    "taiwan_permit": N_("Mainland travel permit for Taiwan residents"),
    "residence_permit": N_("Residence permit for Hong Kong, Macao or Taiwan residents"),
    "passport": N_("Passport"),
    "foreign_permanent_residence": N_("Foreign permanent resident ID card"),
}
ENTRY_METHOD_LABELS = {
    "ocr": N_("read from the card photo"),
    "manual": N_("typed by hand"),
}
SEX_LABELS = {"male": N_("Male"), "female": N_("Female")}
REGISTER_RESULT_LABELS = {
    "match": N_("The register confirms the details"),
    "mismatch": N_("The register does not confirm the details"),
    "unavailable": N_("The register could not be asked"),
}
FACE_RESULT_LABELS = {
    "passed": N_("Passed"),
    "face_not_found": N_("No face found"),
    "liveness_failed": N_("Live check failed"),
    "face_mismatch": N_("Another person than on the card"),
}
LIVENESS_REASON_LABELS = {
    "too_few_frames": N_("too few frames"),
    "too_many_frames": N_("too many frames"),
    "undecodable_frame": N_("a frame could not be read"),
    "no_face": N_("no face"),
    "several_faces": N_("several faces"),
    "face_lost": N_("the face left the picture"),
    "not_frontal_at_start": N_("not facing the camera at the start"),
    "no_turn": N_("the head did not turn"),
    "wrong_direction": N_("turned the wrong way"),
}
CONSOLE_LABELS = {
    "identity_status_labels": IDENTITY_STATUS_LABELS,
    "review_status_labels": REVIEW_STATUS_LABELS,
    "appeal_status_labels": APPEAL_STATUS_LABELS,
    "document_labels": DOCUMENT_LABELS,
    "entry_method_labels": ENTRY_METHOD_LABELS,
    "sex_labels": SEX_LABELS,
    "register_result_labels": REGISTER_RESULT_LABELS,
    "face_result_labels": FACE_RESULT_LABELS,
    "liveness_reason_labels": LIVENESS_REASON_LABELS,
}
