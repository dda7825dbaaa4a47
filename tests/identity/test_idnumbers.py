"""SPEC §3 ID number rules (GB 11643): normalisation, check character, date, province, mask."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vexam.identity.idnumbers import (
    PROVINCES,
    IdNumberError,
    IdNumberReason,
    check_character,
    is_valid_id_number,
    mask_id_number,
    normalise_id_number,
    parse_id_number,
    province_of_address,
)

# The example number of GB 11643 (Beijing Chaoyang, 1949-12-31, a woman).
VALID = "11010519491231002X"
FULL_WIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")


def make_number(region: str = "110101", born: str = "20080229", seq: str = "123") -> str:
    """A valid number from its parts (the check character computed)."""
    first17 = region + born + seq
    return first17 + check_character(first17)


def test_known_check_characters() -> None:
    """§3: ISO 7064 MOD 11-2 on published numbers, including an X."""
    assert check_character("11010519491231002") == "X"
    assert parse_id_number(VALID).sex == "female"
    assert parse_id_number(VALID).birth_date == date(1949, 12, 31)


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_check_character_property(first17: str) -> None:
    """§3: exactly one check character fits; changing any one digit breaks it."""
    check = check_character(first17)
    assert check in "0123456789X"
    weights = [pow(2, 17 - i, 11) for i in range(17)]
    value = 10 if check == "X" else int(check)
    # The defining property: the weighted sum including the check digit is 1 mod 11.
    assert (sum(int(d) * w for d, w in zip(first17, weights, strict=True)) + value) % 11 == 1
    for position in range(17):
        changed = (
            first17[:position] + str((int(first17[position]) + 1) % 10) + first17[position + 1 :]
        )
        assert check_character(changed) != check


@given(
    st.sampled_from(sorted(PROVINCES)),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)),
    st.integers(0, 999),
    st.booleans(),
    st.booleans(),
)
def test_normaliser_property(
    province: str, born: date, seq: int, full_width: bool, spaced: bool
) -> None:
    """§3: lowercase x, full-width characters and spaces are accepted and normalised."""
    number = make_number(f"{province}0101", born.strftime("%Y%m%d"), f"{seq:03d}")
    typed = number.lower()
    if full_width:
        typed = typed.translate(FULL_WIDTH)
    if spaced:
        typed = f" {typed[:6]} {typed[6:14]}\u3000{typed[14:]} "
    assert normalise_id_number(typed) == number
    parsed = parse_id_number(typed)
    assert parsed.number == number
    assert parsed.birth_date == born
    assert parsed.sex == ("male" if seq % 2 else "female")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("1101051949123100", IdNumberReason.length),
        (VALID + "1", IdNumberReason.length),
        ("1101051949123100A2", IdNumberReason.characters),
        ("X10105194912310021", IdNumberReason.characters),
        ("110105194912310021", IdNumberReason.check_character),
        (make_number("990101", "20000101"), IdNumberReason.province),
        (make_number("110101", "20010229"), IdNumberReason.birth_date),
        (make_number("110101", "18991231"), IdNumberReason.birth_date),
        (make_number("110101", "20991231"), IdNumberReason.birth_date),
    ],
)
def test_each_failure_has_its_own_reason(raw: str, reason: IdNumberReason) -> None:
    """§3 id_number_invalid: one reason per broken rule."""
    with pytest.raises(IdNumberError) as caught:
        parse_id_number(raw, today=date(2026, 6, 1))
    assert caught.value.reason is reason
    assert not is_valid_id_number(raw, today=date(2026, 6, 1))


def test_leap_day_and_stated_birth_date() -> None:
    """§3: the embedded birth date must be real and match the stated one."""
    leap = make_number("110101", "20080229")
    assert parse_id_number(leap).birth_date == date(2008, 2, 29)
    assert parse_id_number(leap, stated_birth_date=date(2008, 2, 29)).number == leap
    with pytest.raises(IdNumberError) as caught:
        parse_id_number(leap, stated_birth_date=date(2008, 3, 1))
    assert caught.value.reason is IdNumberReason.birth_date_mismatch


def test_mask() -> None:
    """§8: shown as 110101********123X everywhere but where a decision needs it."""
    assert mask_id_number("11010119491231002X") == "110101********002X"
    assert mask_id_number("E12345678") == "E1*****78"


def test_province_of_address() -> None:
    """An address starts with a province-level name (official or short)."""
    assert province_of_address("广西壮族自治区南宁市青秀区") == "45"
    assert province_of_address("北京市东城区") == "11"
    assert province_of_address("东城区景山街道") is None
