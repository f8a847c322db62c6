import json
import random
import re

import pytest

from cnn_core.engine import specs
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

HEAD = Dense(10, "softmax")


def spec(*layers, **kwargs) -> ModelSpec:
    return ModelSpec(layers=tuple(layers), **kwargs)


def test_shapes_and_params_of_chollet_convnet():
    infos = specs.infer_shapes(
        spec(Conv2D(32, 3), MaxPool(2), Conv2D(64, 3), MaxPool(2), Conv2D(128, 3), Flatten(), HEAD)
    )
    assert [info.output_shape for info in infos] == [
        (26, 26, 32), (13, 13, 32), (11, 11, 64), (5, 5, 64), (3, 3, 128), (1152,), (10,),
    ]
    assert [info.params for info in infos] == [320, 0, 18496, 0, 73856, 0, 11530]


def test_same_padding_strides_and_batchnorm_params():
    infos = specs.infer_shapes(
        spec(Conv2D(8, 5, strides=2, padding="same"), BatchNorm(), AvgPool(3), GlobalAvgPool(), BatchNorm(), HEAD)
    )
    assert [info.output_shape for info in infos] == [(14, 14, 8), (14, 14, 8), (4, 4, 8), (8,), (8,), (10,)]
    # BatchNorm keeps gamma, beta, moving mean and moving variance per channel.
    assert [info.params for info in infos] == [5 * 5 * 8 + 8, 32, 0, 0, 32, 90]


@pytest.mark.parametrize(
    ("layers", "fragments"),
    [
        ((Conv2D(8, 3), MaxPool(8), Conv2D(8, 5), Flatten(), HEAD), ["Layer 3 (conv2d)", "kernel", "larger"]),
        ((Conv2D(8, 11), MaxPool(8), MaxPool(2), MaxPool(2), Flatten(), HEAD), ["Layer 4 (maxpool)", "1×1 input"]),
        ((Conv2D(8, 3, strides=4), MaxPool(7), MaxPool(2), Flatten(), HEAD), ["Layer 3 (maxpool)", "pool_size"]),
        ((Conv2D(8, 3), Flatten(), Dense(10, "relu")), ["classifier head", "softmax"]),
        ((Conv2D(8, 3), Flatten(), Dense(7, "softmax")), ["classifier head", "Dense 10"]),
        ((Conv2D(8, 3), Flatten()), ["classifier head"]),
        ((Conv2D(8, 3, activation="relux"), Flatten(), HEAD), ["Layer 1 (conv2d)", "activation", "relux"]),
        ((Flatten(), Dense(64, "leaky"), HEAD), ["Layer 2 (dense)", "activation"]),
        ((Conv2D(0, 3), Flatten(), HEAD), ["Layer 1 (conv2d)", "filters", "1 to 512"]),
        ((Conv2D(513, 3), Flatten(), HEAD), ["Layer 1 (conv2d)", "filters"]),
        ((Conv2D(8, 0), Flatten(), HEAD), ["Layer 1 (conv2d)", "kernel_size"]),
        ((Conv2D(8, 3, strides=5), Flatten(), HEAD), ["Layer 1 (conv2d)", "strides"]),
        ((Conv2D(8, 3, padding="full"), Flatten(), HEAD), ["Layer 1 (conv2d)", "padding"]),
        ((Conv2D(8.5, 3), Flatten(), HEAD), ["Layer 1 (conv2d)", "filters", "whole number"]),
        ((Flatten(), Dense(0), HEAD), ["Layer 2 (dense)", "units"]),
        ((Flatten(), Dense(5000), HEAD), ["Layer 2 (dense)", "units"]),
        ((Dense(32), Flatten(), HEAD), ["Layer 1 (dense)", "Flatten"]),
        ((Flatten(), Conv2D(8, 3), HEAD), ["Layer 2 (conv2d)", "before the Flatten"]),
        ((Flatten(), MaxPool(2), HEAD), ["Layer 2 (maxpool)", "before the Flatten"]),
        ((Flatten(), GlobalAvgPool(), HEAD), ["Layer 2 (global_avgpool)", "Flatten"]),
        ((Conv2D(8, 3), Dropout(0.95), Flatten(), HEAD), ["Layer 2 (dropout)", "0.9"]),
        ((Conv2D(8, 3), Dropout(1.0), Flatten(), HEAD), ["Layer 2 (dropout)", "rate"]),
        ((Conv2D(8, 3), Dropout(-0.1), Flatten(), HEAD), ["Layer 2 (dropout)", "rate"]),
        ((MaxPool(9), Flatten(), HEAD), ["Layer 1 (maxpool)", "pool_size"]),
        ((Conv2D(512, 3, padding="same"), Flatten(), Dense(16), HEAD), ["6,427,", "parameters", "limit"]),
        ((), ["no layers"]),
    ],
)
def test_bad_specs_name_the_layer_and_field(layers, fragments):
    with pytest.raises(ValueError) as caught:
        specs.infer_shapes(spec(*layers))
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_bad_input_shape_and_classes():
    with pytest.raises(ValueError, match="input shape"):
        specs.infer_shapes(spec(Flatten(), HEAD, input_shape=(28, 28)))
    with pytest.raises(ValueError, match="num_classes"):
        specs.infer_shapes(spec(Flatten(), Dense(1, "softmax"), num_classes=1))


