import random

import numpy as np
import pytest

from cnn_core.engine import precision as precisions
from cnn_core.engine import specs
from cnn_core.engine.errors import UserError
from cnn_core.engine.models import build_model, learning_rate_schedule, make_optimizer, to_float32
from cnn_core.engine.specs import (
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool,
    MaxPool,
    ModelSpec,
    TrainingConfig,
)
from tests.core.engine.test_specs import random_valid_spec


def test_layers_shapes_and_names_follow_the_spec():
    spec = ModelSpec((Conv2D(8, 3, strides=2, padding="same"), BatchNorm(), MaxPool(2), GlobalAvgPool(),
                      Dense(10, "softmax")))
    model = build_model(spec)
    names = [layer.name for layer in model.layers[1:]]
    assert names == ["conv2d_1", "batchnorm_2", "maxpool_3", "global_avgpool_4", "dense_5"]
    infos = specs.infer_shapes(spec)
    assert [tuple(layer.output.shape[1:]) for layer in model.layers[1:]] == [info.output_shape for info in infos]
    assert model.count_params() == specs.count_params(spec) == 80 + 32 + 90


def test_random_specs_count_params_like_keras():
    rng = random.Random(7)
    for _ in range(25):
        spec = random_valid_spec(rng)
        assert build_model(spec).count_params() == specs.count_params(spec), spec


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd", "adamw", "nadam"])
def test_compiled_with_the_configured_optimizer(optimizer):
    spec = ModelSpec((Flatten(), Dense(10, "softmax")))
    model = build_model(spec, TrainingConfig(optimizer=optimizer, learning_rate=0.02))
    assert type(model.optimizer).__name__.lower() == optimizer
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)
    assert model.loss == "sparse_categorical_crossentropy"


def test_default_optimizer_is_adam():
    model = build_model(ModelSpec((Flatten(), Dense(10, "softmax"))))
    assert type(model.optimizer).__name__ == "Adam"
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)


def test_same_seed_same_weights_other_seed_other_weights():
    spec = ModelSpec((Conv2D(4, 3), Flatten(), Dense(10, "softmax")))
    first = build_model(spec, TrainingConfig(seed=3)).get_weights()
    again = build_model(spec, TrainingConfig(seed=3)).get_weights()
    other = build_model(spec, TrainingConfig(seed=4)).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


def test_outputs_are_probabilities():
    model = build_model(ModelSpec((Conv2D(4, 3), MaxPool(2), Flatten(), Dense(10, "softmax"))))
    probabilities = np.asarray(model(np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)))
    assert probabilities.shape == (3, 10)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_invalid_spec_raises_the_spec_error():
    with pytest.raises(ValueError, match=r"Layer 1 \(dense\)"):
        build_model(ModelSpec((Dense(10), Flatten(), Dense(10, "softmax"))))
    with pytest.raises(UserError, match="no classifier head"):
        build_model(ModelSpec((Flatten(), Dense(10, "relu"))))


def test_cosine_schedule_goes_from_the_rate_to_zero_over_the_run():
    schedule = learning_rate_schedule(TrainingConfig(learning_rate=0.01, lr_schedule="cosine"), total_steps=100)
    assert float(schedule(0)) == pytest.approx(0.01)
    assert float(schedule(50)) == pytest.approx(0.005)
    assert float(schedule(100)) == pytest.approx(0.0, abs=1e-9)


def test_one_cycle_warms_up_from_a_tenth_then_decays_to_zero():
    schedule = learning_rate_schedule(TrainingConfig(learning_rate=0.01, lr_schedule="one_cycle"), total_steps=200)
    # 15% of 200 steps = 30 warm-up steps, from 0.001 up to the 0.01 peak, then 170 steps of cosine.
    assert float(schedule(0)) == pytest.approx(0.001)
    assert float(schedule(15)) == pytest.approx(0.0055)
    assert float(schedule(30)) == pytest.approx(0.01)
    assert float(schedule(30 + 85)) == pytest.approx(0.005)
    assert float(schedule(200)) == pytest.approx(0.0, abs=1e-9)


def test_one_cycle_works_for_a_one_step_run():
    schedule = learning_rate_schedule(TrainingConfig(learning_rate=0.01, lr_schedule="one_cycle"), total_steps=1)
    assert float(schedule(0)) == pytest.approx(0.001)
    assert float(schedule(1)) == pytest.approx(0.01)


def test_constant_schedule_and_unknown_run_length_give_a_plain_rate():
    assert learning_rate_schedule(TrainingConfig(learning_rate=0.02), total_steps=100) == 0.02
    # A loaded model compiled for evaluation does not know its run length: the peak rate, held.
    assert learning_rate_schedule(TrainingConfig(learning_rate=0.02, lr_schedule="cosine"), total_steps=None) == 0.02
    optimizer = make_optimizer(TrainingConfig(optimizer="sgd", learning_rate=0.02, lr_schedule="one_cycle"))
    assert float(optimizer.learning_rate) == pytest.approx(0.02)


def test_schedule_errors_are_value_errors():
    with pytest.raises(ValueError, match="Unknown learning-rate schedule 'linear'"):
        learning_rate_schedule(TrainingConfig(lr_schedule="linear"), total_steps=10)
    with pytest.raises(ValueError, match="positive whole number of steps, got 0"):
        learning_rate_schedule(TrainingConfig(lr_schedule="cosine"), total_steps=0)


def test_build_model_spans_the_schedule_over_all_epochs():
    spec = ModelSpec((Flatten(), Dense(10, "softmax")))
    model = build_model(spec, TrainingConfig(learning_rate=0.01, lr_schedule="cosine", epochs=4), steps_per_epoch=25)
    # The optimizer reads its rate at its current step: half way through 4 × 25 steps, half the rate.
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    model.optimizer.iterations.assign(50)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.005)
    model.optimizer.iterations.assign(100)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)


BF16_SPEC = ModelSpec((Conv2D(4, 3), BatchNorm(), MaxPool(2), Flatten(), Dense(16), Dense(10, "softmax")))


def test_a_bfloat16_model_computes_hidden_layers_in_bfloat16_and_outputs_float32():
    import keras

    model = build_model(BF16_SPEC, precision="bfloat16")
    hidden, classifier = model.layers[1:-1], model.layers[-1]
    assert [layer.compute_dtype for layer in hidden] == ["bfloat16"] * 5
    assert all(layer.variable_dtype == "float32" for layer in model.layers)
    assert classifier.compute_dtype == "float32"
    assert model.output.dtype == "float32"
    probabilities = np.asarray(model(np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)))
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    # The policy went to the layers, not to Keras' process-wide default.
    assert keras.config.dtype_policy().name == "float32"
    assert precisions.model_precision(model) == "bfloat16"


def test_the_default_build_is_float32_throughout():
    model = build_model(BF16_SPEC)
    assert {layer.compute_dtype for layer in model.layers} == {"float32"}
    assert precisions.model_precision(model) == "float32"


def test_to_float32_keeps_the_weights_and_predicts_like_the_bfloat16_model():
    model = build_model(BF16_SPEC, precision="bfloat16")
    copy = to_float32(model)
    assert precisions.model_precision(copy) == "float32"
    assert [layer.name for layer in copy.layers] == [layer.name for layer in model.layers]
    for ours, theirs in zip(copy.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    images = np.random.default_rng(1).random((8, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(copy(images)), np.asarray(model(images)), atol=0.03)
    float32_model = build_model(BF16_SPEC)
    assert to_float32(float32_model) is float32_model

