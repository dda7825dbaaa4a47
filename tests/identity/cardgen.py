"""Synthetic fronts of the second-generation resident ID card, and named degradations.

Used by the OCR tests and by `bench/identity/ocr.py`. Everything is deterministic for a
seed. The card is drawn at `PX_PER_MM` (85.6 x 54 mm) with Noto Sans CJK SC from Debian's
`fonts-noto-cjk` and the ID number in OCR-B from `fonts-ocr-b` when present (else a plain
monospace font: the benchmark prints which).
"""

from __future__ import annotations

import glob
import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from vexam.identity.idnumbers import check_character
from vexam.identity.ocr import ETHNICITIES

CARD_MM = (85.6, 54.0)
PX_PER_MM = 12.0

CJK_FONT_GLOB = "/usr/share/fonts/opentype/noto/NotoSansCJK-*.ttc"
OCRB_FONT_GLOBS = ("/usr/share/fonts/opentype/ocr-b/OCRB.otf", "/usr/share/fonts/**/OCRB*.otf")
MONO_FALLBACK_GLOBS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
)

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶"
    "程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾"
    "毛郝龚邵万钱严覃武戴莫孔向汤"
)
COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "慕容")
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂华建国志文玉兰红云海鹏飞宇浩然子轩涵梓晨"
    "欣怡佳琪思雨嘉博俊凯鑫林婷雪慧颖晶瑶琳倩蕾薇璐诗梦婉彤萱妍瑞泽睿哲翔宁远航毅峰斌辉亮成"
    "龙彬波立东晓春秋冬阳光荣德安和新永福金银兴盛豪天一心悦"
)

# Province-level official name -> real city + district prefixes, so addresses read like real
# ones. Codes are GB/T 2260 province codes (mainland only: the resident ID card).
ADDRESS_PREFIXES: dict[str, tuple[str, tuple[str, ...]]] = {
    "11": ("北京市", ("朝阳区", "海淀区", "东城区", "西城区", "丰台区")),
    "12": ("天津市", ("和平区", "南开区", "河西区")),
    "13": ("河北省", ("石家庄市长安区", "保定市竞秀区", "唐山市路北区", "邯郸市丛台区")),
    "14": ("山西省", ("太原市小店区", "大同市平城区", "运城市盐湖区")),
    "15": ("内蒙古自治区", ("呼和浩特市新城区", "包头市昆都仑区", "赤峰市红山区")),
    "21": ("辽宁省", ("沈阳市和平区", "大连市中山区", "鞍山市铁东区")),
    "22": ("吉林省", ("长春市朝阳区", "吉林市船营区", "延边朝鲜族自治州延吉市")),
    "23": ("黑龙江省", ("哈尔滨市南岗区", "齐齐哈尔市龙沙区", "大庆市萨尔图区")),
    "31": ("上海市", ("浦东新区", "徐汇区", "静安区", "闵行区")),
    "32": ("江苏省", ("南京市鼓楼区", "苏州市姑苏区", "无锡市梁溪区", "徐州市云龙区")),
    "33": ("浙江省", ("杭州市西湖区", "宁波市鄞州区", "温州市鹿城区")),
    "34": ("安徽省", ("合肥市蜀山区", "芜湖市镜湖区", "阜阳市颍州区")),
    "35": ("福建省", ("福州市鼓楼区", "厦门市思明区", "泉州市丰泽区")),
    "36": ("江西省", ("南昌市东湖区", "赣州市章贡区", "九江市浔阳区")),
    "37": ("山东省", ("济南市历下区", "青岛市市南区", "烟台市芝罘区", "潍坊市奎文区")),
    "41": ("河南省", ("郑州市金水区", "洛阳市涧西区", "南阳市卧龙区")),
    "42": ("湖北省", ("武汉市武昌区", "宜昌市西陵区", "襄阳市襄城区")),
    "43": ("湖南省", ("长沙市岳麓区", "株洲市天元区", "湘西土家族苗族自治州吉首市")),
    "44": ("广东省", ("广州市天河区", "深圳市南山区", "佛山市禅城区", "东莞市")),
    "45": ("广西壮族自治区", ("南宁市青秀区", "桂林市秀峰区", "柳州市城中区")),
    "46": ("海南省", ("海口市美兰区", "三亚市吉阳区")),
    "50": ("重庆市", ("渝中区", "江北区", "沙坪坝区")),
    "51": ("四川省", ("成都市武侯区", "绵阳市涪城区", "凉山彝族自治州西昌市")),
    "52": ("贵州省", ("贵阳市南明区", "遵义市红花岗区", "黔东南苗族侗族自治州凯里市")),
    "53": ("云南省", ("昆明市五华区", "大理白族自治州大理市", "西双版纳傣族自治州景洪市")),
    "54": ("西藏自治区", ("拉萨市城关区", "日喀则市桑珠孜区")),
    "61": ("陕西省", ("西安市雁塔区", "宝鸡市渭滨区", "咸阳市秦都区")),
    "62": ("甘肃省", ("兰州市城关区", "天水市秦州区", "临夏回族自治州临夏市")),
    "63": ("青海省", ("西宁市城中区", "海东市乐都区")),
    "64": ("宁夏回族自治区", ("银川市兴庆区", "吴忠市利通区")),
    "65": ("新疆维吾尔自治区", ("乌鲁木齐市天山区", "喀什地区喀什市", "伊犁哈萨克自治州伊宁市")),
}
MUNICIPALITIES = ("11", "12", "31", "50")
STREETS = [
    "人民路",
    "解放路",
    "中山路",
    "建设路",
    "和平路",
    "新华路",
    "胜利路",
    "文化路",
    "光明街",
    "长江路",
    "黄河路",
    "朝阳路",
    "东风路",
    "团结街",
    "幸福路",
    "青年路",
    "迎宾大道",
    "滨江路",
    "学府路",
    "花园街",
]
TOWNS = [
    "城关镇",
    "新兴镇",
    "太平镇",
    "永安镇",
    "龙泉镇",
    "石桥镇",
    "清河乡",
    "红旗乡",
    "双河镇",
    "白沙镇",
]
VILLAGES = [
    "王家村",
    "李庄村",
    "红星村",
    "东风村",
    "前进村",
    "新华村",
    "大河村",
    "杨柳村",
    "高桥村",
    "三合村",
]

