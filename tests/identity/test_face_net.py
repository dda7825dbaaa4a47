"""The face network on numpy (`vexam.identity.face_net`) against dlib's own run of the same
model file: the same embedding, for shared photos and for arbitrary chips; a file that is
not the network is refused when it loads."""

from __future__ import annotations

import threading
from pathlib import Path

import dlib
import numpy as np
import pytest

from tests.identity.test_faces import BIDEN, OBAMA, SHARED_FACES, selfie
from vexam.identity.face_net import CHIP_PADDING, CHIP_SIZE, FaceNet, ModelFileError
from vexam.identity.faces import FaceEngine, load_image, models_dir

RESNET = "dlib_face_recognition_resnet_model_v1.dat"
# dlib and numpy sum the same float32 products in other orders: measured differences are
# ≈3e-7 per component; distances that decide identities are ≈0.3-0.9 against 0.6.
SAME = 1e-5


@pytest.fixture(scope="module")
def net() -> FaceNet:
    return FaceNet.load(models_dir() / RESNET)


@pytest.fixture(scope="module")
def dlib_net() -> dlib.face_recognition_model_v1:
    return dlib.face_recognition_model_v1(str(models_dir() / RESNET))


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine()


def test_arbitrary_chips_give_dlibs_embedding(
    net: FaceNet, dlib_net: dlib.face_recognition_model_v1
) -> None:
    """Random, flat and extreme 150x150 chips (no photos needed): dlib's embedding of the
    aligned chip, component by component."""
    generator = np.random.default_rng(7)
    chips = [
        generator.integers(0, 256, (CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8) for _ in range(3)
    ]
    chips += [np.full((CHIP_SIZE, CHIP_SIZE, 3), value, dtype=np.uint8) for value in (0, 255)]
    for chip in chips:
        ours = net.embed(chip)
        theirs = np.array(dlib_net.compute_face_descriptor(chip))
        assert ours.shape == (128,) and ours.dtype == np.float64
        assert np.abs(ours - theirs).max() < SAME


@pytest.mark.skipif(not SHARED_FACES.is_dir(), reason=f"no shared faces at {SHARED_FACES}")
def test_every_shared_selfie_gives_dlibs_embedding(
    engine: FaceEngine, dlib_net: dlib.face_recognition_model_v1
) -> None:
    """The engine (dlib's chip, numpy's network) against dlib's compute_face_descriptor on
    the same image and landmarks, for every shared photo as a selfie and mirrored."""
    for name in OBAMA + BIDEN:
        for mirror in (False, True):
            image = load_image(selfie(engine, name, mirror=mirror))
            face = engine.locate(image)[0]
            left, top, right, bottom = face.box
            shape = dlib.full_object_detection(
                dlib.rectangle(left, top, right - 1, bottom - 1),
                [dlib.point(round(x), round(y)) for x, y in face.landmarks],
            )
            theirs = np.array(dlib_net.compute_face_descriptor(image, shape, 0, CHIP_PADDING))
            assert np.abs(engine.embed(image, face) - theirs).max() < SAME


def test_embeddings_in_several_threads_are_the_same(net: FaceNet) -> None:
    """The weights are only read: four threads embedding at once agree with one alone."""
    generator = np.random.default_rng(11)
    chips = [
        generator.integers(0, 256, (CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8) for _ in range(4)
    ]
    alone = [net.embed(chip) for chip in chips]
    results: dict[int, list[np.ndarray]] = {}

    def run(index: int) -> None:
        results[index] = [net.embed(chips[(index + i) % 4]) for i in range(8)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, got in results.items():
        for i, embedding in enumerate(got):
            assert np.array_equal(embedding, alone[(index + i) % 4])


def test_a_chip_of_another_size_is_refused(net: FaceNet) -> None:
    with pytest.raises(ValueError, match="150x150"):
        net.embed(np.zeros((100, 100, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="150x150"):
        net.embed(np.zeros((CHIP_SIZE, CHIP_SIZE, 3), dtype=np.float32))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "damage",
    ["truncated", "another model", "a changed stride", "no layers"],
)
def test_a_file_that_is_not_the_network_is_refused(damage: str, tmp_path: Path) -> None:
    """Refused when it loads, with a reason, never run."""
    data = (models_dir() / RESNET).read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "another model":
        data = (models_dir() / "shape_predictor_5_face_landmarks.dat").read_bytes()
    elif damage == "a changed stride":
        # The first convolution (7x7, stride 2): its stride written as 3.
        start = data.index(b"\x01\x05con_4")
        at = data.index(b"\x01\x20\x01\x07\x01\x07\x01\x02\x01\x02", start)
        data = data[: at + 7] + b"\x03" + data[at + 8 :]
    else:
        data = b"\x01\x01" * 100
    path = tmp_path / "model.dat"
    path.write_bytes(data)
    with pytest.raises(ModelFileError, match="not dlib's face ResNet"):
        FaceNet.load(path)
