"""The help centre's answers (SPEC §7); `help_search` finds them.

Every way a candidate can trip in SPEC §2–§5, in the platform's own words: each topic names
the catalogue codes (`core.errors`) it explains, so a candidate who sees a code can search
for it. Texts are msgids (translated through the catalogues); `{name}` placeholders are
filled from the settings, so the answers state the limits this deployment really applies.

"""

from __future__ import annotations

from dataclasses import dataclass

from vexam.core.i18n import N_

SECTIONS: dict[str, str] = {
    "account": N_("Account, sign-in and SMS codes"),
    "identity": N_("Identity certification"),
    "apply": N_("Applying, confirming and paying"),
    "exam": N_("Taking the exam"),
    "upload": N_("Submitting and uploading"),
    "device": N_("Your phone"),
    "support": N_("Asking support"),
}


@dataclass(frozen=True)
class Topic:
    """One answer: a question-like title, paragraphs, words people type, codes it explains."""

    slug: str
    section: str
    title: str
    answer: tuple[str, ...]
    keywords: str
    codes: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()  # (address, label msgid)


TOPICS: tuple[Topic, ...] = (
    # ---------------------------------------------------------------- §2 accounts
    Topic(
        "sms-not-arriving",
        "account",
        N_("The SMS code does not arrive"),
        (
            N_(
                "Check the number you typed: 11 digits, starting with 13 to 19. Codes for "
                "signing in or resetting go only to registered numbers, and registration "
                "codes only to new ones."
            ),
            N_(
                "Wait a minute: one phone gets at most one code every {resend_seconds} "
                "seconds, and at most {daily_cap} codes a day. Look in the phone's blocked or "
                "spam messages, and make sure it has signal and is not in airplane mode."
            ),
            N_(
                "If the page says too many codes were requested, it also says when you can "
                "request the next one. Until then you can still sign in with your password."
            ),
        ),
        N_("SMS text message verification code not received no code blocked spam"),
        ("sms_rate_limited", "phone_invalid", "phone_not_registered"),
        (("/login?mode=sms", N_("Sign in with an SMS code")),),
    ),
    Topic(
        "sms-code-wrong",
        "account",
        N_("The SMS code is wrong or has expired"),
        (
            N_(
                "A code has 6 digits, lasts {ttl_minutes} minutes and works once. After "
                "{wrong_attempts} wrong entries it stops working. Use the newest code if you "
                "asked for several: a new code replaces the old one."
            ),
            N_("Request a new code on the same page; nothing you typed elsewhere is lost."),
        ),
        N_("SMS code wrong invalid expired used once verification code error"),
        ("sms_code_invalid", "sms_code_expired"),
    ),
    Topic(
        "password-reset",
        "account",
        N_("I forgot my password"),
        (
            N_(
                "Reset it with an SMS code sent to your account's phone. The new password "
                "needs at least {password_min_length} characters and must not be your phone "
                "number. After a reset every device is signed out: sign in again."
            ),
        ),
        N_("forgot password reset change password weak password"),
        ("password_too_weak",),
        (("/reset", N_("Reset the password")),),
    ),
    Topic(
        "account-locked",
        "account",
        N_("Sign-in failed or the account is locked"),
        (
            N_(
                "After {login_failures} wrong passwords the account is locked for "
                "{lockout_minutes} minutes; the message says until when. You can still sign "
                "in with an SMS code, or reset the password, right away."
            ),
            N_(
                "Many wrong passwords from one network (a school or an internet café, say) "
                "pause password sign-in from there for a while; the message says when to try "
                "again. Signing in with an SMS code still works."
            ),
            N_(
                "An app that is too old is refused with a message saying which version to "
                "install: update the app, then sign in again."
            ),
        ),
        N_("login failed cannot sign in locked account wrong password old app version update"),
        (
            "login_failed",
            "account_locked",
            "login_rate_limited",
            "client_outdated",
            "account_disabled",
        ),
        (("/login?mode=sms", N_("Sign in with an SMS code")),),
    ),
    Topic(
        "parent-phone",
        "account",
        N_("A parent registered with their own phone"),
        (
            N_(
                "That is fine: the account is that phone number, and it does not need to be "
                "changed. Sign in with that number on the phone you take the exam with. If "
                "registering says the number already has an account, sign in or reset the "
                "password instead of registering again."
            ),
        ),
        N_("parent phone number mother father family already registered account exists"),
        ("phone_registered",),
    ),
    # ---------------------------------------------------------------- §3 identity
    Topic(
        "certify-how",
        "identity",
        N_("How identity certification works"),
        (
            N_(
                "Choose your identity type (gaokao candidate or other; it changes nothing), "
                "then photograph the portrait side of your resident ID card or type its "
                "details by hand. Typing has no disadvantage. Then take the live face check: "
                "face the camera and turn your head as asked."
            ),
            N_(
                "Expired or soon-to-expire ID cards are accepted. When your state changes, "
                "your home page shows it by itself: no need to sign in again."
            ),
        ),
        N_("identity certification real name verify ID card how to certify gaokao"),
        ("identity_not_certified", "identity_already_certified", "identity_not_ready"),
        (("/identity", N_("Identity certification")),),
    ),
    Topic(
        "id-photo-unclear",
        "identity",
        N_("The ID card photo cannot be read"),
        (
            N_(
                "Lay the card flat on a dark surface, in even light without glare, fill the "
                "frame with it and hold the phone still until it is in focus. Send a JPEG or "
                "PNG photo of the portrait side."
            ),
            N_(
                "Or type the details by hand instead: the photo you sent is kept for the face "
                "comparison. Check every field the page highlights against your card."
            ),
        ),
        N_("ID card photo unclear blurry cannot read OCR picture too large retake"),
        ("id_photo_unclear", "image_invalid", "image_too_large"),
        (("/identity", N_("Identity certification")),),
    ),
    Topic(
        "other-documents",
        "identity",
        N_("Temporary ID card, permits and passports"),
        (
            N_(
                "A temporary resident ID card, Hong Kong, Macao or Taiwan permits, residence "
                "permits and passports cannot be read from a photo: type their details by "
                "hand. Other documents than the resident ID card are checked by a person."
            ),
        ),
        N_("temporary ID card passport Hong Kong Macao Taiwan permit residence manual entry"),
        ("document_manual_only",),
    ),
    Topic(
        "id-number-invalid",
        "identity",
        N_("The ID number is refused"),
        (
            N_(
                "A resident ID number has 18 characters: 17 digits and a last character that "
                "is a digit or X. The message says what is wrong: the length, a character, "
                "the check character (usually one mistyped digit), the province code or the "
                "birth date. Compare it with your card digit by digit."
            ),
        ),
        N_("ID number invalid wrong check character X birth date province 18 digits"),
        ("id_number_invalid",),
    ),
    Topic(
        "face-check-fails",
        "identity",
        N_("The live face check fails"),
        (
            N_(
                "Face the camera in good, even light, with nothing covering your face (no "
                "mask, hat or strong backlight). Start by looking straight at the camera, "
                "then slowly turn your head to the side the page asks for."
            ),
            N_(
                "After {face_attempts} failed checks the page offers a manual review: send "
                "your ID card photo and a selfie, and a person decides."
            ),
        ),
        N_("face check failed selfie liveness mismatch no face found head turn camera"),
        ("face_not_found", "liveness_failed", "face_mismatch", "face_attempts_exhausted"),
    ),
    Topic(
        "manual-review",
        "identity",
        N_("How long a manual review takes"),
        (
            N_(
                "Support works from {hours_start} to {hours_end} every day, holidays "
                "included. A request made in those hours is answered within "
                "{sla_minutes} minutes; one made outside them, within {sla_minutes} minutes "
                "after the next opening. The page shows the exact time it is due."
            ),
            N_(
                "A review is also needed when the national register does not match yet, for "
                "example after a move or a change of name. If a review does not certify you, "
                "the page gives the reason and you can submit your details again."
            ),
        ),
        N_("manual review waiting how long support hours due time register mismatch rejected"),
        ("review_not_open",),
    ),
    Topic(
        "identity-conflict",
        "identity",
        N_("My ID number is already certified on another account"),
        (
            N_(
                "One ID number can be certified on exactly one account. The message shows "
                "that account's phone number partly hidden, such as 138****1234: sign in "
                "with that account. The platform never moves a certification by itself."
            ),
            N_(
                "If that account is not yours (someone mistyped a number), open an appeal "
                "from the certification page. You can cancel your own appeal while it is "
                "open; support can revoke a wrong certification, and records who did it and "
                "why."
            ),
        ),
        N_("identity conflict already certified other account appeal ID number used"),
        ("identity_conflict", "appeal_not_open"),
        (("/identity", N_("Identity certification")),),
    ),
    Topic(
        "candidate-number-taken",
        "identity",
        N_("My candidate number is taken"),
        (
            N_(
                "A candidate number (考生号) belongs to one certified candidate per exam "
                "season. Check it against your gaokao registration; if it is right, open an "
                "appeal from the certification page."
            ),
        ),
        N_("candidate number taken used exam number appeal"),
        ("candidate_number_taken",),
    ),
    # ---------------------------------------------------------------- §4 applying
    Topic(
        "not-in-roster",
        "apply",
        N_("No exam was found for me"),
        (
            N_(
                "Applying matches your certified ID number with the school's roster. If no "
                "row matches, check that you chose the right school and exam. If you did, the "
                "school has not imported your data yet, or has it under another ID number: "
                "contact the school's admissions office."
            ),
        ),
        N_("not in roster no exam found school list apply"),
        ("not_in_roster",),
        (("/exams#find", N_("Find an exam")),),
    ),
    Topic(
        "roster-mismatch",
        "apply",
        N_("The school's data differs from mine"),
        (
            N_(
                "The message names what differs: the name or the exam province. Choose the "
                "province where you registered for the gaokao. If what you entered is right, "
                "ask the school to correct its roster, then apply again."
            ),
        ),
        N_("roster mismatch name province different wrong data school correct"),
        ("roster_mismatch",),
    ),
    Topic(
        "confirm-and-pay",
        "apply",
        N_("Confirming the exam and paying the fee"),
        (
            N_(
                "After a match, check the school's data and press Confirm the exam (确认考试). "
                "Where the exam has a fee, pay it next: there is one order per exam, and "
                "paying again never charges twice. Refunds are made by the platform, not in "
                "the app."
            ),
        ),
        N_("confirm exam pay fee payment paid twice refund order"),
        ("already_paid", "payment_required", "payment_not_required"),
        (("/exams", N_("My exams")),),
    ),
    Topic(
        "windows-and-time-zones",
        "apply",
        N_("Exam windows and time zones"),
        (
            N_(
                "Every time is shown in the school's time zone, and the zone is named next to "
                "it (北京时间 is China Standard Time). Deadlines follow the server's clock, "
                "not your phone's. You may record at any time inside the formal window; a "
                "school may give one candidate a later end."
            ),
        ),
        N_("exam window time zone Beijing time start end not open closed deadline clock"),
        ("exam_not_open", "exam_closed"),
    ),
    Topic(
        "mock-exam",
        "apply",
        N_("The mock exam"),
        (
            N_(
                "The mock exam is practice with the same steps as the formal exam. It opens "
                "once you are enrolled and, where there is a fee, have paid. It is never "
                "reviewed; some exams limit how many mock exams you can take. Practise on the "
                "phone you will use for the formal exam."
            ),
        ),
        N_("mock exam practice rehearsal trial limit"),
        ("mock_limit_reached", "payment_required"),
    ),
    # ---------------------------------------------------------------- §5 the exam
    Topic(
        "before-starting",
        "exam",
        N_("Before the formal exam: face verification and device check"),
        (
            N_(
                "On the phone you take the exam with, pass a face verification and a device "
                "check first. Use the same phone as in the mock exam: another phone is "
                "allowed, but it is noted for the school."
            ),
        ),
        N_("before exam face verification device check same phone start recording"),
        ("device_check_required", "face_verification_required", "exam_face_mismatch"),
        (("/device-check", N_("Check this phone")),),
    ),
    Topic(
        "one-device",
        "exam",
        N_("The exam is active on another device"),
        (
            N_(
                "Only one device at a time may hold your formal exam, across all schools. "
                "Continue on the other device, or hand the exam over to this one: the other "
                "device's session then ends. Signing in on several devices just to look is "
                "fine."
            ),
        ),
        N_("another device other phone handover switch phone exam active"),
        ("exam_active_on_other_device",),
    ),
    Topic(
        "attempts",
        "exam",
        N_("Recording attempts"),
        (
            N_(
                "Each subject has a number of recording attempts; starting a recording uses "
                "one, even if you stop early. Attempts need not be in a row: you may stop, "
                "leave and come back while the window is open. The exam list shows the "
                "attempts you have left."
            ),
        ),
        N_("attempts left chances used up how many times record again retry"),
        ("attempts_exhausted", "orientation_required"),
    ),
    Topic(
        "face-checks-during",
        "exam",
        N_("Face checks during recording"),
        (
            N_(
                "While you record, the camera is checked for your face at the start and at "
                "regular intervals. Keep your face in the picture. After 3 failed checks in a "
                "row the subject ends and you return to the exam list, where you pass a fresh "
                "face verification before going on."
            ),
        ),
        N_("face check during recording interrupted returned face verification again"),
        ("face_check_required",),
    ),
    Topic(
        "interruptions",
        "exam",
        N_("A call, a locked screen or leaving the page during recording"),
        (
            N_(
                "A phone call, leaving the exam page or app, locking the screen or a crash "
                "during a recording usually voids that recording: the attempt is used and no "
                "video is kept. Some schools keep it and flag it for their reviewers instead; "
                "the page tells you which happened."
            ),
            N_(
                "Before you start: charge the phone, turn on do-not-disturb, close other apps "
                "and do not switch away. Screen recording and screenshots are prohibited; "
                "under some schools' rules they end the whole exam."
            ),
        ),
        N_("interrupted phone call locked screen left page app crash voided screenshot"),
        ("exam_failed", "recording_not_open"),
    ),
    Topic(
        "recording-page",
        "exam",
        N_("Orientation, the question and the camera picture"),
        (
            N_(
                "Where the exam lets you choose landscape or portrait, choose before pressing "
                "Next: it is then fixed. The question can be shown and hidden at any time. "
                "The front camera's picture may look mirrored on screen; the recorded video "
                "is never mirrored. Each recording stops at the subject's time limit."
            ),
        ),
        N_("orientation landscape portrait question prompt mirrored front camera time limit"),
        ("recording_too_long",),
    ),
    # ---------------------------------------------------------------- §5 submit and upload
    Topic(
        "submission",
        "upload",
        N_("Submitting a recording"),
        (
            N_(
                "Pick one completed recording per subject and submit it. A submission is "
                "final and cannot be changed, and it is only possible while the formal window "
                "is open. A recording that is missing, damaged, cut short or made on another "
                "phone cannot be submitted."
            ),
        ),
        N_("submit submission choose recording final change window closed"),
        ("already_submitted", "submission_window_closed", "recording_not_completed"),
    ),
    Topic(
        "upload-resume",
        "upload",
        N_("The upload stopped or is slow"),
        (
            N_(
                "Uploads resume: after a network switch, a reload or a restart, open the "
                "uploads page on the same phone with the same account and it continues from "
                "what the server already has. Keep the page open and the screen on while it "
                "runs; Wi-Fi is usually faster."
            ),
            N_(
                "The upload may finish after the exam window closes, until the upload period "
                "ends (24 hours later unless the school set another time). After that it is "
                "refused."
            ),
        ),
        N_("upload stuck slow stopped resume network reload continue grace period expired"),
        ("upload_expired", "upload_offset_mismatch", "upload_locked", "upload_not_found"),
        (("/uploads", N_("My uploads")),),
    ),
    Topic(
        "upload-refused",
        "upload",
        N_("The uploaded file was not accepted"),
        (
            N_(
                "At submission your phone states the file's fingerprint (SHA-256) and size; "
                "the server accepts only those exact bytes. A different or changed file is "
                "refused as a checksum mismatch, and a file that is not a playable video is "
                "refused as damaged. Upload the recording you submitted, from the phone that "
                "made it."
            ),
        ),
        N_("checksum mismatch SHA-256 file not accepted damaged invalid video wrong file"),
        ("upload_checksum_mismatch", "recording_invalid", "upload_length_mismatch"),
    ),
    Topic(
        "several-accounts",
        "upload",
        N_("Several accounts on one phone"),
        (
            N_(
                "Recordings are kept on the phone per account. Switching to another account "
                "while one still has unfinished uploads warns you and never deletes them: "
                "sign in with that account again to finish them."
            ),
        ),
        N_("several accounts switch account same phone siblings recordings kept"),
    ),
    # ---------------------------------------------------------------- the phone
    Topic(
        "which-phones",
        "device",
        N_("Which phones work"),
        (
            N_(
                "Formal exams are taken on phones only: tablets and computers are refused. "
                "The minimum systems are Android 7, HarmonyOS 2 and iOS 10 unless the school "
                "sets others. External cameras and microphones are not supported."
            ),
            N_(
                "Run the device check on the phone you will use: it tests the camera, the "
                "microphone, the upload speed, the free storage and the browser."
            ),
        ),
        N_("which phone tablet computer not allowed Android iOS HarmonyOS external camera"),
        ("device_not_allowed",),
        (("/device-check", N_("Check this phone")),),
    ),
    Topic(
        "camera-permission",
        "device",
        N_("The camera or microphone does not open"),
        (
            N_(
                "Allow camera and microphone access for this site in the browser's settings, "
                "close other apps that use the camera, then reload the page. Use the phone's "
                "own camera and microphone."
            ),
        ),
        N_("camera microphone permission denied not working black screen no sound"),
    ),
    Topic(
        "storage-space",
        "device",
        N_("Not enough storage space"),
        (
            N_(
                "Recordings are kept on the phone until they are uploaded: a few minutes of "
                "video take a few hundred megabytes. Free up space before the exam by "
                "removing large files or apps you do not need."
            ),
        ),
        N_("storage space full memory free up not enough"),
    ),
    # ---------------------------------------------------------------- §7 tickets
    Topic(
        "ask-support",
        "support",
        N_("Asking support a question"),
        (
            N_(
                "Signed in, open My questions to support, choose what it is about and write "
                "your question. Each question shows its state and by when support answers: "
                "support works {hours_start}–{hours_end} every day and answers within "
                "{sla_minutes} minutes of service time; a question sent at night is answered "
                "from {hours_start}."
            ),
            N_(
                "At most {open_tickets_max} of your questions can wait for an answer at "
                "once: write again in one of them instead of asking the same thing twice. A "
                "closed question cannot be reopened; ask a new one."
            ),
        ),
        N_("ask support question contact help ticket customer service answer closed"),
        ("ticket_limit_reached", "ticket_closed", "ticket_not_found"),
        (("/help/tickets", N_("My questions to support")),),
    ),
)
