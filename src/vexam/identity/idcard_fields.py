"""Fields of the resident ID card's portrait side, from OCR text boxes (SPEC §3).

Pure functions: no OCR engine here, so the rules can be tested on synthetic box lists. The
reader in `vexam.identity.ocr` feeds this module what RapidOCR found.

What the card says is only trusted as far as it can be checked: the ID number must pass
every GB 11643 rule (never repaired), birth date and sex come from that number, the
ethnicity must be one of the 56 official names, and the address must start with a
province-level name followed by official prefecture- and county-level names (GB/T 2260,
see `vexam.identity.regions`). Anything else that looks off is returned, marked `doubtful`,
for the candidate to look at.
"""

from __future__ import annotations

import math
import re
import statistics
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from vexam.identity.ethnicities import ETHNICITIES, snap_ethnicity
from vexam.identity.idnumbers import IdNumber, IdNumberError, parse_id_number
from vexam.identity.regions import SNAPPED, check_address

__all__ = ["ETHNICITIES", "snap_ethnicity"]


# A line score under this is shown to the candidate; it does not decide right from wrong.
LOW_CONFIDENCE = 0.80

UNCLEAR_REASONS = frozenset(
    {"undecodable", "too_small", "blurry", "no_card_text", "id_number_unreadable"}
)


class IdPhotoUnclear(Exception):
    """The photo cannot give a trustworthy reading (`id_photo_unclear`); `reason` says why."""

    def __init__(self, reason: str) -> None:
        if reason not in UNCLEAR_REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class OcrField:
    """One field as read: the value, the OCR line score, and whether the UI must highlight it."""

    value: str | None
    confidence: float
    doubtful: bool
    note: str | None = None


@dataclass(frozen=True)
class IdCardReading:
    """The six fields of the portrait side and the photo's sharpness."""

    name: OcrField
    sex: OcrField
    ethnicity: OcrField
    birth_date: OcrField
    address: OcrField
    id_number: OcrField
    sharpness: float

    def fields(self) -> dict[str, OcrField]:
        """The six fields by name, in the card's order."""
        return {
            "name": self.name,
            "sex": self.sex,
            "ethnicity": self.ethnicity,
            "birth_date": self.birth_date,
            "address": self.address,
            "id_number": self.id_number,
        }


@dataclass(frozen=True)
class OcrBox:
    """One text line found by the OCR engine: four corners (clockwise from top-left)."""

    text: str
    score: float
    points: tuple[tuple[float, float], ...]

    @classmethod
    def of(cls, text: str, score: float, points: Iterable[Sequence[float]]) -> OcrBox:
        """Build a box from the engine's `[points, text, score]` parts."""
        corners = tuple((float(p[0]), float(p[1])) for p in points)
        if len(corners) != 4:
            raise ValueError("a box has four corners")
        return cls(text=text, score=float(score), points=corners)


# --- geometry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Seg:
    """A box in the card's own frame (rotation removed): left, right, centre y, height."""

    text: str
    score: float
    left: float
    right: float
    cy: float
    height: float


def _angle(box: OcrBox) -> float:
    (x0, y0), (x1, y1) = box.points[0], box.points[1]
    return math.atan2(y1 - y0, x1 - x0)


def _dimensions(box: OcrBox) -> tuple[float, float]:
    p = box.points
    width = (math.dist(p[0], p[1]) + math.dist(p[3], p[2])) / 2
    height = (math.dist(p[0], p[3]) + math.dist(p[1], p[2])) / 2
    return width, height


def _segments(boxes: Sequence[OcrBox]) -> list[_Seg]:
    # The text angle of long boxes is reliable; one- or two-character boxes are not.
    angles = [_angle(b) for b in boxes if _dimensions(b)[0] >= 2.5 * _dimensions(b)[1]]
    theta = statistics.median(angles) if angles else 0.0
    cos, sin = math.cos(theta), math.sin(theta)
    segments = []
    for box in boxes:
        width, height = _dimensions(box)
        cx = sum(p[0] for p in box.points) / 4
        cy = sum(p[1] for p in box.points) / 4
        x = cx * cos + cy * sin
        y = -cx * sin + cy * cos
        segments.append(
            _Seg(box.text, box.score, x - width / 2, x + width / 2, y, max(height, 1.0))
        )
    return segments