ADDRESS_CHARS_PER_LINE = 11


@dataclass(frozen=True)
class CardTruth:
    """What is printed on a generated card."""

    name: str
    sex: str  # "male" | "female"
    ethnicity: str
    birth_date: date
    address: str
    id_number: str

    def fields(self) -> dict[str, str]:
        """The six fields as `IdCardReading` values are spelled (birth date ISO)."""
        return {
            "name": self.name,
            "sex": self.sex,
            "ethnicity": self.ethnicity,
            "birth_date": self.birth_date.isoformat(),
            "address": self.address,
            "id_number": self.id_number,
        }


# --- fonts -------------------------------------------------------------------------------


def cjk_font_path() -> str | None:
    """Noto Sans CJK (Debian `fonts-noto-cjk`), or None when it is not installed."""
    regular = sorted(p for p in glob.glob(CJK_FONT_GLOB) if "Regular" in p)
    return regular[0] if regular else None


def ocrb_font_path() -> str | None:
    """An OCR-B font (Debian `fonts-ocr-b`), or None."""
    for pattern in OCRB_FONT_GLOBS:
        found = sorted(glob.glob(pattern, recursive=True))
        if found:
            return found[0]
    return None


def number_font_path() -> str:
    """OCR-B when installed, else a plain monospace font."""
    path = ocrb_font_path()
    if path:
        return path
    for pattern in MONO_FALLBACK_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise FileNotFoundError("no monospace font for the ID number")


@cache
def _cjk_index(path: str) -> int:
    # The .ttc holds JP, KR, SC, TC, HK faces; the card is printed in simplified Chinese.
    for index in range(16):
        try:
            face = ImageFont.truetype(path, 10, index=index)
        except OSError:
            break
        if face.getname()[0] == "Noto Sans CJK SC":
            return index
    return 0


