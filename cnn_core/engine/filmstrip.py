"""A filmstrip of a run: the first layer's filters and one probe image's feature maps at a dozen moments.

`schedule` picks the moments, denser early because that is when filters change most: before
the first step, after steps 10, 30, 100, 300… and at every epoch end. `Camera` takes one `Frame`
at each of them from inside `training.train` (a weight read and one small forward pass, about a
millisecond for the models here); frames are plain float16 arrays, so they travel through a
worker's pipe and into a workspace as they are, and `Filmstrip` (a listener) collects them and
saves itself as npz bytes.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

# About a dozen frames a run; more epochs than this get every k-th epoch end.
TARGET_FRAMES = 12
MAX_FRAMES = 24
EARLY_STEPS = (10, 30, 100, 300, 1000, 3000, 10000)
HISTOGRAM_BINS = 24


def schedule(steps_per_epoch: int, epochs: int, target: int = TARGET_FRAMES) -> tuple[int, ...]:
    """Global step counts (0 = before training) at which a frame is taken, ascending, at most MAX_FRAMES."""
    if steps_per_epoch < 1 or epochs < 1:
        raise ValueError("A filmstrip schedule needs at least one step and one epoch.")
    total = steps_per_epoch * epochs
    ends = [steps_per_epoch * epoch for epoch in range(1, epochs + 1)]
    room = max(2, MAX_FRAMES - len(EARLY_STEPS) - 1)
    if len(ends) > room:
        # Keep the last epoch end; thin the others evenly.
        stride = -(-len(ends) // room)
        ends = sorted(set(ends[::-1][::stride]))
    steps = {0, total, *ends}
    steps.update(step for step in EARLY_STEPS if step < total)
    # Fill up to the target with steps spread evenly over the run, so a short run still gets a dozen frames.
    spare = target - len(steps)
    if spare > 0:
        steps.update(round(total * (i + 1) / (spare + 1)) for i in range(spare))
    return tuple(sorted(step for step in steps if 0 <= step <= total))


@dataclass(frozen=True)
class FilmstripStarted:
    """Sent once before the first frame: the probe image (H, W) and the steps frames will be taken at."""

    probe: np.ndarray
    steps: tuple[int, ...]
    steps_per_epoch: int


@dataclass(frozen=True)
class LayerPicture:
    """One layer's output for the probe: (H, W, C) for a convolution, (units,) for a hidden dense layer.

    `number` is the layer's place in the model and `activation` its activation's name (both -1 and
    "" in filmstrips stored before they were recorded).
    """

    name: str
    description: str
    array: np.ndarray  # float16
    activation: str = ""
    number: int = -1


@dataclass(frozen=True)
class Frame:
    """The network at one global step: `epochs` is the position in epochs (1.5 = halfway through the second).

    `filters`: the first convolution's kernels (k, k, in, out), or None for a model without one;
    `maps`: the probe's feature maps (H, W, C) after each convolution; `weight_histograms`: per
    layer with weights, (name, counts, bin edges) of its kernel values; `units`: the probe's
    outputs of each hidden dense layer (for the health view's activation histograms).
    """

    step: int
    epochs: float
    filters: np.ndarray | None
    maps: tuple[LayerPicture, ...]
    weight_histograms: tuple[tuple[str, np.ndarray, np.ndarray], ...]
    units: tuple[LayerPicture, ...] = ()


class Camera:
    """Takes frames of a model during training; built in `on_train_begin`, once the model exists."""

    def __init__(self, model: keras.Model, probe: np.ndarray, steps_per_epoch: int):
        import keras

        self.model = model
        self.steps_per_epoch = steps_per_epoch
        probe = np.asarray(probe, dtype=np.float32)
        if probe.ndim == 2:
            probe = probe[..., np.newaxis]
        self.probe = probe
        self._input = probe[np.newaxis]
        numbers = {id(layer): number for number, layer in enumerate(model.layers)}
        self._number = lambda layer: numbers[id(layer)]
        self._convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        # Hidden dense layers only: the output layer's softmax on the probe is the prediction, not a health sign.
        self._dense = [layer for layer in model.layers[:-1] if isinstance(layer, keras.layers.Dense)]
        self._weighted = [layer for layer in model.layers if layer.weights]
        self._forward = None
        if self._convs or self._dense:
            # Shares the training model's variables, so every call sees the current weights.
            self._forward = keras.Model(model.inputs, [layer.output for layer in self._convs + self._dense])

    def frame(self, step: int) -> Frame:
        from cnn_core.engine.models import describe_keras_layer

        filters = None
        pictures: list[LayerPicture] = []
        if self._convs:
            filters = np.asarray(self._convs[0].kernel.numpy(), dtype=np.float16)
        if self._forward is not None:
            # An eager call: tracing a tf.function for a dozen calls would cost more than it saves.
            outputs = self._forward([self._input], training=False)
            if not isinstance(outputs, list | tuple):
                outputs = [outputs]
            pictures = [
                LayerPicture(layer.name, describe_keras_layer(layer), np.asarray(output[0], dtype=np.float16),
                             getattr(getattr(layer, "activation", None), "__name__", "linear"), self._number(layer))
                for layer, output in zip(self._convs + self._dense, outputs, strict=True)
            ]
        maps, units = tuple(pictures[:len(self._convs)]), tuple(pictures[len(self._convs):])
        histograms = []
        for layer in self._weighted:
            values = np.asarray(layer.weights[0].numpy(), dtype=np.float32).ravel()
            counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
            histograms.append((layer.name, counts.astype(np.int32), edges.astype(np.float32)))
        return Frame(step, step / self.steps_per_epoch, filters, maps, tuple(histograms), units)


class Filmstrip:
    """A listener that keeps a run's FilmstripStarted and Frames; safe to read while the run goes on."""

    def __init__(self):
        self._lock = threading.Lock()
        self._frames: list[Frame] = []
        self.probe: np.ndarray | None = None
        self.steps: tuple[int, ...] = ()
        self.steps_per_epoch = 0

    def __call__(self, event) -> None:
        if isinstance(event, Frame):
            with self._lock:
                self._frames.append(event)
        elif isinstance(event, FilmstripStarted):
            with self._lock:
                self.probe, self.steps, self.steps_per_epoch = event.probe, event.steps, event.steps_per_epoch
                self._frames = []

    @property
    def frames(self) -> list[Frame]:
        with self._lock:
            return list(self._frames)

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)

    def to_bytes(self) -> bytes:
        """The filmstrip as npz bytes: arrays by frame number plus a JSON index (no pickles)."""
        arrays: dict[str, np.ndarray] = {}
        index = {"steps": list(self.steps), "steps_per_epoch": self.steps_per_epoch, "frames": []}
        if self.probe is not None:
            arrays["probe"] = np.asarray(self.probe, dtype=np.float16)
        for number, frame in enumerate(self.frames):
            entry = {"step": frame.step, "epochs": frame.epochs, "maps": [], "histograms": [], "units": []}
            if frame.filters is not None:
                arrays[f"f{number}_filters"] = frame.filters
            entry["has_filters"] = frame.filters is not None
            for kind, pictures in (("map", frame.maps), ("units", frame.units)):
                for position, picture in enumerate(pictures):
                    arrays[f"f{number}_{kind}{position}"] = picture.array
                    entry["maps" if kind == "map" else "units"].append(
                        [picture.name, picture.description, picture.activation, picture.number])
            for position, (name, counts, edges) in enumerate(frame.weight_histograms):
                arrays[f"f{number}_hist{position}_counts"] = counts
                arrays[f"f{number}_hist{position}_edges"] = edges
                entry["histograms"].append(name)
            index["frames"].append(entry)
        arrays["index"] = np.frombuffer(json.dumps(index).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Filmstrip:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            index = json.loads(npz["index"].tobytes().decode())
            strip = cls()
            strip.steps = tuple(index["steps"])
            strip.steps_per_epoch = index["steps_per_epoch"]
            strip.probe = npz["probe"] if "probe" in npz.files else None
            for number, entry in enumerate(index["frames"]):
                filters = npz[f"f{number}_filters"] if entry["has_filters"] else None
                # Filmstrips stored before activations and layer numbers were recorded have two fields a picture.
                maps, units = (tuple(
                    LayerPicture(fields[0], fields[1], npz[f"f{number}_{kind}{position}"], *fields[2:4])
                    for position, fields in enumerate(entry.get(part, []))
                ) for kind, part in (("map", "maps"), ("units", "units")))
                histograms = tuple(
                    (name, npz[f"f{number}_hist{position}_counts"], npz[f"f{number}_hist{position}_edges"])
                    for position, name in enumerate(entry["histograms"])
                )
                strip._frames.append(Frame(entry["step"], entry["epochs"], filters, maps, histograms, units))
        return strip
