"""SPEC §3 liveness (`liveness_failed`): a head-turn challenge that a photo of a photo fails.

Frame sequences are cut from the shared public-domain photos (see test_faces.py): a real
turn is a frontal photo of a person followed by genuinely turned photos of the same person
(measured: obama_1 is frontal, obama_3 and obama_4 face his own left), placed in the frame
the way a phone held at arm's length sees a head; the mirrored sequence is a turn to the
other side. A static photo is one photo moved as a hand moves a print.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.identity.test_faces import (
    BACKGROUND,
    camera_image,
    hand_move,
    jpeg,
    needs_photos,
    no_face_image,
    selfie,
)
from vexam.identity.faces import Face, FaceEngine, load_image
from vexam.identity.liveness import (
    FRONTAL_MAX_YAW,
    MAX_FRAMES,
    MIN_FRAMES,
    TURN_MIN_YAW,
    Direction,
    check_head_turn,
    head_yaw,
)

# A turn to the person's own left: facing the camera, then turning (obama_3, obama_4).
TURN_TO_OWN_LEFT = ("obama_1", "obama_1", "obama_1", "obama_3", "obama_4", "obama_4")
# The phone shakes a little in the hand between frames.
SHAKE: tuple[tuple[float, float], ...] = ((0, 0), (4, -3), (-3, 2), (6, 1), (2, 5), (-4, 3))

# A print held to the camera: shifts, scaling, roll, tilts about both axes, as a hand does,
# including the print turned by 25° about the vertical axis (an attacker's "head turn").
STATIC_MOVES: tuple[dict[str, Any], ...] = (
    {},
    {"shift": (12, -8)},
    {"scale": 1.08, "roll": 6},
    {"tilt_vertical_axis": 25},
    {"tilt_horizontal_axis": -15, "roll": -8, "shift": (-10, 6)},
    {"tilt_vertical_axis": -25, "scale": 0.92},
    {"tilt_vertical_axis": 12, "tilt_horizontal_axis": 12, "roll": 10, "shift": (20, 10)},
    {"scale": 0.88, "roll": -10, "shift": (-25, -15)},
)


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine()


def turn_frames(
    engine: FaceEngine,
    names: tuple[str, ...] = TURN_TO_OWN_LEFT,
    *,
    mirror: bool = False,
    face_width: float = 200,
) -> list[bytes]:
    """JPEG frames of a head turn; mirrored, the same turn to the person's own right."""
    return list(_turn_frames(engine, names, mirror, face_width))


@functools.cache
def _turn_frames(
    engine: FaceEngine, names: tuple[str, ...], mirror: bool, face_width: float
) -> tuple[bytes, ...]:
    frames = []
    for name, (dx, dy) in zip(names, SHAKE, strict=False):
        image = camera_image(
            engine, name, mirror=mirror, face_width=face_width, centre=(240 + dx, 280 + dy)
        )
        frames.append(jpeg(image))
    return tuple(frames)


def own_side(mirror: bool) -> Direction:
    """Side of TURN_TO_OWN_LEFT: mirroring the frames makes it a turn to the right."""
    return Direction.right if mirror else Direction.left


def other(direction: Direction) -> Direction:
    return Direction.left if direction is Direction.right else Direction.right


# ---- the yaw measure --------------------------------------------------------------------


@needs_photos
def test_head_yaw_is_positive_for_the_persons_own_left(engine: FaceEngine) -> None:
    """Sign: + is the person's own left in a raw frame; mirroring flips it.

    obama_4 is not mirrored (the lettering "THE WHITE HOUSE" behind him reads left to right)
    and he faces his own left (his nose points to the image's right); obama_2 faces his own
    right. obama_1 and biden_2 face the camera.
    """

    def yaw(name: str, mirror: bool) -> float:
        faces = engine.detect(load_image(selfie(engine, name, mirror=mirror)))
        return head_yaw(faces[0])

    assert yaw("obama_4", False) > FRONTAL_MAX_YAW
    assert yaw("obama_4", True) < -FRONTAL_MAX_YAW
    assert yaw("obama_2", False) < -FRONTAL_MAX_YAW
    assert yaw("obama_2", True) > FRONTAL_MAX_YAW
    for name in ("obama_1", "biden_2"):
        for mirror in (False, True):
            assert abs(yaw(name, mirror)) <= FRONTAL_MAX_YAW, (name, mirror)


