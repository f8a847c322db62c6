"""Figures that are pictures rather than charts (kernels, a channel through the layers, a grid of
numbers), as `matplotlib.figure.Figure` objects.

Figures are built with `Figure()` directly, never through pyplot, so no global state is shared
between sessions and nothing needs closing: a figure is freed when the page drops it.
Charts (bars, curves) are drawn in the browser with Vega-Lite instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ui.images import tile_channels

if TYPE_CHECKING:
    from cnn_core.engine.activations import LayerFilters, LayerMaps

ACCENT = "#e4572e"
IMAGE_CMAP = "gray"
MAP_CMAP = "viridis"
KERNEL_CMAP = "RdBu_r"
FONT_SIZE = 9


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained", dpi=100)
    return figure


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


def _grid_shape(count: int, columns: int | None) -> tuple[int, int]:
    columns = columns or min(count, 8)
    columns = max(1, min(columns, count))
    return math.ceil(count / columns), columns


def _mosaic_figure(
    stack: np.ndarray, columns: int | None, cmap: str, limits: tuple[float, float], title: str, label_tiles: bool
) -> Figure:
    height, width, count = stack.shape
    rows, columns = _grid_shape(count, columns)
    gap = max(1, round(max(height, width) / 8))
    # NaN gaps show as the colour map's "bad" colour (white); one image draws far faster than a grid of axes.
    mosaic = tile_channels(np.asarray(stack, dtype=np.float32), columns, gap, np.nan)
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
