import base64
import json
import zlib
from dataclasses import replace

import numpy as np
import pytest

from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, MaxPool, ModelSpec, TrainingConfig
from cnn_core.workshop import presets, sharing
from cnn_core.workshop.sharing import LOCKABLE_FIELDS, from_query_params, to_query_params


def _pack(payload, raw_text=None):
    """Encode arbitrary JSON (or raw text) the way a link would, to build hostile links."""
    text = raw_text if raw_text is not None else json.dumps(payload)
    return {"cfg": base64.urlsafe_b64encode(zlib.compress(text.encode())).rstrip(b"=").decode()}


def _valid_payload():
    experiment = presets.get("two_conv64").experiment
    return {"v": 1, "model": experiment.model.to_dict(), "training": experiment.training.to_dict()}


@pytest.mark.parametrize("key", list(presets.PRESETS))
def test_every_preset_round_trips(key):
    experiment = presets.get(key).experiment
    params = to_query_params(experiment)
    assert set(params) == {"cfg"}
    assert from_query_params(params) == (experiment, frozenset())


def test_round_trip_keeps_locked_fields_and_every_training_setting():
    experiment = Experiment(
        ModelSpec((Conv2D(8, 5, strides=2, padding="same", activation="tanh"), MaxPool(2), Flatten(),
                   Dense(10, "softmax")), name="mine"),
        TrainingConfig(dataset="fashion_mnist", optimizer="sgd", learning_rate=0.05, batch_size=17, epochs=3,
                       validation_split=0.2, seed=42, train_subset=1234, target_accuracy=0.9, restore_best=True,
                       lr_schedule="cosine", target_loss=0.35),
    )
    params = to_query_params(experiment, locked={"epochs", "layers", "dataset", "lr_schedule"})
    # The lock list follows LOCKABLE_FIELDS' order, so equal lock sets give equal links.
    assert params["lock"] == "layers,dataset,lr_schedule,epochs"
    restored, locked = from_query_params(params)
    assert restored == experiment
    assert locked == frozenset({"layers", "dataset", "epochs", "lr_schedule"})
    assert restored.training.target_loss == 0.35


def test_a_locked_target_loss_travels_and_a_bad_one_is_refused():
    experiment = presets.get("dense_baseline").experiment
    experiment = replace(experiment, training=replace(experiment.training, target_loss=0.4))
    params = to_query_params(experiment, locked={"target_loss", "target_accuracy"})
    assert params["lock"] == "target_accuracy,target_loss"
    assert from_query_params(params) == (experiment, frozenset({"target_accuracy", "target_loss"}))
    assert sharing.lock_labels({"target_loss"}) == ["Stop at loss ≤"]
    payload = _valid_payload()
    payload["training"]["target_loss"] = 1e9
    with pytest.raises(ValueError, match="Target loss 1000000000.0 must be a number from 0.001 to 5"):
        from_query_params(_pack(payload))


