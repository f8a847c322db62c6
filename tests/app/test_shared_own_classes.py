"""Shared links made on own classes carry the layers and settings, never the pictures (#16).

Opened by its author the link loads as it is; opened by anyone else it says so in one sentence and
offers the architecture on a built-in dataset or on the visitor's own classes.
"""

from __future__ import annotations

import numpy as np
from streamlit.testing.v1 import AppTest

from cnn_core.engine import registry
from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, MaxPool, ModelSpec, TrainingConfig
from cnn_core.service import own_classes
from cnn_core.service.settings import load_settings
from cnn_core.service.workspace import MemoryWorkspaceStore, Workspace, link_secret, new_id
from cnn_core.workshop import sharing
from tests.app.conftest import APP

LAYERS = (Conv2D(8, 3), MaxPool(2), Flatten(), Dense(16), Dense(3, "softmax"))


def collection(classes: int) -> dict[str, np.ndarray]:
    images = np.zeros((6, 28, 28), np.uint8)
    images[:, 8:20, 8:20] = 255
    return {f"shape{number}": np.roll(images, 2 * number, axis=2) for number in range(classes)}


def own_link(dataset: str, locked=frozenset({"layers", "dataset", "epochs"})) -> dict[str, str]:
    experiment = Experiment(ModelSpec(LAYERS, name="shapes net", num_classes=3),
                            TrainingConfig(dataset=dataset, epochs=3, batch_size=32, learning_rate=3e-3,
                                           validation_split=0.2))
    return sharing.to_query_params(experiment, locked, secret=link_secret(load_settings()))


def open_train(params: dict[str, str]) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update(params)
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    return at


def app_state(at: AppTest):
    return at.session_state["app_state"]


def offer_sentence(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if "carries the layers and settings but never the pictures" in w.value]


def test_someone_elses_own_classes_link_offers_the_architecture_on_a_builtin_dataset(fake_canvas):
    # The author's classes are registered in this server process, as they are while the author works.
    author = Workspace(MemoryWorkspaceStore(), new_id())
    info = own_classes.save(author, collection(3))
    try:
        at = open_train(own_link(info.name))
        assert len(offer_sentence(at)) == 1
        state = app_state(at)
        # Nothing of the link is loaded, and the other learner's dataset never reaches the form.
        assert state.layers != LAYERS and state.editor_training.dataset != info.name
        box = at.selectbox(key="train-link-offer-dataset")
        assert box.options == ["MNIST digits · 10 classes", "Fashion-MNIST · 10 classes"]
        box.set_value("fashion_mnist").run()
        assert any("its last layer gets 10" in c.value for c in at.caption)
        at.button(key="train-link-offer-load").click().run()
        assert not at.exception and not offer_sentence(at)
        state = app_state(at)
        assert state.layers == (*LAYERS[:-1], Dense(10, "softmax"))
        assert state.editor_training.dataset == "fashion_mnist"
        assert (state.editor_training.epochs, state.editor_training.learning_rate) == (3, 3e-3)
        # The author's locks hold, except the dataset one, which cannot.
        assert state.locked == frozenset({"layers", "epochs"})
        assert not [e for e in at.error if "cannot be built" in e.value]
    finally:
        registry.unregister(info.name)


def test_a_visitor_with_as_many_own_classes_gets_exactly_the_model_on_them(fake_canvas):
    # A server restart: the author's dataset is registered nowhere, the visitor's own is.
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    visitor = app_state(at).workspace
    mine = own_classes.save(visitor, collection(3))
    try:
        at = open_train({"ws": visitor.id, **own_link("own-0123456789ab", locked=frozenset())})
        assert len(offer_sentence(at)) == 1
        box = at.selectbox(key="train-link-offer-dataset")
        assert f"{mine.title} · 3 classes" in box.options
        box.set_value(mine.name).run()
        assert any("Exactly the link's model" in c.value for c in at.caption)
        at.button(key="train-link-offer-load").click().run()
        state = app_state(at)
        assert state.layers == LAYERS and state.editor_training.dataset == mine.name
        # A reload keeps the choice instead of asking again.
        again = open_train({"ws": visitor.id, **own_link("own-0123456789ab", locked=frozenset())})
        assert not offer_sentence(again)
        assert app_state(again).layers == LAYERS
    finally:
        registry.unregister(mine.name)


def test_the_author_reopens_their_own_link_as_it_is(fake_canvas):
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    author = app_state(at).workspace
    info = own_classes.save(author, collection(3))
    try:
        at = open_train({"ws": author.id, **own_link(info.name)})
        assert not offer_sentence(at)
        state = app_state(at)
        assert state.layers == LAYERS and state.editor_training.dataset == info.name
        assert state.locked == frozenset({"layers", "dataset", "epochs"})
    finally:
        registry.unregister(info.name)
