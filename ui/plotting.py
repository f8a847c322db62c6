"""Figures for every page, as `matplotlib.figure.Figure` objects.

Figures are built with `Figure()` directly, never through pyplot, so no global state is shared
between sessions and nothing needs closing: a figure is freed when the page drops it.
All figures share one small style: light axes, one accent colour, images in grey.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

if TYPE_CHECKING:
    from cnn_core.engine.activations import LayerFilters, LayerMaps
    from cnn_core.engine.preprocess import PreprocessSteps

ACCENT = "#e4572e"
BASE = "#4c72b0"
MUTED = "#9aa5b1"
CORRECT = "#2e8540"
IMAGE_CMAP = "gray"
MAP_CMAP = "viridis"
KERNEL_CMAP = "RdBu_r"
FONT_SIZE = 9


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained", dpi=100)
    return figure


def _tidy(axes) -> None:
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(labelsize=FONT_SIZE - 1)


def _bare(axes) -> None:
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_visible(False)


def _squeeze_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3):
        raise ValueError(f"Expected an image shaped (H, W), (H, W, 1) or (H, W, 3), got {image.shape}.")
    return image


def _class_names(count: int, class_names: Sequence[str] | None) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(count)]
    if len(class_names) != count:
        raise ValueError(f"Got {len(class_names)} class names for {count} classes; pass one name per class.")
    return [str(name) for name in class_names]


def _grid_shape(count: int, columns: int | None) -> tuple[int, int]:
    columns = columns or min(count, 8)
    columns = max(1, min(columns, count))
    return math.ceil(count / columns), columns


def _hide_unused(axes_list, used: int) -> None:
    for axes in axes_list[used:]:
        axes.set_visible(False)


def probability_bars(
    probabilities: np.ndarray, class_names: Sequence[str] | None = None, title: str | None = None
) -> Figure:
    """Horizontal bars of class probabilities, the most likely class in the accent colour."""
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    if probabilities.size == 0:
        raise ValueError("There are no probabilities to plot; pass one value per class.")
    names = _class_names(probabilities.size, class_names)
    top = int(np.argmax(probabilities))
    figure = _figure(4.2, 0.25 * len(names) + 0.8)
    axes = figure.add_subplot()
    positions = np.arange(len(names))
    colours = [ACCENT if i == top else BASE for i in positions]
    axes.barh(positions, probabilities, color=colours, height=0.7)
    axes.set_yticks(positions, names, fontsize=FONT_SIZE)
    axes.invert_yaxis()
    axes.set_xlim(0, 1.0)
    axes.set_xlabel("probability", fontsize=FONT_SIZE)
    axes.text(
        min(probabilities[top] + 0.02, 0.8), top, f"{probabilities[top]:.0%}", va="center", fontsize=FONT_SIZE,
        color=ACCENT, fontweight="bold",
    )  # fmt: skip
    axes.set_title(title or f"Prediction: {names[top]}", fontsize=FONT_SIZE + 1)
    _tidy(axes)
    return figure


def image_grid(
    images: Sequence[np.ndarray] | np.ndarray,
    titles: Sequence[str] | None = None,
    columns: int | None = None,
    title: str | None = None,
    title_colors: Sequence[str] | None = None,
    tile_size: float = 1.2,
) -> Figure:
    """Images in a grid, each with an optional caption (grey images shown white-on-black, as MNIST)."""
    images = [_squeeze_image(image) for image in images]
    if not images:
        raise ValueError("There are no images to show.")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"Got {len(titles)} titles for {len(images)} images; pass one title per image.")
    rows, columns = _grid_shape(len(images), columns)
    figure = _figure(tile_size * columns, tile_size * rows + (0.35 if title else 0) + (0.2 * rows if titles else 0))
    axes_list = figure.subplots(rows, columns, squeeze=False).ravel()
    for index, (axes, image) in enumerate(zip(axes_list, images, strict=False)):
        axes.imshow(image, cmap=IMAGE_CMAP, vmin=0.0, vmax=1.0 if image.max() <= 1.0 else None)
        _bare(axes)
        if titles is not None:
            colour = title_colors[index] if title_colors is not None else "black"
            axes.set_title(titles[index], fontsize=FONT_SIZE - 1, color=colour)
    _hide_unused(axes_list, len(images))
    if title:
        figure.suptitle(title, fontsize=FONT_SIZE + 1)
    return figure


def mistake_grid(
    images: Sequence[np.ndarray] | np.ndarray,
    true_labels: Sequence[int],
    predicted: Sequence[int],
    confidences: Sequence[float],
    class_names: Sequence[str],
    columns: int | None = None,
    title: str | None = None,
) -> Figure:
    """Misclassified images captioned 'true → predicted (confidence)'; wrong ones in the accent colour."""
    if not len(images) == len(true_labels) == len(predicted) == len(confidences):
        raise ValueError("images, true_labels, predicted and confidences must have the same length.")
    titles = [
        f"{class_names[t]} → {class_names[p]} ({c:.0%})"
        for t, p, c in zip(true_labels, predicted, confidences, strict=True)
    ]
    colours = [CORRECT if t == p else ACCENT for t, p in zip(true_labels, predicted, strict=True)]
    return image_grid(images, titles, columns=columns, title=title, title_colors=colours, tile_size=1.4)


def _map_array(maps: LayerMaps | np.ndarray) -> tuple[np.ndarray, str]:
    if hasattr(maps, "activations"):
        return np.asarray(maps.activations), f"{maps.name}: {maps.description}"
    array = np.asarray(maps)
    return array, "feature maps"


def tile_mosaic(stack: np.ndarray, columns: int, gap: int = 1) -> np.ndarray:
    """Lay the channels of a (H, W, C) stack out as one 2-D image, row by row, with NaN gaps.

    One image in one axes draws far faster than a grid of small axes (a 64-channel layer
    takes milliseconds instead of seconds), and every tile shares the colour scale by design.
    """
    height, width, count = stack.shape
    rows = math.ceil(count / columns)
    mosaic = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), np.nan, dtype=np.float32)
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        mosaic[top : top + height, left : left + width] = stack[:, :, index]
    return mosaic


def _mosaic_figure(
    stack: np.ndarray, columns: int | None, cmap: str, limits: tuple[float, float], title: str, label_tiles: bool
) -> Figure:
    height, width, count = stack.shape
    rows, columns = _grid_shape(count, columns)
    gap = max(1, round(max(height, width) / 8))
    mosaic = tile_mosaic(stack, columns, gap)
    # A fixed layout: a layout engine would measure every label on each draw, which is slow.
    image_width = min(0.9, 9.0 / columns) * columns
    image_height = image_width * mosaic.shape[0] / mosaic.shape[1]
    margin, title_room, bar_room = 0.08, 0.4, 0.85
    figure_width, figure_height = image_width + 2 * margin + bar_room, image_height + 2 * margin + title_room
    figure = Figure(figsize=(figure_width, figure_height), dpi=100)
    axes = figure.add_axes(
        (margin / figure_width, margin / figure_height, image_width / figure_width, image_height / figure_height)
    )
    bar_axes = figure.add_axes(
        ((margin + image_width + 0.15) / figure_width, (margin + 0.1 * image_height) / figure_height,
         0.12 / figure_width, 0.8 * image_height / figure_height)
    )  # fmt: skip
    colours = matplotlib.colormaps[cmap].with_extremes(bad="white")
    image = axes.imshow(mosaic, cmap=colours, vmin=limits[0], vmax=limits[1], interpolation="nearest")
    _bare(axes)
    if label_tiles:
        for index in range(count):
            row, column = divmod(index, columns)
            axes.text(
                column * (width + gap) - 0.5 + width * 0.04, row * (height + gap) - 0.5 + height * 0.04, str(index),
                ha="left", va="top", fontsize=FONT_SIZE - 3, color="white", alpha=0.85,
            )  # fmt: skip
    axes.set_title(title, fontsize=FONT_SIZE + 1)
    figure.colorbar(image, cax=bar_axes)
    bar_axes.tick_params(labelsize=FONT_SIZE - 2)
    return figure


def feature_map_grid(
    maps: LayerMaps | np.ndarray,
    max_channels: int | None = 64,
    columns: int | None = None,
    title: str | None = None,
    label_channels: bool = True,
) -> Figure:
    """One layer's channels as tiles on one shared colour scale, so tiles compare directly."""
    activations, label = _map_array(maps)
    if activations.ndim != 3:
        raise ValueError(f"Feature maps must be (height, width, channels), got shape {activations.shape}.")
    channels = activations.shape[2] if max_channels is None else min(activations.shape[2], max_channels)
    shown_maps = activations[:, :, :channels]
    low, high = float(shown_maps.min()), float(shown_maps.max())
    if high <= low:
        high = low + 1.0
    height, width, total = activations.shape
    shown = "" if channels == total else f", first {channels} shown"
    return _mosaic_figure(
        shown_maps, columns, MAP_CMAP, (low, high), title or f"{label} — {height}×{width}×{total}{shown}",
        label_channels,
    )  # fmt: skip