def test_links_are_compact_and_url_safe():
    params = to_query_params(presets.get("functional_dropout").experiment, locked=LOCKABLE_FIELDS)
    assert len(params["cfg"]) < 500
    assert set(params["cfg"]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_list_values_and_extra_parameters_are_accepted():
    experiment = presets.get("dense_baseline").experiment
    params = to_query_params(experiment, locked={"optimizer"})
    messy = {"cfg": ["garbage", params["cfg"]], "lock": [params["lock"]], "page": "train"}
    assert from_query_params(messy) == (experiment, frozenset({"optimizer"}))


def test_sharing_refuses_unknown_lock_names_and_non_experiments():
    with pytest.raises(ValueError, match="Cannot lock seed; lockable fields are layers"):
        to_query_params(presets.get("dense_baseline").experiment, locked={"seed"})
    with pytest.raises(ValueError, match="Only an Experiment"):
        to_query_params({"model": {}})


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "no 'cfg' parameter"),
        ({"cfg": ""}, "configuration is empty"),
        ({"cfg": 12}, "not text"),
        ({"cfg": "!!!!"}, "not base64"),
        ({"cfg": "aGVsbG8"}, "cannot decompress"),
        ({"cfg": "A" * 7000}, "more than the 6,000"),
        (_pack(None, raw_text="{not json"), "not valid JSON"),
        (_pack(None, raw_text="[" * 20000 + "]" * 20000), "unpacks to more than 32 KiB"),
        (_pack(None, raw_text="[" * 5000 + "]" * 5000), "not valid JSON"),
        (_pack([1, 2, 3]), "not an experiment"),
        (_pack({"model": {"layers": []}}), "format None"),
        (_pack({"v": 2, "model": {"layers": []}}), "format 2"),
        (_pack({"v": 1, "model": "conv"}), "no model with a list of layers"),
        (_pack({"v": 1, "model": {"layers": {"a": 1}}}), "no model with a list of layers"),
        (_pack({**_valid_payload(), "training": [1]}), "not a set of named values"),
        (_pack({**_valid_payload(), "training": {"epochs": 5, "mood": "happy"}}), "Unknown training settings"),
        (_pack({**_valid_payload(), "training": {"epochs": "five"}}), "epochs must be a whole number"),
        (_pack({**_valid_payload(), "training": {"learning_rate": float("nan")}}), "Learning rate nan"),
        (_pack({"v": 1, "model": {"layers": [{"type": "conv2d", "filters": None}]}}), "filters must be a whole number"),
        (_pack({"v": 1, "model": {"layers": [{"type": "transformer"}]}}), "Unknown layer type 'transformer'"),
        (_pack({"v": 1, "model": {"layers": ["conv"]}}), "must be an object"),
        (_pack({"v": 1, "model": {"layers": [], "input_shape": [None, 1]}}), "input shape must be a list"),
        (_pack({"v": 1, "model": {"layers": [], "input_shape": "28x28"}}), "input shape must be a list"),
        (_pack({"v": 1, "model": {"layers": [], "num_classes": 1e400}}), "number of classes"),
        (_pack({"v": 1, "model": {"layers": [], "name": "x" * 500}}), "at most 100 characters"),
        (_pack({"v": 1, "model": {"layers": [{"type": "dense", "units": 10, "activation": "softmax"}]}}), "image-shaped input"),
        (_pack({"v": 1, "model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 10**9,
                                                                  "activation": "softmax"}]}}), "units is"),
        ({"cfg": to_query_params(presets.get("dense_baseline").experiment)["cfg"], "lock": "layers,password"},
         "Cannot lock password"),
    ],
)
def test_hostile_links_raise_value_error_with_a_reason(params, expected):
    with pytest.raises(ValueError) as caught:
        from_query_params(params)
    assert expected in str(caught.value)


