"""SPEC §6 review rules as tables: rubric shape, score checks, aggregation, escalation."""

from __future__ import annotations

import pytest

from vexam.core.errors import VexamError
from vexam.review import rules


@pytest.mark.parametrize(
    ("totals", "method", "expected"),
    [
        ([], "mean", None),
        ([70], "mean", 70),
        ([70, 80], "mean", 75),
        ([70, 80, 95], "mean", 81.67),
        ([70, 80], "median", 75),
        ([70, 80, 95], "median", 80),
        ([10, 70, 80, 95], "median", 75),
        ([70, 80], "trimmed_mean", 75),  # fewer than 3: the plain mean
        ([10, 70, 80], "trimmed_mean", 70),  # drop 10 and 80
        ([10, 70, 80, 100], "trimmed_mean", 75),
        ([60, 60, 60, 60, 99], "trimmed_mean", 60),
        ([72.5, 73.5], "mean", 73),
    ],
)
def test_aggregate(totals: list[float], method: str, expected: float | None) -> None:
    """§6: mean, trimmed mean (without one highest and one lowest) and median."""
    assert rules.aggregate(totals, method) == expected


# base reviewers, escalations so far, max reviewers, threshold, totals in order → outcome
ESCALATION = [
    # waiting for the first scores: nothing changes
    (2, 0, 3, 10, [50], (0, False)),
    # two scores within the threshold (inclusive): complete
    (2, 0, 3, 10, [50, 60], (0, False)),
    # further apart than the threshold: one more reviewer
    (2, 0, 3, 10, [50, 60.5], (1, False)),
    # escalated, the further score agrees with one earlier score: settled
    (2, 1, 3, 10, [50, 80, 75], (1, False)),
    # escalated, the further score agrees with neither, and the maximum is reached: disputed
    (2, 1, 3, 10, [50, 80, 65], (1, True)),
    # a higher maximum: escalate again instead
    (2, 1, 4, 10, [50, 80, 65], (2, False)),
    (2, 2, 4, 10, [50, 80, 65, 64], (2, False)),
    # escalated, waiting for the further score: nothing changes
    (2, 1, 3, 10, [50, 80], (1, False)),
    # one reviewer per submission: a single score can never disagree
    (1, 0, 1, 10, [10], (0, False)),
    (1, 0, 2, 10, [10], (0, False)),
    # three per submission, maximum three: disagreement is disputed at once
    (3, 0, 3, 5, [10, 20, 30], (0, True)),
    # threshold 0: any difference escalates
    (2, 0, 3, 0, [50, 50.5], (1, False)),
    (2, 0, 3, 0, [50, 50], (0, False)),
]


@pytest.mark.parametrize(
    ("base", "escalations", "max_reviewers", "threshold", "totals", "expected"), ESCALATION
)
def test_escalation(
    base: int,
    escalations: int,
    max_reviewers: int,
    threshold: float,
    totals: list[float],
    expected: tuple[int, bool],
) -> None:
    """§6: two scores further apart than the threshold send the submission to one further
    reviewer, up to the exam's maximum; a disagreement left there is disputed."""
    outcome = rules.escalate(
        totals,
        base=base,
        escalations=escalations,
        threshold=threshold,
        max_reviewers=max_reviewers,
    )
    assert (outcome.escalations, outcome.disputed) == expected


@pytest.mark.parametrize(
    ("count", "wanted", "escalations", "disputed", "state"),
    [
        (0, 2, 0, False, "open"),
        (1, 2, 0, False, "open"),
        (2, 2, 0, False, "complete"),
        (2, 3, 1, False, "escalated"),
        (3, 3, 1, True, "disputed"),
        (4, 3, 1, False, "complete"),
    ],
)
def test_state(count: int, wanted: int, escalations: int, disputed: bool, state: str) -> None:
    assert rules.state_of(count, wanted, escalations, disputed) == state


def test_needed_is_capped_by_the_maximum() -> None:
    assert rules.needed(2, 0, 3) == 2
    assert rules.needed(2, 1, 3) == 3
    assert rules.needed(2, 5, 3) == 3


@pytest.mark.parametrize(
    ("stored", "valid"),
    [
        ({}, True),
        ({"criteria": [], "step": 0.5}, True),
        ({"criteria": [{"name": "技巧", "max_points": 60}], "step": 0.5}, True),
        ({"criteria": [{"name": "", "max_points": 60}]}, False),
        ({"criteria": [{"name": "a", "max_points": 0}]}, False),
        ({"criteria": [{"name": "a", "max_points": 1001}]}, False),
        ({"criteria": [{"name": "a", "max_points": "10"}]}, False),
        ({"criteria": [{"name": "a", "max_points": True}]}, False),
        ({"criteria": [{"name": "a", "max_points": 10}, {"name": "a", "max_points": 5}]}, False),
        ({"criteria": [{"name": "a", "max_points": 10}], "step": 0}, False),
        ({"criteria": [{"name": "a", "max_points": 10}], "step": 11}, False),
        ({"criteria": "a"}, False),
        ({"criteria": [{"name": f"c{i}", "max_points": 1} for i in range(31)]}, False),
    ],
)
def test_rubric_shape(stored: dict[str, object], valid: bool) -> None:
    """A rubric is 1–30 named criteria with 0 < max ≤ 1000 and a step; none: the default."""
    if valid:
        rubric = rules.rubric_of(stored)
        assert rubric.criteria and rubric.step > 0
    else:
        with pytest.raises(VexamError) as refused:
            rules.rubric_of(stored)
        assert refused.value.code == "rubric_invalid"


def test_default_rubric_is_one_criterion_of_100() -> None:
    rubric = rules.rubric_of({})
    assert rubric.default and rubric.max_total == 100
    assert [(c.name, c.max_points) for c in rubric.criteria] == [("Overall", 100)]
    assert rules.check_points(rubric, [87]) == 87


@pytest.mark.parametrize(
    ("points", "ok"),
    [
        ([60, 40], True),
        ([0, 0], True),
        ([30.5, 12], True),
        ([60.5, 40], False),  # above the criterion's maximum
        ([-1, 10], False),
        ([30.25, 10], False),  # not a multiple of the step
        ([30], False),  # a criterion missing
        ([30, 10, 1], False),
        ([float("nan"), 10], False),
    ],
)
def test_points_follow_the_rubric(points: list[float], ok: bool) -> None:
    rubric = rules.rubric_of(
        {"criteria": [{"name": "技巧", "max_points": 60}, {"name": "表现", "max_points": 40}]}
    )
    if ok:
        assert rules.check_points(rubric, points) == sum(points)
    else:
        with pytest.raises(VexamError) as refused:
            rules.check_points(rubric, points)
        assert refused.value.code == "score_invalid"


def test_shares_are_stable_and_spread() -> None:
    """A 50 % share takes about half the items, always the same ones, and a different half
    for another reviewer."""
    codes = [f"R-{n:08d}" for n in range(2000)]
    first = {code for code in codes if rules.in_share(code, 1, 50)}
    second = {code for code in codes if rules.in_share(code, 2, 50)}
    assert 850 <= len(first) <= 1150
    assert first == {code for code in codes if rules.in_share(code, 1, 50)}
    assert 0.35 < len(first & second) / len(first) < 0.65
    assert all(rules.in_share(code, 1, 100) for code in codes[:50])
