"""'My handwriting': the learner's labelled drawings in their workspace, and teaching a model with them.

The drawings are one small `.npz` in the workspace (uint8 28×28 images and their digits, about
800 bytes each), so they survive a reload and download as they are. Teaching runs
`cnn_core.engine.finetune` in a background thread — never in the page script — and at most as
many teach at once as the server has training slots; a page that reloads finds its result again
by workspace id.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnn_core.engine.errors import UserError

logger = logging.getLogger(__name__)

DRAWINGS = "handwriting.npz"
MAX_DRAWINGS = 500
REPLAY_IMAGES = 5000


def load(workspace) -> tuple[np.ndarray, np.ndarray]:
    """The learner's drawings: (N, 28, 28) float32 in [0, 1] and (N,) int64 labels (empty when none)."""
    data = workspace.drawing(DRAWINGS)
    if not data:
        return np.zeros((0, 28, 28), np.float32), np.zeros(0, np.int64)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            images, labels = arrays["images"], arrays["labels"]
    except (OSError, ValueError, KeyError):
        logger.exception("The handwriting drawings of a workspace could not be read; starting again.")
        return np.zeros((0, 28, 28), np.float32), np.zeros(0, np.int64)
    return images.astype(np.float32) / 255.0, labels.astype(np.int64)


def to_npz(images: np.ndarray, labels: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savez_compressed(out, images=np.round(np.clip(images, 0, 1) * 255).astype(np.uint8),
                        labels=np.asarray(labels, np.int64))
    return out.getvalue()


def save(workspace, images: np.ndarray, labels: np.ndarray) -> None:
    workspace.put_drawing(DRAWINGS, to_npz(images, labels))


def add(workspace, image: np.ndarray, label: int) -> int:
    """Append one prepared drawing with its digit; returns how many there are now."""
    image = np.asarray(image, np.float32)
    if image.shape != (28, 28) or not 0 <= int(label) <= 9:
        raise UserError("Only a drawn digit (0 to 9) can be added to your handwriting.")
    images, labels = load(workspace)
    if len(labels) >= MAX_DRAWINGS:
        raise UserError(f"Your handwriting already has {MAX_DRAWINGS} drawings; delete some first.")
    save(workspace, np.concatenate([images, image[None]]), np.append(labels, int(label)))
    return len(labels) + 1


def delete(workspace, index: int | None = None) -> None:
    """Delete one drawing (by position), or all of them."""
    images, labels = load(workspace)
    if index is None:
        save(workspace, images[:0], labels[:0])
    elif 0 <= index < len(labels):
        save(workspace, np.delete(images, index, axis=0), np.delete(labels, index))


def split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices to teach with and to hold out: the newest drawing of each digit is held out (if it has two)."""
    held = []
    for digit in range(10):
        mine = np.nonzero(labels == digit)[0]
        if len(mine) >= 2:
            held.append(mine[-1])
    held = np.asarray(sorted(held), dtype=np.int64)
    teach = np.setdiff1d(np.arange(len(labels)), held)
    return teach, held


@dataclass
class Lesson:
    """One teaching run: what it was taught and, once done, how it went."""

    id: str
    base_name: str
    mode: str
    started: float = field(default_factory=time.time)
    state: str = "running"  # running, finished, failed
    figures: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    bundle: Any = None
    taken: bool = False
    kept_as: str = ""


_LESSONS: dict[str, Lesson] = {}
_LOCK = threading.Lock()
_SLOTS: threading.BoundedSemaphore | None = None


def _slots(count: int) -> threading.BoundedSemaphore:
    global _SLOTS
    with _LOCK:
        if _SLOTS is None:
            _SLOTS = threading.BoundedSemaphore(max(1, count))
        return _SLOTS


def lesson_for(workspace_id: str) -> Lesson | None:
    with _LOCK:
        return _LESSONS.get(workspace_id)


def teach(workspace_id: str, base, base_name: str, images: np.ndarray, labels: np.ndarray, mode: str,
          slots: int) -> Lesson:
    """Start teaching a copy of `base` (a ModelBundle) in a background thread; one lesson per workspace."""
    from cnn_core.engine import finetune

    finetune.check_drawings(images, labels, 10)
    teach_idx, held_idx = split(labels)
    if len(held_idx) == 0:
        raise UserError("Draw each digit at least twice: one drawing of each is kept back to test the result.")
    finetune.check_drawings(images[teach_idx], labels[teach_idx], 10)
    with _LOCK:
        current = _LESSONS.get(workspace_id)
        if current is not None and current.state == "running":
            raise UserError("The model is still learning your handwriting; wait for this lesson to end.")
        lesson = _LESSONS[workspace_id] = Lesson(uuid.uuid4().hex, base_name, mode)

    def work() -> None:
        from cnn_core.engine import datasets
        from cnn_core.service.persistence import ModelBundle

        with _slots(slots):
            try:
                # Only a slice of MNIST: the server never holds a whole training set for this.
                mnist = datasets.load_for_one_run("mnist", REPLAY_IMAGES)
                model = base.model
                held_x, held_y = images[held_idx], labels[held_idx]
                before_held = finetune.accuracy(model, held_x, held_y)
                before_mnist = finetune.accuracy(model, mnist.x_test, mnist.y_test)
                result = finetune.fine_tune(model, images[teach_idx], labels[teach_idx], mnist.x_train,
                                            mnist.y_train, mode=mode,
                                            steps=finetune.steps_for(len(teach_idx), epochs=8.0))
                after_held = finetune.accuracy(result.model, held_x, held_y)
                after_mnist = finetune.accuracy(result.model, mnist.x_test, mnist.y_test)
                lesson.figures = {
                    "taught with": len(teach_idx), "held out": len(held_idx),
                    "held-out before": before_held, "held-out after": after_held,
                    "MNIST test before": before_mnist, "MNIST test after": after_mnist,
                    "seconds": result.seconds, "steps": result.steps,
                }
                experiment = getattr(base, "experiment", None)
                lesson.bundle = ModelBundle(
                    model=result.model, experiment=experiment, name=f"{base_name}, my handwriting",
                    source="trained", dataset_name="mnist",
                    metrics={"test_accuracy": after_mnist, "fine_tuned_on": len(teach_idx),
                             "fine_tune_mode": mode, "held_out_accuracy": after_held},
                )
                lesson.state = "finished"
            except UserError as exc:
                lesson.error, lesson.state = str(exc), "failed"
            except Exception:
                logger.exception("Teaching a model handwriting failed (lesson %s).", lesson.id)
                lesson.error = f"Something went wrong on our side while teaching (reference {lesson.id[:8]})."
                lesson.state = "failed"

    threading.Thread(target=work, name=f"handwriting-{lesson.id[:8]}", daemon=True).start()
    return lesson
