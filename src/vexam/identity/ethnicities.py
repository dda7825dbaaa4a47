"""The 56 official ethnicities (GB 3304) and the snapping of an OCR read to one of them."""

from __future__ import annotations

import re
import unicodedata

_SPACE = re.compile(r"[\s\u3000]+")

# GB 3304 names of the 56 nationalities, without 族, in the standard's order.
ETHNICITIES: tuple[str, ...] = (
    "汉", "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜",
    "满", "侗", "瑶", "白", "土家", "哈尼", "哈萨克", "傣", "黎", "傈僳",
    "佤", "畲", "高山", "拉祜", "水", "东乡", "纳西", "景颇", "柯尔克孜", "土",
    "达斡尔", "仫佬", "羌", "布朗", "撒拉", "毛南", "仡佬", "锡伯", "阿昌", "普米",
    "塔吉克", "怒", "乌孜别克", "俄罗斯", "鄂温克", "德昂", "保安", "裕固", "京", "塔塔尔",
    "独龙", "鄂伦春", "赫哲", "门巴", "珞巴", "基诺",
)  # fmt: skip


def levenshtein(a: str, b: str) -> int:
    """The edit distance between two strings (insertions, deletions, substitutions)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def snap_ethnicity(read: str) -> tuple[str | None, str | None]:
    """Map an OCR read to an official name: (name, None) exact, (name, "snapped"), or (None, why).

    A near miss (one edit away) is snapped only when exactly one official name is that close.
    """
    text = _SPACE.sub("", unicodedata.normalize("NFKC", read))
    if text.endswith("族") and len(text) > 1:
        text = text[:-1]
    if text in ETHNICITIES:
        return text, None
    if not text:
        return None, "missing"
    near = [name for name in ETHNICITIES if levenshtein(text, name) <= 1]
    if len(near) == 1:
        return near[0], "snapped"
    return None, "not_an_official_ethnicity"
