"""ui.page_slots: page runs take turns, Draw's go straight through, and nothing waits for ever."""

from __future__ import annotations

import threading

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
    # Exactly one slot is free again: a release by the run that took none would raise (bounded).
    semaphore = page_slots._semaphore()
    assert semaphore.acquire(blocking=False)
    assert not semaphore.acquire(blocking=False)
    semaphore.release()


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