def _face(points: list[tuple[float, float]]) -> Face:
    return Face(box=(0, 0, 400, 400), landmarks=tuple(points))


def test_head_yaw_ignores_roll_scale_and_position() -> None:
    """The ratio is measured along the eye axis: rolling, scaling or moving a face keeps it."""
    # Model order: image-right eye outer, inner; image-left eye outer, inner; nose base.
    upright = [(260.0, 200.0), (230.0, 200.0), (140.0, 200.0), (170.0, 200.0), (212.0, 260.0)]
    assert head_yaw(_face(upright)) == pytest.approx(
        12 / 90
    )  # eye centres 155 and 245: nose 12 px right
    angle = math.radians(25)
    rolled = [
        (
            300 + 1.4 * ((x - 200) * math.cos(angle) - (y - 200) * math.sin(angle)),
            150 + 1.4 * ((x - 200) * math.sin(angle) + (y - 200) * math.cos(angle)),
        )
        for x, y in upright
    ]
    assert head_yaw(_face(rolled)) == pytest.approx(12 / 90)
    mirrored = [(400 - x, y) for x, y in upright]
    # Mirroring swaps which eye is on the right; the model labels by image side.
    relabelled = [mirrored[0 + 2], mirrored[1 + 2], mirrored[0], mirrored[1], mirrored[4]]
    assert head_yaw(_face(relabelled)) == pytest.approx(-12 / 90)


# ---- the challenge ----------------------------------------------------------------------


@needs_photos
@pytest.mark.parametrize("mirror", [False, True], ids=["own-left", "own-right"])
def test_real_head_turn_passes_for_the_asked_side(engine: FaceEngine, mirror: bool) -> None:
    """§3: a real turn to the asked side passes and yields a frontal embedding of that person."""
    result = check_head_turn(engine, turn_frames(engine, mirror=mirror), own_side(mirror))
    assert result.passed, result
    assert result.reason is None
    assert len(result.yaws) == len(TURN_TO_OWN_LEFT)
    assert result.frontal_embedding is not None
    assert result.frontal_embedding.shape == (128,)
    same = engine.embed_largest(load_image(selfie(engine, "obama_2")))
    different = engine.embed_largest(load_image(selfie(engine, "biden_1")))
    assert engine.compare(result.frontal_embedding, same).match
    assert not engine.compare(result.frontal_embedding, different).match


@needs_photos
@pytest.mark.parametrize("mirror", [False, True], ids=["own-left", "own-right"])
def test_turn_to_the_other_side_is_wrong_direction(engine: FaceEngine, mirror: bool) -> None:
    """§3 `liveness_failed`: turning the other way (or replaying an old turn) fails."""
    result = check_head_turn(engine, turn_frames(engine, mirror=mirror), other(own_side(mirror)))
    assert not result.passed
    assert result.reason == "wrong_direction"
    assert result.frontal_embedding is None


@needs_photos
def test_small_faces_are_found_on_the_full_frame(engine: FaceEngine) -> None:
    """Faces too small for the reduced detection copy (≈110 px) are searched at full size."""
    frames = turn_frames(engine, face_width=110)
    assert check_head_turn(engine, frames, Direction.left).passed


@needs_photos
@pytest.mark.parametrize("name", ["obama_1", "biden_2"])
@pytest.mark.parametrize("direction", list(Direction))
def test_static_photo_held_to_the_camera_is_no_turn(
    engine: FaceEngine, name: str, direction: Direction
) -> None:
    """§3 `liveness_failed`: a print moved, rolled and tilted in the hand is not a head turn."""
    still = camera_image(engine, name)
    frames = [jpeg(hand_move(still, (240, 280), **move)) for move in STATIC_MOVES]
    result = check_head_turn(engine, frames, direction)
    assert result.reason == "no_turn", result.yaws
    assert not result.passed
    assert max(abs(y - result.yaws[0]) for y in result.yaws) < TURN_MIN_YAW