def filter_grid(
    filters: LayerFilters | np.ndarray,
    mode: str = "first",
    max_filters: int | None = 64,
    columns: int | None = None,
    title: str | None = None,
    label_filters: bool = True,
) -> Figure:
    """The kernels of a convolution layer: for each filter its weights on the first input channel
    (mode 'first') or averaged over input channels (mode 'mean'); red positive, blue negative."""
    if hasattr(filters, "kernel"):
        kernel, label = np.asarray(filters.kernel), f"{filters.name}: {filters.description}"
    else:
        kernel, label = np.asarray(filters), "filters"
    if kernel.ndim != 4:
        raise ValueError(f"A kernel must be (height, width, in_channels, out_channels), got shape {kernel.shape}.")
    if mode not in ("first", "mean"):
        raise ValueError(f"mode must be 'first' or 'mean', got {mode!r}.")
    planes = kernel[:, :, 0, :] if mode == "first" else kernel.mean(axis=2)
    count = planes.shape[2] if max_filters is None else min(planes.shape[2], max_filters)
    planes = planes[:, :, :count]
    limit = float(np.abs(planes).max()) or 1.0
    which = "input channel 0" if mode == "first" else "mean over input channels"
    k = kernel.shape[0]
    return _mosaic_figure(
        planes, columns, KERNEL_CMAP, (-limit, limit), title or f"{label} — {count} kernels {k}×{k}, {which}",
        label_filters and k >= 5,
    )  # fmt: skip