def test_param_budget_is_configurable():
    small = spec(Flatten(), Dense(64), HEAD)
    assert specs.count_params(small) == 784 * 64 + 64 + 650
    with pytest.raises(ValueError, match="limit of 10,000"):
        specs.infer_shapes(small, max_params=10_000)


def test_too_many_layers():
    with pytest.raises(ValueError, match="40 or fewer"):
        specs.infer_shapes(spec(*([Dropout(0.1)] * 40), Flatten(), HEAD))


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"dataset": "cifar"}, "Unknown dataset"),
        ({"optimizer": "adagrad"}, "Unknown optimizer"),
        ({"learning_rate": 0.0}, "Learning rate"),
        ({"learning_rate": 2.0}, "Learning rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 5000}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 101}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"validation_split": 0.8}, "Validation split"),
        ({"train_subset": 10}, "train_subset"),
        ({"train_subset": 70_000}, "train_subset"),
        ({"target_accuracy": 1.5}, "Target accuracy"),
        ({"target_loss": 0.0}, "Target loss 0.0 must be a number from 0.001 to 5"),
        ({"target_loss": -0.4}, "Target loss -0.4 must be"),
        ({"target_loss": 0.0009}, "Target loss 0.0009 must be"),
        ({"target_loss": float("nan")}, "Target loss nan must be"),
        ({"target_loss": float("inf")}, "Target loss inf must be"),
        ({"target_loss": 1e300}, "Target loss 1e\\+300 must be"),
        ({"target_loss": True}, "Target loss True must be"),
        ({"target_loss": "0.4"}, "Target loss '0.4' must be"),
        ({"restore_best": True, "validation_split": 0.0}, "validation split above 0"),
        ({"seed": -1}, "seed"),
        ({"lr_schedule": "step"}, "Unknown learning-rate schedule 'step'; use one of constant, cosine, one_cycle"),
        ({"lr_schedule": None}, "Unknown learning-rate schedule None"),
    ],
)
def test_bad_training_settings(changes, fragment):
    with pytest.raises(ValueError, match=fragment):
        specs.validate_training(TrainingConfig(**changes))


def test_a_sound_target_loss_is_accepted_and_old_configs_have_none():
    specs.validate_training(TrainingConfig(target_loss=0.4))
    specs.validate_training(TrainingConfig(target_loss=5))
    specs.validate_training(TrainingConfig(target_loss=0.001))
    assert TrainingConfig.from_dict({"epochs": 3}).target_loss is None


def test_training_json_without_a_schedule_keeps_a_constant_rate():
    # Configs saved before schedules existed have no lr_schedule field; they must load unchanged.
    config = TrainingConfig.from_dict({"optimizer": "sgd", "learning_rate": 0.05})
    assert config.lr_schedule == "constant"
    specs.validate_training(config)


def test_training_limits_from_host_settings():
    specs.validate_training(TrainingConfig(epochs=5))
    with pytest.raises(ValueError, match="from 1 to 3"):
        specs.validate_training(TrainingConfig(epochs=5), max_epochs=3)
    with pytest.raises(ValueError, match="from 100 to 5000"):
        specs.validate_training(TrainingConfig(train_subset=6000), max_train_size=5000)


def test_experiment_json_round_trip():
    experiment = Experiment(
        spec(Conv2D(16, 5, strides=2, padding="same", activation="tanh"), BatchNorm(), AvgPool(2), Dropout(0.3),
             GlobalAvgPool(), Dense(32, "gelu"), HEAD, name="round trip"),
        TrainingConfig(dataset="fashion_mnist", optimizer="sgd", learning_rate=0.05, batch_size=256, epochs=3,
                       validation_split=0.2, seed=7, train_subset=1000, target_accuracy=0.95, restore_best=True,
                       lr_schedule="one_cycle", target_loss=0.35),
    )
    again = Experiment.from_json(experiment.to_json())
    assert again == experiment
    assert again.training.lr_schedule == "one_cycle" and again.training.target_loss == 0.35
    assert json.loads(again.to_json()) == json.loads(experiment.to_json())


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "'model' section"),
        ('{"training": {}}', "'model' section"),
        ('{"model": {}}', "'layers' list"),
        ('{"model": {"layers": [{"type": "conv3d"}]}}', "Unknown layer type 'conv3d'"),
        ('{"model": {"layers": [{"type": "conv2d", "size": 3}]}}', "no settings ['size']"),
        ('{"model": {"layers": ["conv2d"]}}', "must be an object"),
        ('{"model": {"layers": []}, "training": {"epochz": 3}}', "Unknown training settings ['epochz']"),
        ('{"model": {"layers": []}, "training": []}', "training"),
        ('{"model": {"layers": 5}}', "'layers' list"),
        ('{"model": {"layers": [], "input_shape": "abc"}}', "input shape"),
    ],
)
def test_experiment_from_bad_json(text, fragment):
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        Experiment.from_json(text)


