"""Cached loaders for the read-only things every session shares: settings, data, default models, the queue.

Only read-only objects are cached across sessions here, and the one bounded cache of learners'
live models (`model_cache`, keyed by workspace): a session keeps its models' names and
descriptions, never the Keras models themselves. TensorFlow is imported inside the functions that need it, so
pages without a model (home, playground, datasets) start without paying for it.
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from cnn_core.engine import datasets
from cnn_core.engine.errors import UserError
from cnn_core.service.settings import Settings, load_settings
from ui import state as app_state
from ui import timing

if TYPE_CHECKING:
    from cnn_core.engine.activations import FeatureExtractor
    from cnn_core.engine.evaluation import Evaluation
    from cnn_core.engine.inference import Predictor
    from cnn_core.service.model_cache import ModelCache
    from cnn_core.service.persistence import ModelBundle
    from cnn_core.service.queue import JobQueue
    from cnn_core.service.workspace import WorkspaceStore


def _secrets() -> dict:
    # A missing secrets.toml is normal (local use); only read the file when there is one.
    if st.secrets.load_if_toml_exists():
        return dict(st.secrets)
    return {}


@st.cache_resource(show_spinner=False)
def settings() -> Settings:
    """The server's settings, read once; ValueError naming the variable when one cannot be read."""
    from cnn_core.service import atomic

    loaded = load_settings(os.environ, _secrets())
    # Saves killed mid-write leave hidden temporary folders; a fresh server removes the old ones.
    atomic.clean_stale(loaded.models_dir)
    return loaded


@st.cache_resource(show_spinner=False)
def workspace_store() -> WorkspaceStore:
    """Where every browser's workspace is kept (see cnn_core/service/workspace.py)."""
    from cnn_core.service import workspace

    return workspace.make_store(settings())


@st.cache_resource(show_spinner=False)
def link_secret() -> bytes:
    """The key shared links are signed with."""
    from cnn_core.service import workspace

    return workspace.link_secret(settings())


def test_images(name: str, count: int | None) -> datasets.Dataset:
    """The first `count` test images (None: all) of a dataset and no training images, read once per process.

    For views that look at a model on test images (Evaluate, Explain, Feature maps, the embedding map, the
    health check): in host mode the web server trains nothing, so it never needs the training set in memory.
    Keyed by the dataset's registry version too: a learner's own classes, changed and registered again, are
    read again (see `registry.version`).
    """
    from cnn_core.engine import registry

    return _test_images(name, count, registry.version(name))


@st.cache_resource(show_spinner="Loading test images…", max_entries=8)
def _test_images(name: str, count: int | None, version: int) -> datasets.Dataset:
    return datasets.load_test(name, count)


def train_images(name: str, count: int) -> datasets.Dataset:
    """The first `count` training images of a dataset, no test images (samples to look at), once per process."""
    from cnn_core.engine import registry

    return _train_images(name, count, registry.version(name))


@st.cache_resource(show_spinner="Loading training images…", max_entries=4)
def _train_images(name: str, count: int, version: int) -> datasets.Dataset:
    return datasets.load_train(name, count)


def test_labels(name: str) -> np.ndarray:
    """The whole test set's labels, without its images or the training set (a finished run's evaluation)."""
    return labels(name, "test")


def labels(name: str, part: str) -> np.ndarray:
    """The labels of a dataset's "train" or "test" part, without any image (class counts), once per process."""
    from cnn_core.engine import registry

    return _labels(name, part, registry.version(name))


@st.cache_resource(show_spinner=False, max_entries=8)
def _labels(name: str, part: str, version: int) -> np.ndarray:
    return datasets.load_labels(name, part)


def test_pictures(name: str, count: int) -> tuple[str, ...]:
    """The first `count` test images as small PNG data URLs (the embedding map's hover pictures), once per process."""
    from cnn_core.engine import registry

    return _test_pictures(name, count, registry.version(name))


@st.cache_resource(show_spinner=False, max_entries=4)
def _test_pictures(name: str, count: int, version: int) -> tuple[str, ...]:
    from ui.components.inside_model import data_url

    return tuple(data_url(image) for image in test_images(name, count).x_test[:count])


@st.cache_resource(show_spinner=False)
def job_queue() -> JobQueue:
    from cnn_core.service import queue as jobs

    return jobs.get_queue(settings())


@st.cache_resource(show_spinner="Loading the default model…")
def default_bundle(dataset_name: str) -> ModelBundle:
    from cnn_core.service import persistence

    return persistence.load_default(dataset_name)


def _keep_for_good() -> None:
    """Move everything alive now out of the garbage collector's sight (Python's `gc.freeze`).

    Called once TensorFlow and a shared model are loaded: they stay for the life of the server, and
    with their hundreds of thousands of objects in sight a full collection takes over 100 ms, and
    Python's collector (which counts them) runs its full collections rarely. Garbage made later,
    such as a closed session's, is still collected.
    """
    gc.freeze()


# With `gc.freeze()` above and Streamlit's post-script collection off (.streamlit/config.toml), Python's
# full collections come rarely, and every page run leaves cyclic garbage (its script namespace and what
# it holds). Under 10 drawing visitors that piled up by ~450 MB between two collections (758 → 1,240 MB
# in 2 minutes, then back; flat at ~770 MB with a collection after every run: bench/web_memory.py,
# draw-visitors). One full collection of the unfrozen objects every few seconds keeps it flat for far
# less than one per run.
GC_EVERY_S = 5.0


