"""Languages: Simplified Chinese by default, English when the user chooses it."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.messages.pofile import read_po

LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


def N_(message: str) -> str:
    """Mark a literal for extraction without translating it here (gettext_noop)."""
    return message


class Msg(str):
    """A message parameter that is itself a msgid: translated when the message is rendered."""

    __slots__ = ()


@cache
def catalog(locale: str) -> dict[str, str]:
    """msgid → translation for `locale`, read once from its Babel catalog."""
    path = LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        po = read_po(handle, locale=locale)
    return {
        str(message.id): str(message.string)
        for message in po
        if message.id and message.string and not message.fuzzy
    }


def normalise_locale(value: str | None) -> str | None:
    """Map a tag such as 'en-US', 'zh', 'zh_CN' onto a supported locale, or None."""
    if not value:
        return None
    tag = value.strip().replace("-", "_").lower()
    if tag.startswith("en"):
        return "en"
    if tag.startswith("zh"):
        return "zh_CN"
    return None


def negotiate(accept_language: str | None) -> str:
    """Locale from Accept-Language: English only when English is the most preferred language.

    A phone set to any other language still gets Chinese (SPEC §1).
    """
    if not accept_language:
        return DEFAULT_LOCALE
    best_tag, best_q = "", -1.0
    for part in accept_language.split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0 and quality > best_q:
            best_tag, best_q = tag, quality
    return "en" if normalise_locale(best_tag) == "en" else DEFAULT_LOCALE


def gettext(locale: str, message: str) -> str:
    """Translate `message` (an English msgid) into `locale`; English falls back to the msgid."""
    return catalog(locale).get(message, message)


def format_datetime(value: datetime, timezone: str, locale: str) -> str:
    """Show an instant in the school's time zone, e.g. '2026-06-01 10:15 (Asia/Shanghai)'."""
    local = value.astimezone(ZoneInfo(timezone))
    if local.second or local.microsecond:
        # Shown to the minute, rounded up: "after 10:42" must never be too early.
        local = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
    zone = "北京时间" if timezone == "Asia/Shanghai" and locale == "zh_CN" else timezone
    return f"{local:%Y-%m-%d %H:%M} ({zone})"


def _shown(value: Any, locale: str, timezone: str) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value, timezone, locale)
    if isinstance(value, Msg):
        return gettext(locale, value)
    return value


def render_message(locale: str, message: str, params: dict[str, Any], timezone: str) -> str:
    """Translate a catalogue message and fill its placeholders."""
    shown = {key: _shown(value, locale, timezone) for key, value in params.items()}
    try:
        return gettext(locale, message).format(**shown)
    except (KeyError, IndexError):
        # A missing param must never turn a refusal into a 500.
        return gettext(locale, message)
