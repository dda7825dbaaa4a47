"""Reading roster files as a stream of rows: CSV (UTF-8, with or without BOM, or GBK/GB18030
as Excel in China saves it) and XLSX (openpyxl, read-only). Nothing is loaded whole.

A file that cannot be read raises `RosterFileError` naming why (`unreadable`, `encoding`,
`empty`, `missing_columns`); the caller turns it into `roster_invalid`.
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, Any

COLUMNS = ("name", "id_number", "province", "candidate_number", "major")
REQUIRED = ("name", "id_number", "province")

# Header spellings schools use, compared after `_header_key` (NFKC, no spaces, lower case).
ALIASES: dict[str, str] = {
    "姓名": "name",
    "考生姓名": "name",
    "name": "name",
    "身份证号": "id_number",
    "身份证号码": "id_number",
    "身份证": "id_number",
    "证件号码": "id_number",
    "idnumber": "id_number",
    "idno": "id_number",
    "id": "id_number",
    "高考省份": "province",
    "省份": "province",
    "生源省份": "province",
    "生源地": "province",
    "province": "province",
    "examprovince": "province",
    "考生号": "candidate_number",
    "高考考生号": "candidate_number",
    "candidatenumber": "candidate_number",
    "candidateno": "candidate_number",
    "专业": "major",
    "报考专业": "major",
    "考试": "major",
    "major": "major",
    "exam": "major",
    "exammajor": "major",
}

SAMPLE_BYTES = 64 * 1024
PROGRESS_EVERY = 1000  # rows between progress reports
XLSX_MAGIC = b"PK\x03\x04"

# (bytes or rows done, total or 0 when unknown)
Progress = Callable[[int, int], None]


class RosterFileError(ValueError):
    """The file as a whole cannot be imported; `reason` says why, `columns` what is missing."""

    def __init__(self, reason: str, columns: list[str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.columns = columns or []


@dataclass
class RawRow:
    """One data row: its number as the spreadsheet shows it, and its cells by column."""

    number: int
    cells: dict[str, str] = field(default_factory=dict)


def _header_key(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split()).replace("_", "").lower()


def map_header(header: list[str]) -> dict[str, int]:
    """Column name → position; `missing_columns` when a required column is absent."""
    found: dict[str, int] = {}
    for position, title in enumerate(header):
        column = ALIASES.get(_header_key(title))
        if column is not None and column not in found:
            found[column] = position
    missing = [column for column in REQUIRED if column not in found]
    if missing:
        raise RosterFileError("missing_columns", missing)
    return found


def _cell_text(value: Any) -> str:
    """A cell as text: Excel keeps long digit strings as numbers, so ints print whole."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def _rows_of(
    lines: Iterator[list[Any]], progress: Callable[[int], None], *, cells_are_text: bool
) -> Iterator[RawRow]:
    header: dict[str, int] | None = None
    number = 0
    for values in lines:
        number += 1
        # CSV cells are text already; spreadsheet cells need converting.
        texts = (
            [value.strip() for value in values]
            if cells_are_text
            else [_cell_text(value) for value in values]
        )
        if not any(texts):
            continue
        if header is None:
            header = map_header(texts)
            continue
        if number % PROGRESS_EVERY == 0:
            progress(number)
        yield RawRow(
            number,
            {
                column: texts[position] if position < len(texts) else ""
                for column, position in header.items()
            },
        )
    if header is None:
        raise RosterFileError("empty")


class _Counting(io.RawIOBase):
    """A binary stream that counts what was read through it (for the progress bar)."""

    def __init__(self, inner: IO[bytes], already: bytes) -> None:
        self.inner = inner
        self.pending = already
        self.done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        if self.pending:
            size = min(len(view), len(self.pending))
            view[:size] = self.pending[:size]
            self.pending = self.pending[size:]
        else:
            chunk = self.inner.read(len(view))
            size = len(chunk)
            view[:size] = chunk
        self.done += size
        return size


def _encoding_of(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        # A sample may end inside a character: decode incrementally, not final.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return "gb18030"  # a superset of GBK: what Excel in China writes as "CSV"
    return "utf-8"


def _size(stream: IO[bytes]) -> int:
    try:
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
    except (OSError, ValueError):
        return 0
    return end - here


def read_rows(stream: IO[bytes], progress: Progress | None = None) -> Iterator[RawRow]:
    """The data rows of a CSV or XLSX roster, streamed; header row located and mapped."""
    total = _size(stream)
    sample = stream.read(SAMPLE_BYTES)
    if not sample:
        raise RosterFileError("empty")
    if sample.startswith(XLSX_MAGIC):
        if stream.seekable():
            stream.seek(stream.tell() - len(sample))
            yield from _xlsx_rows(stream, progress)
        else:
            yield from _xlsx_rows(io.BytesIO(sample + stream.read()), progress)
        return
    if b"\x00" in sample:
        raise RosterFileError("unreadable")
    counting = _Counting(stream, sample)
    encoding = _encoding_of(sample)
    text = io.TextIOWrapper(io.BufferedReader(counting), encoding=encoding, newline="")
    report = (lambda _n: progress(counting.done, total)) if progress else (lambda _n: None)
    try:
        yield from _rows_of(iter(csv.reader(text)), report, cells_are_text=True)
    except UnicodeDecodeError:
        raise RosterFileError("encoding") from None
    except csv.Error:
        raise RosterFileError("unreadable") from None
    if progress:
        progress(total, total)


def _xlsx_rows(data: IO[bytes], progress: Progress | None) -> Iterator[RawRow]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(data, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError):
        raise RosterFileError("unreadable") from None
    try:
        sheet = book.worksheets[0]
        total = sheet.max_row or 0
        report = (lambda n: progress(n, total)) if progress else (lambda _n: None)
        lines = (list(values) for values in sheet.iter_rows(values_only=True))
        yield from _rows_of(lines, report, cells_are_text=False)
        if progress:
            progress(total, total)
    finally:
        book.close()
