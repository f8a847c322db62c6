"""Steering a queued run: pause, resume, learning rate, filmstrip frames and continue training, in both runners."""

import time

import numpy as np
import pytest

from cnn_core.engine.errors import UserError
from cnn_core.engine.filmstrip import schedule
from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, MaxPool, ModelSpec, TrainingConfig
from cnn_core.service.queue import JobQueue
from cnn_core.service.settings import Settings
from tests.core.service.test_queue import _eventually


def _experiment(epochs=1, **training) -> Experiment:
    model = ModelSpec((Conv2D(4, 3), MaxPool(2), Flatten(), Dense(10, "softmax")), name="steered")
    return Experiment(model, TrainingConfig(dataset="tiny", epochs=epochs, batch_size=50, validation_split=0.0,
                                            **training))


@pytest.fixture(scope="module", params=["thread", "process"])
def queue(request):
    queue = JobQueue(Settings(job_runner=request.param, max_concurrent_jobs=1))
    yield queue
    queue.shutdown(timeout=60)


def _steps(job) -> int:
    snapshot = job.progress.snapshot()
    return snapshot.epoch * snapshot.steps_per_epoch + snapshot.step


def test_pause_holds_the_run_and_resume_finishes_every_step(queue):
    job = queue.submit(_experiment(epochs=40), owner="pauser")
    assert _eventually(lambda: _steps(job) > 0, timeout=300)
    job.pause()
    assert job.paused
    assert _eventually(lambda: job.progress.snapshot().paused, timeout=30)
    held = _steps(job)
    time.sleep(0.5)
    assert _steps(job) == held and job.state == "running"
    job.set_learning_rate(0.0002)
    job.resume()
    assert _eventually(lambda: not job.progress.snapshot().paused, timeout=30)
    assert job.wait(timeout=300) and job.state == "finished", job.error
    snapshot = job.progress.snapshot()
    assert _steps(job) == 40 * 6
    labels = [marker["label"] for marker in snapshot.markers]
    assert labels == ["paused", "learning rate → 0.0002"]
    # The change applied where the run had been paused, not later.
    assert snapshot.markers[1]["epochs"] == pytest.approx(snapshot.markers[0]["epochs"])
    assert job.take_result().model.optimizer.learning_rate is not None


def test_a_pause_pressed_before_the_run_reached_its_worker_holds_it(queue):
    """The Pause button shows as soon as a run leaves the queue, before its worker has the run: a click
    then is sent right behind the run. The worker used to drain such commands as left over from the
    previous run, so the page showed Resume while the run trained to its end."""
    job = queue.submit(_experiment(epochs=40), owner="early pauser")
    assert _eventually(lambda: job.state == "running", timeout=60)
    job.pause()
    assert _eventually(lambda: job.progress.snapshot().paused, timeout=120), "the early Pause was lost"
    held = _steps(job)
    time.sleep(0.5)
    assert _steps(job) == held < 40 * 6 and job.state == "running"
    job.resume()
    assert job.wait(timeout=300) and job.state == "finished", job.error
    assert _steps(job) == 40 * 6


def test_a_command_left_over_from_an_earlier_run_does_not_steer_the_next(queue):
    first = queue.submit(_experiment(epochs=1), owner="late clicker")
    assert first.wait(timeout=300) and first.state == "finished", first.error
    first.pause()  # after its end: may still reach the worker, which must ignore it
    second = queue.submit(_experiment(epochs=3), owner="late clicker")
    assert second.wait(timeout=300) and second.state == "finished", second.error
    assert not second.progress.snapshot().markers
    assert _steps(second) == 3 * 6


def test_frames_of_the_filmstrip_reach_the_job_and_continue_training_starts_from_weights(queue):
    probe = np.zeros((28, 28), np.float32)
    probe[10:18, 12:16] = 1.0
    job = queue.submit(_experiment(epochs=2), owner="watcher", probe=probe)
    assert job.wait(timeout=300) and job.state == "finished", job.error
    assert [frame.step for frame in job.filmstrip.frames] == list(schedule(6, 2))
    assert np.array_equal(job.filmstrip.probe, probe.astype(np.float16))
    model = job.take_result().model
    more = queue.submit(_experiment(epochs=1), owner="watcher", initial_weights=model.get_weights())
    assert more.wait(timeout=300) and more.state == "finished", more.error
    # Frame 0 of the continued run shows the first run's trained filters.
    trained = model.layers[1].get_weights()[0].astype(np.float16)
    assert np.array_equal(more.filmstrip.frames[0].filters, trained)


def test_an_impossible_learning_rate_is_refused_at_the_door(queue):
    job = queue.submit(_experiment(epochs=1), owner="typo")
    with pytest.raises(UserError):
        job.set_learning_rate(-3)
    assert job.wait(timeout=300) and job.state == "finished", job.error