@cache
def _font(kind: str, size: int) -> ImageFont.FreeTypeFont:
    if kind == "number":
        return ImageFont.truetype(number_font_path(), size)
    path = cjk_font_path()
    if path is None:
        raise FileNotFoundError(f"Noto Sans CJK not found ({CJK_FONT_GLOB})")
    if kind == "bold":
        bold = path.replace("Regular", "Bold")
        if Path(bold).exists():
            return ImageFont.truetype(bold, size, index=_cjk_index(bold))
    return ImageFont.truetype(path, size, index=_cjk_index(path))


# --- identities ----------------------------------------------------------------------------


def random_name(rng: random.Random) -> str:
    """A common-looking Han name of 2-4 characters."""
    surname = rng.choice(COMPOUND_SURNAMES) if rng.random() < 0.04 else rng.choice(SURNAMES)
    given = "".join(rng.choice(GIVEN) for _ in range(1 if rng.random() < 0.3 else 2))
    return surname + given


def random_address(rng: random.Random, province_code: str) -> str:
    """An address starting with the official province-level name."""
    province, districts = ADDRESS_PREFIXES[province_code]
    start = province
    district = rng.choice(districts)
    if rng.random() < 0.65:
        rest = f"{rng.choice(STREETS)}{rng.randint(1, 399)}号"
        if rng.random() < 0.6:
            building, unit = rng.randint(1, 30), rng.randint(1, 6)
            rest += f"{building}栋{unit}单元{rng.randint(1, 28)}0{rng.randint(1, 4)}室"
    else:
        village = f"{rng.choice(TOWNS)}{rng.choice(VILLAGES)}"
        rest = f"{village}{rng.randint(1, 12)}组{rng.randint(1, 99)}号"
    return start + district + rest


def random_id_number(
    rng: random.Random, province_code: str, born: date, sex: str, *, bad_check: bool = False
) -> str:
    """A GB 11643 number; with `bad_check` the check character is deliberately wrong."""
    region = f"{province_code}{rng.randint(1, 9):02d}{rng.randint(1, 30):02d}"
    sequence = rng.randint(0, 99) * 10 + rng.choice(
        (1, 3, 5, 7, 9) if sex == "male" else (0, 2, 4, 6, 8)
    )
    first17 = f"{region}{born:%Y%m%d}{sequence:03d}"
    check = check_character(first17)
    if bad_check:
        check = rng.choice([c for c in "0123456789X" if c != check])
    return first17 + check


def random_truth(seed: int) -> CardTruth:
    """A consistent random identity for `seed`."""
    rng = random.Random(seed)
    code = rng.choice(sorted(ADDRESS_PREFIXES))
    sex = rng.choice(("male", "female"))
    born = date(1960, 1, 1) + timedelta(days=rng.randint(0, 50 * 365))
    ethnicity = "汉" if rng.random() < 0.4 else rng.choice(ETHNICITIES[1:])
    return CardTruth(
        name=random_name(rng),
        sex=sex,
        ethnicity=ethnicity,
        birth_date=born,
        address=random_address(rng, code),
        id_number=random_id_number(rng, code, born, sex),
    )


# --- drawing -------------------------------------------------------------------------------

LABEL_COLOUR = (40, 96, 160)
VALUE_COLOUR = (20, 20, 20)


def _mm(value: float) -> int:
    return round(value * PX_PER_MM)


