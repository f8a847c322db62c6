"""One page run at a time per web process (by default), so a stroke's answer never queues behind a crowd.

Streamlit runs every session's script in a thread of one process, and those threads share one
interpreter lock: with N runs going, each gets about 1/N of it, and so does the event loop that
sends the answers. When a workshop opens the Train page together (30 participants, seven full
runs each to pick a preset, a subset and Start, 30–100 ms of CPU apiece), a Draw visitor's
prediction (20 ms of CPU) took 0.6–1.7 s to come back (`python -m bench.redis_workers --drawing`).

So the full run of every page but Draw first takes one of `CNN_PAGE_SLOTS` slots (default 1); the
others wait their turn (blocked on an event, which costs the interpreter nothing), strictly in
arrival order: a freed slot is handed to the longest waiter, so a new run can never cut in and a
waiting one is never starved (a semaphore lets newcomers barge in).
Nothing is done twice or dropped: the same runs finish with the same CPU, one after another instead
of all at once, and the Draw runs, short and what a visitor waits on stroke by stroke, go straight
through. The live view's timed refreshes (fragment reruns, `live_training.py`) take a slot too: 30 of
them a second otherwise each compete with a stroke for the interpreter; a refresh that carries a
click on Stop, Pause, Resume or a new learning rate is waited on like a stroke and goes straight
through. A run waits at most `MAX_WAIT_S`, then goes on without a slot, so one stuck run cannot
stall the server.

Measured with the drain benchmark (10 visitors drawing while 30 participants open Train and start
runs, 2 workers on the same 2 cores; uvloop and the 1 ms switch interval of `ui/entry.py` in both):
stroke p95 961, 1282, 561 ms with every run at once, 185, 247, 235 ms with one slot, runs alternated;
the web server also used less CPU (28-37 s against 36-46 s). On a machine 3× slower (session 8):
492, 471 ms with one slot against 992, 806 ms without. BENCHMARKS.md has the runs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Iterator

logger = logging.getLogger(__name__)

# Pages whose runs never wait: a visitor waits on each of them stroke by stroke, and each is short.
UNGATED_PAGES = frozenset({"draw"})
MAX_WAIT_S = 20.0


class Turns:
    """`slots` slots handed out strictly in arrival order.

    A release gives the slot straight to the longest waiter instead of freeing it, so a run that
    arrives later can never take it first.
    """

    def __init__(self, slots: int):
        if slots < 1:
            raise ValueError("There must be at least one page slot.")
        self._lock = threading.Lock()
        self._slots = slots
        self._free = slots
        self._waiting: deque[threading.Event] = deque()

    def acquire(self, timeout: float | None = None) -> bool:
        """Take a slot, waiting at most `timeout` seconds (0: not at all); whether one was taken."""
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return True
            if timeout == 0:
                return False
            turn = threading.Event()
            self._waiting.append(turn)
        if turn.wait(timeout):
            return True
        with self._lock:
            if turn.is_set():
                # Handed over just as the wait ran out: it is this run's now.
                return True
            self._waiting.remove(turn)
            return False

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()
                return
            if self._free >= self._slots:
                raise ValueError("A page slot was given back that was never taken.")
            self._free += 1

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)


_lock = threading.Lock()
_turns: Turns | None = None


def _slots() -> Turns:
    global _turns
    with _lock:
        if _turns is None:
            from ui import loaders

            _turns = Turns(loaders.settings().page_slots)
        return _turns


def configure(slots: int) -> None:
    """Replace the process's slots (tests; the server sizes them from its settings on first use)."""
    global _turns
    with _lock:
        _turns = Turns(slots)


# Whether the current thread holds a slot: a fragment drawn inside its page's run is already in.
_held = threading.local()


@contextlib.contextmanager
def slot(page: str, *, urgent: bool = False) -> Iterator[None]:
    """Hold a page-run slot while the page `page` (its URL path) runs; Draw's runs need none.

    An `urgent` run (someone waits on its answer, as on a stroke) and a thread that already holds
    a slot (a live view drawn inside the Train page's own run) go on at once.
    """
    if urgent or page in UNGATED_PAGES or getattr(_held, "inside", False):
        yield
        return
    turns = _slots()
    held = turns.acquire(timeout=MAX_WAIT_S)
    if not held:
        logger.warning("A %r page run waited %.0f s for a page slot and goes on without one.", page, MAX_WAIT_S)
    _held.inside = True
    try:
        yield
    finally:
        _held.inside = False
        if held:
            turns.release()
