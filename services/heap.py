"""Giving freed heap memory back to the operating system.

glibc's malloc keeps memory freed by Python (a projected batch, an export page, a big request body) in its
arenas for reuse, so a process's RSS stays at its high-water mark. ``malloc_trim(0)`` returns the free pages
of every arena; ``trimming`` calls it every few seconds in each serve process. Elsewhere (not glibc) both
are no-ops.
"""

import asyncio
import ctypes
import ctypes.util
import sys
from functools import cache


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # pragma: no cover - musl and others have no malloc_trim
        return None
    return libc


def trim() -> bool:
    """Return the free pages of every malloc arena to the system; whether any was returned."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


async def trimming(every: float) -> None:
    """``trim`` every ``every`` seconds, until cancelled."""
    while True:
        await asyncio.sleep(every)
        trim()
