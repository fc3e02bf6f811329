import random

import pytest

from dockernetd.bitmap import Bitmap


def naive_first_clear(bits: set[int], size: int, start: int, stop: int) -> int:
    return next((i for i in range(max(start, 0), min(stop, size)) if i not in bits), -1)


def test_empty_bitmap_finds_start():
    b = Bitmap(100)
    assert b.first_clear(0, 100) == 0
    assert b.first_clear(37, 100) == 37
    assert b.first_clear(100, 200) == -1


def test_set_clear_and_count():
    b = Bitmap(10)
    b.set(3)
    b.set(3)
    assert 3 in b and b.count == 1
    b.clear(3)
    b.clear(3)
    assert 3 not in b and b.count == 0
    with pytest.raises(IndexError):
        b.set(10)


def test_padding_bits_are_never_returned():
    b = Bitmap(13)  # 16 bits stored, 3 of them padding
    for i in range(13):
        b.set(i)
    assert b.first_clear(0, 16) == -1
    assert b.count == 13


def test_full_chunks_are_skipped_and_reopened():
    size = 5 * 2048 + 17
    b = Bitmap(size)
    for i in range(size):
        b.set(i)
    assert b.first_clear(0, size) == -1
    b.clear(4 * 2048 + 5)
    assert b.first_clear(0, size) == 4 * 2048 + 5
    assert b.first_clear(4 * 2048 + 6, size) == -1


def test_next_clear_after_wraps_and_examines_cursor_last():
    b = Bitmap(10)
    for i in range(10):
        b.set(i)
    b.clear(4)
    assert b.next_clear_after(4, 0, 9) == 4  # the only free slot is the cursor itself
    b.clear(2)
    assert b.next_clear_after(4, 0, 9) == 2  # wrapped past the end
    assert b.next_clear_after(1, 0, 9) == 2


@pytest.mark.parametrize("seed", range(5))
def test_matches_a_naive_model(seed):
    rng = random.Random(seed)
    size = rng.randrange(1, 9000)
    b = Bitmap(size)
    model: set[int] = set()
    for _ in range(3000):
        i = rng.randrange(size)
        if rng.random() < 0.7:
            b.set(i)
            model.add(i)
        else:
            b.clear(i)
            model.discard(i)
        start = rng.randrange(size)
        stop = rng.randrange(start, size + 1)
        assert b.first_clear(start, stop) == naive_first_clear(model, size, start, stop)
    assert b.count == len(model)
