"""dlib's face-recognition ResNet, run as matrix products on numpy's BLAS.

The network is `dlib_face_recognition_resnet_model_v1.dat` from `face-recognition-models`:
dlib's serialized `anet_type` (dlib's `tools/python/src/face_recognition.cpp`), a 29-layer
ResNet that maps a 150x150 aligned face chip to a 128-d embedding. dlib-bin's build runs it
without BLAS (≈75 ms of CPU per face on the development machine); the same layers as im2col
and one float32 matrix product each take ≈18 ms on numpy's OpenBLAS, and give dlib's
embedding (components within about 3e-7; `tests/identity/test_face_net.py` allows 1e-5).

The layers, from the chip: input (subtract the channel means, divide by 256), conv 7x7/2 32,
affine, relu, max pool 3x3/2; then residual blocks (conv 3x3, affine, relu, conv 3x3,
affine, added to the block's input, relu) in five levels: 3 blocks of 32 channels; a
down block and 3 of 64; a down block and 2 of 128; a down block and 2 of 256; a down block
of 256. A down block's first conv has stride 2 and its input reaches the sum through a 2x2/2
average pool; sums of unequal shapes are taken over the larger shape with zeros for what the
smaller lacks, as dlib's `add_prev` does. Last, the mean over the image and a 256x128 product
(no bias). Affine layers are per channel (batch norm folded in by dlib).

Reading the file: dlib writes a layer's details (a version string, its tensors and settings)
in network order, its tensors as a version, four dimensions and little-endian float32 values,
and integers as a byte of length (0x80 for negative) plus little-endian bytes. Each layer is
found by its version string and read from there; every count, shape, stride and padding is
checked against the layout above, so a file that is not this network is refused when it
loads (`ModelFileError`), never run.

Thread safety: the loaded weights are only read; `embed` may run in several threads at once.
Loading sets the process's BLAS to one thread: a face is too small a product for threads to
pay (on two busy cores they made it five times as costly), and a web process runs per core
anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

CHIP_SIZE = 150
CHIP_PADDING = 0.25  # around the face, as dlib's compute_face_descriptor aligns it
EMBEDDING_SIZE = 128

# (channels, down blocks, plain blocks) of the five levels, from the input.
_LEVELS = ((32, 0, 3), (64, 1, 3), (128, 1, 2), (256, 1, 2), (256, 1, 0))

Float32Array = npt.NDArray[np.float32]


class ModelFileError(RuntimeError):
    """The model file is not the network this module runs."""


@dataclass(frozen=True)
class _Conv:
    weights: Float32Array  # (filters, channels * size * size)
    bias: Float32Array  # (filters, 1)
    size: int
    stride: int
    padding: int


class _Reader:
    """dlib's serialization, from a position in the file."""

    def __init__(self, data: bytes, position: int) -> None:
        self.data = data
        self.position = position

    def integer(self) -> int:
        head = self.data[self.position]
        size = head & 0x0F
        if size > 8:
            raise ModelFileError(f"not an integer at byte {self.position}")
        value = int.from_bytes(self.data[self.position + 1 : self.position + 1 + size], "little")
        self.position += 1 + size
        return -value if head & 0x80 else value

    def text(self) -> str:
        length = self.integer()
        start = self.position
        self.position += length
        return self.data[start : self.position].decode("ascii", errors="replace")

    def real(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        return math.ldexp(mantissa, exponent)

    def shape(self) -> tuple[int, int, int, int]:
        self.integer()  # version
        n, k, rows, columns = (self.integer() for _ in range(4))
        return n, k, rows, columns

    def tensor(self) -> Float32Array:
        if self.integer() != 2:
            raise ModelFileError(f"unknown tensor version at byte {self.position}")
        shape = tuple(self.integer() for _ in range(4))
        count = math.prod(shape)
        if self.position + 4 * count > len(self.data):
            raise ModelFileError("the model file ends inside a tensor")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.position)
        self.position += 4 * count
        return values.astype(np.float32)


def _layers(data: bytes, names: tuple[str, ...]) -> list[tuple[str, _Reader]]:
    """Each layer whose version string is one of `names`, in file order, with a reader
    placed after that string."""
    found: list[tuple[int, str]] = []
    for name in names:
        key = bytes((1, len(name))) + name.encode("ascii")
        start = data.find(key)
        while start >= 0:
            found.append((start, name))
            start = data.find(key, start + 1)
    found.sort()
    return [(name, _Reader(data, start + 2 + len(name))) for start, name in found]


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise ModelFileError(f"not dlib's face ResNet: {what}")


