"""What the school console says: labels of settings, reasons in words, and refusals shown
next to the form field they concern (SPEC §4)."""

from __future__ import annotations

from typing import Any

from vexam.core.context import Ctx
from vexam.core.db import KeepChanges
from vexam.core.errors import CATALOGUE, VexamError
from vexam.core.i18n import N_, Msg, gettext, render_message
from vexam.exams.labels import ACTION_LABELS as ACTION_LABELS
from vexam.exams.labels import EVENT_LABELS as EVENT_LABELS
from vexam.identity.idnumbers import IdNumberReason

# Labels of the settings a refusal can name (`field` of exam_setting_invalid).
FIELD_LABELS = {
    "code": N_("Exam code"),
    "name": N_("Name (Chinese)"),
    "name_en": N_("Name (English)"),
    "season": N_("Season"),
    "formal_starts_at": N_("Formal window opens"),
    "formal_ends_at": N_("Formal window closes"),
    "upload_grace_minutes": N_("Upload grace period (in minutes)"),
    "mock_limit": N_("Mock exam limit"),
    "fee_cents": N_("Fee (yuan)"),
    "subjects": N_("Subjects"),
    "device_policy.allowed_classes": N_("Devices allowed"),
    "device_policy.min_os": N_("Oldest system version"),
    "anti_cheat": N_("Anti-cheat policy"),
    "attempts": N_("Attempts"),
    "max_seconds": N_("Longest recording (seconds)"),
    "prompt": N_("Prompt"),
    "camera": N_("Camera"),
    "orientation": N_("Orientation"),
    "face_check_seconds": N_("Face check every (seconds)"),
    "mock_face_checks": N_("Face checks in the mock exam"),
    "rubric": N_("Rubric"),
    "extra_attempts": N_("Extra attempts"),
    "extra_seconds": N_("Extra recording seconds"),
    "window_ends_at": N_("Later window end"),
    "reason": N_("Reason"),
    "province": N_("Exam province"),
    "candidate_number": N_("Candidate number"),
    "major": N_("Major"),
    "id_number": N_("ID number"),
}
SUBJECT_LABEL = N_("Subject {number}")
# The reasons the exam services give, as msgids (their English text is the key).
_REASONS = (
    N_("required"),
    N_("lowercase letters, digits and dashes"),
    N_("a year such as 2027"),
    N_("with a time zone, e.g. +08:00"),
    N_("between 0 and 10080"),
    N_("empty for unlimited, or 1 and more"),
    N_("0 or more"),
    N_("at least one subject"),
    N_("between 1 and 50"),
    N_("between 10 and 7200"),
    N_("0, or between 10 and 600"),
    N_("a name and points above 0"),
    N_("above 0"),
    N_("phone, tablet or desktop"),
    N_("android, harmonyos or ios"),
    N_("a version such as 7 or 10.3"),
    N_("unknown event kind"),
    N_("void_attempt, fail_exam or flag"),
    N_("a written reason"),
    N_("between 0 and 50"),
    N_("between 0 and 7200"),
    N_("after the end of the formal window"),
    N_("at most 30 days after the formal window"),
    N_("a subject cannot be removed once candidates have started"),
    # Given by this module for what a form cannot even send as a setting.
    N_("a whole number"),
    N_("a number"),
    N_("a date and time"),
    N_("an amount in yuan such as 180 or 180.50"),
    N_("one 'name: points' per line"),
    N_("too long"),
    N_("not one of the choices"),
    N_("not valid"),
)
# roster_invalid reasons for the file as a whole.
FILE_REASONS = {
    "unreadable": N_("the file is not a readable CSV or XLSX file"),
    "encoding": N_("the text encoding is neither UTF-8 nor GBK"),
    "empty": N_("the file has no data rows"),
    "missing_columns": N_("required columns are missing"),
    "preview_has_errors": N_("the preview has bad rows"),
    "already_committed": N_("this preview was imported already"),
    "preview_expired": N_("this preview expired: upload the file again"),
    "no_file": N_("no file was chosen"),
}
# Why a roster row is bad (roster.check_row, the duplicate check, ID-number rules).
ROW_REASONS = {
    "missing": N_("empty"),
    "too_long": N_("too long"),
    "unknown": N_("not a province of China"),
    "format": N_("4 to 20 letters and digits"),
    "duplicate": N_("repeats row {other_row}"),
    IdNumberReason.length.value: N_("not 18 characters long"),
    IdNumberReason.characters.value: N_("17 digits and a final digit or X"),
    IdNumberReason.check_character.value: N_("the last character does not match (a typo?)"),
    IdNumberReason.province.value: N_("the first two digits are no province"),
    IdNumberReason.birth_date.value: N_("the birth date in it is not a real date"),
    IdNumberReason.birth_date_mismatch.value: N_("the birth date does not match"),
}
NOTICES = {
    "corrected": N_("The row was corrected."),
    "accommodation": N_("The accommodation was saved."),
    "accommodation_removed": N_("The accommodation was removed."),
    "saved": N_("The exam was saved."),
    "copied": N_(
        "This is a copy for the next season: check its code, names and window, then save. "
        "It stays unpublished until you publish it."
    ),
}
COMMITTED = N_(
    "Roster imported. Added: {inserted} · updated: {updated} · bad rows left out: {skipped}."
)


