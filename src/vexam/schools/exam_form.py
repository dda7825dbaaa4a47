"""The exam form of the school console: exam settings to form fields and back (SPEC §4).

Times are typed in the school's time zone, grace in hours, the fee in yuan, a rubric as one
`name: points` per line. What cannot even be read as the settings (a word where a number
belongs) is refused with `exam_setting_invalid` naming the field, as the service refuses
settings it cannot accept.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from starlette.datastructures import FormData

from vexam.core.errors import VexamError
from vexam.core.policy import PlatformPolicy
from vexam.exams import schemas
from vexam.exams import service as exams


def from_validation(exc: ValidationError, prefix: str = "") -> VexamError:
    first = exc.errors()[0]
    field = prefix + ".".join(str(part) for part in first["loc"])
    kind = str(first["type"])
    reason = (
        "too long"
        if kind.endswith("too_long")
        else "not one of the choices"
        if kind in ("literal_error", "enum")
        else "not valid"
    )
    return exams.setting_invalid(field, reason)


def local_input(value: datetime | None, zone: str) -> str:
    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M") if value else ""


def hours_text(minutes: int) -> str:
    return str(minutes // 60) if minutes % 60 == 0 else f"{minutes / 60:.2f}".rstrip("0")


def blank_subject() -> dict[str, str]:
    return {
        "name": "",
        "name_en": "",
        "attempts": "2",
        "max_seconds": "300",
        "prompt": "",
        "camera": "either",
        "orientation": "choice",
        "face_check_seconds": "60",
        "mock_face_checks": "walkthrough",
        "rubric": "",
        "rubric_step": "0.5",
    }


def blank_form(devices: PlatformPolicy | None = None) -> dict[str, Any]:
    """A new exam's form; its device rules are the platform policy's defaults."""
    return {
        "code": "",
        "name": "",
        "name_en": "",
        "season": "",
        "starts": "",
        "ends": "",
        "grace_hours": "24",
        "mock_enabled": True,
        "mock_limit": "",
        "fee_yuan": "0",
        "published": False,
        "device_classes": list(devices.device_classes) if devices else ["phone"],
        "min_os": dict(devices.min_os) if devices else dict(schemas.DEFAULT_MIN_OS),
        "anti_cheat": exams.effective_anti_cheat({}),
        "subjects": [blank_subject()],
    }


def points_text(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def form_of(exam: schemas.ExamOut, zone: str) -> dict[str, Any]:
    """The form as an exam's stored settings fill it."""
    return {
        "code": exam.code,
        "name": exam.name,
        "name_en": exam.name_en or "",
        "season": exam.season,
        "starts": local_input(exam.formal_starts_at, zone),
        "ends": local_input(exam.formal_ends_at, zone),
        "grace_hours": hours_text(exam.upload_grace_minutes),
        "mock_enabled": exam.mock_enabled,
        "mock_limit": "" if exam.mock_limit is None else str(exam.mock_limit),
        "fee_yuan": yuan(exam.fee_cents),
        "published": exam.published,
        "device_classes": list(exam.device_policy.get("allowed_classes", [])),
        "min_os": dict(exam.device_policy.get("min_os", {})),
        "anti_cheat": exams.effective_anti_cheat(exam.anti_cheat),
        "subjects": [
            {
                "name": s.name,
                "name_en": s.name_en or "",
                "attempts": str(s.attempts),
                "max_seconds": str(s.max_seconds),
                "prompt": s.prompt,
                "camera": s.camera,
                "orientation": s.orientation,
                "face_check_seconds": str(s.face_check_seconds),
                "mock_face_checks": s.mock_face_checks,
                "rubric": "\n".join(
                    f"{c.name}: {points_text(c.max_points)}" for c in s.rubric.criteria
                ),
                "rubric_step": points_text(s.rubric.step),
            }
            for s in exam.subjects
        ],
    }


def field_text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def field_texts(form: FormData, name: str) -> list[str]:
    return [value if isinstance(value, str) else "" for value in form.getlist(name)]


