"""Resident ID numbers (GB 11643): normalise, validate, read birth date and sex, mask.

A number is 18 characters: a 6-digit region code whose first two digits are a province, an
8-digit birth date, a 3-digit sequence whose last digit is odd for men and even for women,
and a check character computed with ISO 7064 MOD 11-2 (`0`-`9` or `X`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

# ISO 7064 MOD 11-2: weight of position i (0-based, 17 positions) is 2^(17-i) mod 11.
WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
CHECK_CHARACTERS = "10X98765432"

# Province-level codes (GB/T 2260) with the short and the official name: the official name
# is how an address on the card starts. 71/81/82/83 appear on residence permits.
PROVINCES: dict[str, tuple[str, str]] = {
    "11": ("北京", "北京市"),
    "12": ("天津", "天津市"),
    "13": ("河北", "河北省"),
    "14": ("山西", "山西省"),
    "15": ("内蒙古", "内蒙古自治区"),
    "21": ("辽宁", "辽宁省"),
    "22": ("吉林", "吉林省"),
    "23": ("黑龙江", "黑龙江省"),
    "31": ("上海", "上海市"),
    "32": ("江苏", "江苏省"),
    "33": ("浙江", "浙江省"),
    "34": ("安徽", "安徽省"),
    "35": ("福建", "福建省"),
    "36": ("江西", "江西省"),
    "37": ("山东", "山东省"),
    "41": ("河南", "河南省"),
    "42": ("湖北", "湖北省"),
    "43": ("湖南", "湖南省"),
    "44": ("广东", "广东省"),
    "45": ("广西", "广西壮族自治区"),
    "46": ("海南", "海南省"),
    "50": ("重庆", "重庆市"),
    "51": ("四川", "四川省"),
    "52": ("贵州", "贵州省"),
    "53": ("云南", "云南省"),
    "54": ("西藏", "西藏自治区"),
    "61": ("陕西", "陕西省"),
    "62": ("甘肃", "甘肃省"),
    "63": ("青海", "青海省"),
    "64": ("宁夏", "宁夏回族自治区"),
    "65": ("新疆", "新疆维吾尔自治区"),
    "71": ("台湾", "台湾省"),
    "81": ("香港", "香港特别行政区"),
    "82": ("澳门", "澳门特别行政区"),
    "83": ("台湾", "台湾省"),
}

# ASCII digits only: `\d` would also match other scripts' digits, which int() reads but
# the check character does not.
_SHAPE = re.compile(r"^[0-9]{17}[0-9X]$")
_SPACES = re.compile(r"[\s\u3000]+")


class IdNumberReason(StrEnum):
    """Why a number is not a valid resident ID number (the `reason` of `id_number_invalid`)."""

    length = "length"
    characters = "characters"
    check_character = "check_character"
    province = "province"
    birth_date = "birth_date"
    birth_date_mismatch = "birth_date_mismatch"


class IdNumberError(ValueError):
    """A number broke one rule; `reason` names which."""

    def __init__(self, reason: IdNumberReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True)
class IdNumber:
    """A valid resident ID number and what it says about its holder."""

    number: str
    province_code: str
    birth_date: date
    sex: str  # "male" | "female"

    @property
    def province(self) -> str:
        """The province's short Chinese name (北京, 广西, ...)."""
        return PROVINCES[self.province_code][0]

    @property
    def masked(self) -> str:
        """The number as shown everywhere but where a decision needs it."""
        return mask_id_number(self.number)


def normalise_id_number(raw: str) -> str:
    """Full-width characters to ASCII (NFKC), spaces removed, a lowercase `x` made `X`."""
    return _SPACES.sub("", unicodedata.normalize("NFKC", raw)).upper()


def check_character(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("need exactly 17 ASCII digits")
    total = sum(int(digit) * weight for digit, weight in zip(first17, WEIGHTS, strict=True))
    return CHECK_CHARACTERS[total % 11]


def _birth_date(number: str, today: date | None) -> date:
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise IdNumberError(IdNumberReason.birth_date) from None
    if born.year < 1900 or (today is not None and born > today):
        raise IdNumberError(IdNumberReason.birth_date)
    return born


def parse_id_number(
    raw: str, *, today: date | None = None, stated_birth_date: date | None = None
) -> IdNumber:
    """Validate a resident ID number; raise `IdNumberError` naming the first rule it breaks.

    Rules in order: 18 characters, digits with a final digit or X, the check character, a
    real province, a real birth date (not after `today`), and, when the holder stated a birth
    date, the same one.
    """
    number = normalise_id_number(raw)
    if len(number) != 18:
        raise IdNumberError(IdNumberReason.length)
    if not _SHAPE.match(number):
        raise IdNumberError(IdNumberReason.characters)
    if check_character(number[:17]) != number[17]:
        raise IdNumberError(IdNumberReason.check_character)
    if number[:2] not in PROVINCES:
        raise IdNumberError(IdNumberReason.province)
    born = _birth_date(number, today)
    if stated_birth_date is not None and stated_birth_date != born:
        raise IdNumberError(IdNumberReason.birth_date_mismatch)
    sex = "male" if int(number[16]) % 2 else "female"
    return IdNumber(number=number, province_code=number[:2], birth_date=born, sex=sex)


def is_valid_id_number(raw: str, *, today: date | None = None) -> bool:
    """Whether `raw` passes every rule of `parse_id_number`."""
    try:
        parse_id_number(raw, today=today)
    except IdNumberError:
        return False
    return True


def mask_id_number(number: str) -> str:
    """Show the region and the last four characters only: `110101********123X`.

    Any other document number keeps its first two and last two characters.
    """
    if len(number) == 18:
        return f"{number[:6]}{'*' * 8}{number[-4:]}"
    if len(number) <= 4:
        return "*" * len(number)
    return f"{number[:2]}{'*' * (len(number) - 4)}{number[-2:]}"


def province_of_address(address: str) -> str | None:
    """The province code an address starts with (official or short name), else None."""
    text = address.strip()
    for code, (short, official) in PROVINCES.items():
        if text.startswith(official) or text.startswith(short):
            return code
    return None


# Every accepted spelling of a province (code, short name, official name) → short name.
_PROVINCE_NAMES = {
    spelling: short
    for code, (short, official) in PROVINCES.items()
    for spelling in (code, short, official)
}


def normalise_province(raw: str) -> str | None:
    """A province's short name (北京, 广西) from its short name, official name or 2-digit code."""
    return _PROVINCE_NAMES.get("".join(raw.split()))
