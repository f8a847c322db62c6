"""Pages without a model: home, datasets, playground, runs. They render, react, and never import TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np

from tests.app.conftest import APP, texts
from tests.conftest import REPO_ROOT


def test_home_names_the_active_model_and_links_every_section(open_page):
    at = open_page("home")
    assert not at.exception
    assert "Default MNIST model" in texts(at)
    assert [metric.label for metric in at.metric] == ["Dataset", "Test accuracy"]
    assert at.metric[0].value == "MNIST digits"


def test_datasets_filters_by_class_and_counts_every_image(open_page):
    at = open_page("datasets")
    assert not at.exception
    at.radio(key="datasets-split").set_value("test").run()
    at.multiselect(key="datasets-mnist-classes").set_value([3]).run()
    assert not at.exception
    assert "40 of 1,010 test images" in texts(at)
    # Every caption of the sample images names class 3 only.
    captions = [caption for image in at.image for caption in _captions(image)]
    assert captions and set(captions) == {"3"}


def _captions(element) -> list[str]:
    return [image.caption for image in element.proto.imgs if image.caption]


def test_datasets_explains_fashion_classes(open_page):
    at = open_page("datasets")
    at.selectbox(key="datasets-name").set_value("fashion_mnist").run()
    assert not at.exception
    names = {caption for image in at.image for caption in _captions(image)}
    assert names <= {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                     "Ankle boot"}
    assert len(names) > 3


def test_playground_walks_through_seed_001_max_pool_example(open_page):
    at = open_page("playground")
    assert not at.exception
    assert "max **6**" in texts(at)
    at.segmented_control(key="playground-window").set_value(1).run()
    assert "max **8**" in texts(at)
    at.segmented_control(key="playground-window").set_value(2).run()
    assert "max **3**, average **2**" in texts(at)
    at.segmented_control(key="playground-window").set_value(3).run()
    assert "max **4**, average **2**" in texts(at)


def test_playground_computes_the_cell_it_shows(open_page):
    at = open_page("playground")
    at.radio(key="playground-padding").set_value("valid").run()
    at.selectbox(key="playground-kernel-preset").set_value("identity").run()
    at.slider(key="playground-position").set_value(9).run()
    assert not at.exception
    formula = next(text for text in texts(at).splitlines() if text.startswith("output[1, 3]"))
    # The identity kernel copies the centre pixel of the window: the sum is that one product.
    centre = formula.split(" + ")[4]
    value = float(centre.strip("()").split("×")[0])
    assert formula.endswith(f"**{value:.2f}**")


def _small_image(at) -> np.ndarray:
    """The playground's 7×7 version of its default image (the first test image of class 0)."""
    from cnn_core.engine import datasets, ops

    data = datasets.load("mnist")
    image = data.x_test[int(np.flatnonzero(data.y_test == 0)[0]), ..., 0].astype(np.float64)
    return np.round(ops.avg_pool(image, 4), 2)


def _formula(at, prefix: str) -> str:
    return next(text for text in texts(at).splitlines() if text.startswith(prefix))


def _chart_titles(at) -> list[str]:
    specs = [json.loads(element.proto.spec) for element in at.get("vega_lite_chart")]
    return [spec.get("title", {}).get("text", "") for spec in specs]


def test_playground_cell_by_cell_follows_padding_stride_relu_and_pooling(open_page):
    """It used to say 'valid' and 'max 2×2' and compute a valid convolution whatever was chosen."""
    at = open_page("playground")
    small = _small_image(at)
    at.selectbox(key="playground-kernel-preset").set_value("identity").run()
    at.radio(key="playground-padding").set_value("same").run()
    at.slider(key="playground-position").set_value(25).run()  # 7×7 output: row 3, column 3
    assert small[3, 3] != small[4, 4]
    assert _formula(at, "output[3, 3]").endswith(f"**{small[3, 3]:.2f}**")
    at.slider(key="playground-position").set_value(1).run()
    first = _formula(at, "output[0, 0]")
    assert first.startswith("output[0, 0] = (0.00×0) + (0.00×0) + (0.00×0)")  # the zero padding row
    titles = _chart_titles(at)
    assert "output (same, stride 1)" in titles and "max pool 2×2" in titles
    assert "The last 1 row(s) and column(s) do not fill a window and are dropped." in texts(at)

    at.segmented_control(key="playground-stride").set_value(2).run()
    at.slider(key="playground-position").set_value(6).run()  # 4×4 output: row 1, column 1 reads small[2, 2]
    assert _formula(at, "output[1, 1]").endswith(f"**{small[2, 2]:.2f}**")
    at.radio(key="playground-pool").set_value("avg").run()
    at.select_slider(key="playground-pool-size").set_value(4).run()
    titles = _chart_titles(at)
    assert "output (same, stride 2)" in titles and "average pool 4×4" in titles
    assert not any(title.startswith("max pool") for title in titles)

    at.selectbox(key="playground-kernel-preset").set_value("vertical edges").run()
    at.toggle(key="playground-relu").set_value(False).run()
    assert not at.exception
    assert "no ReLU: negatives stay" in _chart_titles(at)
    assert any(line.startswith("no activation: the output is the sum itself") for line in texts(at).splitlines())
    assert "ReLU keeps positives" not in texts(at)


def test_playground_kernel_weights_are_editable(open_page):
    at = open_page("playground")
    at.selectbox(key="playground-kernel-preset").set_value("all zeros (build your own)").run()
    assert not at.exception
    formula = next(text for text in texts(at).splitlines() if text.startswith("output[0, 0]"))
    assert formula.endswith("**0.00**")
    at.number_input(key="playground-kernel-all zeros (build your own)-11").set_value(1.0).run()
    formula = next(text for text in texts(at).splitlines() if text.startswith("output[0, 0]"))
    assert not formula.endswith("**0.00**") or "(0.00×1)" in formula


def test_runs_page_without_runs_points_to_training(open_page):
    at = open_page("runs")
    assert not at.exception
    assert "No runs yet" in texts(at)


def test_pages_without_a_model_do_not_import_tensorflow():
    # A fresh interpreter: in this one another test may already have imported TensorFlow. If none of
    # the pages imports it, it is still missing after all of them ran.
    script = textwrap.dedent(f"""
        import sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({str(APP)!r}, default_timeout=120).run()
        for page in ("datasets", "playground", "runs", "train", "exercises"):
            at.switch_page(f"pages/{{page}}.py").run()
            assert not at.exception, (page, at.exception)
        print("tensorflow" in sys.modules, "keras" in sys.modules)
    """)
    output = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=180, check=True).stdout
    assert output.strip().splitlines()[-1] == "False False"
