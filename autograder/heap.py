"""Give a process's freed C heap back to the system (harness and workers alike).

glibc keeps freed blocks below its mmap threshold on the heap, and raises that threshold each
time a large block is freed, so a process that once held many tensors keeps their pages
until asked to trim.  Elsewhere than glibc this is a no-op.
"""
from __future__ import annotations

import ctypes


def return_freed_memory() -> None:
    """Release the heap's free pages, holes between live blocks included (``malloc_trim(0)``)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to do
