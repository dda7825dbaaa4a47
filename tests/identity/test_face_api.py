"""SPEC §3 face verification through the API, with the shared public-domain photos.

A candidate photographs a card whose portrait is obama_2, states the identity, and sends a
head-turn clip built from other photos of the same person (obama_1 → obama_3/4); Biden's
face, a still photo and an empty frame are refused and counted.
"""

from __future__ import annotations

import asyncio
from io import BytesIO
from typing import Any

import pytest
from PIL import Image

from tests.identity.cardgen import cjk_font_path, make_card
from tests.identity.conftest import manual_entry
from tests.identity.test_faces import SHARED_FACES, camera_image, jpeg, no_face_image
from tests.identity.test_liveness import TURN_TO_OWN_LEFT, turn_frames

pytestmark = [
    pytest.mark.usefixtures("app"),
    pytest.mark.skipif(
        not SHARED_FACES.is_dir(), reason=f"shared face photos not found at {SHARED_FACES}"
    ),
    pytest.mark.skipif(cjk_font_path() is None, reason="fonts-noto-cjk is not installed"),
]


def card_photo(engine: Any, seed: int, person: str = "obama_2") -> tuple[bytes, str]:
    """A phone photo of an ID card with `person`'s portrait; returns (JPEG, ID number)."""
    portrait = camera_image(engine, person, face_width=150, centre=(160, 190), size=(320, 410))
    card, truth = make_card(seed, portrait=portrait)
    out = BytesIO()
    card.convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue(), truth.id_number


def clip(engine: Any, direction: str, names: tuple[str, ...] = TURN_TO_OWN_LEFT) -> list[bytes]:
    """Frames of a head turn to the candidate's own `direction` (mirrored for the right)."""
    return turn_frames(engine, names, mirror=direction == "right")


async def face_pending(client, who, engines, seed: int, person: str = "obama_2") -> dict:
    """Upload the card photo (no OCR) and state the identity: the face check comes next."""
    photo, number = card_photo(engines.faces(), seed, person)
    uploaded = await client.post(
        "/api/v1/identity/id-photo",
        data={"read": "false"},
        files={"file": ("card.jpg", photo, "image/jpeg")},
        headers=who,
    )
    assert uploaded.status_code == 201, uploaded.text
    body = manual_entry(number, id_photo_id=uploaded.json()["photo_id"])
    stated = await client.post("/api/v1/identity/certification", json=body, headers=who)
    assert stated.status_code == 200, stated.text
    assert stated.json()["status"] == "face_pending", stated.text
    return {"number": number}


async def send(client, who, frames: list[bytes], token: str | None = None):
    if token is None:
        challenge = await client.post("/api/v1/identity/face/challenge", headers=who)
        assert challenge.status_code == 201, challenge.text
        token = challenge.json()["challenge_id"]
    files = [("frames", (f"{i}.jpg", frame, "image/jpeg")) for i, frame in enumerate(frames)]
    return await client.post(
        "/api/v1/identity/face", data={"challenge_id": token}, files=files, headers=who
    )


async def challenge(client, who) -> dict:
    response = await client.post("/api/v1/identity/face/challenge", headers=who)
    assert response.status_code == 201, response.text
    return response.json()


async def test_same_person_turning_as_asked_is_certified(
    client, candidate, identity_engines
) -> None:
    """§3: a live turn to the asked side by the card's owner certifies the identity."""
    who = await candidate()
    await face_pending(client, who, identity_engines, seed=101)
    asked = await challenge(client, who)
    frames = clip(identity_engines.faces(), asked["direction"])
    response = await send(client, who, frames, asked["challenge_id"])
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "certified"
    assert response.json()["distance"] < 0.6
    state = (await client.get("/api/v1/identity", headers=who)).json()
    assert state["status"] == "certified" and state["next_step"] == "none"
    reused = await send(client, who, frames, asked["challenge_id"])
    assert reused.json()["code"] == "identity_already_certified"


