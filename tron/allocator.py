"""Keep freed memory in the process: glibc's malloc otherwise hands every large tensor back to the
kernel when it is freed (above its mmap threshold, and by trimming the heap's top), so the next batch
page-faults the same activations in again. On the 2-core CPU this doubled pair generation through
EfficientNet-Lite0 at 224 px (35 -> 65 pairs/s on one thread, benchmarks/results/real_model_speed).

The price: a process keeps its peak heap (about 1 GB for a batch of 64 pairs at 224 px). Called where
G and f run many batches: a shard task, sampling (the CLI, a Serve replica), the benchmarks.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_done = False


def keep_freed_memory(mmap_threshold: int = 1 << 30) -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where malloc is not glibc's."""
    global _done
    if _done:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _done = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    return _done
