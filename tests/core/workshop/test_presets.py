import pytest

from cnn_core.engine import specs
from cnn_core.engine.models import build_model
from cnn_core.engine.specs import Experiment
from cnn_core.workshop import presets


@pytest.mark.parametrize("key", list(presets.PRESETS))
def test_parameter_counts_match_both_ways(key):
    preset = presets.get(key)
    assert preset.key == key
    assert specs.count_params(preset.model) == preset.expected_params
    assert build_model(preset.model, preset.training).count_params() == preset.expected_params


@pytest.mark.parametrize("key", list(presets.PRESETS))
def test_presets_are_valid_and_documented(key):
    preset = presets.get(key)
    specs.validate_training(preset.training)
    assert preset.model.name == key
    assert preset.title and preset.description and preset.source
    assert Experiment.from_json(preset.experiment.to_json()) == preset.experiment


def test_known_seed_values():
    chollet = presets.get("mnist_functional")
    assert chollet.expected_params == 104_202
    assert chollet.training.optimizer == "rmsprop" and chollet.training.epochs == 2
    assert presets.get("fashion_conv_dropout").training.restore_best is True


def test_quick_preset_is_small_and_fast_to_train():
    quick = presets.get("quick_mnist")
    assert quick.training.dataset == "mnist"
    assert quick.training.validation_split == 0.0
    # Cheaper than the Chollet convnet it is meant to beat on time.
    assert quick.expected_params < presets.get("mnist_functional").expected_params
    # Two epochs with a one-cycle schedule pass 99% after about 1.5 epochs (bench/quick_preset.py).
    assert quick.training.epochs == 2
    assert quick.training.lr_schedule == "one_cycle"
    assert quick.expected_params == 18_506
    assert quick.reported_accuracy is not None and quick.reported_accuracy >= 0.99


def test_seed_presets_keep_a_constant_learning_rate():
    # The seed notebooks had no schedule; only the app's own quick preset uses one.
    for key, preset in presets.PRESETS.items():
        if key != "quick_mnist":
            assert preset.training.lr_schedule == "constant", key


def test_unknown_preset():
    with pytest.raises(ValueError, match="Unknown preset 'nope'"):
        presets.get("nope")
