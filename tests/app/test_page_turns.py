"""Pages take turns in a web process (ui/page_slots.py), and a stroke on Draw never waits its turn.

Before, every session's run went at once: 30 participants opening Train together made a Draw
visitor's answer wait 0.6–1.7 s (`python -m bench.redis_workers --drawing`).
"""

from __future__ import annotations

import threading

from tests.app.conftest import drawing, texts
from ui import page_slots


def test_a_stroke_is_answered_while_another_page_run_holds_the_slot_and_train_waits_its_turn(
        open_page, fake_canvas):
    draw = open_page("draw")
    train = open_page("train")
    page_slots.configure(1)
    someone_elses_run = page_slots._slots()
    assert someone_elses_run.acquire(timeout=0)
    finished = threading.Event()

    def rerun_train() -> None:
        train.run(timeout=60)
        finished.set()

    waiting = threading.Thread(target=rerun_train, daemon=True)
    try:
        fake_canvas.image = drawing("7")
        draw.run()
        assert "sure. Runner-up" in texts(draw)
        waiting.start()
        assert not finished.wait(1.0), "the Train run did not wait for the page slot"
    finally:
        someone_elses_run.release()
    assert finished.wait(60), "the Train run never got its turn"
    waiting.join(5)
    assert not train.exception
    assert train.title[0].value == "Train a CNN"
    page_slots.configure(1)