def journey(
    images: Sequence[np.ndarray],
    layer_maps: Sequence[Sequence[LayerMaps]],
    channel: int = 0,
    title: str | None = None,
) -> Figure:
    """Follow one channel through the network: rows are images, columns the input then each layer.

    Layers with fewer channels show channel `channel % channels`; each column is titled with the
    channel it shows. Every column has its own colour scale, shared by all rows, so images compare.
    """
    if not images or len(images) != len(layer_maps):
        raise ValueError("Pass one list of layer maps per image, and at least one image.")
    depth = len(layer_maps[0])
    if any(len(maps) != depth for maps in layer_maps):
        raise ValueError("Every image needs the maps of the same layers.")
    rows, columns = len(images), depth + 1
    figure = _figure(1.15 * columns, 1.15 * rows + 0.5)
    axes_grid = figure.subplots(rows, columns, squeeze=False)
    scales = []
    for layer in range(depth):
        values = [maps[layer].activations[:, :, channel % maps[layer].activations.shape[2]] for maps in layer_maps]
        scales.append((min(float(v.min()) for v in values), max(float(v.max()) for v in values)))
    for row, (image, maps) in enumerate(zip(images, layer_maps, strict=True)):
        axes_grid[row, 0].imshow(_squeeze_image(image), cmap=IMAGE_CMAP, vmin=0, vmax=1)
        _bare(axes_grid[row, 0])
        for layer, layer_map in enumerate(maps):
            shown = channel % layer_map.activations.shape[2]
            low, high = scales[layer]
            axes = axes_grid[row, layer + 1]
            axes.imshow(layer_map.activations[:, :, shown], cmap=MAP_CMAP, vmin=low, vmax=max(high, low + 1e-6))
            _bare(axes)
            if row == 0:
                axes.set_title(f"{layer_map.name}\nch {shown}", fontsize=FONT_SIZE - 2)
    axes_grid[0, 0].set_title("input", fontsize=FONT_SIZE - 2)
    figure.suptitle(title or f"Channel {channel} through the network", fontsize=FONT_SIZE + 1)
    return figure