def _rows(segments: list[_Seg]) -> list[list[_Seg]]:
    """Group segments into text rows, top to bottom, each row left to right."""
    rows: list[list[_Seg]] = []
    for seg in sorted(segments, key=lambda s: s.cy):
        if rows:
            row = rows[-1]
            centre = statistics.fmean(s.cy for s in row)
            height = statistics.median([s.height for s in row])
            if abs(seg.cy - centre) <= 0.5 * min(height, seg.height):
                row.append(seg)
                continue
        rows.append([seg])
    return [sorted(row, key=lambda s: s.left) for row in rows]


# --- text helpers --------------------------------------------------------------------------

_SPACE = re.compile(r"[\s\u3000]+")
_NUMBER_RUN = re.compile(r"(?<![0-9X])[0-9]{17}[0-9X](?![0-9X])")


def _clean(text: str) -> str:
    """NFKC (full-width digits and letters to ASCII) and no spaces."""
    return _SPACE.sub("", unicodedata.normalize("NFKC", text))


def _is_cjk(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff"


# --- labels --------------------------------------------------------------------------------

_LABELS = {
    "name": "姓名",
    "sex": "性别",
    "ethnicity": "民族",
    "birth": "出生",
    "address": "住址",
    "number": "公民身份号码",
}


def _strip_label(text: str, label: str, *, fuzzy: bool) -> str | None:
    """`text` without a leading `label`, or None when it does not start with it.

    With `fuzzy`, one wrong character of the label is tolerated (small label print is the
    first to suffer), as long as the rest matches.
    """
    head = text[: len(label)]
    if head == label:
        return text[len(label) :]
    one_off = len(head) == len(label) and sum(a != b for a, b in zip(head, label, strict=True)) == 1
    if fuzzy and one_off:
        return text[len(label) :]
    return None


@dataclass
class _Row:
    segments: list[_Seg]

    @property
    def text(self) -> str:
        return "".join(_clean(s.text) for s in self.segments)

    @property
    def score(self) -> float:
        return min((s.score for s in self.segments), default=0.0)

    @property
    def left(self) -> float:
        return self.segments[0].left

    @property
    def height(self) -> float:
        return statistics.median([s.height for s in self.segments])


@dataclass(frozen=True)
class _Number:
    parsed: IdNumber
    row: int
    score: float


def _find_number(rows: list[_Row], today: date | None) -> _Number | None:
    """The one valid ID number on the card; None if there is none or two that disagree."""
    found: dict[str, _Number] = {}
    for index, row in enumerate(rows):
        # A row's boxes joined, and each box alone: the number may be split or glued.
        texts = [(row.text, row.score)] + [(_clean(s.text), s.score) for s in row.segments]
        for text, score in texts:
            for match in _NUMBER_RUN.finditer(text.upper()):
                try:
                    parsed = parse_id_number(match.group(), today=today)
                except IdNumberError:
                    continue
                known = found.get(parsed.number)
                if known is None or score > known.score:
                    found[parsed.number] = _Number(parsed, index, score)
    if len(found) != 1:
        return None
    return next(iter(found.values()))


def _label_row(rows: list[_Row], key: str, *, fuzzy: bool) -> int | None:
    label = _LABELS[key]
    for index, row in enumerate(rows):
        if _strip_label(row.text, label, fuzzy=fuzzy) is not None:
            return index
    return None


def _field(value: str | None, score: float, note: str | None = None) -> OcrField:
    if value is None or value == "":
        return OcrField(None, score, True, note or "missing")
    if note is not None:
        return OcrField(value, score, True, note)
    if score < LOW_CONFIDENCE:
        return OcrField(value, score, True, "low_confidence")
    return OcrField(value, score, False, None)


_BIRTH = re.compile(r"(\d{4})年?(\d{1,2})月?(\d{1,2})日?")


def _read_birth(text: str) -> date | None:
    match = _BIRTH.search(text)
    if not match:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


Quad = tuple[tuple[float, float], ...]


def label_box(boxes: Sequence[OcrBox], key: str) -> OcrBox | None:
    """The box that starts with the label `key` ("name", "sex", "ethnicity", ...), if read."""
    label = _LABELS[key]
    for fuzzy in (False, True):
        for box in boxes:
            if _strip_label(_clean(box.text), label, fuzzy=fuzzy) is not None:
                return box
    return None


def region_after(box: OcrBox, label_chars: int, length: float) -> Quad:
    """The quad right of the first `label_chars` characters of `box`, `length` heights long.

    Corners clockwise from top-left, following the box's own direction, 1.4 box heights
    tall (values are printed larger than labels).
    """
    p = box.points
    width, height = _dimensions(box)
    ux, uy = (p[1][0] - p[0][0]) / max(width, 1.0), (p[1][1] - p[0][1]) / max(width, 1.0)
    vx, vy = -uy, ux  # down the page
    cx = (p[0][0] + p[3][0]) / 2
    cy = (p[0][1] + p[3][1]) / 2
    text = _clean(box.text)
    # Where the label's characters end: the box's right edge when it holds only the label,
    # else about one box height per label character.
    start = width if len(text) <= label_chars else min(width, 0.85 * height * label_chars)
    start += 0.1 * height
    end = start + length * height
    half = 0.7 * height
    return (
        (cx + ux * start - vx * half, cy + uy * start - vy * half),
        (cx + ux * end - vx * half, cy + uy * end - vy * half),
        (cx + ux * end + vx * half, cy + uy * end + vy * half),
        (cx + ux * start + vx * half, cy + uy * start + vy * half),
    )


def inside(point: tuple[float, float], quad: Quad) -> bool:
    """Whether `point` lies inside the convex quad (corners in order)."""
    signs = []
    for i in range(4):
        (x0, y0), (x1, y1) = quad[i], quad[(i + 1) % 4]
        signs.append((x1 - x0) * (point[1] - y0) - (y1 - y0) * (point[0] - x0) >= 0)
    return all(signs) or not any(signs)


def centre(box: OcrBox) -> tuple[float, float]:
    """The mean of the box's corners."""
    return (sum(p[0] for p in box.points) / 4, sum(p[1] for p in box.points) / 4)


def number_boxes(boxes: Sequence[OcrBox]) -> list[OcrBox]:
    """Boxes that hold most of an ID number (at least 12 digits)."""
    return [b for b in boxes if sum(c.isdigit() for c in _clean(b.text)) >= 12]


def card_text_found(boxes: Sequence[OcrBox]) -> bool:
    """Whether the OCR text looks like an ID card's portrait side at all."""
    text = "".join(_clean(b.text) for b in boxes)
    labels = sum(label in text for label in _LABELS.values())
    return labels >= 2 or re.search(r"[0-9]{14}", text) is not None


def parse_card(
    boxes: Sequence[OcrBox], *, sharpness: float = 0.0, today: date | None = None
) -> IdCardReading:
    """Read the six fields from OCR boxes; raise `IdPhotoUnclear` when no valid ID number.

    Raises `IdPhotoUnclear("no_card_text")` when the text does not look like a card, and
    `IdPhotoUnclear("id_number_unreadable")` when no single number passes GB 11643.
    """
    if not boxes or not card_text_found(boxes):
        raise IdPhotoUnclear("no_card_text")
    rows = [_Row(r) for r in _rows(_segments(boxes))]
    number = _find_number(rows, today)
    if number is None:
        raise IdPhotoUnclear("id_number_unreadable")
    parsed = number.parsed
    above = rows[: number.row]

    def row_of(key: str) -> int | None:
        found = _label_row(above, key, fuzzy=False)
        return found if found is not None else _label_row(above, key, fuzzy=True)

    name_at, sex_at, birth_at, address_at = (
        row_of("name"),
        row_of("sex"),
        row_of("birth"),
        row_of("address"),
    )
    # Where a label was not read, the card's fixed order of rows places the field.
    if sex_at is None and name_at is not None and name_at + 1 < len(above):
        sex_at = name_at + 1
    if birth_at is None and sex_at is not None and sex_at + 1 < len(above):
        birth_at = sex_at + 1
    if address_at is None and birth_at is not None and birth_at + 1 < len(above):
        address_at = birth_at + 1
    if name_at is None and sex_at is not None and sex_at >= 1:
        name_at = sex_at - 1

    name = _read_name(above, name_at)
    sex_read, ethnicity_read, sex_score = _read_sex_and_ethnicity(above, sex_at)
    birth_read, birth_score = _read_birth_row(above, birth_at)
    address, address_score = _read_address(above, address_at)

    sex_value = parsed.sex
    sex_field = OcrField(
        sex_value,
        sex_score if sex_read else number.score,
        sex_read is not None and sex_read != sex_value,
        "disagrees_with_id_number" if sex_read is not None and sex_read != sex_value else None,
    )
    birth_disagrees = birth_read is not None and birth_read != parsed.birth_date
    birth_field = OcrField(
        parsed.birth_date.isoformat(),
        birth_score if birth_read else number.score,
        birth_disagrees,
        "disagrees_with_id_number" if birth_disagrees else None,
    )

    ethnicity_value, ethnicity_note = snap_ethnicity(ethnicity_read[0])
    if ethnicity_note == "snapped":
        ethnicity_field = OcrField(ethnicity_value, ethnicity_read[1], False, "snapped")
    else:
        ethnicity_field = _field(ethnicity_value, ethnicity_read[1], ethnicity_note)

    address_note = None
    if address:
        # The province must be there; the names below it are checked against GB/T 2260.
        checked = check_address(address)
        address_note = "address_without_province" if checked is None else checked.note
        address = address if checked is None else checked.value
    name_note = None
    if name[0] and not all(_is_cjk(c) or c == "·" for c in name[0]):
        name_note = "unexpected_characters"
    elif name[0] and len(name[0]) < 2:
        # A surname and a given name: one character means OCR dropped one.
        name_note = "too_short"
    # The number passed every rule, yet two digit misreads can cancel in the check
    # character; a printed birth date or sex that disagrees with it is the only other hint.
    id_note = None
    if birth_disagrees:
        id_note = "disagrees_with_birth_date"
    elif sex_field.doubtful:
        id_note = "disagrees_with_sex"

    return IdCardReading(
        name=_field(name[0], name[1], name_note),
        sex=sex_field,
        ethnicity=ethnicity_field,
        birth_date=birth_field,
        address=(
            OcrField(address, address_score, address_score < LOW_CONFIDENCE, SNAPPED)
            if address_note == SNAPPED
            else _field(address, address_score, address_note)
        ),
        id_number=OcrField(parsed.number, number.score, id_note is not None, id_note),
        sharpness=sharpness,
    )


@dataclass(frozen=True)
class _Piece:
    """Part of a value: its text and the segment it came from."""

    text: str
    seg: _Seg
    glued: bool = False  # the segment also holds the label


def _value_pieces(row: _Row, key: str) -> list[_Piece]:
    """The row's value after its label, cut where a wide gap leads off the text column.

    When the label has a box of its own, stray characters OCR glued onto it (a smear read
    as 1, noise read as a character) are dropped: the value is in the boxes that follow.
    """
    label = _LABELS[key]
    segments = row.segments
    first = _clean(segments[0].text)
    rest = _strip_label(first, label, fuzzy=True)
    pieces: list[_Piece] = []
    if rest is None:
        # The label was not read as the start of the first box: keep the row as it is,
        # minus a label that might sit inside the joined text.
        joined = row.text
        stripped = _strip_label(joined, label, fuzzy=True)
        if stripped is not None and len(segments) > 1:
            return [_Piece(stripped, segments[-1])]
        pieces = [_Piece(_clean(s.text), s) for s in segments]
    else:
        if rest and len(segments) == 1:
            pieces.append(_Piece(rest, segments[0], glued=True))
        pieces.extend(_Piece(_clean(s.text), s) for s in segments[1:])
    return _until_gap([p for p in pieces if p.text])


def _until_gap(pieces: list[_Piece], factor: float = 3.0) -> list[_Piece]:
    """Pieces up to the first gap wider than `factor` text heights (the portrait's edge)."""
    kept = pieces[:1]
    for piece in pieces[1:]:
        previous = kept[-1].seg
        if piece.seg.left - previous.right > factor * max(previous.height, piece.seg.height):
            break
        kept.append(piece)
    return kept


def _joined(pieces: list[_Piece]) -> tuple[str, float]:
    return "".join(p.text for p in pieces), min((p.seg.score for p in pieces), default=0.0)


def _read_name(rows: list[_Row], at: int | None) -> tuple[str | None, float]:
    if at is None:
        return None, 0.0
    text, score = _joined(_value_pieces(rows[at], "name"))
    return text or None, score


def _read_sex_and_ethnicity(
    rows: list[_Row], at: int | None
) -> tuple[str | None, tuple[str, float], float]:
    """(sex read or None, (ethnicity text, score), sex score)."""
    if at is None:
        return None, ("", 0.0), 0.0
    # No gap cut here: the sex and the ethnicity stand far apart on this row.
    pieces = []
    for piece in _value_pieces_no_cut(rows[at], "sex"):
        pieces.append(piece)
    sex: str | None = None
    sex_score = 0.0
    ethnicity_pieces: list[_Piece] = []
    for index, piece in enumerate(pieces):
        position = piece.text.find("民族")
        if position < 0:
            stripped = _strip_label(piece.text, "民族", fuzzy=True)
            if stripped is not None and (index > 0 or sex is not None):
                position, tail = 0, stripped
            else:
                tail = None
        else:
            tail = piece.text[position + 2 :]
        head = piece.text if position < 0 else piece.text[:position]
        if sex is None and head[:1] in ("男", "女"):
            sex = "male" if head[0] == "男" else "female"
            sex_score = piece.seg.score
        if tail is not None:
            if tail:
                ethnicity_pieces.append(_Piece(tail, piece.seg))
            ethnicity_pieces.extend(pieces[index + 1 :])
            break
    else:
        # No 民族 label read: the ethnicity is the last box right of the sex.
        if len(pieces) >= 2:
            ethnicity_pieces = pieces[-1:]
    text, score = _joined(_until_gap(ethnicity_pieces))
    return sex, (text, score), sex_score


def _value_pieces_no_cut(row: _Row, key: str) -> list[_Piece]:
    label = _LABELS[key]
    segments = row.segments
    rest = _strip_label(_clean(segments[0].text), label, fuzzy=True)
    if rest is None:
        return [_Piece(_clean(s.text), s) for s in segments]
    first = [_Piece(rest, segments[0])] if rest else []
    return first + [_Piece(_clean(s.text), s) for s in segments[1:]]


def _read_birth_row(rows: list[_Row], at: int | None) -> tuple[date | None, float]:
    if at is None:
        return None, 0.0
    text, score = _joined(_value_pieces(rows[at], "birth"))
    return _read_birth(text), score


def _read_address(rows: list[_Row], at: int | None) -> tuple[str | None, float]:
    if at is None:
        return None, 0.0
    pieces = _value_pieces(rows[at], "address")
    if not pieces:
        return None, 0.0
    # Continuation lines start in the same column as the first line; anything starting
    # elsewhere (the portrait, background print) is not the address.
    head = pieces[0].seg
    tolerance = 1.5 * head.height
    low, high = head.left - tolerance, head.left + tolerance
    if pieces[0].glued:
        # Label and first line in one box: the value column is somewhere inside it, a
        # label's width (two small characters and a gap) from its left edge.
        high = head.left + max(tolerance, 0.4 * (head.right - head.left))
    lines = [pieces]
    for row in rows[at + 1 :]:
        if _strip_label(row.text, _LABELS["number"], fuzzy=True) is not None:
            break
        kept = [s for s in row.segments if low <= s.left <= high]
        if not kept:
            continue
        start = row.segments.index(kept[0])
        lines.append(_until_gap([_Piece(_clean(s.text), s) for s in row.segments[start:]]))
    texts, scores = zip(*(_joined(line) for line in lines), strict=True)
    address = "".join(texts)
    return (address or None), min(scores)