async def test_wrong_side_still_photo_and_no_face_fail_then_review(
    client, candidate, identity_engines
) -> None:
    """§3 liveness_failed, face_not_found, face_attempts_exhausted → manual review opens."""
    engine = identity_engines.faces()
    who = await candidate()
    await face_pending(client, who, identity_engines, seed=102)

    asked = await challenge(client, who)
    wrong_side = "left" if asked["direction"] == "right" else "right"
    first = await send(client, who, clip(engine, wrong_side), asked["challenge_id"])
    assert first.status_code == 422 and first.json()["code"] == "liveness_failed"
    assert first.json()["attempts_left"] == 2
    spent = await send(client, who, clip(engine, asked["direction"]), asked["challenge_id"])
    assert spent.status_code == 409 and spent.json()["code"] == "liveness_challenge_invalid"

    still = turn_frames(engine, ("obama_1",) * 6)  # a print held to the camera
    second = await send(client, who, still)
    assert second.json()["code"] == "liveness_failed" and second.json()["attempts_left"] == 1

    empty = [jpeg(no_face_image())] * 5
    third = await send(client, who, empty)
    assert third.status_code == 409 and third.json()["code"] == "face_attempts_exhausted"
    state = (await client.get("/api/v1/identity", headers=who)).json()
    assert state["status"] == "review_required" and state["face_attempts_left"] == 0
    blocked = await client.post("/api/v1/identity/face/challenge", headers=who)
    assert blocked.json()["code"] == "face_attempts_exhausted"


async def test_another_person_is_a_face_mismatch(client, candidate, identity_engines) -> None:
    """§3 face_mismatch: a live turn by someone else is refused, with the distance kept."""
    who = await candidate()
    await face_pending(client, who, identity_engines, seed=103, person="biden_1")
    asked = await challenge(client, who)
    response = await send(
        client, who, clip(identity_engines.faces(), asked["direction"]), asked["challenge_id"]
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "face_mismatch" and response.json()["attempts_left"] == 2


async def test_card_without_a_face_is_face_not_found(client, candidate) -> None:
    """§3 face_not_found: a card photo whose portrait shows no face cannot be compared."""
    who = await candidate()
    card, truth = make_card(104)
    out = BytesIO()
    card.convert("RGB").save(out, "JPEG", quality=85)
    uploaded = await client.post(
        "/api/v1/identity/id-photo",
        data={"read": "false"},
        files={"file": ("card.jpg", out.getvalue(), "image/jpeg")},
        headers=who,
    )
    body = manual_entry(truth.id_number, id_photo_id=uploaded.json()["photo_id"])
    stated = await client.post("/api/v1/identity/certification", json=body, headers=who)
    assert stated.status_code == 422 and stated.json()["code"] == "face_not_found"


async def test_two_accounts_certifying_one_number_at_once(
    app, client, candidate, identity_engines
) -> None:
    """§3: two accounts certifying the same ID number at the same moment → exactly one wins."""
    first, second = await candidate(), await candidate()
    photo, number = card_photo(identity_engines.faces(), 105)
    for who in (first, second):
        uploaded = await client.post(
            "/api/v1/identity/id-photo",
            data={"read": "false"},
            files={"file": ("card.jpg", photo, "image/jpeg")},
            headers=who,
        )
        body = manual_entry(number, id_photo_id=uploaded.json()["photo_id"])
        stated = await client.post("/api/v1/identity/certification", json=body, headers=who)
        assert stated.json()["status"] == "face_pending"
    asked = [await challenge(client, who) for who in (first, second)]
    frames = [clip(identity_engines.faces(), item["direction"]) for item in asked]
    results = await asyncio.gather(
        send(client, first, frames[0], asked[0]["challenge_id"]),
        send(client, second, frames[1], asked[1]["challenge_id"]),
    )
    codes = sorted(
        r.json().get("status") if r.status_code == 200 else r.json()["code"] for r in results
    )
    assert codes == ["certified", "identity_conflict"], [r.text for r in results]


async def test_ocr_prefill_through_the_api(client, candidate) -> None:
    """§3: the card photo is read; the prefill carries the six fields with doubt flags."""
    who = await candidate()
    card, truth = make_card(106)
    out = BytesIO()
    card.convert("RGB").save(out, "JPEG", quality=90)
    read = await client.post(
        "/api/v1/identity/id-photo",
        files={"file": ("card.jpg", out.getvalue(), "image/jpeg")},
        headers=who,
    )
    assert read.status_code == 201, read.text
    fields = read.json()["fields"]
    assert fields["id_number"]["value"] == truth.id_number
    assert fields["name"]["value"] == truth.name
    blurred = card.convert("RGB").resize((card.width // 8, card.height // 8)).resize(card.size)
    out = BytesIO()
    blurred.save(out, "JPEG", quality=60)
    unclear = await client.post(
        "/api/v1/identity/id-photo",
        files={"file": ("card.jpg", out.getvalue(), "image/jpeg")},
        headers=who,
    )
    assert unclear.status_code == 422 and unclear.json()["code"] == "id_photo_unclear"
    kept = unclear.json()["photo_id"]
    photo = await client.get(f"/api/v1/identity/photos/{kept}", headers=who)
    assert photo.status_code == 200  # nothing lost: usable with manual entry
    assert isinstance(Image.open(BytesIO(photo.content)).size, tuple)
