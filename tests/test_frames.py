"""Frame packing: an exact round trip, the documented bit layout, and loud errors."""

from __future__ import annotations

import numpy as np
import pytest

from pokedreamer.env.frames import (
    FRAME_SHAPE,
    PACKED_FRAME_BYTES,
    pack_frames,
    unpack_frames,
)


def random_frames(*lead: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4, size=(*lead, *FRAME_SHAPE), dtype=np.uint8)


def test_sizes() -> None:
    assert FRAME_SHAPE == (144, 160)
    assert PACKED_FRAME_BYTES == 5760 == 144 * 160 // 4


@pytest.mark.parametrize("lead", [(), (1,), (64,), (3, 5), (0,)])
def test_round_trip(lead: tuple[int, ...]) -> None:
    frames = random_frames(*lead)
    packed = pack_frames(frames)
    assert packed.dtype == np.uint8 and packed.shape == (*lead, PACKED_FRAME_BYTES)
    unpacked = unpack_frames(packed)
    assert unpacked.dtype == np.uint8 and unpacked.shape == frames.shape
    np.testing.assert_array_equal(unpacked, frames)


def test_batch_packs_like_its_frames_one_by_one() -> None:
    frames = random_frames(4, seed=1)
    packed = pack_frames(frames)
    for frame, row in zip(frames, packed, strict=True):
        np.testing.assert_array_equal(pack_frames(frame), row)


def test_every_byte_unpacks_and_packs_back() -> None:
    packed = np.zeros(PACKED_FRAME_BYTES, dtype=np.uint8)
    packed[:256] = np.arange(256)
    np.testing.assert_array_equal(pack_frames(unpack_frames(packed)), packed)


def test_bit_layout() -> None:
    frame = np.zeros(FRAME_SHAPE, dtype=np.uint8)
    frame[0, :8] = [1, 2, 3, 0, 3, 3, 3, 3]  # bytes 0 and 1
    frame[1, 0] = 2  # pixel 160: byte 40, low bits
    frame[143, 159] = 3  # the last pixel: byte 5759, top bits
    packed = pack_frames(frame)
    assert packed[0] == 0b00_11_10_01  # pixel 0 in the low 2 bits, pixel 3 in the top 2
    assert packed[1] == 0xFF
    assert packed[40] == 0b10
    assert packed[5759] == 0b11 << 6
    assert np.count_nonzero(packed) == 4


def test_non_contiguous_input() -> None:
    frames = random_frames(6, seed=2)
    every_other = frames[::2]
    np.testing.assert_array_equal(unpack_frames(pack_frames(every_other)), every_other)
    # A channel of an RGBA-like screen: the pixels are 4 bytes apart.
    rgba = np.repeat(frames[0][:, :, None], 4, axis=2)
    np.testing.assert_array_equal(pack_frames(rgba[:, :, 0]), pack_frames(frames[0]))
    packed = pack_frames(frames)
    np.testing.assert_array_equal(unpack_frames(packed[::2]), every_other)


def test_packing_does_not_touch_its_input() -> None:
    frames = random_frames(2, seed=3)
    before = frames.copy()
    unpack_frames(pack_frames(frames))
    np.testing.assert_array_equal(frames, before)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((144, 160), dtype=np.int64), "uint8"),
        (np.zeros((144, 160), dtype=np.float32), "uint8"),
        ([[0] * 160] * 144, "uint8"),
        (np.zeros((160, 144), dtype=np.uint8), r"\(\.\.\., 144, 160\)"),
        (np.zeros((2, 144, 161), dtype=np.uint8), r"\(\.\.\., 144, 160\)"),
        (np.zeros(23040, dtype=np.uint8), r"\(\.\.\., 144, 160\)"),
        (np.full((144, 160), 4, dtype=np.uint8), "0-3, got a 4"),
    ],
)
def test_pack_rejects(frames: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pack_frames(frames)


def test_pack_rejects_one_bad_pixel_in_a_batch() -> None:
    frames = random_frames(3, seed=4)
    frames[2, 100, 7] = 255
    with pytest.raises(ValueError, match="got a 255"):
        pack_frames(frames)


@pytest.mark.parametrize(
    ("packed", "message"),
    [
        (np.zeros(5760, dtype=np.int16), "uint8"),
        (b"\x00" * 5760, "uint8"),
        (np.zeros(5761, dtype=np.uint8), r"\(\.\.\., 5760\)"),
        (np.zeros((144, 160), dtype=np.uint8), r"\(\.\.\., 5760\)"),
        (np.zeros((), dtype=np.uint8), r"\(\.\.\., 5760\)"),
    ],
)
def test_unpack_rejects(packed: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        unpack_frames(packed)
