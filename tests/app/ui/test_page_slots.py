"""ui.page_slots: page runs take turns in arrival order, Draw's and clicks go straight through, nothing waits for ever."""

from __future__ import annotations

import threading
import time

import pytest

from cnn_core.service.settings import load_settings
from ui import page_slots


@pytest.fixture
def one_slot():
    page_slots.configure(1)
    yield
    page_slots.configure(1)


def _enter_in_thread(page: str) -> tuple[threading.Thread, threading.Event]:
    entered = threading.Event()

    def run() -> None:
        with page_slots.slot(page):
            entered.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, entered


def test_a_second_page_run_waits_for_the_first_and_a_draw_run_does_not(one_slot):
    with page_slots.slot("train"):
        waiting, entered = _enter_in_thread("evaluate")
        drawing, drew = _enter_in_thread("draw")
        assert drew.wait(5), "a Draw run waited for a page slot"
        assert not entered.wait(0.3), "two page runs held the only slot at once"
    assert entered.wait(5), "the waiting page run never got the slot"
    waiting.join(5)
    drawing.join(5)


def test_a_run_that_waited_too_long_goes_on_and_gives_back_nothing_it_did_not_take(one_slot, monkeypatch, caplog):
    monkeypatch.setattr(page_slots, "MAX_WAIT_S", 0.05)
    with page_slots.slot("train"):
        waiting, entered = _enter_in_thread("evaluate")
        assert entered.wait(5)
        waiting.join(5)
        assert "goes on without one" in caplog.text
    # Exactly one slot is free again: a release by the run that took none would raise.
    turns = page_slots._slots()
    assert turns.acquire(timeout=0)
    assert not turns.acquire(timeout=0)
    turns.release()
    with pytest.raises(ValueError, match="never taken"):
        turns.release()


def test_a_run_that_stops_with_an_exception_gives_its_slot_back(one_slot):
    with pytest.raises(RuntimeError), page_slots.slot("train"):
        raise RuntimeError("st.stop and st.rerun leave a page the same way")
    with page_slots.slot("evaluate"):
        pass


def test_slots_come_from_the_settings():
    assert load_settings(env={}).page_slots == 1
    assert load_settings(env={"CNN_PAGE_SLOTS": "3"}).page_slots == 3
    with pytest.raises(ValueError, match="CNN_PAGE_SLOTS"):
        load_settings(env={"CNN_PAGE_SLOTS": "0"})


def test_a_live_view_drawn_inside_its_page_run_does_not_wait_for_a_second_slot(one_slot):
    with page_slots.slot("train"):
        waiting, entered = _enter_in_thread("evaluate")
        with page_slots.slot("live view"):  # the same thread: already in
            pass
        assert not entered.wait(0.2)
    assert entered.wait(5)
    waiting.join(5)
    # Out of the page run, a live view's own refresh takes a slot like any page run.
    with page_slots.slot("train"):
        refresh, refreshed = _enter_in_thread("live view")
        assert not refreshed.wait(0.3)
    assert refreshed.wait(5)
    refresh.join(5)


def _wait_until_queued(count: int) -> None:
    deadline = time.monotonic() + 5
    while page_slots._slots().waiting < count:
        assert time.monotonic() < deadline, f"{count} runs never queued"
        time.sleep(0.005)


def test_runs_get_their_turn_in_arrival_order_and_a_newcomer_cannot_cut_in(one_slot):
    order: list[int] = []
    threads = []
    turns = page_slots._slots()
    assert turns.acquire(timeout=0)
    for number in range(5):
        def run(number=number) -> None:
            with page_slots.slot("train"):
                order.append(number)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        _wait_until_queued(number + 1)
    turns.release()
    # The slot went to the first waiter, not to whoever asks next (a semaphore would let this one in).
    assert not turns.acquire(timeout=0)
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4]
    assert turns.acquire(timeout=0)
    turns.release()


def test_a_run_whose_wait_ran_out_leaves_the_line(one_slot):
    turns = page_slots._slots()
    assert turns.acquire(timeout=0)
    assert not turns.acquire(timeout=0.05)
    assert turns.waiting == 0
    turns.release()
    assert turns.acquire(timeout=0)
    turns.release()


def test_an_urgent_run_does_not_wait(one_slot):
    with page_slots.slot("train"):
        done = threading.Event()

        def click() -> None:
            with page_slots.slot("live view", urgent=True):
                done.set()

        threading.Thread(target=click, daemon=True).start()
        assert done.wait(5), "a refresh carrying a click waited for the page slot"


def test_the_live_view_knows_a_run_that_follows_a_click(monkeypatch):
    from ui.components import live_training

    monkeypatch.setattr(live_training.st, "session_state", {"k-pause": False, "k-lr": 0.1})
    assert not live_training.clicked("k")
    for button in ("stop", "pause", "resume", "lr-apply"):
        monkeypatch.setattr(live_training.st, "session_state", {f"k-{button}": True})
        assert live_training.clicked("k"), button
