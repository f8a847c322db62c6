"""What a hostile visitor can send reaches the page as a plain message: no Markdown, no traceback, no NaN."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, MaxPool, ModelSpec, TrainingConfig
from tests.app.conftest import APP, drawing, texts
from ui import loaders
from ui.components import canvas

HOSTILE_NAME = "**bold** [link](http://x) ![img](http://x/y.png)"
SPEC = ModelSpec((Conv2D(2, 3), MaxPool(2), Flatten(), Dense(10, "softmax")), name=HOSTILE_NAME)


def app_state(at):
    return at.session_state["app_state"]


def session_model(name: str = HOSTILE_NAME, weights_nan: bool = False):
    from cnn_core.engine.models import build_model
    from cnn_core.service.persistence import ModelBundle

    model = build_model(SPEC)
    if weights_nan:
        model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    return ModelBundle(model, Experiment(SPEC, TrainingConfig(dataset="mnist")), {"test_accuracy": 0.5}, name)


def markdown_sources(at) -> str:
    parts = [texts(at)] + [element.value for element in at.toast]
    return "\n".join(parts)


def test_a_hostile_model_name_is_shown_as_plain_text(open_page):
    at = open_page("home")
    app_state(at).add_model(session_model())
    at.run()
    assert not at.exception
    shown = markdown_sources(at)
    # Every Markdown character of the name is escaped: no bold, no link, no image for the browser to fetch.
    assert "**bold**" not in shown and "](http" not in shown and "![img]" not in shown
    assert r"\*\*bold\*\* \[link\]\(http\://x\) \!\[img\]\(http\://x/y.png\)" in shown
    at.switch_page("pages/feature_maps.py").run()
    assert not at.exception
    assert "](http" not in markdown_sources(at)


def test_draw_never_says_nan_percent_sure(open_page, fake_canvas):
    at = open_page("draw")
    app_state(at).add_model(session_model("diverged", weights_nan=True))
    fake_canvas.image = drawing("7")
    at.run()
    assert not at.exception
    shown = markdown_sources(at)
    assert "nan%" not in shown.lower()
    assert any("not a number" in warning.value for warning in at.warning)


def test_bad_settings_stop_every_page_with_the_variable_named(monkeypatch, fake_canvas):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CNN_MAX_JOBS", "abc")
    loaders.settings.clear()
    try:
        at = AppTest.from_file(str(APP), default_timeout=60).run()
        assert not at.exception
        assert len(at.error) == 1 and "CNN_MAX_JOBS" in at.error[0].value
        at.switch_page("pages/train.py").run()
        assert not at.exception and "CNN_MAX_JOBS" in at.error[0].value
    finally:
        monkeypatch.delenv("CNN_MAX_JOBS")
        loaders.settings.clear()


def png_data_url(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_a_real_canvas_value_decodes_to_rgba():
    pixels = canvas.decode_data_url(png_data_url(Image.new("RGBA", (280, 280), (255, 255, 255, 0))))
    assert pixels.shape == (280, 280, 4) and pixels.dtype == np.uint8
    rgb = canvas.decode_data_url(png_data_url(Image.new("RGB", (280, 280))))
    assert rgb.shape == (280, 280, 4) and int(rgb[0, 0, 3]) == 255


@pytest.mark.parametrize(("value", "fragment"), [
    (None, "damaged"), (12, "damaged"), ({"objects": []}, "damaged"), ("not a data url", "damaged"),
    ("data:image/png;base64,!!!!", "damaged"), ("data:image/png;base64," + base64.b64encode(b"GIF89a").decode(),
                                                "damaged"),
    ("data:image/png;base64," + "A" * 5_000_000, "far larger"),
])
def test_malformed_canvas_values_are_a_message(value, fragment):
    with pytest.raises(canvas.CanvasDataError, match=fragment):
        canvas.decode_data_url(value)


def test_a_decompression_bomb_on_the_canvas_is_refused_from_its_header():
    from bench.hostile_inputs import huge_png

    url = "data:image/png;base64," + base64.b64encode(huge_png(11_000, 11_000)).decode()
    assert len(url) < canvas.MAX_DATA_URL_CHARS  # small enough to pass the length check: the header decides
    with pytest.raises(canvas.CanvasDataError, match="11000×11000"):
        canvas.decode_data_url(url)


class FakeResult:
    def __init__(self, data_url):
        self._image_data_url = data_url


@pytest.mark.parametrize("component_value", ["bomb", "broken"])
def test_the_draw_page_survives_a_crafted_canvas_message(monkeypatch, component_value):
    import sys
    import types

    from streamlit.testing.v1 import AppTest

    from bench.hostile_inputs import huge_png

    def crafted_canvas(**kwargs):
        if component_value == "broken":
            raise AttributeError("'str' object has no attribute 'get'")  # what st_canvas raises on a bad value
        return FakeResult("data:image/png;base64," + base64.b64encode(huge_png(11_000, 11_000)).decode())

    # The real package registers itself with a running server on import; AppTest has none.
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", types.SimpleNamespace(st_canvas=crafted_canvas))
    monkeypatch.setattr(canvas, "_register_trimmed_toolbar", lambda: None)
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.switch_page("pages/draw.py").run()
    assert not at.exception
    assert any("draw again" in warning.value for warning in at.warning)


def test_an_uploaded_picture_is_decoded_once_and_a_huge_one_never(monkeypatch):
    import types

    from bench.hostile_inputs import huge_png
    from cnn_core.engine.errors import UserError
    from ui.components import image_source

    decoded = []
    real = image_source.decode_upload
    monkeypatch.setattr(image_source, "st", types.SimpleNamespace(session_state={}))
    monkeypatch.setattr(image_source, "decode_upload", lambda data, limit: decoded.append(len(data)) or real(data, limit))
    photo = io.BytesIO()
    Image.fromarray(drawing("7")).convert("RGB").save(photo, format="PNG")
    upload = types.SimpleNamespace(file_id="a", getvalue=photo.getvalue)
    first = image_source.decoded_upload("k", upload, 10_000_000)
    for _ in range(3):  # reruns: a slider moved, a fragment refreshed
        assert np.array_equal(image_source.decoded_upload("k", upload, 10_000_000), first)
    assert len(decoded) == 1 and first.shape == (28, 28)
    bomb = types.SimpleNamespace(file_id="b", getvalue=lambda: huge_png(11_000, 11_000))
    for _ in range(2):
        with pytest.raises(UserError, match="121 megapixels"):
            image_source.decoded_upload("k", bomb, 10_000_000)
    assert len(decoded) == 2


def test_class_names_of_ones_own_are_shown_as_typed(open_page, fake_canvas):
    """A learner names their own classes; `big _cat_` must not turn into an italic "cat" on any page."""
    from bench.own_classes import drawn_collection
    from cnn_core.engine import registry
    from cnn_core.engine.models import build_model
    from cnn_core.service import own_classes
    from cnn_core.service.persistence import ModelBundle

    drawn = drawn_collection(6, seed=1)
    collection = dict(zip(("big _cat_", "small _dog_"), list(drawn.values())[:2], strict=True))
    spec = ModelSpec((Conv2D(2, 3), MaxPool(2), Flatten(), Dense(2, "softmax")), num_classes=2, name="cats and dogs")
    names = []
    try:
        for page in ("explain", "feature_maps", "evaluate"):
            at = open_page(page)
            state = app_state(at)
            info = own_classes.save(state.workspace, collection)
            names.append(info.name)
            assert info.class_names == ("big _cat_", "small _dog_")
            state.add_model(ModelBundle(build_model(spec), Experiment(spec, TrainingConfig(dataset=info.name)),
                                        {"test_accuracy": 0.5}, "cats and dogs"))
            at.run()
            assert not at.exception, page
            # What Streamlit renders as Markdown (a metric's value is plain text already).
            shown = "\n".join(e.value for kind in (at.markdown, at.caption, at.info, at.success, at.warning, at.error)
                              for e in kind)
            # Before: "Runner-up: **small _dog_**" and "Prediction: **big _cat_**", as Markdown.
            assert " _cat_" not in shown and " _dog_" not in shown, (page, shown)
            if page != "evaluate":  # it names classes in Markdown only for an empty cell
                assert r"\_cat\_" in shown or r"\_dog\_" in shown, page
    finally:
        for name in names:
            registry.unregister(name)
