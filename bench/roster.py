"""Roster import throughput: the real preview + commit path against a raw COPY (SPEC §4).

    python -m bench.roster [--rows N] [--smoke]

Generates N valid rows to a CSV (streamed to disk), imports it through
`vexam.schools.roster` (parse, validate, encrypt, stage, upsert) into a fresh PostgreSQL
database and into a fresh SQLite file, and times a raw `COPY` of the same CSV into a plain
table in the same PostgreSQL database. Goals: PostgreSQL import <= 60 s and >= 0.5x the
rows/s of raw COPY; peak memory flat (it must not grow with N). `--smoke` runs 20,000 rows
and fails only on errors.

It also prints the floors that bound the ratio, measured in the same run: the mandatory
per-row work alone (validate, encrypt, blind-index; no I/O, one core) and the commit alone
(one set-based INSERT ... SELECT ... ON CONFLICT inside PostgreSQL, no Python per row).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import os
import resource
import secrets
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import asyncpg

from vexam.config import Environment, Settings
from vexam.core.clock import SystemClock
from vexam.core.context import Ctx, Principal, Role
from vexam.core.db import Database
from vexam.exams import schemas as exam_schemas
from vexam.exams import service as exams
from vexam.identity.idnumbers import PROVINCES, check_character
from vexam.main import build_queue
from vexam.migrate import upgrade
from vexam.schools import roster, roster_files
from vexam.schools import service as schools_service

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
GOAL_SECONDS = 60.0
GOAL_RATIO = 0.5
FLOOR_SAMPLE = 200_000  # rows the per-row floor is measured on (then scaled to the run)
REGIONS = ("110105", "310104", "440106", "330106", "510107", "420102", "320102", "370102")
BENCH_PRINCIPAL = Principal(
    user_id=0, role=Role.operator, school_id=None, locale=None, session_id=0, masked_phone="bench"
)


def generate(path: Path, rows: int) -> None:
    """Write `rows` valid, distinct roster rows (streamed, one at a time)."""
    born = date(1990, 1, 1)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["姓名", "身份证号", "高考省份", "考生号", "专业"])
        for n in range(rows):
            region = REGIONS[n % len(REGIONS)]
            day = born + timedelta(days=n // (len(REGIONS) * 1000))
            first17 = f"{region}{day:%Y%m%d}{n // len(REGIONS) % 1000:03d}"
            writer.writerow(
                [
                    f"考生{n}",
                    first17 + check_character(first17),
                    PROVINCES[region[:2]][0],
                    f"27{n:012d}",
                    "钢琴",
                ]
            )


def peak_rss_mb() -> float:
    """The process's peak resident set so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _descendants(root: int) -> list[int]:
    """Pids of every process below `root` (the checking workers sit under a fork server)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class WorkerMemory:
    """Samples the resident set of this process's worker processes while an import runs."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self.workers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            pids = _descendants(os.getpid())
            self.workers = max(self.workers, len(pids))
            self.peak_mb = max(self.peak_mb, max((_rss_mb(pid) for pid in pids), default=0.0))

    def __enter__(self) -> WorkerMemory:
        if Path("/proc/self/status").exists():
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


@dataclass
class Result:
    """One measured run."""

    label: str
    rows: int
    seconds: float
    peak_mb: float
    preview_seconds: float = 0.0
    commit_seconds: float = 0.0
    worker_mb: float = 0.0

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.seconds if self.seconds else 0.0


def exam_in() -> exam_schemas.ExamIn:
    """A plain exam to import the roster into."""
    return exam_schemas.ExamIn.model_validate(
        {
            "code": "bench",
            "name": "基准",
            "season": "2027",
            "formal_starts_at": "2027-01-10T09:00:00+08:00",
            "formal_ends_at": "2027-01-12T18:00:00+08:00",
            "subjects": [{"name": "练习曲", "attempts": 2, "max_seconds": 300}],
        }
    )