def test_truncated_link_is_reported_as_cut_off():
    cfg = to_query_params(presets.get("functional_dropout").experiment)["cfg"]
    with pytest.raises(ValueError, match="cut off|cannot decompress"):
        from_query_params({"cfg": cfg[: len(cfg) // 2]})


def test_zip_bomb_is_refused_without_inflating_it():
    bomb = zlib.compress(b" " * 4_000_000, 9)
    cfg = base64.urlsafe_b64encode(bomb).decode()
    assert len(cfg) < sharing.MAX_ENCODED_CHARS
    with pytest.raises(ValueError, match="more than 32 KiB"):
        from_query_params({"cfg": cfg})


def test_restore_best_must_be_true_or_false():
    payload = _valid_payload()
    payload["training"] = {**payload["training"], "restore_best": "yes", "validation_split": 0.1}
    with pytest.raises(ValueError, match="restore_best"):
        from_query_params(_pack(payload))


def test_has_shared_experiment():
    assert sharing.has_shared_experiment({"cfg": "anything"})
    assert not sharing.has_shared_experiment({"page": "train"})
    assert not sharing.has_shared_experiment(None)


def test_a_changed_preset_gives_a_different_link():
    experiment = presets.get("dense_baseline").experiment
    changed = replace(experiment, training=replace(experiment.training, epochs=4))
    assert to_query_params(experiment) != to_query_params(changed)


SECRET = b"a server secret for the tests"


def test_a_signed_link_opens_and_any_edit_of_it_is_refused():
    experiment = presets.get("dense_baseline").experiment
    params = to_query_params(experiment, locked={"layers", "learning_rate"}, secret=SECRET)
    assert set(params) == {"cfg", "lock", "sig"}
    assert from_query_params(params, secret=SECRET) == (experiment, frozenset({"layers", "learning_rate"}))
    other_cfg = to_query_params(presets.get("two_conv64").experiment)["cfg"]
    edits = {
        "lock removed": {k: v for k, v in params.items() if k != "lock"},
        "lock shortened": {**params, "lock": "learning_rate"},
        "lock emptied": {**params, "lock": ""},
        "signature removed": {k: v for k, v in params.items() if k != "sig"},
        "signature garbled": {**params, "sig": params["sig"][:-2] + "AA"},
        "signature not ascii": {**params, "sig": "é" * 43},
        "config swapped": {**params, "cfg": other_cfg},
        "lock and signature removed": {"cfg": params["cfg"]},
    }
    for what, edited in edits.items():
        with pytest.raises(ValueError, match="link") as caught:
            from_query_params(edited, secret=SECRET)
        assert "again" in str(caught.value), what
    # Another server's key does not open it either.
    with pytest.raises(ValueError, match="changed after it was made"):
        from_query_params(params, secret=b"another server")


def test_the_instructors_own_link_is_signed_without_locks():
    experiment = presets.get("dense_baseline").experiment
    own = to_query_params(experiment, secret=SECRET)
    assert set(own) == {"cfg", "sig"}
    assert from_query_params(own, secret=SECRET) == (experiment, frozenset())


def test_restore_best_is_lockable_and_labels_follow_the_form():
    params = to_query_params(presets.get("dense_baseline").experiment, locked={"restore_best", "epochs"})
    assert params["lock"] == "epochs,restore_best"
    assert set(sharing.LOCK_LABELS) == set(LOCKABLE_FIELDS)
    assert sharing.lock_labels({"restore_best", "learning_rate"}) == ["Learning rate", "Keep the best validation epoch"]


def test_link_params_keeps_only_the_links_own_parameters():
    params = {"cfg": "c", "lock": "epochs", "sig": "s", "ws": "someone's workspace", "other": ["1", "2"]}
    assert sharing.link_params(params) == {"cfg": "c", "lock": "epochs", "sig": "s"}


def test_a_link_on_own_classes_opens_only_for_their_owner_and_carries_the_rest():
    from cnn_core.engine import registry
    from cnn_core.engine.errors import UserError

    name = "own-sharingtest"
    arrays = (np.zeros((20, 28, 28), np.uint8), np.arange(20) % 3, np.zeros((6, 28, 28), np.uint8), np.arange(6) % 3)
    registry.register(registry.DatasetInfo(name=name, title="Your classes (a, b, c)", class_names=("a", "b", "c"),
                                           train_size=20, test_size=6, arrays=lambda: arrays))
    try:
        layers = (Conv2D(4, 3), Flatten(), Dense(3, "softmax"))
        experiment = Experiment(ModelSpec(layers, name="x", num_classes=3),
                                TrainingConfig(dataset=name, epochs=2, train_subset=None))
        params = to_query_params(experiment, {"layers", "dataset"})
        assert from_query_params(params, own_datasets=(name,)) == (experiment, frozenset({"layers", "dataset"}))
        with pytest.raises(sharing.DataNotShared) as refused:
            from_query_params(params)
        assert isinstance(refused.value, UserError) and "never the pictures" in str(refused.value)
        assert refused.value.experiment == experiment and refused.value.locked == {"layers", "dataset"}
        moved = sharing.for_dataset(refused.value.experiment, "mnist")
        assert moved.model.layers == (Conv2D(4, 3), Flatten(), Dense(10, "softmax")) and moved.model.num_classes == 10
        assert moved.training == replace(experiment.training, dataset="mnist")
    finally:
        registry.unregister(name)
    # Still refused (with the same offer) once nobody has the classes registered, e.g. after a restart.
    with pytest.raises(sharing.DataNotShared):
        from_query_params(params, own_datasets=(name,))
    # A broken architecture is refused as such, not offered.
    bad = Experiment(ModelSpec((Flatten(), Dense(5, "relu")), name="bad", num_classes=3),
                     TrainingConfig(dataset=name, epochs=2))
    with pytest.raises(UserError) as broken:
        from_query_params(to_query_params(bad))
    assert not isinstance(broken.value, sharing.DataNotShared)
