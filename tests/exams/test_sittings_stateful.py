"""SPEC §5 as a property: random sequences of start / face check / event / complete / submit /
clock moves, driven through the service on one app, never exceed the attempts, never submit a
subject twice and never accept a submission after the window.

The test is synchronous: it runs its own app in a private event loop, because hypothesis's
state machines call their rules synchronously.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select, update

from tests.conftest import Sms
from tests.exams.test_enrollment import add_roster_row, certified_candidate
from tests.exams.test_exam_setup import exam_body, new_school
from tests.helpers import app_ctx, bearer, staff
from tests.identity.conftest import jpeg
from vexam.accounts import service as accounts
from vexam.core.auth import hash_token
from vexam.core.clock import FrozenClock
from vexam.core.context import Principal
from vexam.core.errors import VexamError
from vexam.exams import attempts, schemas, sittings
from vexam.exams.models import Recording, Sitting, SubjectProgress, Submission
from vexam.main import create_app

T = TypeVar("T")
BASE = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
DEVICE = "device-stateful-0001"
ATTEMPTS = (2, 1)
POLICY = {"phone_call": "flag", "screenshot": "fail_exam"}
# Bounded so the whole run takes well under a minute on either database.
MACHINE_SETTINGS = hsettings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
EXPECTED = {
    "start": {"attempts_exhausted", "face_check_required", "exam_closed", "exam_failed"},
    "check": {"recording_not_open"},
    "complete": {"recording_not_open", "recording_too_long"},
    "submit": {
        "already_submitted",
        "submission_window_closed",
        "recording_not_completed",
        "recording_not_found",
        "exam_failed",
    },
}


def test_sittings_state_machine(settings, resources, sms, new_phone) -> None:
    """Never more recordings than attempts, never two submissions of a subject, never a
    submission at or after the window's end, whatever the order of calls."""
    loop = asyncio.new_event_loop()
    clock = FrozenClock(BASE)
    app = create_app(settings, clock=clock, resources=resources)
    lifespan = app.router.lifespan_context(app)

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return loop.run_until_complete(coro)

    run(lifespan.__aenter__())
    transport = httpx.ASGITransport(app=app, client=("10.9.9.9", 40000))
    client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    try:
        school_id = run(new_school(app))
        admin = bearer(run(staff(app, client, new_phone(), "school_admin", school_id)))
        agent = bearer(run(staff(app, client, new_phone(), "support")))
        who, number = run(certified_candidate(client, Sms(app, sms), new_phone, agent))
        token = who["Authorization"].split()[1]

        async def principal_of() -> Principal:
            async with app.state.db.unit_of_work() as session:
                found = await accounts.resolve_token(session, hash_token(token), clock.now())
            assert found is not None
            return found

        principal = run(principal_of())
        machine = _machine(run, app, client, clock, admin, who, number, school_id, principal)
        run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)
    finally:
        run(client.aclose())
        run(app.state.queue.drain())
        run(lifespan.__aexit__(None, None, None))
        loop.close()


