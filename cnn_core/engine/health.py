"""Health of a network and of its run: dead filters, saturated units, weight and activation histograms, overfitting.

`check(model, images)` passes test images through every convolution and hidden dense layer and
says, in one sentence each, what looks wrong: filters that never fire on any of the images
(ReLU units stuck at zero, often after too high a learning rate), units stuck at the ends of a
sigmoid or tanh, weights that have grown large. `overfitting_epoch(history)` finds the epoch
after which validation loss rises while training loss keeps falling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

HISTOGRAM_BINS = 30
# A sigmoid/tanh unit is saturated on an image when it is this close to an end of its range…
SATURATION_MARGIN = 0.01
# …and counts as saturated when that holds for this share of the images.
SATURATED_SHARE = 0.95
# Values kept per layer for its activation histogram (a random sample, for memory's sake).
HISTOGRAM_SAMPLE = 50_000
LARGE_WEIGHT = 5.0


@dataclass(frozen=True)
class LayerHealth:
    """One convolution or hidden dense layer: `number` is its place in the model (the spec's layer number)."""

    number: int
    name: str
    kind: str  # "conv2d" or "dense"
    activation: str
    units: int
    dead: tuple[int, ...]
    saturated: tuple[int, ...]
    weight_counts: np.ndarray
    weight_edges: np.ndarray
    activation_counts: np.ndarray
    activation_edges: np.ndarray

    @property
    def unit_word(self) -> str:
        return "filters" if self.kind == "conv2d" else "units"


@dataclass(frozen=True)
class HealthReport:
    layers: tuple[LayerHealth, ...]
    images: int
    diagnoses: tuple[str, ...]


def _activation_name(layer) -> str:
    return getattr(getattr(layer, "activation", None), "__name__", "linear")


def _layers(model: keras.Model) -> list[tuple[int, Any]]:
    import keras

    found = []
    last = model.layers[-1]
    for number, layer in enumerate(model.layers):
        # The output layer's softmax is meant to be near 0 or 1; it is not a hidden unit.
        if layer is last:
            continue
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
            found.append((number, layer))
    return found


def check(model: keras.Model, images: np.ndarray, *, batch_size: int = 250, seed: int = 0) -> HealthReport:
    """Look at every hidden convolution and dense layer on `images` (N, H, W, 1) and diagnose them."""
    import keras

    layers = _layers(model)
    images = np.asarray(images, dtype=np.float32)
    if not layers or len(images) == 0:
        return HealthReport((), len(images), ("This model has no hidden convolution or dense layer to check.",))
    probe = keras.Model(model.inputs, [layer.output for _, layer in layers])
    rng = np.random.default_rng(seed)
    maxima = [None] * len(layers)
    saturated_counts = [None] * len(layers)
    samples: list[list[np.ndarray]] = [[] for _ in layers]
    per_batch = max(1, HISTOGRAM_SAMPLE * batch_size // len(images))
    for start in range(0, len(images), batch_size):
        outputs = probe([images[start:start + batch_size]], training=False)
        if not isinstance(outputs, list | tuple):
            outputs = [outputs]
        for position, ((_, layer), output) in enumerate(zip(layers, outputs, strict=True)):
            values = np.asarray(output, dtype=np.float32)
            units = values.shape[-1]
            flat = values.reshape(len(values), -1, units)
            batch_max = flat.max(axis=(0, 1))
            maxima[position] = batch_max if maxima[position] is None else np.maximum(maxima[position], batch_max)
            near = _near_ends(flat, _activation_name(layer))
            if near is not None:
                # An image saturates a unit when the unit sits at an end of its range at most positions.
                stuck = (near.mean(axis=1) > 0.5).sum(axis=0)
                saturated_counts[position] = stuck if saturated_counts[position] is None else (
                    saturated_counts[position] + stuck)
            raveled = values.ravel()
            take = min(per_batch, raveled.size)
            samples[position].append(rng.choice(raveled, size=take, replace=False) if take < raveled.size else raveled)
    reports = []
    for position, (number, layer) in enumerate(layers):
        activation = _activation_name(layer)
        kind = "conv2d" if isinstance(layer, keras.layers.Conv2D) else "dense"
        dead = tuple(int(i) for i in np.flatnonzero(maxima[position] <= 0)) if activation == "relu" else ()
        saturated: tuple[int, ...] = ()
        if saturated_counts[position] is not None:
            saturated = tuple(int(i) for i in np.flatnonzero(saturated_counts[position] >= SATURATED_SHARE * len(images)))
        kernel = np.asarray(layer.weights[0].numpy(), dtype=np.float32).ravel()
        weight_counts, weight_edges = np.histogram(kernel, bins=HISTOGRAM_BINS)
        activation_counts, activation_edges = np.histogram(np.concatenate(samples[position]), bins=HISTOGRAM_BINS)
        reports.append(LayerHealth(
            number, layer.name, kind, activation, int(maxima[position].size), dead, saturated,
            weight_counts, weight_edges, activation_counts, activation_edges,
        ))
    return HealthReport(tuple(reports), len(images), diagnose(reports, len(images)))


def _near_ends(values: np.ndarray, activation: str) -> np.ndarray | None:
    if activation == "sigmoid":
        return (values < SATURATION_MARGIN) | (values > 1 - SATURATION_MARGIN)
    if activation == "tanh":
        return np.abs(values) > 1 - SATURATION_MARGIN
    return None


def diagnose(layers: list[LayerHealth], images: int, *, probe: bool = False) -> tuple[str, ...]:
    """One sentence per problem found, or one sentence saying the network looks healthy.

    `probe`: the layers were seen on the filmstrip's one probe image, not on `images` test images,
    so the sentences say so and point to the full check.
    """
    seen = "the probe image" if probe else f"{images:,} test images"
    sentences = []
    for layer in layers:
        if layer.dead:
            share = len(layer.dead) / layer.units
            cause = (
                "if they stay silent on the test set too (Check the network's health), the learning rate may be "
                "too high" if probe
                else "the learning rate may be too high" if share >= 0.25
                else "a few dead ones are common, but many mean the learning rate may be too high"
            )
            sentences.append(
                f"{len(layer.dead)} of {layer.units} {layer.unit_word} in layer {layer.number} never fire on "
                f"{seen}: {cause}."
            )
        if layer.saturated:
            sentences.append(
                f"{len(layer.saturated)} of {layer.units} {layer.unit_word} in layer {layer.number} are stuck at the "
                f"ends of their {layer.activation} on {'the probe image' if probe else 'almost every image'}, so they "
                "hardly learn: try relu or a lower learning rate."
            )
        if len(layer.weight_edges):
            largest = max(abs(float(layer.weight_edges[0])), abs(float(layer.weight_edges[-1])))
            if largest > LARGE_WEIGHT:
                sentences.append(
                    f"Some weights in layer {layer.number} have grown to {largest:.1f}: the learning rate may be "
                    "too high."
                )
    if not sentences:
        where = "the probe image" if probe else f"some of the {images:,} test images"
        sentences.append(
            f"Every filter and unit fires on {where} and none is saturated: the network looks healthy."
            if not probe else
            "Most filters fire on the probe image, none is saturated and no weight has grown large: the network "
            "looks healthy at this point."
        )
    return tuple(sentences)


# The filmstrip's health: histograms of every frame on shared bins, and diagnoses at one frame.

FILMSTRIP_BINS = 24
# Silent on the one probe image counts as a warning only for at least this share of a layer's filters.
PROBE_DEAD_SHARE = 0.25


@dataclass(frozen=True)
class LayerOverTime:
    """One hidden convolution or dense layer across a filmstrip's frames.

    `weight_shares` and `activation_shares` are (frames, bins): each row is one frame's histogram as
    shares of its values, on bins shared by every frame (`*_edges`), so rows can be compared.
    Activations are the probe image's; a layer without them (an old filmstrip's dense layer) has
    an empty activation array.
    """

    number: int
    name: str
    kind: str
    activation: str
    units: int
    steps: tuple[int, ...]
    weight_edges: np.ndarray
    weight_shares: np.ndarray
    activation_edges: np.ndarray
    activation_shares: np.ndarray


def _shared_edges(low: float, high: float, bins: int) -> np.ndarray:
    if not np.isfinite(low) or not np.isfinite(high):
        low, high = 0.0, 1.0
    if high - low < 1e-6:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, bins + 1, dtype=np.float64)


def _rebin(counts: np.ndarray, edges: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """A frame's own histogram moved onto `shared` bins by its bin centres, as shares."""
    centres = (np.asarray(edges[:-1], np.float64) + np.asarray(edges[1:], np.float64)) / 2
    moved, _ = np.histogram(centres, bins=shared, weights=np.asarray(counts, np.float64))
    total = moved.sum()
    return moved / total if total else moved


def _shares(values: np.ndarray, shared: np.ndarray) -> np.ndarray:
    counts, _ = np.histogram(np.clip(values, shared[0], shared[-1]), bins=shared)
    return counts / max(1, counts.sum())


def over_filmstrip(frames, bins: int = FILMSTRIP_BINS) -> tuple[LayerOverTime, ...]:
    """Each hidden layer's weight and probe-activation histograms at every frame, on shared bins."""
    if not frames:
        return ()
    layers = []
    last = frames[-1]
    for position, picture in enumerate((*last.maps, *last.units)):
        kind = "conv2d" if position < len(last.maps) else "dense"
        pictures = [_picture(frame, picture.name) for frame in frames]
        histograms = [_weight_histogram(frame, picture.name) for frame in frames]
        if any(h is None for h in histograms):
            continue
        weight_edges = _shared_edges(min(float(h[1][0]) for h in histograms),
                                     max(float(h[1][-1]) for h in histograms), bins)
        weight_shares = np.stack([_rebin(counts, edges, weight_edges) for counts, edges in histograms])
        if any(p is None for p in pictures):
            activation_edges, activation_shares = np.zeros(0), np.zeros((len(frames), 0))
        else:
            values = [np.asarray(p.array, np.float32).ravel() for p in pictures]
            activation_edges = _shared_edges(min(float(v.min()) for v in values),
                                             max(float(v.max()) for v in values), bins)
            activation_shares = np.stack([_shares(v, activation_edges) for v in values])
        layers.append(LayerOverTime(
            picture.number, picture.name, kind, picture.activation, int(picture.array.shape[-1]),
            tuple(frame.step for frame in frames), weight_edges, weight_shares, activation_edges, activation_shares,
        ))
    return tuple(layers)


def _picture(frame, name: str):
    return next((p for p in (*frame.maps, *frame.units) if p.name == name), None)


def _weight_histogram(frame, name: str):
    return next(((counts, edges) for layer, counts, edges in frame.weight_histograms if layer == name), None)


def at_frame(frame) -> tuple[str, ...]:
    """The one-sentence diagnoses at one filmstrip frame, from the probe image's activations there.

    Filters silent on the probe (a ReLU convolution's channel at most 0 everywhere; a quarter of a
    layer's or more, since one image need not contain what every filter looks for), units stuck
    at the ends of a sigmoid or tanh at most positions, and weights grown large. A hidden dense
    unit at zero on one image says little, so dense layers are checked for saturation only.
    """
    layers = []
    for position, picture in enumerate((*frame.maps, *frame.units)):
        conv = position < len(frame.maps)
        if picture.number < 0:
            continue  # stored before activations were recorded: nothing to say what the values mean
        values = np.asarray(picture.array, np.float32)
        units = values.shape[-1]
        flat = values.reshape(-1, units)
        dead: tuple[int, ...] = ()
        if conv and picture.activation == "relu":
            dead = tuple(int(i) for i in np.flatnonzero(flat.max(axis=0) <= 0))
            if len(dead) < PROBE_DEAD_SHARE * units:
                # A few filters have nothing to say about one image (no such edge in it): not worth a warning.
                dead = ()
        near = _near_ends(flat, picture.activation)
        saturated = () if near is None else tuple(int(i) for i in np.flatnonzero(near.mean(axis=0) > 0.5))
        histogram = _weight_histogram(frame, picture.name)
        counts, edges = histogram if histogram is not None else (np.zeros(0), np.zeros(0))
        layers.append(LayerHealth(
            picture.number, picture.name, "conv2d" if conv else "dense", picture.activation, units, dead, saturated,
            counts, edges, np.zeros(0), np.zeros(0),
        ))
    if not layers:
        return ()
    return diagnose(layers, 1, probe=True)


# Validation loss must stay above its best by this share to count as diverging, not noise.
DIVERGENCE_MARGIN = 0.02


def overfitting_epoch(history: list[dict[str, Any]], patience: int = 2) -> int | None:
    """The 1-based epoch after which validation loss rose while training loss still fell, or None.

    Counts as overfitting when, after the epoch with the lowest validation loss, at least
    `patience` epochs follow, validation loss ends more than DIVERGENCE_MARGIN above its best
    and training loss has gone on falling.
    """
    rows = [row for row in history if row.get("complete", True) and row.get("val_loss") is not None]
    if len(rows) < patience + 1:
        return None
    losses = [float(row["val_loss"]) for row in rows]
    best = int(np.argmin(losses))
    after = rows[best + 1:]
    if len(after) < patience:
        return None
    if losses[-1] <= losses[best] * (1 + DIVERGENCE_MARGIN):
        return None
    if float(after[-1]["loss"]) >= float(rows[best]["loss"]):
        return None
    return int(rows[best]["epoch"]) + 1


def overfitting_sentence(epoch: int) -> str:
    return (
        f"Overfitting from epoch {epoch} on: validation loss rises while training loss keeps falling, so the model "
        "starts memorising its training images. Fewer epochs, dropout or more data would help."
    )
