"""Process-wide memory tuning shared by the long-running servers (`hft engine`,
`hft api`): keep start-up objects out of the garbage collector's full passes and keep
large buffers in the heap. Both are called by the server entry points only, never on
import, so tests and tools run with the interpreter's defaults.
"""

from __future__ import annotations

import ctypes
import gc
import sys


def freeze_heap(young_threshold: int | None = None) -> None:
    """Move everything alive after start-up out of the collector's reach, and optionally
    raise the young generation's threshold.

    The modules, the config and what start-up built live as long as the process; left
    in the oldest generation, every full collection walks them again (10-20 ms in the
    engine with grpc, numpy and protobuf loaded; about 0.2 ms once frozen), a pause that
    lands on whatever request is in flight. Frozen objects are never collected, so this
    runs once, after a collection.

    The engine keeps the default young threshold (700): larger ones made each of its
    collections proportionally longer (0.4 ms at 3,000, 2 ms at 10,000 under unary
    load) for the same total time. The backend passes a larger one: a batch of orders
    allocates and frees thousands of objects, so at 700 the count crosses the threshold
    in the middle of nearly every batch and the collector walks objects that are freed
    a moment later (see `API_YOUNG_THRESHOLD`).
    """
    gc.collect()
    gc.freeze()
    if young_threshold is not None:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(young_threshold, older, oldest)


# Measured with the order-entry benchmark's load (PostgreSQL, 32 clients, 4,000 orders):
# at 700, 579 young, 53 middle and 4 full collections took 259 ms; at 5,000, 28 young
# and 2 middle ones took 64 ms, and no full one ran.
API_YOUNG_THRESHOLD = 5_000


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_malloc() -> bool:
    """Keep freed large buffers in the heap instead of returning them to the kernel.

    By default glibc maps every buffer over a few hundred KiB (a batch's events and
    answers) freshly and unmaps it when freed, so each batch pays a page fault per 4 KiB
    it touches; that tripled the cost of encoding a batch answer. Returns False where
    there is no glibc `mallopt` (the process then runs with the default allocator).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # 32 MiB is glibc's largest mmap threshold on 64-bit systems.
    ok = int(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) == 1
    return int(mallopt(_M_TRIM_THRESHOLD, 128 << 20)) == 1 and ok