def test_describe_labels():
    assert specs.describe(Conv2D(32, 3, strides=2, padding="same")) == "Conv2D 32 × 3×3, stride 2, same, relu"
    assert specs.describe(MaxPool(2)) == "MaxPool 2×2"
    assert specs.describe(Dense(10, "softmax")) == "Dense 10, softmax"
    assert specs.describe(Dropout(0.25)) == "Dropout 0.25"


def random_valid_spec(rng: random.Random) -> ModelSpec:
    """A random spec that passes infer_shapes: image layers while the image is big enough, then a head."""
    layers: list = []
    size, channels = 28, 1
    for _ in range(rng.randint(0, 5)):
        choice = rng.choice(["conv", "conv", "pool", "avg", "bn", "drop"])
        if choice == "conv":
            kernel, padding, stride = rng.choice([1, 3, 5]), rng.choice(["valid", "same"]), rng.choice([1, 1, 2])
            out = -(-size // stride) if padding == "same" else (size - kernel) // stride + 1
            if out < 1:
                continue
            channels = rng.choice([1, 4, 8, 16])
            layers.append(Conv2D(channels, kernel, stride, padding, rng.choice(["relu", "tanh", "elu"])))
            size = out
        elif choice in ("pool", "avg") and size >= 2:
            pool = rng.choice([2, 3]) if size >= 3 else 2
            layers.append(MaxPool(pool) if choice == "pool" else AvgPool(pool))
            size //= pool
        elif choice == "bn":
            layers.append(BatchNorm())
        elif choice == "drop":
            layers.append(Dropout(rng.choice([0.1, 0.5])))
    layers.append(rng.choice([Flatten(), GlobalAvgPool()]))
    for _ in range(rng.randint(0, 2)):
        layers.append(rng.choice([Dense(rng.choice([8, 32]), "relu"), BatchNorm(), Dropout(0.2)]))
    layers.append(HEAD)
    return ModelSpec(tuple(layers), name="random")


def test_random_specs_are_valid_and_round_trip():
    rng = random.Random(1)
    for _ in range(200):
        random_spec = random_valid_spec(rng)
        assert specs.count_params(random_spec) > 0
        assert ModelSpec.from_dict(random_spec.to_dict()) == random_spec


def test_check_experiment_returns_the_infos_and_count_it_checked():
    experiment = specs.Experiment(
        specs.ModelSpec((specs.Conv2D(4, 3), specs.MaxPool(2), specs.Flatten(), specs.Dense(10, "softmax"))),
        specs.TrainingConfig(epochs=2, train_subset=500),
    )
    checked = specs.check_experiment(experiment, specs.Limits(max_params=10_000, max_epochs=3, max_train_size=1000))
    assert checked.experiment is experiment
    assert [info.output_shape for info in checked.layer_infos] == [(26, 26, 4), (13, 13, 4), (676,), (10,)]
    assert checked.param_count == 6_810 == specs.count_params(experiment.model)
    assert checked.train_images == 500


@pytest.mark.parametrize(
    ("limits", "training", "message"),
    [
        (specs.Limits(max_params=5_000), {}, "6,810 parameters, above the limit of 5,000"),
        (specs.Limits(max_epochs=3), {"epochs": 4}, "at most 3 epochs per run"),
        (specs.Limits(max_train_size=1000), {}, "would use all 60,000 training images"),
        (specs.Limits(), {"dataset": "cifar"}, "Unknown dataset 'cifar'; use one of mnist, fashion_mnist"),
    ],
)
def test_check_experiment_refuses_what_is_over_the_limits(limits, training, message):
    experiment = specs.Experiment(
        specs.ModelSpec((specs.Conv2D(4, 3), specs.MaxPool(2), specs.Flatten(), specs.Dense(10, "softmax"))),
        specs.TrainingConfig(**training),
    )
    with pytest.raises(UserError, match=re.escape(message)):
        specs.check_experiment(experiment, limits)


def test_check_experiment_compares_the_model_with_the_registered_dataset():
    wrong = specs.Experiment(specs.ModelSpec((specs.Flatten(), specs.Dense(10, "softmax")), input_shape=(32, 32, 1)))
    with pytest.raises(UserError, match=r"MNIST digits has \(28, 28, 1\); set the model's input_shape"):
        specs.check_experiment(wrong)
