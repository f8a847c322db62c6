"""Fuzz the functions that read user input: only UserError may come out of them.

A learner types layer settings, pastes JSON, opens links and draws or uploads images; none of
that may crash a page with a TypeError or an IndexError, or reach the learner as a bare
ValueError (which the UI treats as a bug). Hypothesis generates hostile values (wrong types, NaN,
infinities, huge and negative numbers, empty and odd-shaped arrays); each test is capped at a
fixed number of examples so the whole file stays well under 20 seconds.

A fuzz test that only ever sees refused inputs never checks what is accepted, and a strategy
that drifts (a field added to TrainingConfig once shifted every positional value) makes it
so silently. So each test counts what was accepted and fails unless a fair share was.
"""

import functools
import json
import math
from dataclasses import fields

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cnn_core.engine import preprocess, specs
from cnn_core.engine.errors import UserError
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

# The least share of generated inputs each test must see accepted. Measured over 200 examples:
# specs 22%, training settings 27%, experiment JSON 54%, links 27%, images 25%.
ACCEPTED_SPECS = 0.1
ACCEPTED_TRAINING = 0.1
ACCEPTED_JSON = 0.25
ACCEPTED_LINKS = 0.1
ACCEPTED_IMAGES = 0.1
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


def fuzz(*strategies, accepted_at_least: float):
    """A test over FUZZ examples of `strategies`; the body returns True when its input was accepted.

    The test fails unless at least `accepted_at_least` of the examples were accepted (and, for a
    share below one, at least one was refused), so a strategy that stops reaching the accepting
    branch cannot pass unnoticed.
    """

    def decorate(body):
        @functools.wraps(body)
        def test():
            outcomes: list[bool] = []

            @FUZZ
            @given(st.tuples(*strategies))
            def run(args):
                accepted = bool(body(*args))
                event("accepted" if accepted else "refused")
                outcomes.append(accepted)

            run()
            accepted = sum(outcomes)
            assert accepted >= accepted_at_least * len(outcomes), (
                f"only {accepted} of {len(outcomes)} generated inputs were accepted; the strategy has drifted"
            )
            if accepted_at_least < 1:
                assert accepted < len(outcomes), "every generated input was accepted; the hostile values are gone"

        # Hypothesis' own attributes would make pytest treat the wrapper as a parametrised test.
        test.__signature__ = __import__("inspect").Signature()
        return test

    return decorate


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

# Specs a learner would build: a few convolutions and pools, then the classifier; most are valid.
SOUND_SPECS = st.builds(
    lambda body, dense: ModelSpec((*body, Flatten(), *dense, Dense(10, "softmax"))),
    st.lists(st.one_of(
        st.builds(Conv2D, st.integers(1, 16), st.sampled_from([1, 3, 5]), st.sampled_from([1, 2]),
                  st.sampled_from(["valid", "same"]), st.sampled_from(["relu", "tanh"])),
        st.builds(MaxPool, st.sampled_from([2, 3])), st.builds(AvgPool, st.just(2)), st.builds(BatchNorm),
        st.builds(Dropout, st.sampled_from([0.0, 0.25, 0.5])),
    ), max_size=5),
    st.lists(st.builds(Dense, st.integers(1, 64), st.just("relu")), max_size=1),
)


@fuzz(st.one_of(SPECS, SOUND_SPECS), st.sampled_from([1_000, 100_000, specs.DEFAULT_MAX_PARAMS]), accepted_at_least=ACCEPTED_SPECS)
def test_infer_shapes_raises_only_user_error(spec, max_params):
    try:
        infos = specs.infer_shapes(spec, max_params=max_params)
    except UserError:
        return False
    # When it accepts a spec, what it reports is consistent.
    assert len(infos) == len(spec.layers)
    assert infos[-1].output_shape == (spec.num_classes,)
    assert sum(info.params for info in infos) <= max_params
    assert all(isinstance(info.params, int) and info.params >= 0 for info in infos)
    return True


