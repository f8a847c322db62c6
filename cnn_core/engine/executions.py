"""Several training steps per call into TensorFlow, sized so one call stays short in time.

Keras' `fit` calls its compiled step once per batch, and for the small presets (batch 32, a dense
layer or two) that per-call cost — the Python loop, the function call, the logs turned into
floats — is most of the step. Keras' own `steps_per_execution` runs N steps per call, but then
its callbacks see only every Nth batch and N is fixed when the model is compiled.

`StepRunner` replaces the model's `train_function`: each call of the compiled loop runs up to
`steps` batches in one `tf.while_loop` and records every batch's running loss and accuracy,
which the runner then hands to Keras one batch at a time. Keras and the app's callback still see
every batch; the callback acts on Stop and pause only at the end of an execution
(`at_boundary`), where the weights are those of the batch it reports.

The number of steps per execution starts at 1 (the first call traces the loop; the next ones
measure a step) and then follows the measured step time so one execution lasts about
`EXECUTION_SECONDS`, at most `MAX_STEPS` and at most 1/`MIN_EXECUTIONS_PER_EPOCH` of an epoch, so
Stop and pause answer well within a second and a short epoch still has many places to stop.
An execution never crosses an epoch's end (Keras resets the running averages there) nor a step
in `must_end_at` (the filmstrip's frames, which must show the weights of exactly that step).
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import deque
from collections.abc import Iterable

logger = logging.getLogger(__name__)

# One execution's target length: Stop and pause wait at most about this long.
EXECUTION_SECONDS = 0.1
MAX_STEPS = 64
# An execution is at most this fraction of an epoch (1/20), so a pause or stop lands within 5% of one.
MIN_EXECUTIONS_PER_EPOCH = 20
# Executions of one step before the length adapts: the first traces the loop, the second is measured.
WARMUP_EXECUTIONS = 2
# The logs recorded for every batch (the model is always compiled with accuracy).
LOG_KEYS = ("loss", "accuracy")
AUTOGRAPH = False


class StepRunner:
    """A `model.train_function` that runs several batches per call and returns one batch's logs per call."""

    def __init__(self, model, steps_per_epoch: int, must_end_at: Iterable[int] = (),
                 seconds: float | None = None, max_steps: int | None = None, sample=None):
        import tensorflow as tf

        if sample is not None:
            # Create the optimizer's slots and the metrics' totals now: a tf.function whose first trace
            # creates variables traces twice, and a trace is most of the wait for the first curve point.
            try:
                model._symbolic_build(data_batch=sample)  # Keras' own helper; private, so only a head start
            except Exception:
                logger.warning("Could not build the optimizer before tracing; the first batch traces twice.",
                               exc_info=True)

        self.steps_per_epoch = steps_per_epoch
        self.seconds = EXECUTION_SECONDS if seconds is None else seconds
        max_steps = MAX_STEPS if max_steps is None else max_steps
        self.cap = max(1, min(max_steps, steps_per_epoch // MIN_EXECUTIONS_PER_EPOCH))
        self.steps = 1
        self.executions = 0
        self.done = 0  # global steps finished
        self._must_end_at = sorted(set(must_end_at))
        self._buffer: deque[dict[str, float]] = deque()
        self._step_seconds: float | None = None

        def run_steps(iterator, count):
            arrays = tuple(tf.TensorArray(tf.float32, size=count) for _ in LOG_KEYS)

            def body(index, arrays):
                logs = model.train_step(iterator.get_next())
                return index + 1, tuple(
                    array.write(index, tf.cast(logs[key], tf.float32)) for array, key in zip(arrays, LOG_KEYS, strict=True)
                )

            _, arrays = tf.while_loop(lambda index, _: index < count, body, (tf.constant(0), arrays))
            return tuple(array.stack() for array in arrays)

        # `count` is a tensor, so a new execution length needs no new trace. The loop is written with
        # tf.while_loop already; autograph would only re-parse Keras' step (Keras' own loop skips it too).
        self._run = tf.function(run_steps, reduce_retracing=True, autograph=AUTOGRAPH)

    @property
    def at_boundary(self) -> bool:
        """True once the batch last handed out ends an execution: the model's weights are that batch's."""
        return not self._buffer

    def _next_count(self) -> int:
        in_epoch = self.done % self.steps_per_epoch
        count = min(self.steps, self.steps_per_epoch - in_epoch)
        position = bisect.bisect_right(self._must_end_at, self.done)
        if position < len(self._must_end_at):
            count = min(count, self._must_end_at[position] - self.done)
        return max(1, count)

    def __call__(self, iterator) -> dict[str, float]:
        import tensorflow as tf

        if not self._buffer:
            count = self._next_count()
            begun = time.perf_counter()
            columns = [column.numpy().tolist() for column in self._run(iterator, tf.constant(count, tf.int32))]
            self._adapt((time.perf_counter() - begun) / count)
            self._buffer.extend(dict(zip(LOG_KEYS, row, strict=True)) for row in zip(*columns, strict=True))
        self.done += 1
        return self._buffer.popleft()

    def _adapt(self, step_seconds: float) -> None:
        self.executions += 1
        if self.executions <= 1:
            return  # the first call traced the loop; its time says nothing about a step
        # A moving average, so one slow execution (another process took the core) does not halve the length.
        previous = self._step_seconds
        self._step_seconds = step_seconds if previous is None else 0.7 * previous + 0.3 * step_seconds
        if self.executions >= WARMUP_EXECUTIONS:
            self.steps = max(1, min(self.cap, int(self.seconds / max(self._step_seconds, 1e-6))))