def training_curves(
    epochs: Sequence[Mapping[str, Any]],
    batch_positions: Sequence[float] | None = None,
    batch_loss: Sequence[float] | None = None,
    batch_accuracy: Sequence[float] | None = None,
    title: str | None = None,
) -> Figure:
    """Loss and accuracy against epochs: faint per-batch lines, epoch points for training and validation.

    `epochs` holds one mapping per finished epoch with 'epoch' (0-based), 'loss', 'accuracy' and
    optionally 'val_loss'/'val_accuracy' (the training module's EpochEnded as a dict). Batch
    positions are in epochs (1.5 = halfway through the second), so both line up.
    """
    figure = _figure(7.0, 2.8)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for axes, key, batch_values in ((loss_axes, "loss", batch_loss), (accuracy_axes, "accuracy", batch_accuracy)):
        if batch_values is not None and len(batch_values):
            positions = (
                batch_positions
                if batch_positions is not None and len(batch_positions)
                else np.linspace(0, len(epochs) or 1, len(batch_values))
            )
            axes.plot(positions, batch_values, color=BASE, alpha=0.35, linewidth=1, label="train (batches)")
        ends = [row["epoch"] + 1 for row in epochs]
        train = [row.get(key) for row in epochs]
        if epochs:
            axes.plot(ends, train, "o-", color=BASE, markersize=4, label="train")
        validation = [(end, row.get(f"val_{key}")) for end, row in zip(ends, epochs, strict=True)]
        validation = [(end, value) for end, value in validation if value is not None]
        if validation:
            axes.plot(*zip(*validation, strict=True), "s--", color=ACCENT, markersize=4, label="validation")
        axes.set_xlabel("epoch", fontsize=FONT_SIZE)
        axes.set_title(key, fontsize=FONT_SIZE + 1)
        if axes.lines:
            axes.legend(fontsize=FONT_SIZE - 1, frameon=False)
        _tidy(axes)
    if title:
        figure.suptitle(title, fontsize=FONT_SIZE + 1)
    return figure


def confusion_matrix(
    matrix: np.ndarray, class_names: Sequence[str] | None = None, title: str | None = None
) -> Figure:
    """Counts of true class (rows) against predicted class (columns), every cell annotated."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"A confusion matrix must be square (classes × classes), got shape {matrix.shape}.")
    names = _class_names(matrix.shape[0], class_names)
    size = 0.45 * len(names) + 1.6
    figure = _figure(size + 0.6, size)
    axes = figure.add_subplot()
    # A log-like scale: the diagonal dwarfs the mistakes, which are what a learner looks for.
    shown = np.log1p(matrix.astype(np.float64))
    axes.imshow(shown, cmap="Blues")
    threshold = shown.max() * 0.6
    for (row, column), value in np.ndenumerate(matrix):
        if value:
            colour = "white" if shown[row, column] > threshold else "black"
            axes.text(column, row, f"{value:g}", ha="center", va="center", fontsize=FONT_SIZE - 2, color=colour)
    positions = np.arange(len(names))
    axes.set_xticks(positions, names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right"
                    if max(map(len, names)) > 2 else "center", fontsize=FONT_SIZE - 1)
    axes.set_yticks(positions, names, fontsize=FONT_SIZE - 1)
    axes.set_xlabel("predicted", fontsize=FONT_SIZE)
    axes.set_ylabel("true", fontsize=FONT_SIZE)
    accuracy = np.trace(matrix) / matrix.sum() if matrix.sum() else 0.0
    axes.set_title(title or f"Confusion matrix — accuracy {accuracy:.2%}", fontsize=FONT_SIZE + 1)
    return figure


def class_balance(
    labels_or_counts: np.ndarray, class_names: Sequence[str], counts: bool = False, title: str | None = None
) -> Figure:
    """How many examples each class has (pass labels, or counts with counts=True)."""
    values = np.asarray(labels_or_counts)
    tally = values if counts else np.bincount(values.astype(np.int64).ravel(), minlength=len(class_names))
    if len(tally) != len(class_names):
        raise ValueError(f"Got {len(tally)} counts for {len(class_names)} classes.")
    figure = _figure(5.0, 2.6)
    axes = figure.add_subplot()
    positions = np.arange(len(class_names))
    axes.bar(positions, tally, color=BASE)
    axes.axhline(float(np.mean(tally)), color=ACCENT, linewidth=1, linestyle="--", label="mean")
    long_names = max(map(len, class_names)) > 2
    axes.set_xticks(positions, class_names, rotation=45 if long_names else 0, ha="right" if long_names else "center",
                    fontsize=FONT_SIZE - 1)
    axes.set_ylabel("images", fontsize=FONT_SIZE)
    axes.legend(fontsize=FONT_SIZE - 1, frameon=False)
    axes.set_title(title or f"Class balance — {int(np.sum(tally)):,} images", fontsize=FONT_SIZE + 1)
    _tidy(axes)
    return figure


def mean_images(
    images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], title: str | None = None
) -> Figure:
    """The average image of each class: what 'typical' looks like to a pixel-counting eye."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    labels = np.asarray(labels)
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError("Pass (N, H, W) images and N labels.")
    means = []
    for index in range(len(class_names)):
        members = images[labels == index]
        means.append(members.mean(axis=0) if len(members) else np.zeros(images.shape[1:], dtype=np.float32))
    return image_grid(means, list(class_names), columns=min(len(class_names), 10), title=title or "Mean image per class")