# By keyword: a field added to TrainingConfig must not shift every value into the wrong field.
TRAINING = st.builds(
    TrainingConfig,
    dataset=value("mnist", "fashion_mnist", "cifar"),
    optimizer=value("adam", "sgd", "lbfgs"),
    learning_rate=value(1e-3, 0.5, 0.0, 2.0),
    lr_schedule=value("constant", "cosine", "one_cycle", "step"),
    batch_size=value(32, 0, 5000),
    epochs=value(1, 5, 0, 101),
    validation_split=value(0.0, 0.1, 0.6),
    seed=value(0, -1, 2**31),
    train_subset=value(None, 100, 99, 60_000, 70_000),
    target_accuracy=value(None, 0.998, 0.0, 1.5),
    target_loss=value(None, 0.4, 0.0, -1.0, float("nan"), 1e300),
    restore_best=value(False, True),
)


# Settings the controls can produce, so the accepting branch of the validator is reached.
SOUND_TRAINING = st.builds(
    TrainingConfig,
    dataset=st.sampled_from(["mnist", "fashion_mnist"]),
    optimizer=st.sampled_from(specs.OPTIMIZERS),
    learning_rate=st.sampled_from([1e-4, 1e-3, 1e-2]),
    lr_schedule=st.sampled_from(specs.LR_SCHEDULES),
    batch_size=st.sampled_from([16, 64, 512]),
    epochs=st.integers(1, 5),
    validation_split=st.sampled_from([0.0, 0.1, 0.5]),
    seed=st.integers(0, 2**31 - 1),
    train_subset=st.sampled_from([None, 100, 1_000]),
    target_accuracy=st.sampled_from([None, 0.99]),
    target_loss=st.sampled_from([None, 0.4, 5.0]),
    restore_best=st.booleans(),
)


def test_the_training_strategy_names_every_field():
    names = {f.name for f in fields(TrainingConfig)}
    assert names == set(TRAINING.wrapped_strategy.kwargs) == set(SOUND_TRAINING.wrapped_strategy.kwargs)


@fuzz(st.one_of(TRAINING, SOUND_TRAINING), st.sampled_from([5, 100]), st.sampled_from([None, 1_000]), accepted_at_least=ACCEPTED_TRAINING)
def test_validate_training_raises_only_user_error(config, max_epochs, max_train_size):
    try:
        specs.validate_training(config, max_epochs=max_epochs, max_train_size=max_train_size)
    except UserError:
        return False
    assert 1 <= config.epochs <= max_epochs
    assert math.isfinite(config.learning_rate)
    return True


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


# Experiments as the app writes them (sound specs and settings), so the accepting branch is reached.
SOUND_EXPERIMENTS = st.builds(
    lambda spec, training: {"v": 1, "model": spec.to_dict(), "training": training.to_dict()},
    SOUND_SPECS, SOUND_TRAINING,
)


@fuzz(st.one_of(EXPERIMENT_DICTS, JSON_VALUES, SOUND_EXPERIMENTS), accepted_at_least=ACCEPTED_JSON)
def test_experiment_from_json_raises_only_user_error(data):
    text = json.dumps(data)
    try:
        experiment = Experiment.from_json(text)
    except UserError:
        return False
    assert isinstance(experiment.model, ModelSpec)
    return True


@fuzz(st.one_of(EXPERIMENT_DICTS, JSON_VALUES, SOUND_EXPERIMENTS), accepted_at_least=ACCEPTED_LINKS)
def test_shared_links_raise_only_user_error(payload):
    params = {"cfg": _encode(payload)}
    try:
        experiment, _ = sharing.from_query_params(params)
    except UserError:
        return False
    # What a link brings in passes the same check the trainer's door makes.
    specs.check_experiment(experiment)
    return True


@FUZZ
@given(st.text(max_size=200), st.one_of(st.none(), st.text(max_size=40)))
def test_garbage_link_text_raises_only_user_error(cfg, lock):
    params = {"cfg": cfg} if lock is None else {"cfg": cfg, "lock": lock}
    try:
        sharing.from_query_params(params)
    except UserError:
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


@fuzz(st.one_of(ARRAYS, CANVASES, HOSTILE), accepted_at_least=ACCEPTED_IMAGES)
def test_canvas_to_mnist_raises_only_user_error(array):
    try:
        image = preprocess.canvas_to_mnist(array)
    except UserError:
        return False
    _check_mnist_image(image)
    return True


@fuzz(st.one_of(ARRAYS, CANVASES, HOSTILE), accepted_at_least=ACCEPTED_IMAGES)
def test_image_to_mnist_raises_only_user_error(array):
    try:
        image = preprocess.image_to_mnist(array)
    except UserError:
        return False
    _check_mnist_image(image)
    return True


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
            except UserError:
                continue
            _check_mnist_image(image)
