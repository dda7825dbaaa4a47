"""ID-card OCR benchmark (SPEC §3): generated cards x degradations through `IdCardReader`.

    .venv/bin/python -m bench.identity.ocr [--cards N] [--smoke] [--jobs J] [--extra]

Prints, per degradation: cards, refused by the gate, refused after OCR, ID number right /
wrong among accepted, all six fields right among accepted, wrong fields left unflagged, and
median CPU seconds per card (`time.process_time` around `read`; onnxruntime is given
intra_op_num_threads=1, so this is single-thread CPU). Then PASS/MISS per goal. `--jobs`
runs cards in parallel processes (each still single-threaded) to save wall time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from PIL import Image
from tests.identity import cardgen

from vexam.identity.ocr import IdCardReader, IdPhotoUnclear

FIELDS = ("name", "sex", "ethnicity", "birth_date", "address", "id_number")
CPU_GOAL = 1.1
SIX_GOAL = 0.97


def _small(short: int) -> Callable[[Image.Image, int], Image.Image]:
    def shrink(img: Image.Image, seed: int) -> Image.Image:
        scale = short / min(img.size)
        size = (round(img.width * scale), round(img.height * scale))
        return img.resize(size, Image.Resampling.LANCZOS)

    return shrink


# Exploratory variants, used to place the gate's thresholds (not goals by themselves).
EXTRA: dict[str, Callable[[Image.Image, int], Image.Image]] = {
    "blur1.5": lambda img, seed: cardgen.blur(img, 1.5),
    "blur2": lambda img, seed: cardgen.blur(img, 2.0),
    "motion11": lambda img, seed: cardgen.motion_blur(
        img, 11, angle=random.Random(seed).uniform(0, 180)
    ),
    "motion15": lambda img, seed: cardgen.motion_blur(
        img, 15, angle=random.Random(seed).uniform(0, 180)
    ),
    "small400": _small(400),
    "small250": _small(250),
    "small200": _small(200),
    "small180": _small(180),
}


@dataclass
class Row:
    name: str
    cards: int = 0
    gate_refused: int = 0
    ocr_refused: int = 0
    other_refused: int = 0
    id_right: int = 0
    id_wrong: int = 0
    six_right: int = 0
    unflagged_wrong: int = 0
    cpu: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.id_right + self.id_wrong


_reader: IdCardReader | None = None


def _run_one(job: tuple[str, int]) -> tuple[str, str, float, list[str], bool, bool, str]:
    """Read one degraded card: (variant, outcome, cpu, wrong fields, id right, any unflagged)."""
    global _reader
    if _reader is None:
        _reader = IdCardReader(threads=1)
    variant, seed = job
    degrade = {**cardgen.DEGRADATIONS, **EXTRA}[variant]
    card, truth = cardgen.make_card(seed)
    data = cardgen.to_bytes(degrade(card, seed))
    started = time.process_time()
    try:
        reading = _reader.read(data)
    except IdPhotoUnclear as refused:
        return variant, refused.reason, time.process_time() - started, [], False, False, ""
    cpu = time.process_time() - started
    expected = truth.fields()
    got = reading.fields()
    wrong = [k for k in FIELDS if got[k].value != expected[k]]
    unflagged = any(not got[k].doubtful for k in wrong)
    detail = "; ".join(f"{k}: {got[k].value!r} != {expected[k]!r}" for k in wrong)
    return variant, "accepted", cpu, wrong, "id_number" not in wrong, unflagged, detail


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; exit 1 when a goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=50)
    parser.add_argument("--smoke", action="store_true", help="2 cards per degradation")
    parser.add_argument("--jobs", type=int, default=1, help="parallel processes")
    parser.add_argument("--extra", action="store_true", help="also exploratory variants")
    parser.add_argument("--seed", type=int, default=1000, help="first card seed")
    parser.add_argument("--show-failures", action="store_true")
    args = parser.parse_args(argv)
    cards = 2 if args.smoke else args.cards

    variants = list(cardgen.DEGRADATIONS) + (list(EXTRA) if args.extra else [])
    jobs = [(v, args.seed + i) for v in variants for i in range(cards)]
    rows = {v: Row(v) for v in variants}
    number_font = cardgen.ocrb_font_path() or f"fallback {cardgen.number_font_path()}"
    print(f"cards per degradation: {cards}; ID number font: {number_font}")
    started = time.monotonic()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(_run_one, jobs, chunksize=4))
    else:
        results = [_run_one(job) for job in jobs]
    for (variant, outcome, cpu, wrong, id_right, unflagged, detail), (_, seed) in zip(
        results, jobs, strict=True
    ):
        row = rows[variant]
        row.cards += 1
        if outcome in ("too_small", "blurry"):
            row.gate_refused += 1
            continue
        row.cpu.append(cpu)
        if outcome == "id_number_unreadable":
            row.ocr_refused += 1
        elif outcome != "accepted":
            row.other_refused += 1
            row.failures.append(f"seed {seed}: {outcome}")
        else:
            row.id_right += id_right
            row.id_wrong += not id_right
            row.six_right += not wrong
            row.unflagged_wrong += unflagged
            if wrong:
                row.failures.append(f"seed {seed}: {detail}")

    header = (
        f"{'degradation':15} {'cards':>5} {'gate':>5} {'ocr':>4} {'other':>5} "
        f"{'id ok':>5} {'id bad':>6} {'six ok':>7} {'unflag':>6} {'cpu s':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows.values():
        six = f"{100 * row.six_right / row.accepted:.0f}%" if row.accepted else "-"
        cpu = f"{statistics.median(row.cpu):.2f}" if row.cpu else "-"
        print(
            f"{row.name:15} {row.cards:5} {row.gate_refused:5} {row.ocr_refused:4} "
            f"{row.other_refused:5} {row.id_right:5} {row.id_wrong:6} {six:>7} "
            f"{row.unflagged_wrong:6} {cpu:>6}"
        )
    print(f"wall time {time.monotonic() - started:.0f} s")
    if args.show_failures:
        for row in rows.values():
            for failure in row.failures:
                print(f"  {row.name}: {failure}")

    goal_rows = [rows[v] for v in cardgen.DEGRADATIONS]
    readable = [rows[v] for v in cardgen.READABLE]
    wrong_ids = sum(r.id_wrong for r in goal_rows)
    gate_on_readable = sum(r.gate_refused for r in readable)
    passed_gate = sum(r.cards - r.gate_refused for r in readable)
    ids_right_readable = sum(r.id_right for r in readable)
    accepted = sum(r.accepted for r in goal_rows)
    six_right = sum(r.six_right for r in goal_rows)
    all_cpu = [c for r in goal_rows for c in r.cpu]
    median_cpu = statistics.median(all_cpu) if all_cpu else 0.0
    goals = [
        ("zero wrong ID numbers accepted, any degradation", wrong_ids == 0, f"{wrong_ids}"),
        (
            "readable degradations never refused by the gate",
            gate_on_readable == 0,
            f"{gate_on_readable} refused",
        ),
        (
            "ID number right on 100% of readable cards past the gate",
            ids_right_readable == passed_gate,
            f"{ids_right_readable}/{passed_gate}",
        ),
        (
            f"all six fields right on >= {SIX_GOAL:.0%} of accepted cards",
            accepted > 0 and six_right / accepted >= SIX_GOAL,
            f"{six_right}/{accepted} = {100 * six_right / max(accepted, 1):.1f}%",
        ),
        (
            f"median CPU per card <= {CPU_GOAL} s (one thread)",
            median_cpu <= CPU_GOAL,
            f"{median_cpu:.2f} s",
        ),
    ]
    print()
    for label, ok, figure in goals:
        print(f"{'PASS' if ok else 'MISS'}  {label}: {figure}")
    if args.smoke:
        # Two cards per row say nothing about a 97 % rate or a median: smoke mode fails
        # only on what must hold for every single card.
        hard = goals[:3]
        print("smoke mode: exit status from the first three goals only")
        return 0 if all(ok for _, ok, _ in hard) else 1
    return 0 if all(ok for _, ok, _ in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
