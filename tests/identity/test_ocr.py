"""ID-card OCR (SPEC §3): the gate, the GB 11643 checks after OCR, the field parser.

Parser tests feed synthetic OCR boxes (no engine, fast). Engine tests read cards drawn by
`cardgen` with one reader for the module (the engine costs ~0.6 s to build and ~1 s CPU
per card).
"""

from __future__ import annotations

import dataclasses
import io
import math
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import numpy as np
import pytest
from PIL import Image, ImageFilter

from tests.identity import cardgen
from vexam.identity.idcard_fields import OcrBox, parse_card, snap_ethnicity
from vexam.identity.idnumbers import check_character
from vexam.identity.ocr import (
    ETHNICITIES,
    MIN_DIRECTIONAL_SHARPNESS,
    MIN_SHARPNESS,
    MIN_SHORT_SIDE,
    IdCardReader,
    IdPhotoUnclear,
    _normalised_gray,
    decode,
    directional_sharpness,
    gate,
    sharpness,
)
from vexam.identity.regions import check_address

NUMBER = "11010519491231002X"  # valid: Beijing, 1949-12-31, female
needs_fonts = pytest.mark.skipif(
    cardgen.cjk_font_path() is None,
    reason="Noto Sans CJK not installed (Debian package fonts-noto-cjk)",
)


# --- synthetic OCR boxes -------------------------------------------------------------------


def box(text: str, x: float, y: float, w: float, h: float = 40, score: float = 0.99) -> OcrBox:
    """An axis-aligned OCR box at (x, y) of size w x h."""
    return OcrBox.of(text, score, [(x, y), (x + w, y), (x + w, y + h), (x, y + h)])


def card_boxes(
    *,
    name: str = "王小明",
    sex: str = "女",
    ethnicity: str = "汉",
    birth: str = "1949年12月31日",
    address: tuple[str, ...] = ("北京市朝阳区建国路88号", "3号楼2单元501室"),
    number: str = NUMBER,
    split_labels: bool = True,
    name_score: float = 0.99,
) -> list[OcrBox]:
    """Boxes where RapidOCR puts them on a 1027 x 648 card (labels split or glued)."""
    boxes = []
    if split_labels:
        boxes += [box("姓名", 70, 87, 64), box(name, 180, 80, 38 * len(name), 47, name_score)]
        boxes += [box("性别", 70, 165, 64), box(sex, 180, 161, 40, 42)]
        boxes += [box("民族", 309, 160, 64), box(ethnicity, 430, 155, 40 * len(ethnicity), 50)]
        boxes += [box("出生", 70, 242, 64), box(birth, 182, 240, 300, 38)]
        boxes += [box("住址", 70, 320, 64), box(address[0], 188, 318, 36 * len(address[0]))]
    else:
        boxes += [box(f"姓名{name}", 70, 82, 64 + 38 * len(name), 47, name_score)]
        boxes += [box(f"性别 {sex}", 70, 160, 150, 45), box(f"民族{ethnicity}", 309, 157, 150, 50)]
        boxes += [box(f"出生{birth}", 70, 240, 420, 40)]
        boxes += [box(f"住址{address[0]}", 70, 318, 64 + 36 * len(address[0]))]
    for row, line in enumerate(address[1:], start=1):
        boxes.append(box(line, 188, 318 + 56 * row, 36 * len(line)))
    boxes += [box("公民身份号码", 72, 557, 185, 36), box(number, 348, 547, 640, 38)]
    return boxes


def rotated(boxes: list[OcrBox], degrees: float) -> list[OcrBox]:
    """The same boxes as seen in a photo turned by `degrees` around the card's centre."""
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)

    def turn(p: tuple[float, float]) -> tuple[float, float]:
        x, y = p[0] - 513, p[1] - 324
        return (513 + x * c - y * s, 324 + x * s + y * c)

    return [OcrBox.of(b.text, b.score, [turn(p) for p in b.points]) for b in boxes]


