"""Pages that use a model: Draw, Feature maps, Evaluate, with the shipped default models."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from cnn_core.service import persistence
from tests.app.conftest import drawing, texts


def _needs_default(dataset: str):
    return pytest.mark.skipif(
        not (persistence.MODELS_DIR / f"default_{dataset}.keras").exists(),
        reason=f"the default {dataset} model is missing; create it with `make models`",
    )


pytestmark = _needs_default("mnist")


@pytest.mark.parametrize("digit", ["1", "7"])
def test_a_drawn_digit_is_recognised(open_page, fake_canvas, digit):
    fake_canvas.image = drawing(digit)
    at = open_page("draw")
    assert not at.exception
    assert at.metric[0].label == "The model sees"
    assert at.metric[0].value == digit
    # The 28×28 image the model saw is kept for the other pages.
    seen = at.session_state["app_state"].last_drawing
    assert seen.shape == (28, 28) and seen.max() == pytest.approx(1.0)
    assert "What the model sees" in texts(at)


def test_a_blank_canvas_asks_for_a_drawing(open_page, fake_canvas):
    fake_canvas.image = np.zeros((280, 280, 4), dtype=np.uint8)
    fake_canvas.image[..., 3] = 255
    at = open_page("draw")
    assert not at.exception
    assert not at.metric
    assert "Draw a digit on the black square" in texts(at)


def test_clear_empties_the_same_canvas(open_page, fake_canvas):
    fake_canvas.image = drawing("7")
    at = open_page("draw")
    assert at.metric[0].value == "7"
    at.button(key="draw-clear").click().run()
    # The canvas stays mounted (a remounted one loses the first stroke drawn while it starts up).
    assert fake_canvas.keys[-1] == fake_canvas.keys[0]
    assert fake_canvas.clears[-1] == fake_canvas.clears[0] + 1
    assert not at.metric
    assert "Draw a digit on the black square" in texts(at)


def test_clear_blanks_the_page_before_the_canvas_sends_its_empty_picture(open_page, fake_canvas, monkeypatch):
    # The real component keeps reporting the old drawing until it has redrawn itself, a second or
    # so after Clear; the page must not show the old prediction meanwhile.
    from ui.components import canvas as canvas_component

    lagging = {"image": drawing("7")}

    def render(*, key, stroke_width, size, clears):
        return lagging["image"]

    monkeypatch.setattr(canvas_component, "render", render)
    at = open_page("draw")
    assert at.metric[0].value == "7"
    at.button(key="draw-clear").click().run()
    assert not at.metric
    assert "Draw a digit on the black square" in texts(at)
    at.run()  # another rerun with the old picture still reported
    assert not at.metric
    # The component catches up with an empty canvas, then the learner draws again.
    lagging["image"] = np.zeros((280, 280, 4), dtype=np.uint8)
    at.run()
    assert not at.metric
    lagging["image"] = drawing("1")
    at.run()
    assert at.metric[0].value == "1"


@_needs_default("fashion_mnist")
def test_a_fashion_model_offers_test_images_instead_of_drawing(open_page, fake_canvas):
    at = open_page("draw")
    fashion = "default:fashion_mnist"
    at.selectbox(key="draw-model-default:mnist").set_value(fashion).run()
    assert not at.exception
    assert at.session_state["app_state"].active_model == fashion
    assert "recognises clothes" in texts(at)
    at.selectbox(key="draw-picture-class").set_value(1).run()  # Trouser
    assert not at.exception
    assert at.metric[0].value == "Trouser"


def test_feature_maps_show_every_spatial_layer_with_its_shape(open_page):
    at = open_page("feature_maps")
    assert not at.exception
    table = at.table[0].value
    shapes = list(table["output (height × width × channels)"])
    assert shapes[0].startswith("28 × 28 × ")
    assert len(shapes) >= 2
    # One grid per layer, then the filter grids and the journey (all drawn by Matplotlib).
    assert len(at.get("imgs")) + len(at.image) >= len(shapes)


def test_feature_maps_use_the_last_drawing(open_page, fake_canvas):
    fake_canvas.image = drawing("7")
    at = open_page("draw")
    at.switch_page("pages/feature_maps.py").run()
    at.radio(key="maps-image-source").set_value("My last drawing").run()
    assert not at.exception
    assert "Prediction: **7**" in texts(at)


def test_evaluate_scores_the_default_model_as_its_metadata_says(open_page):
    at = open_page("evaluate")
    assert not at.exception
    measured = float(at.metric[0].value.rstrip("%")) / 100
    expected = persistence.load_default("mnist").metrics["test_accuracy"]
    assert measured == pytest.approx(expected, abs=0.002)
    state = at.session_state["app_state"]
    result = state.evaluations["default:mnist"]
    assert result.confusion.sum() == 10_000
    # Picking a cell lists exactly the images of that confusion-matrix cell.
    at.selectbox(key="eval-default:mnist-true").set_value(4).run()
    at.selectbox(key="eval-default:mnist-predicted").set_value(9).run()
    count = int(result.confusion[4, 9])
    assert not at.exception
    if count:
        assert f"{count:,} mistakes" in texts(at)
    else:
        assert "No test image of 4 was classified as 9" in texts(at)


def test_an_uploaded_model_becomes_the_active_model(open_page, tmp_path):
    from cnn_core.engine.models import build_model
    from cnn_core.engine.specs import Dense, Flatten, ModelSpec

    spec = ModelSpec((Flatten(), Dense(16), Dense(10, "softmax")), name="tiny_upload")
    data = persistence.model_to_bytes(build_model(spec))
    at = open_page("evaluate")
    at.selectbox(key="eval-model-upload-dataset").set_value("fashion_mnist")
    at.file_uploader(key="eval-model-upload-file").upload("tiny_upload.keras", data).run()
    assert not at.exception
    state = at.session_state["app_state"]
    assert state.active_model == "tiny_upload (uploaded)"
    assert state.models["tiny_upload (uploaded)"].dataset == "fashion_mnist"
    # The untrained model is evaluated on Fashion-MNIST: about one answer in ten is right.
    assert 0.0 <= state.evaluations["tiny_upload (uploaded)"].accuracy < 0.4


def test_an_upload_that_is_not_a_model_is_refused_with_a_reason(open_page):
    at = open_page("evaluate")
    at.file_uploader(key="eval-model-upload-file").upload("notes.keras", b"this is not a zip archive").run()
    assert not at.exception
    assert any("not a .keras file" in error.value for error in at.error)
    # Nothing entered the workspace (a local server also lists models saved by name in other tests).
    assert at.session_state["app_state"].workspace.models() == []


def test_the_shared_model_is_kept_out_of_every_garbage_collection(open_page, fake_canvas):
    # A full garbage collection that scans TensorFlow's objects takes over 100 ms.
    fake_canvas.image = drawing("1")
    at = open_page("draw")
    assert at.metric[0].value == "1"
    assert gc.get_freeze_count() > 100_000