def _background(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # A pale blue-to-cream wash with faint guilloche waves, like the printed security pattern.
    base = np.empty((height, width, 3), np.float32)
    t = xx / width
    base[..., 0] = 228 + 14 * t
    base[..., 1] = 236 + 4 * t
    base[..., 2] = 240 - 12 * t
    phase = rng.uniform(0, 2 * math.pi)
    waves = np.zeros((height, width), np.float32)
    for k in range(1, 4):
        waves += np.sin(xx / (9 + 4 * k) + np.sin(yy / (23 * k) + phase) * 3.0)
    pattern = (np.abs(waves) < 0.25).astype(np.float32)
    base -= pattern[..., None] * np.array([10, 6, 2], np.float32)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")


def _silhouette(size: tuple[int, int]) -> Image.Image:
    width, height = size
    img = Image.new("RGB", size, (236, 240, 244))
    draw = ImageDraw.Draw(img)
    grey = (150, 155, 162)
    draw.ellipse((width * 0.30, height * 0.14, width * 0.70, height * 0.62), fill=grey)
    draw.ellipse((width * 0.08, height * 0.62, width * 0.92, height * 1.35), fill=grey)
    return img


def _text(
    draw: ImageDraw.ImageDraw,
    xy_mm: tuple[float, float],
    text: str,
    font: ImageFont.FreeTypeFont,
    colour: tuple[int, int, int],
    spacing: float = 0.0,
) -> float:
    """Draw `text` with its top-left at `xy_mm` (plus extra spacing per character in px)."""
    x, y = _mm(xy_mm[0]), _mm(xy_mm[1])
    if not spacing:
        draw.text((x, y), text, font=font, fill=colour)
        return x + draw.textlength(text, font=font)
    for char in text:
        draw.text((x, y), char, font=font, fill=colour)
        x += round(draw.textlength(char, font=font) + spacing)
    return float(x)


def _address_lines(address: str) -> list[str]:
    return [
        address[i : i + ADDRESS_CHARS_PER_LINE]
        for i in range(0, len(address), ADDRESS_CHARS_PER_LINE)
    ]


def draw_card(
    truth: CardTruth, *, seed: int = 0, portrait: Image.Image | None = None
) -> Image.Image:
    """Draw the portrait side of a resident ID card printing exactly `truth`."""
    rng = random.Random(seed)
    size = (_mm(CARD_MM[0]), _mm(CARD_MM[1]))
    card = _background(rng, size)
    draw = ImageDraw.Draw(card)
    label = _font("regular", _mm(2.6))
    value = _font("bold", _mm(3.3))
    number = _font("number", _mm(3.7))

    _text(draw, (6.0, 6.8), "姓名", label, LABEL_COLOUR)
    _text(draw, (15.5, 6.0), truth.name, value, VALUE_COLOUR)

    _text(draw, (6.0, 13.3), "性别", label, LABEL_COLOUR)
    _text(draw, (15.5, 12.5), "男" if truth.sex == "male" else "女", value, VALUE_COLOUR)
    _text(draw, (26.5, 13.3), "民族", label, LABEL_COLOUR)
    _text(draw, (36.0, 12.5), truth.ethnicity, value, VALUE_COLOUR)

    born = truth.birth_date
    _text(draw, (6.0, 19.8), "出生", label, LABEL_COLOUR)
    _text(draw, (15.5, 19.0), f"{born.year}", value, VALUE_COLOUR)
    _text(draw, (25.3, 19.8), "年", label, LABEL_COLOUR)
    _text(draw, (29.5, 19.0), f"{born.month}", value, VALUE_COLOUR)
    _text(draw, (33.6, 19.8), "月", label, LABEL_COLOUR)
    _text(draw, (37.8, 19.0), f"{born.day}", value, VALUE_COLOUR)
    _text(draw, (42.0, 19.8), "日", label, LABEL_COLOUR)

    _text(draw, (6.0, 26.3), "住址", label, LABEL_COLOUR)
    for row, line in enumerate(_address_lines(truth.address)[:4]):
        _text(draw, (15.5, 25.5 + row * 4.6), line, value, VALUE_COLOUR)

    _text(draw, (6.0, 45.8), "公民身份号码", label, LABEL_COLOUR)
    # The number runs from 28.5 mm to about 79.5 mm on a real card, whatever the font.
    spare = _mm(51.0) - draw.textlength(truth.id_number, font=number)
    _text(draw, (28.5, 45.0), truth.id_number, number, VALUE_COLOUR, spacing=spare / 17)

    box = (_mm(54.0), _mm(6.0), _mm(80.5), _mm(40.0))
    photo_size = (box[2] - box[0], box[3] - box[1])
    photo = _silhouette(photo_size) if portrait is None else portrait.convert("RGB")
    card.paste(photo.resize(photo_size, Image.Resampling.LANCZOS), box[:2])
    return card


def make_card(seed: int, *, portrait: Image.Image | None = None) -> tuple[Image.Image, CardTruth]:
    """A random valid identity for `seed` and its card."""
    truth = random_truth(seed)
    return draw_card(truth, seed=seed, portrait=portrait), truth


# --- degradations --------------------------------------------------------------------------

TABLE_COLOUR = (96, 84, 72)


def jpeg(img: Image.Image, q: int = 30) -> Image.Image:
    """Re-encode as JPEG at quality `q` (a heavily compressed upload)."""
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, "JPEG", quality=q)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def blur(img: Image.Image, radius: float) -> Image.Image:
    """Gaussian blur (out of focus)."""
    return img.filter(ImageFilter.GaussianBlur(radius))