def values(boxes: list[OcrBox]) -> dict[str, str | None]:
    return {k: f.value for k, f in parse_card(boxes).fields().items()}


EXPECTED = {
    "name": "王小明",
    "sex": "female",
    "ethnicity": "汉",
    "birth_date": "1949-12-31",
    "address": "北京市朝阳区建国路88号3号楼2单元501室",
    "id_number": NUMBER,
}


@pytest.mark.parametrize("split_labels", [True, False])
@pytest.mark.parametrize("degrees", [0.0, 5.0, -5.0])
def test_parser_reads_six_fields_split_or_glued_and_turned(
    split_labels: bool, degrees: float
) -> None:
    """§3 OCR: fields found by label and layout, label and value in one box or two, ±5°."""
    reading = parse_card(rotated(card_boxes(split_labels=split_labels), degrees))
    assert {k: f.value for k, f in reading.fields().items()} == EXPECTED
    assert not any(f.doubtful for f in reading.fields().values())


def test_parser_ignores_text_right_of_the_address_column() -> None:
    """§3 OCR: text over the portrait is not joined to the address."""
    boxes = [*card_boxes(), box("中华人民", 700, 380, 150), box("共和国", 820, 322, 110)]
    assert values(boxes)["address"] == EXPECTED["address"]


def test_parser_drops_a_stray_character_glued_to_a_label_box() -> None:
    """§3 OCR: '姓名1' followed by the name box (a smear read as 1) gives the name alone."""
    boxes = [b for b in card_boxes() if b.text != "姓名"] + [box("姓名1", 70, 87, 80)]
    assert values(boxes)["name"] == "王小明"


def test_number_split_over_two_boxes_is_joined() -> None:
    """§3 OCR: an ID number detected as two boxes on one line is read whole."""
    boxes = [b for b in card_boxes() if b.text != NUMBER]
    boxes += [box(NUMBER[:9], 348, 547, 320, 38), box(NUMBER[9:], 690, 548, 320, 38)]
    assert values(boxes)["id_number"] == NUMBER


def test_full_width_and_lowercase_number_is_normalised() -> None:
    """§3 ID number rules: full-width digits and a lowercase x are accepted and normalised."""
    wide = "".join(chr(ord(c) + 0xFEE0) for c in NUMBER[:17]) + "x"
    assert values(card_boxes(number=wide))["id_number"] == NUMBER


@pytest.mark.parametrize(
    "number",
    [
        NUMBER[:17] + "1",  # wrong check character
        "1101051949123100",  # 16 characters
        "99010519491231002X"[:17] + check_character("99010519491231002"),  # no province 99
        "110105194913310" + "02" + check_character("11010519491331002"),  # month 13
        "9" + NUMBER,  # 19 characters: the valid 18 inside are not picked out
    ],
)
def test_invalid_number_is_never_accepted_nor_repaired(number: str) -> None:
    """§3 id_photo_unclear: no valid ID number → id_number_unreadable, never a repair."""
    with pytest.raises(IdPhotoUnclear) as refused:
        parse_card(card_boxes(number=number))
    assert refused.value.reason == "id_number_unreadable"


def test_two_different_valid_numbers_are_refused() -> None:
    """§3 id_photo_unclear: two valid numbers that disagree cannot both be the card's."""
    other = "11010519491231003" + check_character("11010519491231003")
    boxes = [*card_boxes(), box(other, 348, 600, 640, 38)]
    with pytest.raises(IdPhotoUnclear) as refused:
        parse_card(boxes)
    assert refused.value.reason == "id_number_unreadable"


def test_text_that_is_not_a_card_is_refused() -> None:
    """§3 id_photo_unclear: OCR text without card labels or a number → no_card_text."""
    with pytest.raises(IdPhotoUnclear) as refused:
        parse_card([box("欢迎光临", 10, 10, 160), box("营业时间 9:00-21:00", 10, 80, 300)])
    assert refused.value.reason == "no_card_text"
    with pytest.raises(IdPhotoUnclear):
        parse_card([])


