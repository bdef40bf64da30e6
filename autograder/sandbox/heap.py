"""Give a process's freed C heap back to the system (harness and workers alike).

glibc keeps freed blocks below its mmap threshold on the heap, and raises that threshold each
time a large block is freed (up to 32 MiB), so a process that once held many tensors keeps
their pages until asked to trim, and small blocks allocated in between pin the heap's top: a
walk over 64-row chunks of float64 logits (26 MB each) grew the harness's heap by 80 to 540 MiB
from one run to the next.  ``map_large_blocks`` fixes the threshold instead, so every block of
a few MiB or more gets its own mapping and goes back to the system when freed.  Elsewhere than
glibc both are no-ops.
"""
from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3              # mallopt parameter; setting it also turns off the dynamic threshold
LARGE_BLOCK = 4 * 1024 * 1024      # bytes: the likelihood check's float64 chunks are six times this


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def return_freed_memory() -> None:
    """Release the heap's free pages, holes between live blocks included (``malloc_trim(0)``)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def map_large_blocks(threshold: int = LARGE_BLOCK) -> None:
    """Serve every allocation of ``threshold`` bytes or more from its own mapping (freed at once),
    for the rest of this process and the processes it forks."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(M_MMAP_THRESHOLD, threshold)