def label(locale: str, field: str) -> str:
    """The words for a setting a refusal names, e.g. subjects.1.attempts → Subject 2 · Attempts."""
    parts = field.split(".")
    if parts[0] == "accommodation":
        parts = parts[1:]
    if parts[0] == "subjects" and len(parts) > 2 and parts[1].isdigit():
        subject = gettext(locale, SUBJECT_LABEL).format(number=int(parts[1]) + 1)
        return f"{subject} · {gettext(locale, FIELD_LABELS.get(parts[2], parts[2]))}"
    for size in (2, 1):
        key = ".".join(parts[:size])
        if key in FIELD_LABELS:
            return gettext(locale, FIELD_LABELS[key])
    return field


def form_key(field: str) -> str:
    """The form control a refusal's field names: subjects.0.rubric.criteria.2 → its rubric."""
    parts = field.split(".")
    if parts[0] == "accommodation":
        parts = parts[1:]
    if parts[0] == "subjects" and len(parts) > 2:
        return ".".join(parts[:3])
    return ".".join(parts)


async def refusal(ctx: Ctx, exc: VexamError) -> dict[str, Any]:
    """A refusal as the console shows it: the request's writes undone (unless they are meant
    to count), the message, and the form fields to mark."""
    if not isinstance(exc, KeepChanges):
        await ctx.session.rollback()
    params = dict(exc.params)
    fields: set[str] = set()
    if exc.code == "exam_setting_invalid":
        field = str(params.get("field", ""))
        params["field"] = label(ctx.locale, field)
        params["reason"] = Msg(str(params.get("reason", "")))
        fields.add(form_key(field))
    elif exc.code == "exam_window_invalid":
        fields.update(("formal_starts_at", "formal_ends_at"))
    elif exc.code == "exam_code_taken":
        fields.add("code")
    elif exc.code == "roster_invalid":
        reason = str(params.get("reason", ""))
        text = gettext(ctx.locale, FILE_REASONS.get(reason, reason))
        columns = params.get("columns") or []
        if columns:
            text += ": " + ", ".join(label(ctx.locale, str(c)) for c in columns)
        params["reason"] = text
    elif exc.code == "invalid_request":
        for error in params.get("errors", []):
            fields.add(".".join(str(part) for part in error.get("loc", [])[1:]))
    message = render_message(
        ctx.locale, CATALOGUE[exc.code].message, params, ctx.settings.default_timezone
    )
    return {"error": message, "error_code": exc.code, "error_fields": fields}
