"""Pages see a learner's own classes as they are now, not as they were when a page first loaded them."""

from __future__ import annotations

import re

from cnn_core.engine import registry
from cnn_core.service import own_classes
from tests.app.conftest import texts


def _shown_count(at) -> int:
    """The count in the Datasets page's 'N of M test images' caption."""
    match = re.search(r"\d+ of ([\d,]+) test images", texts(at))
    assert match, texts(at)
    return int(match.group(1).replace(",", ""))


def _change_classes_and_look(at, collection) -> int:
    """As a learner does: change the classes on their page, come back to Datasets, pick them and the test part."""
    at.switch_page("pages/own_classes.py").run()
    state = at.session_state["app_state"]
    own_classes.save(state.workspace, collection)
    at.switch_page("pages/datasets.py").run()
    at.selectbox(key="datasets-name").set_value(own_classes.dataset_name(state.workspace)).run()
    at.radio(key="datasets-split").set_value("test").run()
    assert not at.exception
    return _shown_count(at)


def test_changed_own_classes_show_their_new_counts_on_the_datasets_page(open_page):
    from bench.own_classes import drawn_collection

    at = open_page("datasets")
    name = own_classes.dataset_name(at.session_state["app_state"].workspace)
    try:
        first = drawn_collection(10, seed=3)  # 3 classes × 10: 2 of each held back as test images
        assert _change_classes_and_look(at, first) == 6
        # More drawings of every class: 20 each, 4 of each held back.
        assert _change_classes_and_look(at, drawn_collection(20, seed=4)) == 12
        # One class deleted: two are left, and only their names are shown.
        kept = dict(list(drawn_collection(20, seed=4).items())[:2])
        assert _change_classes_and_look(at, kept) == 8
        captions = {image.caption for element in at.image for image in element.proto.imgs if image.caption}
        assert captions and captions <= set(kept)
        # Back to the first version: no cache may hand back the arrays of another version it still holds.
        assert _change_classes_and_look(at, first) == 6
    finally:
        registry.unregister(name)
