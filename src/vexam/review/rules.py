"""The pure rules of review (SPEC §6): rubric shape, score checks, aggregation, escalation.

No database here: the service applies these to rows it has locked.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vexam.core.errors import VexamError
from vexam.core.i18n import N_

AGGREGATES = ("mean", "trimmed_mean", "median")
AGGREGATE_LABELS = {
    "mean": N_("Mean"),
    "trimmed_mean": N_("Trimmed mean (without the highest and lowest)"),
    "median": N_("Median"),
}
MAX_CRITERIA = 30
MAX_POINTS = 1000.0
MAX_REVIEWERS = 10
DEFAULT_CRITERION = N_("Overall")
DEFAULT_RUBRIC: dict[str, Any] = {
    "criteria": [{"name": DEFAULT_CRITERION, "max_points": 100.0}],
    "step": 1.0,
}


@dataclass(frozen=True)
class Criterion:
    """One scored criterion: its name and the most points it gives."""

    name: str
    max_points: float


@dataclass(frozen=True)
class Rubric:
    """A subject's rubric: criteria in order, scored in multiples of `step`."""

    criteria: tuple[Criterion, ...]
    step: float
    default: bool = False

    @property
    def max_total(self) -> float:
        """The highest total a reviewer can give."""
        return sum(criterion.max_points for criterion in self.criteria)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def rubric_of(stored: dict[str, Any] | None) -> Rubric:
    """The usable rubric of a subject's stored `rubric` JSON.

    Shape: `{"criteria": [{"name": str, "max_points": number}, ...], "step": number}` with
    1–30 criteria, unique non-empty names, 0 < max_points ≤ 1000 and 0 < step ≤ the smallest
    max_points. No criteria: the default single 0–100 criterion "Overall" in whole points.
    Anything else answers `rubric_invalid` (the exam's settings must be corrected).
    """
    stored = stored or {}
    raw = stored.get("criteria") or []
    if not raw:
        return _rubric(DEFAULT_RUBRIC, default=True)
    return _rubric(stored, default=False)


def _rubric(stored: dict[str, Any], *, default: bool) -> Rubric:
    raw = stored.get("criteria")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_CRITERIA:
        raise VexamError("rubric_invalid", reason="criteria")
    criteria: list[Criterion] = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise VexamError("rubric_invalid", reason="criteria")
        name = str(entry.get("name") or "").strip()
        top = _number(entry.get("max_points"))
        if not name or top is None or not 0 < top <= MAX_POINTS:
            raise VexamError("rubric_invalid", reason="criteria")
        criteria.append(Criterion(name, top))
    if len({criterion.name for criterion in criteria}) != len(criteria):
        raise VexamError("rubric_invalid", reason="criteria")
    step = _number(stored.get("step", 0.5))
    if step is None or not 0 < step <= min(criterion.max_points for criterion in criteria):
        raise VexamError("rubric_invalid", reason="step")
    return Rubric(tuple(criteria), step, default)


def check_points(rubric: Rubric, points: Sequence[float]) -> float:
    """The total of `points` (one per criterion, in order); `score_invalid` naming the first
    criterion whose points are missing, outside 0..max or not a multiple of the step."""
    if len(points) != len(rubric.criteria):
        raise VexamError("score_invalid", criterion="", max_points=0, step=rubric.step, index=-1)
    for index, (criterion, value) in enumerate(zip(rubric.criteria, points, strict=True)):
        number = _number(value)
        steps = number / rubric.step if number is not None else 0.0
        if (
            number is None
            or not 0 <= number <= criterion.max_points
            or abs(steps - round(steps)) > 1e-6
        ):
            raise VexamError(
                "score_invalid",
                criterion=criterion.name,
                max_points=_shown(criterion.max_points),
                step=_shown(rubric.step),
                index=index,
            )
    return round(sum(float(value) for value in points), 4)


def _shown(value: float) -> str:
    return f"{value:g}"


def aggregate(totals: Sequence[float], method: str) -> float | None:
    """The combined score of `totals` by the school's method, to 2 decimals; None if none.

    trimmed_mean drops one highest and one lowest total when there are at least 3, and is the
    mean otherwise.
    """
    if not totals:
        return None
    values = sorted(float(total) for total in totals)
    if method == "median":
        result = statistics.median(values)
    elif method == "trimmed_mean" and len(values) >= 3:
        result = statistics.fmean(values[1:-1])
    else:
        result = statistics.fmean(values)
    return round(result, 2)


def spread(totals: Sequence[float]) -> float | None:
    """Highest minus lowest total (None below two totals)."""
    return round(max(totals) - min(totals), 4) if len(totals) >= 2 else None


def needed(base: int, escalations: int, max_reviewers: int) -> int:
    """How many scores an item needs: the exam's reviewers per submission plus one per
    escalation, never beyond the exam's maximum."""
    return min(base + escalations, max(max_reviewers, base))


@dataclass(frozen=True)
class Outcome:
    """What the scores so far mean for an item."""

    escalations: int
    disputed: bool


def escalate(
    totals: Sequence[float], *, base: int, escalations: int, threshold: float, max_reviewers: int
) -> Outcome:
    """Decide escalation from the totals in the order they were given.

    Nothing changes until the item has all the scores it needs. Then, if the totals lie
    within `threshold` of each other, or the newest total (a further reviewer's) lies within
    `threshold` of an earlier one, the scores stand. Otherwise one further reviewer is needed,
    until `max_reviewers`; a disagreement that remains at the maximum is marked `disputed` for
    the school to settle.
    """
    wanted = needed(base, escalations, max_reviewers)
    if len(totals) < wanted or len(totals) < 2:
        return Outcome(escalations, False)
    if max(totals) - min(totals) <= threshold:
        return Outcome(escalations, False)
    latest, earlier = totals[-1], totals[:-1]
    if escalations and any(abs(latest - other) <= threshold for other in earlier):
        return Outcome(escalations, False)
    if wanted < max(max_reviewers, base):
        return Outcome(escalations + 1, False)
    return Outcome(escalations, True)


def state_of(count: int, wanted: int, escalations: int, disputed: bool) -> str:
    """An item's state: open (first scores due), escalated (a further score due), disputed
    (disagreement left at the maximum of reviewers) or complete."""
    if count < wanted:
        return "escalated" if escalations else "open"
    return "disputed" if disputed else "complete"


def in_share(code: str, reviewer_id: int, share_percent: int) -> bool:
    """Whether an item falls in a reviewer's share of a subject's submissions.

    Stable (the same item stays in or out) and independent per reviewer, so reviewers with
    partial shares together spread over the submissions.
    """
    if share_percent >= 100:
        return True
    digest = hashlib.sha256(f"{code}:{reviewer_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < share_percent
