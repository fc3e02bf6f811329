"""A bit set that finds the next clear bit without walking every bit.

Both allocators hand out "the next free slot after the cursor, wrapping", as
Docker 1.4 did.  Docker walked address by address, so a pool that is 99 % full
cost a scan of the whole pool per allocation.  Here the bits live in one
``bytearray`` (a /8 is 2 MiB, no object per address) and are grouped in chunks
of 2,048 bits; a second ``bytearray`` says which chunks are full.  Finding the
next clear bit is then: look at the current byte, skip full chunks with
``bytearray.find`` (memchr), and find a non-full byte inside one chunk with a
regex (C speed, at most 256 bytes).  The cost is bounded by the chunk size and
the number of chunks, never by the number of allocated slots.
"""

from __future__ import annotations

import re
from array import array

_CHUNK_BYTES = 256
_CHUNK_BITS = _CHUNK_BYTES * 8
_NOT_FULL_BYTE = re.compile(rb"[^\xff]")


class Bitmap:
    """``size`` bits, all clear at first."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("size must be >= 0")
        self.size = size
        self._bits = bytearray((size + 7) // 8)
        chunks = (len(self._bits) + _CHUNK_BYTES - 1) // _CHUNK_BYTES
        self._counts = array("H", bytes(2 * chunks))
        self._full = bytearray(chunks)
        self.count = 0
        # Padding bits past the end are set, so no search ever returns them.
        for i in range(size, len(self._bits) * 8):
            self._mark(i)

    def __contains__(self, i: int) -> bool:
        return 0 <= i < self.size and bool(self._bits[i >> 3] & (1 << (i & 7)))

    def set(self, i: int) -> None:
        """Set bit ``i`` (idempotent)."""
        self._check(i)
        if not self._bits[i >> 3] & (1 << (i & 7)):
            self._mark(i)
            self.count += 1

    def clear(self, i: int) -> None:
        """Clear bit ``i`` (idempotent)."""
        self._check(i)
        mask = 1 << (i & 7)
        if self._bits[i >> 3] & mask:
            self._bits[i >> 3] &= ~mask & 0xFF
            chunk = i // _CHUNK_BITS
            self._counts[chunk] -= 1
            self._full[chunk] = 0
            self.count -= 1

    def first_clear(self, start: int, stop: int) -> int:
        """The first clear bit in ``[start, stop)``, or -1."""
        start = max(start, 0)
        stop = min(stop, self.size)
        bits = self._bits
        while start < stop:
            byte = start >> 3
            value = bits[byte] | ((1 << (start & 7)) - 1)  # ignore bits below start
            if value != 0xFF:
                found = (byte << 3) + (~value & (value + 1)).bit_length() - 1
                return found if found < stop else -1
            byte = self._next_open_byte(byte + 1, (stop + 7) >> 3)
            if byte < 0:
                return -1
            start = byte << 3
        return -1

    def next_clear_after(self, cursor: int, low: int, high: int) -> int:
        """The first clear bit after ``cursor`` in ``[low, high]``, wrapping to ``low``.

        The cursor itself is examined last, so the only clear bit is always found.
        Returns -1 when every bit of the window is set.
        """
        found = self.first_clear(cursor + 1, high + 1)
        if found < 0:
            found = self.first_clear(low, min(cursor, high) + 1)
        return found

    def _next_open_byte(self, byte: int, end_byte: int) -> int:
        while byte < end_byte:
            chunk = byte // _CHUNK_BYTES
            if self._full[chunk]:
                chunk = self._full.find(0, chunk + 1)
                if chunk < 0:
                    return -1
                byte = chunk * _CHUNK_BYTES
                continue
            chunk_end = min((chunk + 1) * _CHUNK_BYTES, end_byte)
            match = _NOT_FULL_BYTE.search(self._bits, byte, chunk_end)
            if match:
                return match.start()
            byte = chunk_end
        return -1

    def _mark(self, i: int) -> None:
        self._bits[i >> 3] |= 1 << (i & 7)
        chunk = i // _CHUNK_BITS
        self._counts[chunk] += 1
        capacity = min(_CHUNK_BYTES, len(self._bits) - chunk * _CHUNK_BYTES) * 8
        if self._counts[chunk] == capacity:
            self._full[chunk] = 1

    def _check(self, i: int) -> None:
        if not 0 <= i < self.size:
            raise IndexError(f"bit {i} out of range 0..{self.size - 1}")