def posted_form(form: FormData) -> dict[str, Any]:
    """What the user typed, as the form shows it again."""
    keys = list(blank_subject())
    columns = {key: field_texts(form, f"subject_{key}") for key in keys}
    count = max((len(values) for values in columns.values()), default=0)
    subjects = [
        {key: (columns[key][i] if i < len(columns[key]) else "") for key in keys}
        for i in range(count)
    ]
    return {
        **{key: field_text(form, key) for key in ("code", "name", "name_en", "season", "starts")},
        **{key: field_text(form, key) for key in ("ends", "grace_hours", "mock_limit", "fee_yuan")},
        "mock_enabled": form.get("mock_enabled") == "on",
        "published": form.get("published") == "on",
        "device_classes": field_texts(form, "device_class"),
        "min_os": {name: field_text(form, f"min_os_{name}") for name in schemas.OS_NAMES},
        "anti_cheat": {
            kind: field_text(form, f"anti_cheat_{kind}")
            for kind in schemas.EVENT_KINDS
            if field_text(form, f"anti_cheat_{kind}")
        },
        "subjects": subjects,
    }


def whole_number(value: str, field: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise exams.setting_invalid(field, "a whole number") from None


def decimal_number(value: str, field: str, reason: str = "a number") -> Decimal:
    try:
        number = Decimal(value.strip().replace(",", ""))
    except InvalidOperation:
        raise exams.setting_invalid(field, reason) from None
    if not number.is_finite():
        raise exams.setting_invalid(field, reason)
    return number


def moment_in_zone(value: str, zone: str, field: str) -> datetime:
    """A local date-time typed in the school's time zone, as an aware datetime."""
    try:
        local = datetime.fromisoformat(value.strip())
    except ValueError:
        raise exams.setting_invalid(field, "a date and time") from None
    return local.replace(tzinfo=ZoneInfo(zone)) if local.tzinfo is None else local


def rubric_of(text: str, step: str, field: str) -> dict[str, Any]:
    criteria = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, colon, points = line.replace("：", ":").rpartition(":")
        if not colon:
            raise exams.setting_invalid(field, "one 'name: points' per line")
        value = decimal_number(points, field, "one 'name: points' per line")
        criteria.append({"name": name.strip(), "max_points": float(value)})
    return {"criteria": criteria, "step": float(decimal_number(step or "0.5", field))}


def exam_in(state: dict[str, Any], zone: str) -> schemas.ExamIn:
    """The settings a posted form stands for; refusals name the field as the service does."""
    subjects = []
    for i, s in enumerate(state["subjects"]):
        where = f"subjects.{i}"
        subjects.append(
            {
                "name": s["name"],
                "name_en": s["name_en"] or None,
                "attempts": whole_number(s["attempts"], f"{where}.attempts"),
                "max_seconds": whole_number(s["max_seconds"], f"{where}.max_seconds"),
                "prompt": s["prompt"],
                "camera": s["camera"],
                "orientation": s["orientation"],
                "face_check_seconds": whole_number(
                    s["face_check_seconds"], f"{where}.face_check_seconds"
                ),
                "mock_face_checks": s["mock_face_checks"],
                "rubric": rubric_of(s["rubric"], s["rubric_step"], f"{where}.rubric"),
            }
        )
    fee = decimal_number(
        state["fee_yuan"] or "0", "fee_cents", "an amount in yuan such as 180 or 180.50"
    )
    if fee != fee.quantize(Decimal("0.01")):
        raise exams.setting_invalid("fee_cents", "an amount in yuan such as 180 or 180.50")
    grace = decimal_number(state["grace_hours"] or "0", "upload_grace_minutes")
    payload = {
        "code": state["code"],
        "name": state["name"],
        "name_en": state["name_en"] or None,
        "season": state["season"],
        "formal_starts_at": moment_in_zone(state["starts"], zone, "formal_starts_at"),
        "formal_ends_at": moment_in_zone(state["ends"], zone, "formal_ends_at"),
        "upload_grace_minutes": int((grace * 60).to_integral_value()),
        "mock_enabled": state["mock_enabled"],
        "mock_limit": whole_number(state["mock_limit"], "mock_limit")
        if state["mock_limit"]
        else None,
        "fee_cents": int(fee * 100),
        "device_policy": {
            "allowed_classes": state["device_classes"],
            "min_os": {name: v for name, v in state["min_os"].items() if v},
        },
        "anti_cheat": state["anti_cheat"],
        "published": state["published"],
        "subjects": subjects,
    }
    try:
        return schemas.ExamIn.model_validate(payload)
    except ValidationError as exc:
        raise from_validation(exc) from None


def yuan(cents: int) -> str:
    """An amount in cents as typed in yuan: 180, or 180.50."""
    return f"{cents // 100}.{cents % 100:02d}" if cents % 100 else str(cents // 100)
