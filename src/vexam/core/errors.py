"""Errors are data: one catalogue of stable codes, rendered as RFC 9457 problems or pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vexam.core.db import KeepChanges
from vexam.core.i18n import N_


@dataclass(frozen=True)
class ErrorSpec:
    """HTTP status and English message (the gettext msgid) of one code."""

    status: int
    message: str


# The one catalogue. Messages are msgids: translations live in locale/*/messages.po.
# Placeholders are filled from the error's params (datetimes shown in the school's zone).
CATALOGUE: dict[str, ErrorSpec] = {
    # §1 generic
    "invalid_request": ErrorSpec(
        422, N_("The request is not valid: check the highlighted fields.")
    ),
    "not_found": ErrorSpec(404, N_("Nothing was found at this address.")),
    "method_not_allowed": ErrorSpec(405, N_("This address does not accept that method.")),
    "not_authenticated": ErrorSpec(401, N_("Please sign in first.")),
    "forbidden": ErrorSpec(403, N_("Your account may not do this.")),
    "csrf_failed": ErrorSpec(403, N_("The form expired. Reload the page and try again.")),
    "internal_error": ErrorSpec(
        500, N_("Something went wrong on our side. Nothing you sent was lost; please try again.")
    ),
    "service_unavailable": ErrorSpec(503, N_("The service is busy. Please try again shortly.")),
    "client_version_invalid": ErrorSpec(
        400, N_("The X-Client-Version header must look like 2.3.1.")
    ),
    "device_id_invalid": ErrorSpec(
        400, N_("The device id must be 8 to 128 letters, digits, dots, dashes or underscores.")
    ),
    # §2 accounts
    "phone_invalid": ErrorSpec(
        422, N_("Enter an 11-digit mainland mobile number starting with 13 to 19.")
    ),
    "phone_registered": ErrorSpec(
        409, N_("This phone number already has an account. Sign in, or reset the password.")
    ),
    "phone_not_registered": ErrorSpec(
        404, N_("No account uses this phone number. Register first.")
    ),
    "sms_code_invalid": ErrorSpec(
        400, N_("The SMS code is wrong or already used. Check it, or request a new code.")
    ),
    "sms_code_expired": ErrorSpec(
        400, N_("The SMS code has expired (codes last 5 minutes). Request a new code.")
    ),
    "sms_rate_limited": ErrorSpec(
        429, N_("Too many SMS codes requested. You can request another after {retry_at}.")
    ),
    "password_too_weak": ErrorSpec(
        422,
        N_("Choose a password of at least {min_length} characters that is not your phone number."),
    ),
    "login_failed": ErrorSpec(401, N_("The phone number or password is wrong.")),
    "account_locked": ErrorSpec(
        423,
        N_(
            "Too many failed sign-ins: the account is locked until {locked_until}. "
            "You can sign in with an SMS code or reset the password now."
        ),
    ),
    "login_rate_limited": ErrorSpec(
        429,
        N_(
            "Too many failed sign-ins from this network. Try again after {retry_at}, "
            "or sign in with an SMS code."
        ),
    ),
    "account_disabled": ErrorSpec(403, N_("This account has been disabled. Contact support.")),
    "client_outdated": ErrorSpec(
        426,
        N_(
            "This app version is too old. "
            "Install version {min_version} or newer from {download_url}."
        ),
    ),
    "session_not_found": ErrorSpec(404, N_("That sign-in session does not exist.")),
    "school_not_found": ErrorSpec(404, N_("No such school.")),
    # §3 identity certification
    "id_number_invalid": ErrorSpec(
        422, N_("The ID number is not valid ({reason_text}). Check it against the card.")
    ),
    "id_photo_unclear": ErrorSpec(
        422,
        N_(
            "The ID card photo cannot be read clearly. Retake it flat, in good light and in "
            "focus, or enter the details by hand instead."
        ),
    ),
    "image_invalid": ErrorSpec(
        422, N_("The file is not a photo we can open. Send a JPEG or PNG picture.")
    ),
    "image_too_large": ErrorSpec(413, N_("The photo is too large. Send one under {max_mb} MB.")),
    "document_manual_only": ErrorSpec(
        422,
        N_(
            "This document cannot be read from a photo. Enter its details by hand; "
            "a person will check them."
        ),
    ),
    "identity_conflict": ErrorSpec(
        409,
        N_(
            "This ID number is already certified on the account {holder_phone}. Sign in with "
            "that account, or open an appeal if it is not yours."
        ),
    ),
    "candidate_number_taken": ErrorSpec(
        409,
        N_(
            "This candidate number is already used by another certified candidate this "
            "season. Check it, or open an appeal."
        ),
    ),
    "identity_already_certified": ErrorSpec(
        409, N_("Your identity is already certified. Nothing more is needed.")
    ),
    "identity_not_ready": ErrorSpec(
        409, N_("This step is not open now. Check your certification status for the next step.")
    ),
    "face_not_found": ErrorSpec(
        422,
        N_(
            "No face was found. Face the camera in good light, with nothing covering your "
            "face, and try again."
        ),
    ),
    "face_mismatch": ErrorSpec(
        422,
        N_(
            "The face does not match the ID photo. Try again in good light; "
            "{attempts_left} attempts left before a person reviews it."
        ),
    ),
    "liveness_failed": ErrorSpec(
        422,
        N_(
            "The live check failed: start facing the camera, then slowly turn your head as "
            "asked. {attempts_left} attempts left before a person reviews it."
        ),
    ),
    "liveness_challenge_invalid": ErrorSpec(
        409, N_("This live check has expired or was already used. Start a new one.")
    ),
    "face_attempts_exhausted": ErrorSpec(
        409,
        N_(
            "The face check failed 3 times. Send your ID card photo and a selfie for a "
            "manual review instead; support answers within service hours."
        ),
    ),
    "review_not_open": ErrorSpec(409, N_("This review has already been decided.")),
    "appeal_not_open": ErrorSpec(
        409, N_("This appeal is no longer open: it was decided or cancelled.")
    ),
    # §7 support tickets
    "ticket_not_found": ErrorSpec(404, N_("No such support ticket.")),
    "ticket_closed": ErrorSpec(
        409, N_("This ticket is closed. Open a new one if you still need help.")
    ),
    "ticket_limit_reached": ErrorSpec(
        429,
        N_(
            "You already have {limit} questions waiting for an answer. Add to one of them, "
            "or wait until support answers, before asking another."
        ),
    ),
    # §4 exams
    "exam_not_found": ErrorSpec(404, N_("No such exam.")),
    "exam_window_invalid": ErrorSpec(
        422, N_("The exam window must end after it starts. Check both times.")
    ),
    "exam_setting_invalid": ErrorSpec(422, N_("The setting {field} is not valid: {reason}.")),
    "exam_code_taken": ErrorSpec(409, N_("This school already has an exam with this code.")),
    # operator console: the platform policy
    "policy_setting_invalid": ErrorSpec(
        422, N_("The policy setting {field} is not valid: {reason}.")
    ),
    # §4 roster
    "roster_invalid": ErrorSpec(
        422,
        N_(
            "The roster cannot be imported ({reason}). Save it as CSV or XLSX with the columns "
            "name, ID number and exam province, and check the rows listed in the preview."
        ),
    ),
    "roster_import_not_found": ErrorSpec(404, N_("No such roster import for this exam.")),
    "roster_row_not_found": ErrorSpec(404, N_("No such roster row for this exam.")),
    # §4 applications and payment
    "identity_not_certified": ErrorSpec(
        403, N_("Certify your identity first; then you can apply for exams.")
    ),
    "not_in_roster": ErrorSpec(
        404,
        N_(
            "No exam found for you: check the school and the ID number, or ask the school "
            "whether it imported your data."
        ),
    ),
    "roster_mismatch": ErrorSpec(
        409,
        N_(
            "The school's roster has a different {fields_text} for your ID number. Check what "
            "you entered, or ask the school to correct its roster."
        ),
    ),
    "exam_not_open": ErrorSpec(409, N_("This exam is not open for you now.")),
    "exam_closed": ErrorSpec(409, N_("This exam ended at {ended_at}; it takes no applications.")),
    "payment_required": ErrorSpec(
        402, N_("Pay the exam fee first; the mock exam opens once it is paid.")
    ),
    "payment_not_required": ErrorSpec(409, N_("This exam has no fee; there is nothing to pay.")),
    "already_paid": ErrorSpec(
        409, N_("This order is already paid. You will not be charged again.")
    ),
    "payment_callback_invalid": ErrorSpec(
        400, N_("The payment notice is not signed or not valid.")
    ),
    "payment_not_refundable": ErrorSpec(409, N_("Only a paid order can be refunded.")),
    # §5 taking an exam
    "sitting_not_found": ErrorSpec(404, N_("No such exam sitting of yours.")),
    "recording_not_found": ErrorSpec(404, N_("No such recording in this exam sitting.")),
    "mock_limit_reached": ErrorSpec(
        409, N_("You have used all {mock_limit} mock exams this exam offers.")
    ),
    "exam_active_on_other_device": ErrorSpec(
        409,
        N_(
            "Your exam is active on another device. Continue there, or hand the exam over to "
            "this device: the other device is then ended."
        ),
    ),
    "device_not_allowed": ErrorSpec(
        403, N_("This device cannot take the exam: {rule_text}. The help explains what works.")
    ),
    "device_check_required": ErrorSpec(
        409, N_("Run the device check on this device before you start recording.")
    ),
    "face_verification_required": ErrorSpec(
        409, N_("Pass the face verification on this device before you start recording.")
    ),
    "exam_face_mismatch": ErrorSpec(
        422,
        N_(
            "The face does not match your certified identity. Face the camera in good light "
            "and try again."
        ),
    ),
    "face_check_required": ErrorSpec(
        409,
        N_(
            "The face checks during your recording failed 3 times. Pass a fresh face "
            "verification from the exam list before you go on."
        ),
    ),
    "attempts_exhausted": ErrorSpec(
        409, N_("You have used all {allowed} recording attempts of this subject.")
    ),
    "orientation_required": ErrorSpec(
        422, N_("Choose landscape or portrait before you start recording this subject.")
    ),
    "recording_not_open": ErrorSpec(
        409, N_("This recording is no longer running: it was completed or voided.")
    ),
    "recording_too_long": ErrorSpec(
        422,
        N_(
            "This recording ran past its limit of {max_seconds} seconds and was voided; the "
            "attempt is used."
        ),
    ),
    "recording_not_completed": ErrorSpec(
        409, N_("Only a completed recording can be submitted, not a running or voided one.")
    ),
    "exam_failed": ErrorSpec(
        409,
        N_(
            "This exam was ended under the school's rules after a prohibited action; no more "
            "recordings or submissions are possible. Contact the school if this is wrong."
        ),
    ),
    "already_submitted": ErrorSpec(
        409, N_("This subject is already submitted; a submission cannot be changed.")
    ),
    "submission_window_closed": ErrorSpec(
        409, N_("The exam window closed at {ended_at}; submissions are no longer accepted.")
    ),
    # §5 uploads (tus 1.0)
    "submission_not_found": ErrorSpec(404, N_("No such submission of yours.")),
    "upload_not_found": ErrorSpec(
        404, N_("No such upload. Start the upload of this submission again.")
    ),
    "tus_version_unsupported": ErrorSpec(
        412, N_("This server speaks tus 1.0.0: send the header Tus-Resumable: 1.0.0.")
    ),
    "upload_length_required": ErrorSpec(
        400, N_("Send the file's size in the Upload-Length header; deferred lengths are refused.")
    ),
    "upload_metadata_invalid": ErrorSpec(
        400, N_("Upload-Metadata must name the submission: submission_id and its base64 value.")
    ),
    "upload_length_mismatch": ErrorSpec(
        400,
        N_(
            "The file is {length} bytes but the submission declared {declared}. Upload the "
            "recording you submitted."
        ),
    ),
    "upload_too_large": ErrorSpec(
        413, N_("The file is larger than the {max_bytes} bytes this server accepts.")
    ),
    "upload_exceeds_length": ErrorSpec(
        413, N_("This request would write past the upload's declared length of {length} bytes.")
    ),
    "upload_offset_invalid": ErrorSpec(
        400, N_("The Upload-Offset header must be a whole number of bytes.")
    ),
    "upload_offset_mismatch": ErrorSpec(
        409,
        N_("The server holds {offset} bytes of this upload: continue from there."),
    ),
    "upload_content_type": ErrorSpec(
        415, N_("Upload data must be sent as application/offset+octet-stream.")
    ),
    "upload_checksum_invalid": ErrorSpec(
        400, N_("The Upload-Checksum header must be: sha256 and the base64 digest.")
    ),
    "upload_checksum_algorithm": ErrorSpec(
        400, N_("Only the sha256 checksum algorithm is supported.")
    ),
    "upload_chunk_checksum_mismatch": ErrorSpec(
        460,
        N_("The data did not match its checksum and was not kept. Send this part again."),
    ),
    "upload_locked": ErrorSpec(
        423, N_("This upload is receiving data on another connection. Try again shortly.")
    ),
    "upload_finished": ErrorSpec(
        403, N_("This upload is complete; it takes no more data and cannot be deleted.")
    ),
    "upload_already_complete": ErrorSpec(
        409, N_("This submission's recording has already been uploaded.")
    ),
    "upload_expired": ErrorSpec(
        410,
        N_("The upload period ended at {ended_at}; this recording can no longer be uploaded."),
    ),
    "upload_checksum_mismatch": ErrorSpec(
        422,
        N_(
            "The uploaded file does not match the SHA-256 declared at submission, so it was "
            "not accepted. Upload the exact recording you submitted."
        ),
    ),
    "recording_invalid": ErrorSpec(
        422,
        N_(
            "The uploaded file is not a playable video (it may be damaged or cut short), so "
            "it was not accepted."
        ),
    ),
    # §6/§8 media playback
    "media_link_invalid": ErrorSpec(
        403,
        N_("This video link is not valid for your account. Open the video again from its page."),
    ),
    "media_link_expired": ErrorSpec(
        410, N_("This video link has expired. Open the video again from its page for a new link.")
    ),
    "media_not_ready": ErrorSpec(
        409, N_("This video is still being processed. Try again in a few minutes.")
    ),
    "media_range_invalid": ErrorSpec(
        416, N_("The requested byte range is outside the video, which is {size} bytes long.")
    ),
    # §6 review
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


class VexamError(Exception):
    """A refusal with a catalogue `code`; `params` fill the message and extend the problem."""

    def __init__(self, code: str, /, **params: Any) -> None:
        if code not in CATALOGUE:
            raise KeyError(f"unknown error code {code!r}: add it to core.errors.CATALOGUE")
        super().__init__(code)
        self.code = code
        self.params = params

    @property
    def status(self) -> int:
        """HTTP status of this code."""
        return CATALOGUE[self.code].status


def field_invalid(field: str, kind: str = "value_error") -> VexamError:
    """`invalid_request` pointing at one body field, as request validation reports it."""
    return VexamError("invalid_request", errors=[{"loc": ["body", field], "type": kind}])


class CountedRefusal(VexamError, KeepChanges):
    """A refusal whose writes are committed before it is answered (counters, attempts)."""


def json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Params as JSON values: datetimes as ISO 8601 UTC."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        out[key] = value.isoformat() if isinstance(value, datetime) else value
    return out
