"""One page run at a time per web process (by default), so a stroke's answer never queues behind a crowd.

Streamlit runs every session's script in a thread of one process, and those threads share one
interpreter lock: with N runs going, each gets about 1/N of it, and so does the event loop that
sends the answers. When a workshop opens the Train page together (30 participants, seven full
runs each to pick a preset, a subset and Start, 30–100 ms of CPU apiece), a Draw visitor's
prediction (20 ms of CPU) took 0.6–1.7 s to come back (`python -m bench.redis_workers --drawing`).

So the full run of every page but Draw first takes one of `CNN_PAGE_SLOTS` slots (default 1); the
others wait their turn (blocked on a lock, which costs the interpreter nothing), in arrival order.
Nothing is done twice or dropped: the same runs finish with the same CPU, one after another instead
of all at once, and the Draw runs, short and what a visitor waits on stroke by stroke, go straight
through. The live view's refreshes (fragment reruns, `live_training.py`) take a slot too: 30 of them
a second otherwise each compete with a stroke for the interpreter. A run waits at most `MAX_WAIT_S`,
then goes on without a slot, so one stuck run cannot stall the server.

Measured with the drain benchmark (10 visitors drawing while 30 participants open Train and start
runs, 2 workers on the same 2 cores; uvloop and the 1 ms switch interval of `ui/entry.py` in both):
stroke p95 961, 1282, 561 ms with every run at once, 185, 247, 235 ms with one slot, runs alternated;
the web server also used less CPU (28-37 s against 36-46 s). BENCHMARKS.md has the runs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

logger = logging.getLogger(__name__)

# Pages whose runs never wait: a visitor waits on each of them stroke by stroke, and each is short.
UNGATED_PAGES = frozenset({"draw"})
MAX_WAIT_S = 20.0

_lock = threading.Lock()
_slots: threading.BoundedSemaphore | None = None


def _semaphore() -> threading.BoundedSemaphore:
    global _slots
    with _lock:
        if _slots is None:
            from ui import loaders

            _slots = threading.BoundedSemaphore(loaders.settings().page_slots)
        return _slots


def configure(slots: int) -> None:
    """Replace the process's slots (tests; the server sizes them from its settings on first use)."""
    global _slots
    with _lock:
        _slots = threading.BoundedSemaphore(slots)


# How many slots the current thread holds, nested: a fragment drawn inside its page's run is already in.
_held = threading.local()


@contextlib.contextmanager
def slot(page: str) -> Iterator[None]:
    """Hold a page-run slot while the page `page` (its URL path) runs; Draw's runs need none.

    A thread that already holds one (a live view drawn inside the Train page's own run) goes on.
    """
    if page in UNGATED_PAGES or getattr(_held, "depth", 0):
        yield
        return
    semaphore = _semaphore()
    held = semaphore.acquire(timeout=MAX_WAIT_S)
    if not held:
        logger.warning("A %r page run waited %.0f s for a page slot and goes on without one.", page, MAX_WAIT_S)
    _held.depth = 1
    try:
        yield
    finally:
        _held.depth = 0
        if held:
            semaphore.release()

