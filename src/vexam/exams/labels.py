"""Names of a sitting's anti-cheat events and of what the exam's policy did, for staff pages
(the school console and the reviewers' timeline); msgids, translated where shown."""

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
