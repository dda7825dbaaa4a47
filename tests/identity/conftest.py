"""Identity fixtures: candidates, support agents, pictures, ID numbers no other test uses."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Awaitable, Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.helpers import bearer, register, staff
from vexam.identity.idnumbers import check_character

SHARED_FACES = Path(__file__).resolve().parents[2].parent / "shared" / "faces"


# Numbers handed out in this test run: each call gets the next (day, sequence) pair, from a
# random start, so no two candidates of one run collide (`identity_conflict` in a test that
# is not about conflicts).
_NUMBERS = itertools.count(secrets.randbelow(28 * 500))


def new_id_number(region: str = "110105", born: str = "20080229", sex: str = "female") -> str:
    """A valid resident ID number, different from every other one of this test run."""
    n = next(_NUMBERS) % (28 * 500)
    seq = (n // 28) * 2 + (1 if sex == "male" else 0)
    day = f"{n % 28 + 1:02d}"
    first17 = region + born[:6] + day + f"{seq:03d}"
    return first17 + check_character(first17)


def jpeg(
    color: tuple[int, int, int] = (200, 180, 160), size: tuple[int, int] = (320, 240)
) -> bytes:
    """A plain JPEG picture (no face in it)."""
    out = BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG")
    return out.getvalue()


def face_photo(name: str, max_side: int = 640, mirror: bool = False) -> bytes:
    """A shared face photo scaled as a phone would send it; skips when the photos are absent."""
    path = SHARED_FACES / name
    if not path.exists():
        pytest.skip(f"the shared face photos are absent ({SHARED_FACES})")
    with Image.open(path) as image:
        picture = image.convert("RGB")
    picture.thumbnail((max_side, max_side))
    if mirror:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = BytesIO()
    picture.save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture
def candidate(
    client: httpx.AsyncClient, inbox: Any, new_phone: Callable[[], str]
) -> Callable[[], Awaitable[dict[str, str]]]:
    """Register a new candidate; returns its auth header."""

    async def _make() -> dict[str, str]:
        body = await register(client, inbox, new_phone())
        return bearer(body["token"])

    return _make


@pytest.fixture
async def agent(
    app: Any, client: httpx.AsyncClient, new_phone: Callable[[], str]
) -> dict[str, str]:
    """A support agent's auth header."""
    return bearer(await staff(app, client, new_phone(), "support"))


def manual_entry(number: str, **extra: Any) -> dict[str, Any]:
    """A typed resident-ID certification body."""
    return {
        "identity_type": "gaokao",
        "document_type": "resident_id",
        "name": "张三",
        "id_number": number,
        **extra,
    }


async def to_review(client, who, number, **extra):
    """Typed without a card photo: no portrait to compare, so a person reviews it."""
    response = await client.post(
        "/api/v1/identity/certification", json=manual_entry(number, **extra), headers=who
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "review_required"
    review = await client.post(
        "/api/v1/identity/manual-review",
        files={
            "id_photo": ("id.jpg", jpeg(), "image/jpeg"),
            "selfie": ("me.jpg", jpeg(), "image/jpeg"),
        },
        headers=who,
    )
    assert review.status_code == 201, review.text
    return review.json()