@st.cache_resource(show_spinner=False)
def _collector() -> threading.Thread:
    def collect_forever() -> None:
        while True:
            time.sleep(GC_EVERY_S)
            started = timing.start()
            gc.collect()
            # It holds the interpreter while it runs: the drain benchmark reports how long.
            timing.record("full garbage collection", started)

    thread = threading.Thread(target=collect_forever, daemon=True, name="gc-now-and-then")
    thread.start()
    return thread


def collect_garbage_now_and_then() -> None:
    """Start, once per process, the thread that runs a full garbage collection every GC_EVERY_S."""
    _collector()


@st.cache_resource(show_spinner=False)
def _default_predictor(dataset_name: str) -> Predictor:
    # Imported here so its modules are loaded before the freeze, not at the first drawing.
    from scipy import ndimage  # noqa: F401

    from cnn_core.engine.inference import Predictor

    predictor = Predictor(default_bundle(dataset_name).model)
    _keep_for_good()
    return predictor


def bundle(name: str) -> ModelBundle:
    """A model by name: a shared default or one of the learner's own (loaded from the workspace on first use)."""
    state = app_state.get()
    default = app_state.default_dataset_of(name)
    if default is not None:
        return default_bundle(default)
    if name not in state.models:
        raise UserError(f"There is no model called {name!r} in this session; pick another one.")
    return state.models[name]


@st.cache_resource(show_spinner=False)
def _warm_up_thread(dataset_name: str) -> threading.Thread:
    thread = threading.Thread(target=_default_predictor, args=(dataset_name,), daemon=True,
                              name=f"warm-up-{dataset_name}")
    thread.start()
    return thread


def warm_up_default_predictor(dataset_name: str) -> None:
    """Start loading TensorFlow and the default model in the background, once per process.

    A visitor needs a few seconds to draw the first stroke; loading meanwhile means the first
    prediction does not pay for importing TensorFlow. The cache's lock makes a prediction that
    arrives mid-load wait for this same load instead of starting a second one.
    """
    _warm_up_thread(dataset_name)


@st.cache_resource(show_spinner=False)
def model_cache() -> ModelCache:
    """Learners' models as live Keras models (with their predictors), shared by every session, bounded."""
    from cnn_core.service.model_cache import ModelCache

    loaded = settings()
    return ModelCache(loaded.model_cache_models, int(loaded.model_cache_mb * 2**20))


def _own(name: str):
    """A learner's model's cache entry (loaded again from the workspace if it was pushed out)."""
    state = app_state.get()
    if name not in state.models:
        raise UserError(f"There is no model called {name!r} in this session; pick another one.")
    return state.models.cached(name)


def predictor(name: str) -> Predictor:
    """The predictor for a model; defaults share one per process, learners' models one per cache entry."""
    default = app_state.default_dataset_of(name)
    if default is not None:
        return _default_predictor(default)
    return _own(name).predictor


@st.cache_resource(show_spinner=False)
def _default_extractor(dataset_name: str) -> FeatureExtractor:
    from cnn_core.engine.activations import FeatureExtractor

    extractor = FeatureExtractor(default_bundle(dataset_name).model)
    _keep_for_good()
    return extractor


def feature_extractor(name: str) -> FeatureExtractor:
    """The feature-map extractor for a model, built once: shared for defaults, per cache entry otherwise."""
    default = app_state.default_dataset_of(name)
    if default is not None:
        return _default_extractor(default)
    return _own(name).extractor


# Cached briefly rather than forever: `make models` may write the file while the server runs.
@st.cache_data(show_spinner=False, ttl=60)
def default_metadata(dataset_name: str) -> dict:
    """The shipped model's metrics from its .json, read without loading the model (or TensorFlow)."""
    from cnn_core.service import persistence

    path = persistence.MODELS_DIR / f"default_{dataset_name}.json"
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    metrics = description.get("metrics") if isinstance(description, dict) else None
    return dict(metrics) if isinstance(metrics, dict) else {}


@st.cache_resource(show_spinner="Classifying the 10,000 test images…")
def default_evaluation(dataset_name: str) -> Evaluation:
    """The shipped model's test-set evaluation, computed once per process and shared read-only."""
    from cnn_core.engine import evaluation
    from cnn_core.engine.model_cost import keras_model_cost

    flops = keras_model_cost(default_bundle(dataset_name).model).flops
    return evaluation.evaluate(_default_predictor(dataset_name).predict_batch, test_images(dataset_name, None),
                               batch_size=evaluation.batch_size_for(flops))


def class_means(dataset_name: str, split: str) -> np.ndarray:
    """The mean image of each class of a dataset part, (classes, 28, 28) float32, computed once per process and
    version, without keeping the part's images."""
    from cnn_core.engine import registry

    return _class_means(dataset_name, split, registry.version(dataset_name))


@st.cache_resource(show_spinner="Averaging the images of each class…", max_entries=8)
def _class_means(dataset_name: str, split: str, version: int) -> np.ndarray:
    return datasets.class_means(dataset_name, split)
