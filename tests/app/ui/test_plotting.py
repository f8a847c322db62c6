import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from cnn_core.engine.activations import LayerFilters, LayerMaps
from ui import plotting
from ui.images import tile_channels

RNG = np.random.default_rng(0)
DIGITS = [str(d) for d in range(10)]


def visible_axes(figure):
    return [axes for axes in figure.axes if axes.get_visible()]


def renders(figure: Figure) -> bool:
    """The figure draws to PNG without errors and without touching pyplot's global figure list."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.tell() > 1000 and plt.get_fignums() == []


def layer_maps(channels=6, size=12, index=1):
    return LayerMaps(index, f"conv2d_{index}", "conv2d", "Conv2D 6 3×3, relu", RNG.random((size, size, channels)))


def test_tile_channels_lays_channels_out_row_by_row():
    stack = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    mosaic = tile_channels(stack, columns=3, gap=1, fill=np.nan)
    assert mosaic.shape == (2 * 2 + 1, 3 * 3 + 2)
    np.testing.assert_array_equal(mosaic[0:2, 4:7], stack[:, :, 1])
    np.testing.assert_array_equal(mosaic[3:5, 4:7], stack[:, :, 4])
    assert np.isnan(mosaic[2]).all() and np.isnan(mosaic[:, 3]).all()
    # The sixth tile does not exist, so its place stays empty.
    assert np.isnan(mosaic[3:5, 8:11]).all()


def image_axes(figure):
    return [axes for axes in figure.axes if axes.images and axes.get_label() != "<colorbar>"]


@pytest.mark.parametrize("mode", ["first", "mean"])
def test_filter_grid(mode):
    kernel = RNG.normal(size=(3, 3, 4, 8))
    filters = LayerFilters(1, "conv2d_1", "Conv2D 8 3×3, relu", kernel, np.zeros(8))
    figure = plotting.filter_grid(filters, mode=mode, columns=4)
    (axes,) = image_axes(figure)
    mosaic = axes.images[0].get_array().filled(np.nan)
    expected = kernel[:, :, 0, 2] if mode == "first" else kernel[:, :, :, 2].mean(axis=2)
    np.testing.assert_allclose(mosaic[0:3, 8:11], expected, rtol=1e-6)
    low, high = axes.images[0].get_clim()
    assert low == -high
    assert "8 kernels 3×3" in axes.get_title()
    assert renders(figure)
    with pytest.raises(ValueError, match="mode"):
        plotting.filter_grid(kernel, mode="max")


def test_journey_rows_are_images_columns_are_layers():
    images = [RNG.random((28, 28)) for _ in range(3)]
    maps = [[layer_maps(channels=4, size=26, index=1), layer_maps(channels=8, size=13, index=2)] for _ in images]
    figure = plotting.journey(images, maps, channel=5)
    assert len(figure.axes) == 3 * 3
    titles = [axes.get_title() for axes in figure.axes[:3]]
    assert titles == ["input", "conv2d_1\nch 1", "conv2d_2\nch 5"]
    assert renders(figure)


def test_numeric_grid_writes_every_number_and_the_window():
    matrix = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]])
    figure = plotting.numeric_grid(matrix, title="input", highlight=(0, 2, 2, 2))
    (axes,) = figure.axes
    assert [text.get_text() for text in axes.texts] == [str(v) for v in matrix.ravel()]
    (window,) = axes.patches
    assert window.get_xy() == (1.5, -0.5) and window.get_width() == 2
    assert axes.get_title() == "input"
    assert renders(figure)
    decimals = plotting.numeric_grid(np.array([[0.125, -1.0]]), symmetric=True)
    assert [text.get_text() for text in decimals.axes[0].texts] == ["0.12", "-1.00"]
    with pytest.raises(ValueError, match="does not fit"):
        plotting.numeric_grid(matrix, highlight=(3, 3, 2, 2))