def test_birth_date_disagreeing_with_number_keeps_the_number_and_is_doubtful() -> None:
    """§3 OCR: birth date comes from the valid number; a disagreeing read is highlighted."""
    reading = parse_card(card_boxes(birth="1949年12月30日"))
    assert reading.birth_date.value == "1949-12-31"
    assert reading.birth_date.doubtful
    assert reading.birth_date.note == "disagrees_with_id_number"
    # Two misread digits can cancel in the check character: the number is shown too.
    assert reading.id_number.value == NUMBER
    assert reading.id_number.doubtful


def test_sex_disagreeing_with_number_keeps_the_number_and_is_doubtful() -> None:
    """§3 OCR: sex comes from the number's 17th digit (even: female)."""
    reading = parse_card(card_boxes(sex="男"))
    assert reading.sex.value == "female"
    assert reading.sex.doubtful and reading.sex.note == "disagrees_with_id_number"


def test_address_without_province_is_doubtful() -> None:
    """§3 OCR: an address must start with a province-level name, else it is highlighted."""
    reading = parse_card(card_boxes(address=("朝阳区建国路88号", "3号楼")))
    assert reading.address.value == "朝阳区建国路88号3号楼"
    assert reading.address.doubtful and reading.address.note == "address_without_province"
    with_province = parse_card(card_boxes(address=("广西壮族自治区南宁市", "青秀区民族大道1号")))
    assert not with_province.address.doubtful


def test_ethnicity_near_miss_snaps_only_when_one_name_fits() -> None:
    """§3 OCR: 维吾水 snaps to 维吾尔 (noted); 自 is one edit from many names: doubtful."""
    snapped = parse_card(card_boxes(ethnicity="维吾水")).ethnicity
    assert (snapped.value, snapped.doubtful, snapped.note) == ("维吾尔", False, "snapped")
    ambiguous = parse_card(card_boxes(ethnicity="自")).ethnicity
    assert ambiguous.value is None and ambiguous.doubtful
    assert ambiguous.note == "not_an_official_ethnicity"


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        ("汉", ("汉", None)),
        ("蒙古族", ("蒙古", None)),
        ("柯尔克", ("柯尔克孜", "snapped")),
        ("乌孜别", ("乌孜别克", "snapped")),
        ("鄂温", ("鄂温克", "snapped")),
        ("布衣", (None, "not_an_official_ethnicity")),  # 布依 and 布朗 both one edit away
        ("士", (None, "not_an_official_ethnicity")),  # 土, 水, 京 ... all one edit away
        ("鄂伦", ("鄂伦春", "snapped")),
        ("", (None, "missing")),
    ],
)
def test_snap_ethnicity(read: str, expected: tuple[str | None, str | None]) -> None:
    """§3 OCR: ethnicity must be one of the 56 official names; snap only a unique fit."""
    assert snap_ethnicity(read) == expected


def test_address_near_miss_district_snaps_to_the_official_name() -> None:
    """§3 OCR: 颖州区 in 阜阳市 is 颍州区 read wrong; 培陵区 in 重庆 is 涪陵区 (GB/T 2260)."""
    boxes = card_boxes(address=("安徽省阜阳市颖州区人民", "路12号"))
    address = parse_card(boxes).address
    assert (address.value, address.doubtful, address.note) == (
        "安徽省阜阳市颍州区人民路12号",
        False,
        "snapped",
    )
    chongqing = parse_card(card_boxes(address=("重庆市培陵区解放路8号",))).address
    assert (chongqing.value, chongqing.doubtful, chongqing.note) == (
        "重庆市涪陵区解放路8号",
        False,
        "snapped",
    )