@needs_photos
def test_person_switch_mid_sequence_is_face_lost(engine: FaceEngine) -> None:
    """§3 `liveness_failed`: one person faces the camera, another one turns: face_lost.

    The boxes line up and the yaw does turn, so only the identity check can catch it.
    """
    frames = [jpeg(camera_image(engine, "biden_2", mirror=True)) for _ in range(3)]
    frames += turn_frames(engine, ("obama_4",) * 3)
    result = check_head_turn(engine, frames, Direction.left)
    assert result.reason == "face_lost", result.yaws
    assert abs(result.yaws[0]) <= FRONTAL_MAX_YAW
    assert max(result.yaws) - result.yaws[0] >= TURN_MIN_YAW  # the geometry alone passed


@needs_photos
@pytest.mark.parametrize(
    ("second_centre", "second_width"),
    [((330, 280), 140), ((240, 280), 280)],
    ids=["jump-across-frame", "size-jump"],
)
def test_face_jumping_between_frames_is_face_lost(
    engine: FaceEngine, second_centre: tuple[int, int], second_width: int
) -> None:
    """§3 `liveness_failed`: a face that jumps between frames is not one tracked face."""
    frames = [jpeg(camera_image(engine, "obama_1", face_width=140, centre=(150, 280)))] * 3
    turned = camera_image(engine, "obama_4", face_width=second_width, centre=second_centre)
    frames += [jpeg(turned)] * 3
    result = check_head_turn(engine, frames, Direction.left)
    assert result.reason == "face_lost"


@pytest.mark.parametrize("count", [0, 1, MIN_FRAMES - 1])
def test_too_few_frames(engine: FaceEngine, count: int) -> None:
    """§3 `liveness_failed`: fewer than MIN_FRAMES frames cannot show a turn."""
    result = check_head_turn(engine, [b"not decoded"] * count, Direction.left)
    assert (result.passed, result.reason) == (False, "too_few_frames")


def test_too_many_frames(engine: FaceEngine) -> None:
    """More than MAX_FRAMES frames are refused before any decoding (CPU bound per request)."""
    frames = [b"not decoded"] * (MAX_FRAMES + 1)
    assert check_head_turn(engine, frames, Direction.left).reason == "too_many_frames"


@needs_photos
def test_frame_without_face_is_no_face(engine: FaceEngine) -> None:
    """§3 `liveness_failed`: the face must be in every frame."""
    frames = turn_frames(engine)
    frames[3] = jpeg(no_face_image())
    assert check_head_turn(engine, frames, Direction.left).reason == "no_face"


@needs_photos
def test_second_face_of_similar_size_is_several_faces(engine: FaceEngine) -> None:
    """§3 `liveness_failed`: someone else beside the candidate (or a photo held up)."""
    frames = turn_frames(engine)
    crowded = Image.new("RGB", (640, 480), BACKGROUND)
    crowded.paste(camera_image(engine, "obama_1", face_width=170, size=(320, 480)), (0, 0))
    crowded.paste(camera_image(engine, "biden_2", face_width=150, size=(320, 480)), (320, 0))
    frames[2] = jpeg(crowded)
    assert check_head_turn(engine, frames, Direction.left).reason == "several_faces"


@needs_photos
def test_turned_at_the_start_is_not_frontal_at_start(engine: FaceEngine) -> None:
    """The candidate must start facing the camera: a sequence starting turned fails."""
    frames = turn_frames(engine, ("obama_4", "obama_4", "obama_1", "obama_1"))
    result = check_head_turn(engine, frames, Direction.right)
    assert result.reason == "not_frontal_at_start"
    assert result.yaws[0] > FRONTAL_MAX_YAW


@needs_photos
def test_undecodable_frame_fails_without_raising(engine: FaceEngine) -> None:
    """A frame that is not an image is a failed check, not a server error."""
    frames = turn_frames(engine)
    frames[1] = b"\xff\xd8\xff garbage"
    result = check_head_turn(engine, frames, Direction.left)
    assert (result.passed, result.reason, result.yaws) == (False, "undecodable_frame", ())


@needs_photos
def test_result_yaws_follow_the_turn(engine: FaceEngine) -> None:
    """The audit log gets one yaw per frame: near 0 first, then towards the person's left."""
    result = check_head_turn(engine, turn_frames(engine), Direction.left)
    yaws = np.array(result.yaws)
    assert abs(yaws[0]) <= FRONTAL_MAX_YAW
    assert yaws[-1] - yaws[0] >= TURN_MIN_YAW
    assert yaws[:3].max() < yaws[3:].min()