def preprocess_steps(steps: PreprocessSteps, title: str | None = None) -> Figure:
    """The preparation of a drawing, left to right: ink with its box, crop, 20-pixel scale, final 28×28."""
    figure = _figure(8.0, 2.3)
    axes_list = figure.subplots(1, 4)
    top, left, bottom, right = steps.bbox
    panels = [
        (steps.ink, f"1. drawing {steps.ink.shape[0]}×{steps.ink.shape[1]}"),
        (steps.cropped, f"2. cropped {steps.cropped.shape[0]}×{steps.cropped.shape[1]}"),
        (steps.scaled, f"3. scaled {steps.scaled.shape[0]}×{steps.scaled.shape[1]}"),
        (steps.final, "4. centred 28×28"),
    ]
    for axes, (image, label) in zip(axes_list, panels, strict=True):
        axes.imshow(image, cmap=IMAGE_CMAP, vmin=0, vmax=1)
        axes.set_title(label, fontsize=FONT_SIZE)
        _bare(axes)
    axes_list[0].add_patch(
        Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, edgecolor=ACCENT, linewidth=1.5)
    )
    row, column = steps.center_of_mass
    axes_list[3].plot([column], [row], "+", color=ACCENT, markersize=10, markeredgewidth=1.5)
    for axes in axes_list[1:]:
        for spine in axes.spines.values():
            spine.set_visible(True)
            spine.set_color(MUTED)
    if title:
        figure.suptitle(title, fontsize=FONT_SIZE + 1)
    return figure


def numeric_grid(
    matrix: np.ndarray,
    title: str | None = None,
    highlight: tuple[int, int, int, int] | None = None,
    decimals: int | None = None,
    cmap: str = "Greys",
    symmetric: bool = False,
) -> Figure:
    """A small matrix drawn as coloured cells with each number written in.

    `highlight` is (row, column, height, width) of a window to outline, e.g. where the kernel
    sits; `symmetric` centres a red–blue scale on zero for kernels and signed outputs.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"numeric_grid shows a 2-D matrix, got shape {matrix.shape}.")
    if max(matrix.shape) > 32:
        raise ValueError(f"A {matrix.shape[0]}×{matrix.shape[1]} matrix is too large to print; keep it to 32×32.")
    rows, columns = matrix.shape
    if decimals is None:
        decimals = 0 if np.allclose(matrix, np.round(matrix)) else 2
    cell = 0.42 if max(rows, columns) <= 10 else 0.3
    figure = _figure(cell * columns + 0.4, cell * rows + (0.5 if title else 0.2))
    axes = figure.add_subplot()
    if symmetric:
        limit = float(np.abs(matrix).max()) or 1.0
        axes.imshow(matrix, cmap=KERNEL_CMAP, vmin=-limit, vmax=limit)
    else:
        axes.imshow(matrix, cmap=cmap)
    low, high = float(matrix.min()), float(matrix.max())
    middle = (low + high) / 2
    font = FONT_SIZE - (0 if max(rows, columns) <= 10 else 3)
    for (row, column), value in np.ndenumerate(matrix):
        if symmetric:
            dark = abs(value) > 0.6 * (float(np.abs(matrix).max()) or 1.0)
        else:
            dark = high > low and value > middle
        # Round first so a tiny negative value does not print as "-0.00".
        text = f"{round(value, decimals) + 0.0:.{decimals}f}"
        axes.text(column, row, text, ha="center", va="center", fontsize=font, color="white" if dark else "black")
    axes.set_xticks(np.arange(-0.5, columns, 1), minor=True)
    axes.set_yticks(np.arange(-0.5, rows, 1), minor=True)
    axes.grid(which="minor", color="white", linewidth=1)
    axes.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    if highlight is not None:
        row, column, height, width = highlight
        if row < 0 or column < 0 or row + height > rows or column + width > columns:
            raise ValueError(f"The highlighted window {highlight} does not fit the {rows}×{columns} matrix.")
        axes.add_patch(
            Rectangle((column - 0.5, row - 0.5), width, height, fill=False, edgecolor=ACCENT, linewidth=2.5)
        )
    if title:
        axes.set_title(title, fontsize=FONT_SIZE + 1)
    return figure