def test_address_with_official_names_is_kept_as_read() -> None:
    """§3 OCR: genuine names, with or without a county level, are left alone."""
    for lines in [
        ("安徽省阜阳市颍上县城关", "镇王家村"),
        ("四川省绵阳市涪城区学府", "路3号"),
        ("广东省东莞市石桥镇",),  # a prefecture-level city without counties
        ("湖北省仙桃市新华路1号",),  # county level directly under the province
    ]:
        address = parse_card(card_boxes(address=lines)).address
        assert (address.value, address.doubtful, address.note) == ("".join(lines), False, None)


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        ("安徽省阜阳市颖州区人民路", ("安徽省阜阳市颍州区人民路", "snapped")),
        ("安徽省阜阳市颖东区", ("安徽省阜阳市颍东区", "snapped")),
        ("重庆市培陵区", ("重庆市涪陵区", "snapped")),
        ("重庆市洛陵区", ("重庆市涪陵区", "snapped")),
        ("四川省绵阳市培城区", ("四川省绵阳市涪城区", "snapped")),
        ("北京市朝阳区建国路88号", ("北京市朝阳区建国路88号", None)),
        ("安徽省阜阳市颍州区", ("安徽省阜阳市颍州区", None)),
        ("四川省绵竹市城关镇", ("四川省绵竹市城关镇", None)),  # prefecture left out
        # 江京区 is one character from both 江北区 and 江津区: not snapped, doubtful.
        ("重庆市江京区", ("重庆市江京区", "unknown_district")),
        ("安徽省阜阳市某某区", ("安徽省阜阳市某某区", "unknown_district")),
        ("北京市火星区", ("北京市火星区", "unknown_district")),
    ],
)
def test_check_address(read: str, expected: tuple[str, str | None]) -> None:
    """§3 OCR: names below the province checked against GB/T 2260; unique near misses snap."""
    checked = check_address(read)
    assert checked is not None
    assert (checked.value, checked.note) == expected


def test_address_snapping_never_changes_the_province() -> None:
    """§3 OCR: no province, no check; a snap only ever replaces names after it."""
    assert check_address("朝阳区建国路88号") is None
    checked = check_address("安微省阜阳市颖州区")  # 安微: no province read
    assert checked is None


def test_unknown_district_is_doubtful() -> None:
    """§3 OCR: a county-level name that matches nothing in the gazetteer is highlighted."""
    address = parse_card(card_boxes(address=("安徽省阜阳市某某区人民", "路12号"))).address
    assert address.value == "安徽省阜阳市某某区人民路12号"
    assert address.doubtful and address.note == "unknown_district"


def test_ethnicities_are_the_56_official_names() -> None:
    """§3 OCR: the list the ethnicity is checked against."""
    assert len(ETHNICITIES) == 56 == len(set(ETHNICITIES))
    assert {"汉", "蒙古", "回", "藏", "维吾尔", "柯尔克孜", "基诺"} <= set(ETHNICITIES)
    assert not any(name.endswith("族") for name in ETHNICITIES)


def test_low_line_score_only_highlights() -> None:
    """§3 OCR: a low OCR score marks the field doubtful but keeps the value."""
    reading = parse_card(card_boxes(name_score=0.55))
    assert reading.name.value == "王小明"
    assert reading.name.doubtful and reading.name.note == "low_confidence"


def test_one_character_name_is_doubtful() -> None:
    """§3 OCR: a name is a surname and a given name; one character means one was dropped."""
    reading = parse_card(card_boxes(name="卢"))
    assert reading.name.doubtful and reading.name.note == "too_short"


# --- the gate (no engine) ------------------------------------------------------------------


