"""Fuzz the functions that read user input: only ValueError may come out of them.

A learner types layer settings, pastes JSON, opens links and draws or uploads images; none of
that may crash a page with a TypeError or an IndexError. Hypothesis generates hostile values
(wrong types, NaN, infinities, huge and negative numbers, empty and odd-shaped arrays); each
test is capped at a fixed number of examples so the whole file stays well under 20 seconds.
"""

import json
import math
from dataclasses import fields

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cnn_core.engine import preprocess, specs
from cnn_core.engine.specs import (
    AvgPool,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Experiment,
    Flatten,
    GlobalAvgPool,
    MaxPool,
    ModelSpec,
    TrainingConfig,
)
from cnn_core.workshop import sharing

# database=None: no .hypothesis folder in the checkout; every run is seeded from scratch.
FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.complex_numbers(allow_nan=True, allow_infinity=True),
)


def value(*plausible):
    """Mostly plausible values, so the fuzzer gets deep into the validator, sometimes hostile ones."""
    return st.one_of(st.sampled_from(plausible), HOSTILE)


LAYERS = st.one_of(
    st.builds(Conv2D, value(1, 8, 32, 0, 600), value(1, 3, 5, 12, 29), value(1, 2, 5), value("valid", "same", "full"),
              value("relu", "softmax", "banana")),
    st.builds(MaxPool, value(1, 2, 3, 9, 30)),
    st.builds(AvgPool, value(1, 2, 3, 9, 30)),
    st.builds(GlobalAvgPool),
    st.builds(Dropout, value(0.0, 0.25, 0.95, 1.0, -0.1)),
    st.builds(BatchNorm),
    st.builds(Flatten),
    st.builds(Dense, value(1, 10, 128, 5000, 0), value("relu", "softmax", "")),
    HOSTILE,
)
HEAD = st.sampled_from([Dense(10, "softmax"), Dense(10, "relu"), Dense(3, "softmax")])
SPECS = st.builds(
    ModelSpec,
    st.builds(lambda body, head: tuple(body) + head, st.lists(LAYERS, max_size=8), st.lists(HEAD, max_size=1).map(tuple)),
    st.one_of(st.just((28, 28, 1)), st.tuples(value(28, 1, 0), value(28, 3), value(1, 3)), st.lists(HOSTILE, max_size=4)
              .map(tuple)),
    value(10, 3, 1, 2000),
    value("custom"),
)


@FUZZ
@given(SPECS, st.sampled_from([1_000, 100_000, specs.DEFAULT_MAX_PARAMS]))
def test_infer_shapes_raises_only_value_error(spec, max_params):
    try:
        infos = specs.infer_shapes(spec, max_params=max_params)
    except ValueError:
        return
    # When it accepts a spec, what it reports is consistent.
    assert len(infos) == len(spec.layers)
    assert infos[-1].output_shape == (spec.num_classes,)
    assert sum(info.params for info in infos) <= max_params
    assert all(isinstance(info.params, int) and info.params >= 0 for info in infos)


TRAINING = st.builds(
    TrainingConfig,
    value("mnist", "fashion_mnist", "cifar"),
    value("adam", "sgd", "lbfgs"),
    value(1e-3, 0.5, 0.0, 2.0),
    value(32, 0, 5000),
    value(1, 5, 0, 101),
    value(0.0, 0.1, 0.6),
    value(0, -1, 2**31),
    value(None, 100, 99, 60_000, 70_000),
    value(None, 0.998, 0.0, 1.5),
    value(False, True),
)


@FUZZ
@given(TRAINING, st.sampled_from([5, 100]), st.sampled_from([None, 1_000]))
def test_validate_training_raises_only_value_error(config, max_epochs, max_train_size):
    try:
        specs.validate_training(config, max_epochs=max_epochs, max_train_size=max_train_size)
    except ValueError:
        return
    assert 1 <= config.epochs <= max_epochs
    assert math.isfinite(config.learning_rate)


JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.sampled_from(["conv2d", "dense", "maxpool", "flatten", "softmax", "layers", "model"]),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(["model", "training", "layers", "type", "filters", "units", "input_shape",
                             "num_classes", "name", "epochs", "dataset", "activation", "v", "x"]),
            children, max_size=5,
        ),
    ),
    max_leaves=25,
)


