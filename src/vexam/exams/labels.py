"""Names of a sitting's anti-cheat events, of what the exam's policy did, and of a
submission's upload state, for staff pages and exports (the school console, its dashboard,
the reviewers' timeline, the results export); msgids, translated where shown."""

from __future__ import annotations

from vexam.core.i18n import N_

EVENT_LABELS = {
    "phone_call": N_("Phone call"),
    "left_page": N_("Left the exam page"),
    "screen_locked": N_("Screen locked"),
    "screen_recording": N_("Screen recording"),
    "screenshot": N_("Screenshot"),
    "app_crash": N_("App crashed"),
}
ACTION_LABELS = {
    "void_attempt": N_("Void the attempt"),
    "fail_exam": N_("Fail the exam"),
    "flag": N_("Flag for reviewers"),
    "ignored": N_("Ignored (another device)"),
}
UPLOAD_LABELS = {
    "pending": N_("Not started"),
    "receiving": N_("Uploading"),
    "received": N_("Received, being checked"),
    "verified": N_("Verified"),
    "invalid": N_("Not a playable video"),
    "hash_mismatch": N_("Does not match the declared file"),
    "expired": N_("Upload period ended"),
}
