"""The Explain page: maps for two classes, one neuron by hand that matches the model, links in from Draw and
Evaluate, explanations cached per model and image; Draw's two-model comparison."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnn_core.engine import datasets, explain
from tests.app.conftest import APP, drawing, texts
from ui.text import plain

CHECK = "equals the model's own output: ✓"


def _default_model():
    from cnn_core.service.persistence import load_default

    return load_default("mnist").model


def _lines(at: AppTest, prefix: str) -> list[str]:
    return [line for line in texts(at).splitlines() if line.startswith(prefix)]


def test_explain_page_shows_maps_overview_and_a_neuron_that_matches_the_model(open_page):
    at = open_page("explain")
    assert not at.exception
    assert [s.value for s in at.subheader] == ["Which pixels mattered", "The network at a glance",
                                               "One neuron, by hand"]
    text = texts(at)
    assert "**what argued for 0** (" in text and "· the runner-up" in text
    assert CHECK in text
    # Pick a cell of the second convolution by hand; the page's sum is the engine's and the model's.
    model = _default_model()
    layer = next(i.index for i in explain.layers(model) if i.kind == "conv2d" and i.index > 1)
    at.selectbox(key="explain-layer").set_value(layer).run()
    at.number_input(key=f"explain-channel-{layer}").set_value(5).run()
    at.number_input(key=f"explain-row-{layer}").set_value(4).run()
    at.number_input(key=f"explain-col-{layer}").set_value(9).run()
    assert not at.exception
    data = datasets.load("mnist")
    image = data.x_test[int(np.flatnonzero(data.y_test == 0)[0]), ..., 0]
    trace = explain.neuron_trace(model, image, layer, 4, 9, 5)
    name = model.layers[layer].name
    (sum_line,) = _lines(at, f"{name}[4, 9], channel 5: the products of every channel add up to")
    assert sum_line.endswith(f"= **{trace.preactivation - trace.bias:.2f}**")
    assert f"= **{trace.preactivation:.2f}**" in texts(at)
    assert CHECK in texts(at)
    # The default model normalises after each convolution: that step follows, with its own numbers.
    norm = explain.neuron_trace(model, image, layer + 1, 4, 9, 5)
    # The layer name is escaped for Markdown (an uploaded model names its own layers): batchnorm\_5.
    assert f"then {plain(model.layers[layer + 1].name)}, its own step: {trace.value:.4f} ×" in texts(at)
    assert f"= **{norm.value:.4f}**" in texts(at)


def test_the_softmax_unit_shows_its_logits_and_probability(open_page):
    at = open_page("explain")
    last = len(_default_model().layers) - 1
    at.selectbox(key="explain-layer").set_value(last).run()
    at.selectbox(key=f"explain-unit-{last}").set_value(0).run()
    assert not at.exception
    (line,) = _lines(at, "softmax: e^(score − largest score) / their total")
    probability = float(line.rsplit("**", 2)[1])
    assert probability > 0.9  # the first test zero, which the model gets right
    assert CHECK in texts(at)
    assert len(at.dataframe) == 2  # the top inputs, and the ten logits with their probabilities


def test_opening_a_layer_from_the_overview_picks_it(open_page):
    at = open_page("explain")
    pool = next(i.index for i in explain.layers(_default_model()) if i.kind == "maxpool")
    at.button(key=f"explain-open-{pool}").click().run()
    assert not at.exception
    assert at.selectbox(key="explain-layer").value == pool
    assert any(line.startswith("max pooling keeps the largest of the 4 numbers") for line in texts(at).splitlines())


def test_clicking_around_does_not_recompute_the_maps(open_page, monkeypatch):
    calls = []
    real = explain.occlusion_map
    monkeypatch.setattr(explain, "occlusion_map", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    at = open_page("explain")
    assert len(calls) == 2  # the answer and the runner-up
    layer = at.selectbox(key="explain-layer").value
    for row in (1, 2, 3):
        at.number_input(key=f"explain-row-{layer}").set_value(row).run()
    assert len(calls) == 2
    at.number_input(key="explain-image-example").set_value(2).run()  # another image: computed once more
    assert len(calls) == 4


def test_evaluate_links_a_mistake_to_the_explain_page(fake_canvas):
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.run()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    links = [link.proto for link in at.get("page_link") if link.proto.label == "Why?"]
    assert links and all(link.page == "explain" for link in links)
    index = at.selectbox(key="eval-default:mnist-explain-worst").value
    assert f"test={index}" in links[-1].query_string
    # Following it: the page explains exactly that test image.
    at.query_params["test"] = str(index)
    at.switch_page("pages/explain.py").run()
    assert not at.exception
    assert f"Test image #{index}:" in "\n".join(image.proto.imgs[0].caption for image in at.image)
    assert "a mistake." in texts(at)


def test_draw_links_the_drawing_to_the_explain_page(open_page, fake_canvas):
    at = open_page("draw")
    fake_canvas.image = drawing("7")
    at.run()
    (link,) = [link.proto for link in at.get("page_link") if link.proto.label == "Explain this prediction"]
    assert link.page == "explain" and "image=drawing" in link.query_string
    at.query_params["image"] = "drawing"
    at.switch_page("pages/explain.py").run()
    assert not at.exception
    assert at.radio(key="explain-image-source").value == "My last drawing"
    assert at.metric[0].value == "7"


def test_a_bad_test_index_in_the_link_is_a_warning(fake_canvas):
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["test"] = "99999"
    at.run()
    at.switch_page("pages/explain.py").run()
    assert not at.exception
    assert any("no test image number 99999" in w.value for w in at.warning)


@pytest.fixture
def second_model():
    from cnn_core.engine.models import build_model
    from cnn_core.service.persistence import ModelBundle
    from cnn_core.workshop.presets import get

    preset = get("quick_mnist")
    return ModelBundle(build_model(preset.model, preset.training), preset.experiment, name="untrained quick")


def test_draw_compares_two_models_on_one_drawing(open_page, fake_canvas, second_model):
    at = open_page("draw")
    state = at.session_state["app_state"]
    state.add_model(second_model)
    state.active_model = "default:mnist"
    fake_canvas.image = drawing("1")
    at.toggle(key="draw-compare-on").set_value(True).run()
    assert not at.exception
    assert at.selectbox(key="draw-compare-other").value == "untrained quick"
    said = [line for line in texts(at).splitlines() if " says **" in line]
    assert len(said) == 2 and said[0].startswith("**Default MNIST model** says **1**")
    assert said[1].startswith("**untrained quick** says")
    captions = [image.proto.imgs[0].caption for image in at.image]
    assert sum(caption.startswith("saliency for") for caption in captions) == 2


def test_a_model_without_convolutions_and_the_fashion_model_are_explained_too(open_page):
    from cnn_core.engine.models import build_model
    from cnn_core.engine.specs import Dense, Experiment, Flatten, ModelSpec, TrainingConfig
    from cnn_core.service.persistence import ModelBundle

    spec = ModelSpec((Flatten(), Dense(16), Dense(10, "softmax")), name="dense_only")
    experiment = Experiment(spec, TrainingConfig(dataset="fashion_mnist"))
    at = open_page("explain")
    at.session_state["app_state"].add_model(ModelBundle(build_model(spec), experiment, name="dense only"))
    at.run()
    assert not at.exception
    assert at.session_state["app_state"].active_model == "dense only"
    # No convolution: the neuron view starts at the first dense layer, which sees the whole image.
    assert at.selectbox(key="explain-layer").value == 2
    assert "**28×28 pixels**" in texts(at) and CHECK in texts(at)
    at.selectbox(key="explain-model-dense only").set_value("default:fashion_mnist").run()
    assert not at.exception
    assert CHECK in texts(at) and "**what argued for" in texts(at)