class FaceNet:
    """The network's weights; `embed` maps an aligned 150x150 RGB chip to 128 floats."""

    def __init__(
        self,
        means: Float32Array,
        convs: list[_Conv],
        affines: list[tuple[Float32Array, Float32Array]],
        fc: Float32Array,
    ) -> None:
        self.means = means
        self.convs = convs
        self.affines = affines
        self.fc = fc

    @classmethod
    def load(cls, path: Path) -> FaceNet:
        """Read the weights of dlib's model file (ModelFileError if it is not that network)
        and set this process's BLAS to one thread (see the module docstring)."""
        from threadpoolctl import threadpool_limits

        data = path.read_bytes()
        names = ("input_rgb_image_sized", "con_4", "affine_", "max_pool_2", "avg_pool_2", "fc_2")
        layers = _layers(data, names)
        order = [name for name, _ in layers]
        blocks = sum(down + plain for _, down, plain in _LEVELS)
        _expect(order.count("con_4") == 1 + 2 * blocks, "convolutions")
        _expect(order.count("affine_") == 1 + 2 * blocks, "affine layers")
        _expect(order[0] == "input_rgb_image_sized" and order[-1] == "fc_2", "input and output")
        means = np.zeros(3, dtype=np.float32)
        convs: list[_Conv] = []
        affines: list[tuple[Float32Array, Float32Array]] = []
        pools: list[tuple[int, ...]] = []
        fc: Float32Array | None = None
        for name, reader in layers:
            if name == "input_rgb_image_sized":
                means = np.array([reader.real() for _ in range(3)], dtype=np.float32)
                _expect((reader.integer(), reader.integer()) == (CHIP_SIZE, CHIP_SIZE), "size")
            elif name == "con_4":
                convs.append(_read_conv(reader))
            elif name == "affine_":
                affines.append(_read_affine(reader))
            elif name in ("max_pool_2", "avg_pool_2"):
                pools.append(tuple(reader.integer() for _ in range(6)))
            else:
                fc = _read_fc(reader)
        _expect(
            pools == [(3, 3, 2, 2, 0, 0)] + [(2, 2, 2, 2, 0, 0)] * 4 + [(0, 0, 1, 1, 0, 0)], "pools"
        )
        if fc is None or fc.shape != (256, EMBEDDING_SIZE):
            raise ModelFileError("not dlib's face ResNet: the last layer")
        _check_layout(convs)
        # Each affine layer follows its convolution: one scale and shift per filter.
        channels = [gamma.shape[0] for gamma, _ in affines]
        _expect(channels == [conv.weights.shape[0] for conv in convs], "the affine layers")
        threadpool_limits(limits=1, user_api="blas")
        return cls(means, convs, affines, fc)

    def embed(self, chip: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
        """The 128-d embedding of an aligned face chip (150x150 RGB uint8, as
        `dlib.get_face_chip(image, shape, 150, 0.25)` cuts it)."""
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3) or chip.dtype != np.uint8:
            raise ValueError("a face chip is a 150x150 RGB uint8 array")
        x = chip.transpose(2, 0, 1).astype(np.float32)
        x -= self.means[:, None, None]
        x /= np.float32(256)
        x = _max_pool_3x3_2(self._relu_affine(_conv(x, self.convs[0]), 0))
        layer = 1
        for _, down, plain in _LEVELS:
            for block in range(down + plain):
                inner = self._relu_affine(_conv(x, self.convs[layer]), layer)
                y = self._affine(_conv(inner, self.convs[layer + 1]), layer + 1)
                layer += 2
                skip = _avg_pool_2x2_2(x) if block < down else x
                x = np.maximum(_add_padded(y, skip), 0)
        features: Float32Array = x.mean(axis=(1, 2), dtype=np.float32)
        embedding: npt.NDArray[np.float64] = (features @ self.fc).astype(np.float64)
        return embedding

    def _affine(self, x: Float32Array, index: int) -> Float32Array:
        gamma, beta = self.affines[index]
        x *= gamma
        x += beta
        return x

    def _relu_affine(self, x: Float32Array, index: int) -> Float32Array:
        return np.maximum(self._affine(x, index), 0, out=x)


