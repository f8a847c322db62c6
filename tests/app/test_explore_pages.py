"""Pages without a model: home, datasets, playground, runs. They render, react, and never import TensorFlow."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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
    at.selectbox(key="playground-kernel-preset").set_value("identity").run()
    at.slider(key="playground-position").set_value(9).run()
    assert not at.exception
    formula = next(text for text in texts(at).splitlines() if text.startswith("output[1, 3]"))
    # The identity kernel copies the centre pixel of the window: the sum is that one product.
    centre = formula.split(" + ")[4]
    value = float(centre.strip("()").split("×")[0])
    assert formula.endswith(f"**{value:.2f}**")


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
