"""libnftables (the library behind ``nft``) through ctypes.

Six functions of its C API are all the daemon needs: a context, its output and
error buffers, and running a batch of commands.  A batch is one transaction:
the kernel applies all of it or nothing.  Commands are written in nft's own
syntax (what ``nft -f`` reads): libnftables 1.0.6's JSON input cannot declare a
map whose values are concatenations (``ipv4_addr . inet_service``, what a
published port maps to), and crashes on one form of it.  Answers come back as
JSON (``nft -j``), which is what is compared and parsed.  Why not a package: the project's own
Python binding (the ``nftables`` module firewalld uses) is not on PyPI, only in
distributions' packages for their system interpreter, and it is these same
calls; pyroute2's nftables cannot express the concatenated set and map keys
the daemon's table is built on (measured: see the README, "The nftables
firewall").

Used on the kernel thread only, as every other kernel handle.
"""

from __future__ import annotations

import ctypes
import json
from typing import Any

LIBRARY = "libnftables.so.1"
# libnftables.h, enum nft_ctx_output_flags
OUTPUT_HANDLE = 1 << 3
OUTPUT_JSON = 1 << 4
OUTPUT_ECHO = 1 << 5


class NftError(Exception):
    """nftables refused a batch (nothing of it was applied), with what it said."""


class Nft:
    """One libnftables context: ``run`` a batch of JSON commands, get the JSON answer."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL(LIBRARY, use_errno=True)
        except OSError as exc:
            raise NftError(f"cannot load {LIBRARY} (Debian: libnftables1): {exc}") from None
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self._lib = lib
        self._ctx = lib.nft_ctx_new(0)
        if not self._ctx:
            raise NftError("nft_ctx_new failed")
        lib.nft_ctx_output_set_flags(self._ctx, OUTPUT_JSON | OUTPUT_HANDLE)
        lib.nft_ctx_buffer_output(self._ctx)
        lib.nft_ctx_buffer_error(self._ctx)

    def run(self, commands: str, *, echo: bool = False) -> list[dict[str, Any]]:
        """Apply ``commands`` (lines of nft syntax) as one transaction; the objects a
        ``list`` command answers, as libnftables-json(5), and with ``echo`` what was
        added, with its handles (``nft -e -a``).  NftError if refused."""
        flags = OUTPUT_JSON | OUTPUT_HANDLE | (OUTPUT_ECHO if echo else 0)
        self._lib.nft_ctx_output_set_flags(self._ctx, flags)
        status = self._lib.nft_run_cmd_from_buffer(self._ctx, commands.encode())
        output = self._lib.nft_ctx_get_output_buffer(self._ctx) or b""
        if status != 0:
            error = self._lib.nft_ctx_get_error_buffer(self._ctx) or b""
            raise NftError(error.decode(errors="replace").strip() or f"nft status {status}")
        if not output.strip():
            return []
        answer: list[dict[str, Any]] = json.loads(output)["nftables"]
        return [item for item in answer if "metainfo" not in item]

    def close(self) -> None:
        if self._ctx:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None
