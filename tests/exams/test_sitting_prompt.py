"""SPEC §5: the sitting status carries each subject's prompt, so a client can show the
question text while recording without a school-side call."""

from __future__ import annotations

import pytest

from tests.exams.test_sittings import candidate_for, new_exam, start
from tests.exams.test_sittings import world as world  # the fixture

pytestmark = pytest.mark.usefixtures("app")


async def test_sitting_status_names_each_subjects_prompt(
    app, client, inbox, new_phone, world
) -> None:
    """§5: the prompt the school wrote is in the candidate's sitting, subject by subject."""
    exam = await new_exam(
        client,
        world,
        subjects=[
            {"name": "练习曲", "prompt": "请演奏一首练习曲", "orientation": "landscape"},
            {"name": "视唱", "orientation": "choice"},
        ],
    )
    who = await candidate_for(app, client, inbox, new_phone, world, exam)
    started = await start(client, who, exam["id"], mode="mock")
    assert started.status_code == 200, started.text
    subjects = started.json()["subjects"]
    assert [subject["prompt"] for subject in subjects] == ["请演奏一首练习曲", ""]