LAYER_DICTS = st.one_of(
    st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(list(specs.LAYER_TYPES)), JSON_VALUES)},
        optional={key: st.one_of(st.sampled_from([1, 3, 10, "same", "softmax", 0.5]), JSON_VALUES)
                  for key in ("filters", "kernel_size", "strides", "padding", "activation", "pool_size", "rate",
                              "units", "bias")},
    ),
    JSON_VALUES,
)
# Shaped like an experiment, so the fuzzer reaches every field instead of failing at the top level.
EXPERIMENT_DICTS = st.fixed_dictionaries(
    {"model": st.one_of(
        st.fixed_dictionaries(
            {"layers": st.one_of(st.lists(LAYER_DICTS, max_size=6), JSON_VALUES)},
            optional={"input_shape": st.one_of(st.just([28, 28, 1]), JSON_VALUES),
                      "num_classes": st.one_of(st.just(10), JSON_VALUES), "name": JSON_VALUES},
        ),
        JSON_VALUES,
    )},
    optional={"training": st.one_of(
        st.dictionaries(st.sampled_from([f.name for f in fields(TrainingConfig)] + ["other"]), JSON_VALUES),
        JSON_VALUES,
    ), "v": st.sampled_from([1, 1, 1, 2, None])},
)


@FUZZ
@given(st.one_of(EXPERIMENT_DICTS, JSON_VALUES))
def test_experiment_from_json_raises_only_value_error(data):
    text = json.dumps(data)
    try:
        experiment = Experiment.from_json(text)
    except ValueError:
        return
    assert isinstance(experiment.model, ModelSpec)


@FUZZ
@given(st.one_of(EXPERIMENT_DICTS, JSON_VALUES))
def test_shared_links_raise_only_value_error(payload):
    params = {"cfg": _encode(payload)}
    try:
        experiment, _ = sharing.from_query_params(params)
    except ValueError:
        return
    specs.infer_shapes(experiment.model)


@FUZZ
@given(st.text(max_size=200), st.one_of(st.none(), st.text(max_size=40)))
def test_garbage_link_text_raises_only_value_error(cfg, lock):
    params = {"cfg": cfg} if lock is None else {"cfg": cfg, "lock": lock}
    try:
        sharing.from_query_params(params)
    except ValueError:
        pass


def _encode(payload) -> str:
    import base64
    import zlib

    return base64.urlsafe_b64encode(zlib.compress(json.dumps(payload).encode())).decode()


def _check_mnist_image(image):
    if image is None:
        return
    assert image.shape == (28, 28)
    assert image.dtype == np.float32
    assert np.isfinite(image).all()
    assert image.min() >= 0.0 and image.max() <= 1.0


ARRAY_DTYPES = st.sampled_from([np.uint8, np.float32, np.float64, np.int64, np.bool_, np.int8, np.complex64])
ARRAYS = hnp.arrays(
    ARRAY_DTYPES,
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=40),
    elements=None,
)
CANVASES = hnp.arrays(np.uint8, st.tuples(st.integers(1, 60), st.integers(1, 60), st.just(4)))


@FUZZ
@given(st.one_of(ARRAYS, CANVASES, HOSTILE))
def test_canvas_to_mnist_raises_only_value_error(array):
    try:
        image = preprocess.canvas_to_mnist(array)
    except ValueError:
        return
    _check_mnist_image(image)


@FUZZ
@given(st.one_of(ARRAYS, CANVASES, HOSTILE))
def test_image_to_mnist_raises_only_value_error(array):
    try:
        image = preprocess.image_to_mnist(array)
    except ValueError:
        return
    _check_mnist_image(image)


def test_special_arrays_for_the_preprocessors():
    """Edge cases a random search may miss: NaN floats, empty sides, one pixel, a big photo, extremes."""
    rng = np.random.default_rng(0)
    cases = [
        np.full((20, 20, 4), np.nan, dtype=np.float32),
        np.full((20, 20, 4), np.inf),
        np.zeros((0, 10, 4), dtype=np.uint8),
        np.zeros((10, 0, 4), dtype=np.uint8),
        np.zeros((1, 1, 4), dtype=np.uint8),
        np.full((1, 1, 4), 255, dtype=np.uint8),
        np.full((400, 400, 4), 255, dtype=np.uint8),
        rng.integers(0, 256, size=(2500, 1800, 4), dtype=np.uint8),
        rng.integers(0, 256, size=(3, 5000, 3), dtype=np.uint8),
        np.zeros((28, 28), dtype=np.float16),
        np.array([[[0, 0, 0, 255]]] * 3, dtype=np.uint8),
        np.array(["a", "b"]),
        np.array([object(), None], dtype=object),
        [[0, 1], [1, 0]],
    ]
    for array in cases:
        for function in (preprocess.canvas_to_mnist, preprocess.image_to_mnist):
            try:
                image = function(array)
            except ValueError:
                continue
            _check_mnist_image(image)
