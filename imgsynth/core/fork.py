"""OpenCV's thread pool made safe for fork(): DataLoader workers (fork start method) must not
hang in their first OpenCV call.

What deadlocks: OpenCV's pthreads pool keeps its worker threads in a process-wide object.
fork() copies that object into the child but not the threads; a pool thread that was asleep
on its condition variable stays counted as a waiter there. The child's first call that
shrinks the pool (`cv2.setNumThreads(1)`, as every DataLoader worker should do) destroys
that condition variable and waits forever for the waiter that does not exist (py-spy:
pthread_cond_destroy). Plain OpenCV calls in the child do not hang (they run serially).

The fix works for every fork of the process, whatever made it and whatever the parent did
with OpenCV before: `make_opencv_fork_safe()` registers, once, an `os.register_at_fork`
hook that closes the pool in the parent just before fork() (`cv2.setNumThreads(1)` joins
the pool's threads) and restores the parent's thread count just after it. The child starts
with one OpenCV thread and no pool, so nothing in it waits on threads of the parent, and
no OpenCV call is needed in the child. The parent keeps its thread count; it pays one join
of its pool threads per fork and restarts them on its next parallel OpenCV call (measured
on 2 cores: a fork takes 1.1 instead of 1.0 ms with 2 threads, 1.3 with 8, 1.8 with 32; the
next 1000x1000 blur +0.1 ms with 8). A DataLoader forks once per worker and epoch (once
with persistent_workers), each fork costing far more than this. A process that never
imported cv2 is left alone (the hook does not import it).

Closing the pool once when a dataset is created (what AugmentedDataset did) is not enough:
any later parallel OpenCV call in the parent (an in-process epoch, the user's own
cv2.setNumThreads(n)) starts it again, and it costs the parent its threads for good.
"""

from __future__ import annotations

import os
import sys
import threading

_registered = False
# The parent's thread count from just before fork() to just after; per thread, as the
# hooks of one fork run in the thread that forks.
_saved = threading.local()


def make_opencv_fork_safe() -> None:
    """Close OpenCV's thread pool before every later fork() of this process (idempotent)."""
    global _registered
    if _registered or not hasattr(os, "register_at_fork"):
        return
    os.register_at_fork(before=_close_pool, after_in_parent=_restore_threads)
    _registered = True


def _close_pool() -> None:
    cv2 = sys.modules.get("cv2")
    if cv2 is None:  # no OpenCV call yet, so no pool
        return
    _saved.threads = cv2.getNumThreads()
    # Always, even when the count reads 1: after setNumThreads(0) it reads 1 while the
    # pool's threads are still there.
    cv2.setNumThreads(1)


def _restore_threads() -> None:
    threads = getattr(_saved, "threads", None)
    if threads is not None:
        _saved.threads = None
        sys.modules["cv2"].setNumThreads(threads)