def _machine(run, app, client, clock, admin, who, number, school_id, principal) -> type:
    class ExamSitting(RuleBasedStateMachine):
        """One formal sitting of a fresh exam per example."""

        @initialize()
        def open_sitting(self) -> None:
            clock.set(BASE)
            self.window_end = BASE + timedelta(hours=1)
            body = exam_body(
                published=True,
                fee_cents=0,
                formal_starts_at=(BASE - timedelta(hours=1)).isoformat(),
                formal_ends_at=self.window_end.isoformat(),
                anti_cheat=POLICY,
                subjects=[
                    {
                        "name": f"科目{i}",
                        "attempts": n,
                        "max_seconds": 600,
                        "orientation": "portrait",
                    }
                    for i, n in enumerate(ATTEMPTS)
                ],
            )
            exam = run(client.post(f"/api/v1/schools/{school_id}/exams", json=body, headers=admin))
            assert exam.status_code == 201, exam.text
            self.exam = exam.json()
            run(add_roster_row(app, school_id, self.exam["id"], number))
            run(
                client.post(
                    f"/api/v1/exams/{self.exam['id']}/application",
                    json={"province": "11"},
                    headers=who,
                )
            )
            run(client.post(f"/api/v1/exams/{self.exam['id']}/application/confirm", headers=who))
            loaded = self.call(sittings.start, self.exam["id"], schemas.SittingIn(handover=True))
            assert not isinstance(loaded, str)
            self.sitting_id = loaded.sitting.id
            self.subjects = [subject["id"] for subject in self.exam["subjects"]]
            self.recordings: list[int] = []
            self.submitted: set[int] = set()
            self.pass_face()
            checked = self.call(
                sittings.check_device,
                self.sitting_id,
                schemas.DeviceCheckIn(
                    device_class="phone",
                    os_name="android",
                    os_version="14",
                    camera=True,
                    microphone=True,
                    free_bytes=10**10,
                    upload_kbps=10**4,
                ),
            )
            assert not isinstance(checked, str)

        def call(self, function: Any, *args: Any) -> Any:
            """Run a service call in its own unit of work; a refusal's code as a string."""

            async def _go() -> Any:
                async with app_ctx(app, DEVICE) as ctx:
                    ctx.extra = dict(app.state.resources)
                    return await function(ctx, principal, *args)

            try:
                return run(_go())
            except VexamError as refused:
                return refused.code

        def pass_face(self) -> None:
            async def _go() -> None:
                async with app_ctx(app, DEVICE) as ctx:
                    await ctx.session.execute(
                        update(Sitting)
                        .where(Sitting.id == self.sitting_id)
                        .values(
                            face_state="passed", face_device_id=DEVICE, face_check_required=False
                        )
                    )

            run(_go())

        @rule(subject=st.sampled_from([0, 1]))
        def start(self, subject: int) -> None:
            answer = self.call(
                attempts.start_recording,
                self.sitting_id,
                self.subjects[subject],
                schemas.RecordingIn(),
            )
            if isinstance(answer, str):
                assert answer in EXPECTED["start"], answer
            else:
                self.recordings.append(answer.id)

        @precondition(lambda self: self.recordings)
        @rule(pick=st.integers(0, 50))
        def failed_face_check(self, pick: int) -> None:
            recording = self.recordings[pick % len(self.recordings)]
            answer = self.call(attempts.face_check, recording, jpeg())
            if isinstance(answer, str):
                assert answer in EXPECTED["check"], answer
            else:
                assert answer.result == "face_not_found"

        @rule()
        def fresh_face_verification(self) -> None:
            self.pass_face()

        @rule(kind=st.sampled_from(["phone_call", "left_page", "app_crash", "screenshot"]))
        def event(self, kind: str) -> None:
            answer = self.call(attempts.report_event, self.sitting_id, schemas.EventIn(kind=kind))
            assert not isinstance(answer, str), answer

        @precondition(lambda self: self.recordings)
        @rule(pick=st.integers(0, 50))
        def complete(self, pick: int) -> None:
            recording = self.recordings[pick % len(self.recordings)]
            answer = self.call(attempts.complete, recording, schemas.CompleteIn())
            if isinstance(answer, str):
                assert answer in EXPECTED["complete"], answer
            else:
                assert answer.state == "completed"

        @precondition(lambda self: self.recordings)
        @rule(subject=st.sampled_from([0, 1]), pick=st.integers(0, 50))
        def submit(self, subject: int, pick: int) -> None:
            recording = self.recordings[pick % len(self.recordings)]
            body = schemas.SubmissionIn(recording_id=recording, sha256="a" * 64, size_bytes=9)
            answer = self.call(attempts.submit, self.sitting_id, self.subjects[subject], body)
            if isinstance(answer, str):
                assert answer in EXPECTED["submit"], answer
                return
            assert subject not in self.submitted, "a subject was submitted twice"
            assert clock.now() < self.window_end, "a submission was accepted after the window"
            assert answer.submitted_at < self.window_end
            self.submitted.add(subject)

        @rule(seconds=st.sampled_from([5, 200, 700, 1800]))
        def time_passes(self, seconds: int) -> None:
            clock.advance(seconds=seconds)

        @invariant()
        def database_keeps_the_rules(self) -> None:
            if not hasattr(self, "sitting_id"):
                return

            async def _read() -> tuple[dict[int, int], dict[int, int], dict[int, int], list]:
                async with app_ctx(app, DEVICE) as ctx:
                    used = dict(
                        (
                            await ctx.session.execute(
                                select(SubjectProgress.subject_id, SubjectProgress.used).where(
                                    SubjectProgress.sitting_id == self.sitting_id
                                )
                            )
                        ).all()
                    )
                    made = dict(
                        (
                            await ctx.session.execute(
                                select(Recording.subject_id, func.count())
                                .where(Recording.sitting_id == self.sitting_id)
                                .group_by(Recording.subject_id)
                            )
                        ).all()
                    )
                    handed = dict(
                        (
                            await ctx.session.execute(
                                select(Submission.subject_id, func.count())
                                .where(Submission.sitting_id == self.sitting_id)
                                .group_by(Submission.subject_id)
                            )
                        ).all()
                    )
                    times = list(
                        (
                            await ctx.session.execute(
                                select(Submission.submitted_at).where(
                                    Submission.sitting_id == self.sitting_id
                                )
                            )
                        ).scalars()
                    )
                    return used, made, handed, times

            used, made, handed, times = run(_read())
            for subject_id, allowed in zip(self.subjects, ATTEMPTS, strict=True):
                assert used.get(subject_id, 0) <= allowed
                assert made.get(subject_id, 0) == used.get(subject_id, 0)
                assert handed.get(subject_id, 0) <= 1
            assert all(at < self.window_end for at in times)

    return ExamSitting
