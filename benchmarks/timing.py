"""The timer the benchmarks share: functions timed in turn, so that they see the same machine state."""

from __future__ import annotations

import random
import statistics
import time
from typing import Callable


def interleaved(
    fns: dict[str, Callable[[], object]],
    repeat: int,
    seed: int | None = None,
    sync: Callable[[], None] = lambda: None,
) -> dict[str, float]:
    """Median seconds of each function (after one warm-up call each), timed in turn within every repeat; with a
    ``seed``, in a shuffled order (what runs just after stock meets its OpenMP workers still spinning: no function
    should always be the one that does). ``sync`` runs before and after each call (a CUDA synchronize)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    rng = None if seed is None else random.Random(seed)
    for _ in range(repeat):
        if rng is not None:
            rng.shuffle(order)
        for name in order:
            sync()
            start = time.perf_counter()
            fns[name]()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}
