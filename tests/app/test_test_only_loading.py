"""Pages that look at test images never load a whole dataset: in host mode the web server keeps no training set."""

from __future__ import annotations

import pytest

from cnn_core.engine import datasets
from tests.app.conftest import texts


@pytest.fixture
def no_whole_datasets(monkeypatch):
    """Loading a whole dataset fails, and nothing loaded earlier in this process is handed out from a cache."""
    from ui import loaders

    def refuse(*args, **kwargs):
        raise AssertionError("a page loaded a whole dataset, training set included")

    monkeypatch.setattr(datasets, "load", refuse)
    for name in ("dataset", "_dataset", "default_evaluation", "class_means", "_class_means"):
        clear = getattr(getattr(loaders, name, None), "clear", None)
        if clear is not None:
            clear()


def test_datasets_page_shows_both_parts_from_samples_and_labels(open_page, no_whole_datasets):
    at = open_page("datasets")
    assert not at.exception, at.exception
    at.multiselect(key="datasets-mnist-classes").set_value([3]).run()
    assert not at.exception, at.exception
    # The count is of every training image of class 3; the samples come from the first 6,000.
    assert "40 of 6,131 training images (picked among the first 6,000)" in texts(at)
    assert "60,000 training images" in texts(at)
    at.radio(key="datasets-split").set_value("test").run()
    assert not at.exception, at.exception
    assert "40 of 1,010 test images, each" in texts(at)


@pytest.mark.parametrize("page", ["evaluate", "explain", "feature_maps"])
def test_model_pages_read_test_images_only(open_page, no_whole_datasets, page):
    at = open_page(page)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    if page == "feature_maps":
        at.segmented_control(key="maps-view").set_value("journey").run()
        assert not at.exception, at.exception
    if page == "evaluate":
        assert at.metric[0].value.endswith("%")
