"""Issue #13: every control does what it says (AppTest). Each test failed on the code before its fix."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from PIL import Image

from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, MaxPool, ModelSpec, TrainingConfig
from cnn_core.service import persistence
from cnn_core.workshop import exercises, presets
from tests.app.conftest import drawing, texts
from ui.components import model_picker

needs_default_models = pytest.mark.skipif(
    not (persistence.MODELS_DIR / "default_mnist.keras").exists(),
    reason="the default models are missing; create them with `make models`",
)


def app_state(at):
    return at.session_state["app_state"]


def kinds(at) -> list[str]:
    return [row.layer.kind for row in app_state(at).editor_rows]


# Train


def test_choosing_a_preset_loads_it_and_the_description_follows_the_layers(open_page):
    at = open_page("train")
    quick = presets.get("quick_mnist")
    at.selectbox(key="train-preset").set_value("quick_mnist").run()
    assert not at.exception
    # Before: the old layers stayed (and Start trained them) under the new preset's description.
    assert app_state(at).layers == quick.model.layers
    assert app_state(at).editor_training == quick.training
    assert quick.description[:60] in texts(at)
    # Changed layers are no preset any more: its description no longer claims them.
    conv = next(row for row in app_state(at).editor_rows if row.layer.kind == "batchnorm")
    at.button(key=f"train-layers-{conv.uid}-remove").click().run()
    assert quick.description[:60] not in texts(at)
    assert "no preset has exactly these" in texts(at)


def test_add_puts_each_layer_where_it_is_valid(open_page):
    at = open_page("train")
    assert kinds(at) == ["conv2d", "maxpool", "conv2d", "maxpool", "conv2d", "flatten", "dense"]
    at.selectbox(key="train-layers-add-kind").set_value("conv2d").run()
    at.button(key="train-layers-add").click().run()
    # Before: just before the output, after Flatten, where a convolution cannot work.
    assert kinds(at) == ["conv2d", "maxpool", "conv2d", "maxpool", "conv2d", "conv2d", "flatten", "dense"]
    at.selectbox(key="train-layers-add-kind").set_value("dense").run()
    at.button(key="train-layers-add").click().run()
    assert kinds(at)[-3:] == ["flatten", "dense", "dense"]
    assert not at.error, [error.value for error in at.error]
    assert not at.button(key="train-run-start").disabled
    # Or exactly where the learner says, still in one click.
    at.selectbox(key="train-layers-add-kind").set_value("maxpool").run()
    at.selectbox(key="train-layers-add-where").set_value(0).run()
    at.button(key="train-layers-add").click().run()
    assert kinds(at)[:2] == ["maxpool", "conv2d"]
    assert at.selectbox(key="train-layers-add-where").value == -1


def test_a_changed_preset_runs_under_a_custom_name(open_page):
    at = open_page("train")
    flatten_first = app_state(at).editor_rows[0]
    at.button(key=f"train-layers-{flatten_first.uid}-remove").click().run()
    # Before: the run kept the preset's name, so Compare runs showed two different models as one.
    assert app_state(at).run_name() == "custom, from mnist_functional"
    names = [box.value for box in at.text_input if box.label == "Model name"]
    assert names == ["custom, from mnist_functional"]
    # A name the learner types is kept as typed, whatever the layers do next.
    at.text_input(key=f"train-name-{app_state(at).training_generation}-custom, from mnist_functional").input(
        "mine").run()
    at.button(key=f"train-layers-{app_state(at).editor_rows[0].uid}-remove").click().run()
    assert app_state(at).run_name() == "mine"


# Draw


def _photo(digit: str) -> bytes:
    """A phone photo of a digit, as it comes: dark ink on light paper, larger than the canvas."""
    ink = Image.fromarray(drawing(digit, size=560, width=36)[..., 0]).convert("L")
    paper = Image.eval(ink, lambda value: 255 - int(value * 0.8))
    buffer = io.BytesIO()
    paper.convert("RGB").save(buffer, format="JPEG")
    return buffer.getvalue()


@needs_default_models
def test_an_mnist_model_takes_a_photo_of_a_digit(open_page):
    at = open_page("draw")
    assert at.title[0].value == "Draw a digit"
    # Before: the only upload on the page took .keras models.
    at.segmented_control(key="draw-input").set_value("Upload a photo").run()
    uploader = at.file_uploader(key="draw-photo-upload")
    assert "handwritten digit" in uploader.label and "PNG or JPEG" in uploader.label
    uploader.upload("seven.jpg", _photo("7"), "image/jpeg").run()
    assert not at.exception
    assert at.metric[0].value == "7"


@needs_default_models
def test_a_bad_picture_is_refused_in_words(open_page):
    at = open_page("draw")
    at.segmented_control(key="draw-input").set_value("Upload a photo").run()
    at.file_uploader(key="draw-photo-upload").upload("photo.png", b"not a picture at all", "image/png").run()
    assert not at.exception
    messages = [error.value for error in at.error]
    # Before: "cannot identify image file <_io.BytesIO object at 0x…>".
    assert messages == ["That file is not a picture this app can read, or it is damaged; use PNG or JPEG files."]


@needs_default_models
def test_the_upload_limits_shown_are_the_settings_own(open_page):
    at = open_page("draw")
    at.segmented_control(key="draw-input").set_value("Upload a photo").run()
    photo = at.file_uploader(key="draw-photo-upload")
    model = at.file_uploader(key="draw-model-upload-file")
    # Local defaults: CNN_MAX_IMAGE_MB 10, CNN_MAX_UPLOAD_MB 50 (Streamlit's own limit said 20 for both).
    assert "at most 10 MB" in photo.label and photo.proto.max_upload_size_mb == 10
    # But the server refuses any upload over server.maxUploadSize (20 MB in .streamlit/config.toml), whatever a
    # widget says: before, the label said 50 MB and a 26 MB model failed with a red icon and no words.
    import streamlit as st

    assert st.get_option("server.maxUploadSize") == 20
    assert "at most 20 MB" in model.label and model.proto.max_upload_size_mb == 20


@needs_default_models
def test_clear_says_it_cannot_be_undone(open_page, fake_canvas):
    fake_canvas.image = drawing("7")
    at = open_page("draw")
    assert "cannot be undone" in at.button(key="draw-clear").help
    assert "lift the mouse" not in texts(at)


@needs_default_models
def test_a_fashion_model_is_not_asked_for_a_digit(open_page):
    at = open_page("draw")
    at.selectbox(key="draw-model-default:mnist").set_value("default:fashion_mnist").run()
    assert not at.exception
    assert "digit" not in at.title[0].value.lower()


def test_model_labels_do_not_repeat_what_the_name_says():
    trained = model_picker.ModelCard("quick_mnist on MNIST digits (99.2%, stopped early)",
                                   "quick_mnist on MNIST digits (99.2%, stopped early)", "mnist", 0.992)
    # Before: "… (99.2%, stopped early) (MNIST digits, 99.20%)".
    assert trained.label == "quick_mnist on MNIST digits (99.2%, stopped early)"
    assert model_picker.ModelCard("default:mnist", "Default MNIST model", "mnist", 0.9951).label == (
        "Default MNIST model (MNIST digits, 99.51%)")
    assert model_picker.ModelCard("mine (uploaded)", "mine (uploaded)", "fashion_mnist", None).label == (
        "mine (uploaded) (Fashion-MNIST, not measured)")


# Exercises


def test_the_horizontal_kernel_gets_feedback_about_what_it_does(open_page):
    at = open_page("exercises")
    at.selectbox(key="exercise-pick").set_value("vertical_edge_kernel").run()
    for row, values in enumerate([[-1, -1, -1], [0, 0, 0], [1, 1, 1]]):
        for col, value in enumerate(values):
            at.number_input(key=f"exercise-vertical_edge_kernel-all zeros (build your own)-{row}{col}").set_value(
                float(value))
    at.run()
    at.button(key="exercise-vertical_edge_kernel-check").click().run()
    checked = [block.value for block in at.markdown if block.value.startswith(("- ✗", "- ✓"))]
    assert any("finds horizontal edges" in message for message in checked)
    assert not any("add up to zero" in message for message in checked)


def test_the_one_convolution_exercise_needs_the_learner_to_build_it(open_page):
    at = open_page("exercises")
    at.selectbox(key="exercise-pick").set_value("single_conv_998").run()
    at.button(key="exercise-single_conv_998-load").click().run()
    assert "conv2d" not in kinds(at) and "maxpool" not in kinds(at)
    assert app_state(at).editor_training.target_accuracy is None
    exercise = exercises.get("single_conv_998")
    unchanged = exercises.Attempt(experiment=exercise.starting_experiment, history=[{"accuracy": 0.999}] * 3,
                                  test_accuracy=0.98, stopped_reason="completed")
    assert not exercise.check(unchanged).passed


# Feature maps


@needs_default_models
def test_the_journey_channel_stays_in_range_and_says_why_a_layer_wraps(open_page):
    at = open_page("feature_maps")
    at.segmented_control(key="maps-view").set_value("journey").run()
    channel = at.number_input(key="maps-journey-channel")
    # Before: 0–511, and channel 70 showed "ch 6" without a word.
    assert channel.max == 63
    channel.set_value(40).run()
    assert not at.exception
    assert "channel 40 mod 32 = 8" in texts(at)


@needs_default_models
def test_every_filter_is_shown_and_a_channel_can_be_enlarged(open_page, monkeypatch):
    from ui import figures

    shown = []
    original = figures.filter_grid
    monkeypatch.setattr(figures, "filter_grid", lambda *args, **kwargs: (shown.append(("filter_grid", args, kwargs)),
                                                                         original(*args, **kwargs))[1])
    at = open_page("feature_maps")
    assert not at.exception
    # A closer look at one tile: a chart with a colour bar.
    assert at.get("vega_lite_chart")
    assert "colour bar" in texts(at)
    at.segmented_control(key="maps-view").set_value("filters").run()
    grids = [kwargs for plot, _, kwargs in shown if plot == "filter_grid"]
    # Before: max_filters=32, so the 64-filter layers showed half their filters.
    assert grids and all(kwargs["max_filters"] is None for kwargs in grids)


# Datasets


def test_a_balanced_dataset_is_called_balanced(open_page):
    at = open_page("datasets")
    at.selectbox(key="datasets-name").set_value("fashion_mnist").run()
    assert "perfectly balanced" in texts(at)
    assert "Smallest class" not in texts(at)


def test_the_class_filter_applies_to_the_mean_images(open_page):
    at = open_page("datasets")
    at.multiselect(key="datasets-mnist-classes").set_value([3, 5]).run()
    mean_captions = [image.caption for image in at.image[1].proto.imgs]
    assert mean_captions == ["3", "5"]
    assert "Every class is shown here" in texts(at)


# Compare runs


def test_the_runs_table_converts_to_arrow_without_a_fallback(open_page, caplog):
    from ui.state import RunRecord
    from ui.training_session import run_settings

    at = open_page("runs")
    state = app_state(at)
    for subset in (5_000, None):
        training = TrainingConfig(train_subset=subset)
        spec = ModelSpec((Conv2D(8, 3), MaxPool(2), Flatten(), Dense(10, "softmax")), name=f"run {subset}")
        state.add_run(RunRecord(
            name=f"run {subset}", experiment=Experiment(spec, training), dataset="mnist", architecture="…",
            params=1, settings=run_settings(training), history=[{"epoch": 0, "accuracy": 0.9}],
            test_accuracy=0.9, test_loss=0.3, seconds=1.0, stopped_reason="completed",
        ))
    with caplog.at_level(logging.INFO, logger="streamlit"):
        at.run()
    assert not at.exception
    # Before: "Serialization of dataframe to Arrow table was unsuccessful" with a traceback, every render.
    assert not [record for record in caplog.records if "Arrow" in record.getMessage()]
    table = at.dataframe[0].value
    assert list(table["training images"]) == ["5,000", "all"]


def test_the_page_icon_is_a_local_picture():
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "app.py").read_text()
    # Before: page_icon=":material/visibility:", which the browser fetched from a font CDN.
    assert 'page_icon=":material' not in source and "page_icon=app_icon()" in source
    from ui.images import app_icon

    with Image.open(io.BytesIO(app_icon())) as icon:
        assert icon.format == "PNG" and icon.size[0] >= 16
    assert np.asarray(Image.open(io.BytesIO(app_icon()))).std() > 0
