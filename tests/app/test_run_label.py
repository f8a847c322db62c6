"""The live run's label says when a run trains in bfloat16, and says nothing extra for float32."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest


def _live_progress(precision: str) -> None:
    from types import SimpleNamespace

    from cnn_core.engine.training import BatchEnded, ProgressRecorder, TrainStarted
    from ui.components import live_training

    recorder = ProgressRecorder()
    recorder(TrainStarted(epochs=2, steps_per_epoch=10, train_size=1000, val_size=0, params=100, precision=precision))
    recorder(BatchEnded(epoch=0, step=3, steps_per_epoch=10, loss=1.2, accuracy=0.6))
    job = SimpleNamespace(state="running", queue_position=None, service_unavailable=False)
    live_training._progress(job, recorder.snapshot())


@pytest.mark.parametrize(("precision", "shown"), [("bfloat16", True), ("float32", False)])
def test_the_run_label_names_bfloat16(precision, shown):
    at = AppTest.from_function(_live_progress, args=(precision,), default_timeout=60).run()
    assert not at.exception
    (bar,) = at.get("progress")
    label = bar.proto.text
    assert label.startswith("Epoch 1 of 2 · step 3 of 10")
    assert ("bfloat16" in label) is shown