def checkerboard(size: int = 600, cell: int = 6) -> Image.Image:
    yy, xx = np.mgrid[0:size, 0:size]
    board = (((yy // cell) + (xx // cell)) % 2 * 255).astype(np.uint8)
    return Image.fromarray(board, "L")


def test_sharpness_is_lower_when_blurred() -> None:
    """§3 id_photo_unclear: the gate's measure falls with blur, in any direction."""
    sharp = np.asarray(checkerboard(), np.float32)
    soft = np.asarray(checkerboard().filter(ImageFilter.GaussianBlur(2)), np.float32)
    assert sharpness(soft) < sharpness(sharp) / 5
    assert directional_sharpness(soft) < directional_sharpness(sharp) / 5
    with pytest.raises(ValueError):
        sharpness(np.zeros(10))


@needs_fonts
def test_gate_refuses_motion_blur_the_laplacian_misses() -> None:
    """§3 id_photo_unclear: a 15 px smear keeps the Laplacian's variance high; still refused."""
    card, _ = cardgen.make_card(12)
    smeared = cardgen.motion_blur(card, 15, angle=0)
    gray = _normalised_gray(smeared)
    assert sharpness(gray) >= MIN_SHARPNESS
    assert directional_sharpness(gray) < MIN_DIRECTIONAL_SHARPNESS
    with pytest.raises(IdPhotoUnclear) as refused:
        gate(smeared)
    assert refused.value.reason == "blurry"
    assert gate(cardgen.motion_blur(card, 7, angle=0)) >= MIN_SHARPNESS


def test_garbage_bytes_are_undecodable() -> None:
    """§3 id_photo_unclear: bytes that are no image → undecodable."""
    reader = IdCardReader()
    for data in (b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64):
        with pytest.raises(IdPhotoUnclear) as refused:
            reader.read(data)
        assert refused.value.reason == "undecodable"
    assert reader._engine is None  # refused before OCR


def test_exif_orientation_is_applied() -> None:
    """§3 OCR: a phone photo stored sideways with an EXIF orientation is read upright."""
    img = Image.new("RGB", (400, 200), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", exif=exif)
    assert decode(buffer.getvalue()).size == (200, 400)


def test_tiny_image_is_too_small() -> None:
    """§3 id_photo_unclear: a photo under the minimum resolution is refused before OCR."""
    img = checkerboard(MIN_SHORT_SIDE - 1).convert("RGB")
    with pytest.raises(IdPhotoUnclear) as refused:
        IdCardReader().read(cardgen.to_bytes(img))
    assert refused.value.reason == "too_small"


def test_plain_gradient_is_refused() -> None:
    """§3 id_photo_unclear: a photo of no card at all (a smooth gradient) is refused."""
    ramp = np.tile(np.linspace(0, 255, 1000, dtype=np.float32), (640, 1)).astype(np.uint8)
    with pytest.raises(IdPhotoUnclear) as refused:
        IdCardReader().read(cardgen.to_bytes(Image.fromarray(ramp, "L")))
    assert refused.value.reason == "blurry"


@needs_fonts
@pytest.mark.parametrize("name", sorted(cardgen.HEAVY))
def test_heavy_blur_is_refused_by_the_gate(name: str) -> None:
    """§3 id_photo_unclear: heavy blur is refused as blurry before any OCR."""
    card, _ = cardgen.make_card(21)
    reader = IdCardReader()
    with pytest.raises(IdPhotoUnclear) as refused:
        reader.read(cardgen.to_bytes(cardgen.DEGRADATIONS[name](card, 21)))
    assert refused.value.reason == "blurry"
    assert reader._engine is None


# --- the engine on generated cards ---------------------------------------------------------


@pytest.fixture(scope="module")
def reader() -> IdCardReader:
    return IdCardReader()


@needs_fonts
def test_clean_card_reads_all_six_fields(reader: IdCardReader) -> None:
    """§3 OCR: a clean card (with a face photo in the portrait area) reads all six fields.

    回 is a lone one-character value the detector tends to frame by its inner square only.
    """
    portrait = Image.new("RGB", (300, 400), (200, 170, 150))
    truth = dataclasses.replace(cardgen.random_truth(4), ethnicity="回")
    card = cardgen.draw_card(truth, seed=4, portrait=portrait)
    reading = reader.read(cardgen.to_bytes(card, "JPEG", quality=90))
    assert {k: f.value for k, f in reading.fields().items()} == truth.fields()
    assert reading.sharpness > 0


@needs_fonts
@pytest.mark.parametrize("name", cardgen.READABLE[1:])
def test_person_readable_degradations_pass_and_read_the_number(
    reader: IdCardReader, name: str
) -> None:
    """§3 OCR: a card a person can read is never refused; its ID number is read right."""
    seed = 40 + cardgen.READABLE.index(name)
    card, truth = cardgen.make_card(seed)
    reading = reader.read(cardgen.to_bytes(cardgen.DEGRADATIONS[name](card, seed)))
    assert reading.id_number.value == truth.id_number
    assert reading.birth_date.value == truth.birth_date.isoformat()


@needs_fonts
def test_heavy_blur_past_the_gate_never_gives_a_wrong_number(reader: IdCardReader) -> None:
    """§3 id_photo_unclear: without the gate, heavy blur → no number, never a wrong one."""
    card, truth = cardgen.make_card(5)

    def outcome(image: Image.Image) -> str:
        try:
            number = parse_card(reader.ocr(image)).id_number.value
        except IdPhotoUnclear as refused:
            return refused.reason
        return "right" if number == truth.id_number else f"wrong: {number}"

    assert outcome(cardgen.blur(card, 3.0)) in ("id_number_unreadable", "no_card_text", "right")
    smeared = cardgen.motion_blur(card, 25, angle=30)
    assert outcome(smeared) in ("id_number_unreadable", "no_card_text", "right")


@needs_fonts
def test_card_with_wrong_check_character_is_never_repaired(reader: IdCardReader) -> None:
    """§3 id_photo_unclear: a number printed with a wrong check character is refused."""
    truth = cardgen.random_truth(8)
    bad = truth.id_number[:17] + next(c for c in "0123456789X" if c != truth.id_number[17])
    card = cardgen.draw_card(dataclasses.replace(truth, id_number=bad), seed=8)
    with pytest.raises(IdPhotoUnclear) as refused:
        reader.read(cardgen.to_bytes(card))
    assert refused.value.reason == "id_number_unreadable"


@needs_fonts
def test_drawn_card_disagreeing_with_its_number_is_highlighted(reader: IdCardReader) -> None:
    """§3 OCR: printed birth date ≠ number's → number's value, doubtful; no province → doubtful."""
    truth = cardgen.random_truth(9)
    printed = dataclasses.replace(
        truth,
        birth_date=date(truth.birth_date.year - 1, truth.birth_date.month, 1),
        address="朝阳区建国路88号院3号楼",
    )
    reading = reader.read(cardgen.to_bytes(cardgen.draw_card(printed, seed=9)))
    assert reading.birth_date.value == truth.birth_date.isoformat()
    assert reading.birth_date.note == "disagrees_with_id_number"
    assert reading.address.doubtful and reading.address.note == "address_without_province"


@needs_fonts
def test_sharp_photo_without_a_card_is_refused(reader: IdCardReader) -> None:
    """§3 id_photo_unclear: a sharp photo of a bare table passes the gate, then no card text."""
    table = cardgen._table_texture(np.random.default_rng(1), (1000, 660))
    with pytest.raises(IdPhotoUnclear) as refused:
        reader.read(cardgen.to_bytes(table, "JPEG", quality=85))
    assert refused.value.reason == "no_card_text"


@needs_fonts
def test_one_reader_serves_threads(reader: IdCardReader) -> None:
    """§3 OCR: the service calls `read` from worker threads; results do not mix."""
    cards = [cardgen.make_card(seed) for seed in (31, 32)]
    data = [cardgen.to_bytes(card) for card, _ in cards]
    with ThreadPoolExecutor(2) as pool:
        readings = list(pool.map(reader.read, data))
    assert [r.id_number.value for r in readings] == [t.id_number for _, t in cards]
