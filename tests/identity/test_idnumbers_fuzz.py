"""Issue 10 'bad input' for the ID-number parser (GB 11643): any text or bytes give a valid
number or an `IdNumberError` naming a reason, never another exception; every valid number
generated from its parts reads back as those parts, in any spelling a person may type; and
the mask shows the region and the last four characters, nothing else.

Example counts are bounded: each property runs in well under a second.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vexam.identity.idnumbers import (
    PROVINCES,
    IdNumberError,
    IdNumberReason,
    check_character,
    is_valid_id_number,
    mask_id_number,
    normalise_id_number,
    normalise_province,
    parse_id_number,
    province_of_address,
)

TODAY = date(2026, 6, 1)
FAST = settings(max_examples=300, deadline=None, derandomize=True)
FULL_WIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")
# Digits of other scripts: str.isdigit and `\d` accept them, the check character cannot.
FOREIGN_DIGITS = "٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹०१२३४५६७८९০১২৩৪৫৬৭৮৯๐๑๒๓๔๕๖๗๘๙²³¹"

# Text that looks like an ID number: the right length, any digits, separators and letters.
number_like = st.text(
    alphabet=st.sampled_from("0123456789Xx ０１２３４５６７８９Ｘ-\u3000\t\n" + FOREIGN_DIGITS),
    min_size=15,
    max_size=22,
)
any_text = st.one_of(st.text(max_size=40), number_like)


@st.composite
def valid_numbers(draw: st.DrawFn) -> tuple[str, str, date, int]:
    """A valid number with the parts it was made of: (number, province, birth date, seq)."""
    province = draw(st.sampled_from(sorted(PROVINCES)))
    region = province + draw(st.text(alphabet="0123456789", min_size=4, max_size=4))
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=TODAY))
    seq = draw(st.integers(0, 999))
    first17 = f"{region}{born:%Y%m%d}{seq:03d}"
    return first17 + check_character(first17), province, born, seq


def _outcome(raw: str) -> IdNumberReason | str:
    """The parsed number, or the reason it is refused; any other exception fails the test."""
    try:
        return parse_id_number(raw, today=TODAY).number
    except IdNumberError as exc:
        return exc.reason


@FAST
@given(any_text)
@example("١١٠١٠٥١٩٤٩١٢٣١٠٠٢X")  # Arabic-Indic digits: once a ValueError (a 500)
@example("11010519491231002X\n")
@example("11010519491231002²")
def test_any_text_is_a_number_or_a_reason(raw: str) -> None:
    """Whatever is typed: a valid 18-character ASCII number, or a refusal with a reason;
    `is_valid_id_number` agrees and never raises either."""
    outcome = _outcome(raw)
    if isinstance(outcome, IdNumberReason):
        assert not is_valid_id_number(raw, today=TODAY)
    else:
        assert len(outcome) == 18 and outcome.isascii()
        assert outcome[:17].isdigit() and outcome[17] in "0123456789X"
        assert is_valid_id_number(raw, today=TODAY)


@FAST
@given(st.binary(max_size=40), st.sampled_from(["utf-8", "gb18030", "latin-1", "utf-16"]))
def test_any_bytes_decoded_any_way_are_a_number_or_a_reason(raw: bytes, encoding: str) -> None:
    """A form or a roster cell holding arbitrary bytes, decoded as a browser or a
    spreadsheet might: still a number or a reason."""
    _outcome(raw.decode(encoding, errors="replace"))


@pytest.mark.parametrize("digit", list("٣۳३৩๓²"))
def test_digits_of_other_scripts_are_characters(digit: str) -> None:
    """Regression: a number spelled with digits of another script was a ValueError, not a
    refusal; it is `characters` (unless NFKC makes it ASCII, like the superscripts)."""
    raw = "11010519491231002" + digit
    if normalise_id_number(raw).isascii():
        return
    assert _outcome(raw) is IdNumberReason.characters
    assert _outcome(digit * 17 + "X") is IdNumberReason.characters


@FAST
@given(valid_numbers(), st.booleans(), st.booleans(), st.booleans())
def test_valid_numbers_round_trip(
    made: tuple[str, str, date, int], full_width: bool, spaced: bool, lower: bool
) -> None:
    """A generated number reads back as its province, birth date and sex, however typed;
    the parsed number normalises to itself."""
    number, province, born, seq = made
    typed = number.lower() if lower else number
    if full_width:
        typed = typed.translate(FULL_WIDTH)
    if spaced:
        typed = f" {typed[:6]} {typed[6:14]}\u3000{typed[14:]}\t"
    parsed = parse_id_number(typed, today=TODAY, stated_birth_date=born)
    assert parsed.number == number
    assert (parsed.province_code, parsed.birth_date) == (province, born)
    assert parsed.sex == ("male" if seq % 2 else "female")
    assert parse_id_number(parsed.number, today=TODAY) == parsed
    assert normalise_id_number(parsed.number) == parsed.number


@FAST
@given(valid_numbers(), st.integers(0, 17), st.sampled_from("0123456789X"))
def test_one_changed_character_is_refused(
    made: tuple[str, str, date, int], position: int, replacement: str
) -> None:
    """Changing any one character of a valid number breaks the check character (or the
    shape, for an X before the end)."""
    number = made[0]
    changed = number[:position] + replacement + number[position + 1 :]
    if changed != number:
        assert _outcome(changed) in (IdNumberReason.check_character, IdNumberReason.characters)


def _visible(masked: str) -> list[int]:
    return [i for i, char in enumerate(masked) if char != "*"]


@FAST
@given(st.one_of(valid_numbers().map(lambda made: made[0]), st.text(max_size=30)))
def test_mask_reveals_no_more_than_allowed(number: str) -> None:
    """The mask keeps the length, shows only the region and the last four characters of an
    18-character number (two and two of other documents, none of four or fewer), and two
    numbers that differ only where the mask hides have the same mask."""
    masked = mask_id_number(number)
    assert len(masked) == len(number)
    if len(number) == 18:
        allowed = set(range(6)) | set(range(14, 18))
    elif len(number) <= 4:
        allowed = set()
    else:
        allowed = {0, 1, len(number) - 2, len(number) - 1}
    assert set(_visible(masked)) <= allowed
    for i in _visible(masked):
        assert masked[i] == number[i]
    hidden = [i for i in range(len(number)) if i not in allowed]
    other = "".join("7" if i in hidden else char for i, char in enumerate(number))
    assert mask_id_number(other) == masked


@FAST
@given(valid_numbers())
def test_parsed_numbers_mask_as_the_module_does(made: tuple[str, str, date, int]) -> None:
    """IdNumber.masked is the mask of the number: eight hidden digits, the birth date."""
    parsed = parse_id_number(made[0], today=TODAY)
    assert parsed.masked == mask_id_number(parsed.number)
    assert parsed.masked[6:14] == "*" * 8
    assert f"{parsed.birth_date:%Y%m%d}" not in parsed.masked


@FAST
@given(st.text(max_size=30))
def test_province_readers_take_any_text(raw: str) -> None:
    """The address and province readers answer a known code or None, never raise."""
    assert province_of_address(raw) in (None, *PROVINCES)
    short = normalise_province(raw)
    assert short is None or short in {name for name, _ in PROVINCES.values()}
