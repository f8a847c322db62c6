import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from cnn_core.engine.activations import LayerFilters, LayerMaps
from cnn_core.engine.preprocess import canvas_steps
from ui import plotting

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


def test_probability_bars_highlights_the_top_class():
    probabilities = np.full(10, 0.02)
    probabilities[7] = 0.82
    figure = plotting.probability_bars(probabilities, DIGITS)
    (axes,) = figure.axes
    assert axes.get_title() == "Prediction: 7"
    assert [label.get_text() for label in axes.get_yticklabels()] == DIGITS
    colours = [bar.get_facecolor() for bar in axes.patches]
    assert colours.count(colours[7]) == 1 and colours[0] == colours[1]
    assert any(text.get_text() == "82%" for text in axes.texts)
    assert renders(figure)


def test_probability_bars_rejects_wrong_names():
    with pytest.raises(ValueError, match="class names"):
        plotting.probability_bars(np.ones(10) / 10, ["a", "b"])


def test_image_grid_titles_and_layout():
    images = RNG.random((10, 28, 28, 1))
    figure = plotting.image_grid(images, [f"#{i}" for i in range(10)], columns=4, title="Samples")
    assert len(figure.axes) == 12 and len(visible_axes(figure)) == 10
    assert [axes.get_title() for axes in visible_axes(figure)] == [f"#{i}" for i in range(10)]
    assert figure.get_suptitle() == "Samples"
    assert renders(figure)
    with pytest.raises(ValueError, match="one title per image"):
        plotting.image_grid(images, ["only one"])


def test_mistake_grid_captions():
    figure = plotting.mistake_grid(RNG.random((2, 28, 28)), [4, 9], [9, 4], [0.87, 0.6], DIGITS)
    assert [axes.get_title() for axes in figure.axes] == ["4 → 9 (87%)", "9 → 4 (60%)"]
    assert figure.axes[0].title.get_color() == plotting.ACCENT
    assert renders(figure)


def test_tile_mosaic_lays_channels_out_row_by_row():
    stack = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    mosaic = plotting.tile_mosaic(stack, columns=3, gap=1)
    assert mosaic.shape == (2 * 2 + 1, 3 * 3 + 2)
    np.testing.assert_array_equal(mosaic[0:2, 4:7], stack[:, :, 1])
    np.testing.assert_array_equal(mosaic[3:5, 4:7], stack[:, :, 4])
    assert np.isnan(mosaic[2]).all() and np.isnan(mosaic[:, 3]).all()
    # The sixth tile does not exist, so its place stays empty.
    assert np.isnan(mosaic[3:5, 8:11]).all()


def image_axes(figure):
    return [axes for axes in figure.axes if axes.images and axes.get_label() != "<colorbar>"]


def test_feature_map_grid_shares_one_scale():
    maps = layer_maps(channels=6)
    figure = plotting.feature_map_grid(maps, columns=3)
    (axes,) = image_axes(figure)
    (image,) = axes.images
    np.testing.assert_array_equal(image.get_array().filled(np.nan), plotting.tile_mosaic(maps.activations, 3, 2))
    assert image.get_clim() == (float(maps.activations.min()), float(maps.activations.max()))
    assert [text.get_text() for text in axes.texts] == [str(i) for i in range(6)]
    assert "12×12×6" in axes.get_title() and "conv2d_1" in axes.get_title()
    assert len(figure.axes) == 2  # the maps and their colour bar
    assert renders(figure)


def test_feature_map_grid_limits_channels():
    figure = plotting.feature_map_grid(RNG.random((7, 7, 64)), max_channels=16, label_channels=False)
    (axes,) = image_axes(figure)
    assert axes.images[0].get_array().shape == (2 * 8 - 1, 8 * 8 - 1)
    assert "first 16 shown" in axes.get_title() and not axes.texts
    with pytest.raises(ValueError, match="height, width, channels"):
        plotting.feature_map_grid(RNG.random((7, 7)))


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


def test_training_curves_with_validation_and_batches():
    epochs = [
        {"epoch": 0, "loss": 0.5, "accuracy": 0.85, "val_loss": 0.4, "val_accuracy": 0.88},
        {"epoch": 1, "loss": 0.3, "accuracy": 0.91, "val_loss": 0.35, "val_accuracy": 0.9},
    ]
    figure = plotting.training_curves(epochs, [0.5, 1.0, 1.5, 2.0], [0.7, 0.5, 0.35, 0.3], [0.8, 0.85, 0.9, 0.91])
    loss_axes, accuracy_axes = figure.axes
    assert (loss_axes.get_title(), accuracy_axes.get_title()) == ("loss", "accuracy")
    labels = [line.get_label() for line in loss_axes.lines]
    assert labels == ["train (batches)", "train", "validation"]
    np.testing.assert_array_equal(accuracy_axes.lines[2].get_ydata(), [0.88, 0.9])
    np.testing.assert_array_equal(loss_axes.lines[1].get_xdata(), [1, 2])
    assert renders(figure)


def test_training_curves_without_validation_or_history():
    figure = plotting.training_curves([{"epoch": 0, "loss": 0.5, "accuracy": 0.8}])
    assert [line.get_label() for line in figure.axes[0].lines] == ["train"]
    assert renders(plotting.training_curves([]))


def test_confusion_matrix_annotates_counts():
    matrix = np.array([[50, 2, 0], [3, 40, 1], [0, 0, 45]])
    figure = plotting.confusion_matrix(matrix, ["a", "b", "c"])
    (axes,) = figure.axes
    texts = sorted(text.get_text() for text in axes.texts)
    assert texts == sorted(["50", "2", "3", "40", "1", "45"])
    assert "accuracy 95.74%" in axes.get_title()
    assert renders(figure)
    with pytest.raises(ValueError, match="square"):
        plotting.confusion_matrix(np.ones((2, 3)))


def test_class_balance_counts_labels():
    figure = plotting.class_balance(np.array([0, 0, 1, 2, 2, 2]), ["x", "y", "z"])
    (axes,) = figure.axes
    assert [bar.get_height() for bar in axes.patches] == [2, 1, 3]
    assert "6 images" in axes.get_title()
    assert renders(figure)


def test_mean_images_per_class():
    images = np.stack([np.full((4, 4), 0.2), np.full((4, 4), 0.4), np.full((4, 4), 0.9)])
    figure = plotting.mean_images(images, np.array([0, 0, 1]), ["zero", "one", "two"])
    assert [axes.get_title() for axes in figure.axes] == ["zero", "one", "two"]
    np.testing.assert_allclose(figure.axes[0].images[0].get_array(), np.full((4, 4), 0.3))
    assert renders(figure)


def test_preprocess_steps_strip():
    canvas = np.zeros((280, 280, 4), dtype=np.uint8)
    canvas[60:200, 120:150] = 255
    figure = plotting.preprocess_steps(canvas_steps(canvas))
    assert len(figure.axes) == 4
    assert [axes.get_title().split(" ")[0] for axes in figure.axes] == ["1.", "2.", "3.", "4."]
    assert figure.axes[0].get_title() == "1. drawing 280×280"
    assert len(figure.axes[0].patches) == 1
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