def _read_conv(reader: _Reader) -> _Conv:
    params = reader.tensor()
    filters, size, size_x, stride, stride_x, padding, padding_x = (
        reader.integer() for _ in range(7)
    )
    _, channels, rows, columns = reader.shape()  # the filters' view of params
    _expect((size, stride, padding) == (size_x, stride_x, padding_x), "a square convolution")
    _expect((rows, columns) == (size, size), "a convolution's filters")
    count = filters * channels * size * size
    _expect(params.size == count + filters, "a convolution's parameters")
    weights = params[:count].reshape(filters, channels * size * size)
    bias = params[count:].reshape(filters, 1)
    return _Conv(weights, bias, size, stride, padding)


def _read_affine(reader: _Reader) -> tuple[Float32Array, Float32Array]:
    params = reader.tensor()
    _, channels, _, _ = reader.shape()  # gamma
    reader.shape()  # beta
    _expect(reader.integer() == 0, "a per-channel affine layer")
    _expect(params.size == 2 * channels, "an affine layer's parameters")
    return params[:channels].reshape(channels, 1, 1), params[channels:].reshape(channels, 1, 1)


def _read_fc(reader: _Reader) -> Float32Array:
    outputs, inputs = reader.integer(), reader.integer()
    params = reader.tensor()
    _expect(params.size == inputs * outputs, "a last layer without bias")
    return params.reshape(inputs, outputs)


def _check_layout(convs: list[_Conv]) -> None:
    """The convolutions' shapes, strides and paddings are the network's."""
    expected = [(32, 3, 7, 2, 0)]
    channels = 32
    for width, down, plain in _LEVELS:
        for block in range(down + plain):
            stride, padding = (2, 0) if block < down else (1, 1)
            expected += [(width, channels, 3, stride, padding), (width, width, 3, 1, 1)]
            channels = width
    found = [
        (c.weights.shape[0], c.weights.shape[1] // (c.size * c.size), c.size, c.stride, c.padding)
        for c in convs
    ]
    _expect(found == expected, "the convolutions' layout")


def _conv(x: Float32Array, conv: _Conv) -> Float32Array:
    """Cross-correlation of (channels, rows, columns) with the filters: im2col, one product."""
    if conv.padding:
        p = conv.padding
        x = np.pad(x, ((0, 0), (p, p), (p, p)))
    windows = sliding_window_view(x, (conv.size, conv.size), axis=(1, 2))
    windows = windows[:, :: conv.stride, :: conv.stride]
    channels, rows, columns = windows.shape[:3]
    columns_matrix = windows.transpose(0, 3, 4, 1, 2).reshape(
        channels * conv.size * conv.size, rows * columns
    )
    out = conv.weights @ columns_matrix
    out += conv.bias
    return out.reshape(-1, rows, columns)


def _max_pool_3x3_2(x: Float32Array) -> Float32Array:
    _, height, width = x.shape
    rows, columns = 1 + (height - 3) // 2, 1 + (width - 3) // 2
    out = x[:, 0 : 2 * rows - 1 : 2, 0 : 2 * columns - 1 : 2].copy()
    for dy in range(3):
        for dx in range(3):
            if dy or dx:
                window = x[:, dy : dy + 2 * rows - 1 : 2, dx : dx + 2 * columns - 1 : 2]
                np.maximum(out, window, out=out)
    return out


def _avg_pool_2x2_2(x: Float32Array) -> Float32Array:
    channels, height, width = x.shape
    rows, columns = height // 2, width // 2
    quads = x[:, : 2 * rows, : 2 * columns].reshape(channels, rows, 2, columns, 2)
    pooled: Float32Array = quads.mean(axis=(2, 4), dtype=np.float32)
    return pooled


def _add_padded(a: Float32Array, b: Float32Array) -> Float32Array:
    """a + b over the larger of their shapes, with zeros for what the smaller lacks."""
    if a.shape == b.shape:
        return a + b
    shape = tuple(max(i, j) for i, j in zip(a.shape, b.shape, strict=True))
    out = np.zeros(shape, dtype=np.float32)
    out[: a.shape[0], : a.shape[1], : a.shape[2]] += a
    out[: b.shape[0], : b.shape[1], : b.shape[2]] += b
    return out