def motion_blur(img: Image.Image, length: int, angle: float = 0.0) -> Image.Image:
    """Blur along a line of `length` px at `angle` degrees (a shaking hand)."""
    size = length if length % 2 else length + 1
    kernel_img = Image.new("L", (size * 4, size * 4), 0)
    centre = size * 2
    dx = math.cos(math.radians(angle)) * length * 2
    dy = math.sin(math.radians(angle)) * length * 2
    ImageDraw.Draw(kernel_img).line(
        (centre - dx, centre - dy, centre + dx, centre + dy), fill=255, width=4
    )
    kernel = np.asarray(kernel_img.resize((size, size), Image.Resampling.BOX), np.float32)
    kernel /= kernel.sum()
    rgb = np.asarray(img.convert("RGB"), np.float32)
    pad = size // 2
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    out = np.zeros_like(rgb)
    height, width = rgb.shape[:2]
    for ky, kx in zip(*np.nonzero(kernel), strict=True):
        out += kernel[ky, kx] * padded[ky : ky + height, kx : kx + width]
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")


def rotate(img: Image.Image, deg: float) -> Image.Image:
    """Rotate by `deg` degrees, showing the table around the card."""
    return img.rotate(deg, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=TABLE_COLOUR)


def _perspective_coefficients(
    src: list[tuple[float, float]], dst: list[tuple[float, float]]
) -> list[float]:
    # Pillow maps output (x, y) to input via (ax+by+c)/(gx+hy+1), (dx+ey+f)/(gx+hy+1).
    rows = []
    rhs = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.extend([u, v])
    solution = np.linalg.solve(np.array(rows, np.float64), np.array(rhs, np.float64))
    return [float(c) for c in solution]


def perspective(img: Image.Image, seed: int = 0, strength: float = 0.08) -> Image.Image:
    """The card photographed at an angle: each corner moved up to `strength` of the size."""
    rng = random.Random(seed)
    width, height = img.size
    margin_x, margin_y = int(width * strength), int(height * strength)
    out_w, out_h = width + 2 * margin_x, height + 2 * margin_y
    corners = [(0.0, 0.0), (width, 0.0), (width, height), (0.0, height)]
    # A tilt: one side of the card nearer the camera than the other.
    shrink_right = rng.random() < 0.5
    dst = []
    for i, (x, y) in enumerate(corners):
        right = i in (1, 2)
        squeeze = strength * height * (1.0 if right == shrink_right else 0.0)
        sign = 1 if y == 0 else -1
        jx = rng.uniform(-0.3, 0.3) * strength * width
        jy = rng.uniform(-0.3, 0.3) * strength * height
        dst.append((x + margin_x + jx, y + margin_y + sign * squeeze + jy))
    coefficients = _perspective_coefficients(corners, dst)
    return img.transform(
        (out_w, out_h),
        Image.Transform.PERSPECTIVE,
        coefficients,
        resample=Image.Resampling.BICUBIC,
        fillcolor=TABLE_COLOUR,
    )