async def import_through_service(label: str, url: str, csv_path: Path, workdir: Path) -> Result:
    """Migrate a fresh database at `url`, then preview and commit the CSV as the CLI does."""
    settings = Settings(
        env=Environment.development,
        data_dir=workdir / label,
        database_url=url,
        queue_url=f"sqlite:///{workdir / f'{label}-queue.db'}",
        storage_url="",
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(url)
    try:
        await upgrade(db)
        queue = build_queue(settings)
        async with db.unit_of_work() as session:
            ctx = Ctx(session=session, clock=SystemClock(), settings=settings, jobs=queue)
            school = await schools_service.create_school(ctx, "bench-school", "基准学院")
            exam = await exams.create_exam(ctx, BENCH_PRINCIPAL, school.id, exam_in())
        started = time.perf_counter()
        with WorkerMemory() as workers:
            async with db.unit_of_work() as session:
                ctx = Ctx(session=session, clock=SystemClock(), settings=settings, jobs=queue)
                with csv_path.open("rb") as stream:
                    preview = await roster.preview(
                        ctx, BENCH_PRINCIPAL, exam.id, stream, "bench.csv"
                    )
                if preview.error_rows:
                    raise SystemExit(f"{label}: {preview.error_rows} bad: {preview.errors[:3]}")
                previewed = time.perf_counter()
                done = await roster.commit(ctx, BENCH_PRINCIPAL, exam.id, preview.id)
                committed = time.perf_counter()
        seconds = time.perf_counter() - started
        assert done.inserted_rows == preview.total_rows, done
        return Result(
            label,
            preview.total_rows,
            seconds,
            peak_rss_mb(),
            preview_seconds=previewed - started,
            commit_seconds=committed - previewed,
            worker_mb=workers.peak_mb,
        )
    finally:
        await db.dispose()


def per_row_floor(csv_path: Path, rows: int) -> float:
    """Seconds the mandatory per-row work (validate, encrypt, blind-index) takes for `rows`
    rows on one core, file already parsed: measured on a sample, scaled to `rows`."""
    today, key = date.today(), secrets.token_urlsafe(32)
    checked, spent = 0, 0.0
    with csv_path.open("rb") as stream:
        sample = itertools.islice(roster_files.read_rows(stream), FLOOR_SAMPLE)
        while batch := list(itertools.islice(sample, roster.BATCH_ROWS)):  # parsing not timed
            started = time.perf_counter()
            for row in batch:
                roster.check_row(1, row, today=today, data_key=key)
            spent += time.perf_counter() - started
            checked += len(batch)
    return spent * rows / max(checked, 1)


async def raw_copy(dsn: str, csv_path: Path, rows: int) -> Result:
    """COPY the same CSV into a plain table: the floor any import is measured against."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "CREATE TABLE raw_roster (name text, id_number text, province text,"
            " candidate_number text, major text)"
        )
        started = time.perf_counter()
        async with connection.transaction():
            await connection.copy_to_table("raw_roster", source=csv_path, format="csv", header=True)
        seconds = time.perf_counter() - started
        return Result("raw COPY (PostgreSQL)", rows, seconds, peak_rss_mb())
    finally:
        await connection.close()


async def run(rows: int) -> tuple[list[Result], Result, float]:
    """Generate, import into PostgreSQL and SQLite, COPY; drop the bench database after."""
    name = f"vexam_bench_{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="vexam-bench-") as tmp:
        workdir = Path(tmp)
        csv_path = workdir / "roster.csv"
        generate(csv_path, rows)
        print(f"generated {rows:,} rows ({csv_path.stat().st_size / 1e6:.1f} MB)")
        admin = await asyncpg.connect(PG_ADMIN)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            dsn = PG_ADMIN.rpartition("/")[0] + f"/{name}"
            pg = await import_through_service(
                "PostgreSQL",
                dsn.replace("postgresql://", "postgresql+asyncpg://"),
                csv_path,
                workdir,
            )
            copy = await raw_copy(dsn, csv_path, rows)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        lite = await import_through_service(
            "SQLite", f"sqlite+aiosqlite:///{workdir / 'bench.db'}", csv_path, workdir
        )
        floor = per_row_floor(csv_path, rows)
    return [pg, lite], copy, floor


def report(results: list[Result], copy: Result, floor: float) -> bool:
    """Print the table, the floors and the verdicts; whether PostgreSQL met both goals."""
    print(
        f"\n{'run':<24}{'rows':>11}{'seconds':>10}{'preview':>9}{'commit':>8}{'rows/s':>11}"
        f"{'x COPY':>8}{'peak MB':>9}{'workers MB':>12}"
    )
    for item in [*results, copy]:
        ratio = item.rate / copy.rate if copy.rate else 0.0
        split = (
            f"{item.preview_seconds:>9.2f}{item.commit_seconds:>8.2f}"
            if item.preview_seconds
            else f"{'':>9}{'':>8}"
        )
        workers = f"{item.worker_mb:>12.0f}" if item.worker_mb else f"{'-':>12}"
        print(
            f"{item.label:<24}{item.rows:>11,}{item.seconds:>10.2f}{split}{item.rate:>11,.0f}"
            f"{ratio:>8.2f}{item.peak_mb:>9.0f}{workers}"
        )
    pg = results[0]
    budget = pg.rows / (GOAL_RATIO * copy.rate) if copy.rate else 0.0
    cores = os.cpu_count() or 1
    print(
        f"\nFloors ({GOAL_RATIO}x raw COPY allows {budget:.2f} s for {pg.rows:,} rows):"
        f"\n  per-row work alone (validate + encrypt + blind-index, no I/O): {floor:.2f} s on"
        f" 1 core, {floor / cores:.2f} s on {cores} at best -> at most"
        f" {pg.rows / (floor / cores) / copy.rate:.2f}x COPY with free database writes"
        f"\n  commit alone (one INSERT ... SELECT ... ON CONFLICT in PostgreSQL, no Python per"
        f" row): {pg.commit_seconds:.2f} s -> at most"
        f" {pg.rows / pg.commit_seconds / copy.rate:.2f}x COPY with a free preview"
    )
    time_ok = pg.seconds <= GOAL_SECONDS
    ratio_ok = pg.rate >= GOAL_RATIO * copy.rate
    print(
        f"\nPostgreSQL <= {GOAL_SECONDS:.0f} s: {'PASS' if time_ok else 'MISS'} "
        f"({pg.seconds:.1f} s); >= {GOAL_RATIO}x raw COPY: {'PASS' if ratio_ok else 'MISS'} "
        f"({pg.rate / copy.rate:.2f}x)"
    )
    return time_ok and ratio_ok


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--smoke", action="store_true", help="20,000 rows; fail only on errors")
    args = parser.parse_args()
    rows = 20_000 if args.smoke else args.rows
    results, copy, floor = asyncio.run(run(rows))
    met = report(results, copy, floor)
    if not met and not args.smoke:
        sys.exit(1)


if __name__ == "__main__":
    main()
