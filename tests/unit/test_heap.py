"""services.heap: freed heap goes back to the system, in every serve process, on the configured period."""

import asyncio

import pytest

from services import heap
from services.settings import Settings


def _private_dirty_kb() -> int:
    with open("/proc/self/smaps_rollup") as smaps:
        return next(int(line.split()[1]) for line in smaps if line.startswith("Private_Dirty:"))


@pytest.mark.skipif(heap._glibc() is None, reason="malloc_trim is glibc's")
def test_trim_gives_freed_heap_back() -> None:
    kept = [bytes(2000) + str(i).encode() for i in range(40_000)]  # ~80 MB from malloc (beyond pymalloc's 512 B)
    kept = kept[::100]  # the rest freed: holes between live blocks, which glibc keeps unless trimmed
    before = _private_dirty_kb()
    assert heap.trim()
    assert _private_dirty_kb() < before - 10_000


async def test_trimming_trims_on_its_period_until_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    monkeypatch.setattr(heap, "trim", lambda: calls.append(asyncio.get_running_loop().time()) or True)
    task = asyncio.create_task(heap.trimming(0.01))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(calls) >= 3
    done = len(calls)
    await asyncio.sleep(0.03)
    assert len(calls) == done


def test_the_setting_defaults_to_every_second_and_zero_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().malloc_trim_seconds == 1.0
    monkeypatch.setenv("QMSTATS_MALLOC_TRIM_SECONDS", "0")
    assert Settings().malloc_trim_seconds == 0