def low_contrast(img: Image.Image, factor: float = 0.4) -> Image.Image:
    """A washed-out photo: contrast cut to `factor` and brightened."""
    washed = ImageEnhance.Contrast(img).enhance(factor)
    return ImageEnhance.Brightness(washed).enhance(1.1)


def noise(img: Image.Image, seed: int = 0, sigma: float = 14.0) -> Image.Image:
    """Gaussian sensor noise of `sigma` grey levels."""
    rng = np.random.default_rng(seed)
    rgb = np.asarray(img.convert("RGB"), np.float32)
    noisy = rgb + rng.normal(0.0, sigma, rgb.shape).astype(np.float32)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def _table_texture(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # Wood grain: wavy stripes plus fine noise and a lighting gradient.
    grain = np.sin(yy / 7.0 + 3.0 * np.sin(xx / 90.0 + rng.uniform(0, 6))) * 14
    fine = rng.normal(0, 9, (height, width)).astype(np.float32)
    light = 25 * (1 - xx / width)
    tone = grain + fine + light
    rgb = np.stack([130 + tone, 98 + tone * 0.8, 70 + tone * 0.6], axis=-1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def on_textured_background(img: Image.Image, seed: int = 0) -> Image.Image:
    """The card lying on a wooden table, photographed from above, slightly turned."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    width, height = img.size
    canvas_size = (int(width * 1.35), int(height * 1.45))
    canvas = _table_texture(nrng, canvas_size)
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, width - 1, height - 1), radius=_mm(3.2), fill=255)
    angle = rng.uniform(-3.0, 3.0)
    card = img.convert("RGB").rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    mask = mask.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    shadow = Image.new("L", canvas_size, 0)
    x = rng.randint(int(width * 0.05), canvas_size[0] - card.size[0] - int(width * 0.05))
    y = rng.randint(int(height * 0.05), canvas_size[1] - card.size[1] - int(height * 0.05))
    shadow.paste(mask, (x + 8, y + 10))
    shadow = shadow.filter(ImageFilter.GaussianBlur(8))
    dark = Image.new("RGB", canvas_size, (30, 25, 20))
    canvas = Image.composite(dark, canvas, shadow.point(lambda v: v * 0.5))
    canvas.paste(card, (x, y), mask)
    # A phone photo of the whole scene, sent at about the card's own width: the card itself
    # ends up at roughly three quarters of the resolution of the other variants.
    return canvas.resize(
        (width, round(canvas_size[1] * width / canvas_size[0])), Image.Resampling.LANCZOS
    )


Degradation = Callable[[Image.Image, int], Image.Image]

# Every entry takes (card, seed). The first group must stay readable by a person (and so
# must never be refused by the gate); HEAVY ones must be refused or give no ID number.
DEGRADATIONS: dict[str, Degradation] = {
    "clean": lambda img, seed: img,
    "jpeg30": lambda img, seed: jpeg(img, q=30),
    "blur1": lambda img, seed: blur(img, 1.0),
    "motion7": lambda img, seed: motion_blur(img, 7, angle=random.Random(seed).uniform(0, 180)),
    "rotate5": lambda img, seed: rotate(img, 5.0 if seed % 2 else -5.0),
    "perspective": lambda img, seed: perspective(img, seed),
    "low_contrast": lambda img, seed: low_contrast(img),
    "textured_table": lambda img, seed: on_textured_background(img, seed),
    "noise": lambda img, seed: noise(img, seed),
    "blur3": lambda img, seed: blur(img, 3.0),
    "motion25": lambda img, seed: motion_blur(img, 25, angle=random.Random(seed).uniform(0, 180)),
}
HEAVY = frozenset({"blur3", "motion25"})
READABLE = tuple(name for name in DEGRADATIONS if name not in HEAVY)


def to_bytes(img: Image.Image, fmt: str = "PNG", **params: int) -> bytes:
    """Encode an image as an upload would carry it."""
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params)
    return buffer.getvalue()
