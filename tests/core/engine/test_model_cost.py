import json
import random
import zipfile

import pytest

from cnn_core.engine.errors import UserError
from cnn_core.engine.model_cost import WrongInputShape, json_depth, model_cost
from cnn_core.engine.models import build_model

SHAPE = (28, 28, 1)


def saved_config(model, tmp_path) -> dict:
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def keras_models():
    import keras
    from keras import layers

    inputs = keras.Input(SHAPE)
    a = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    b = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(a)
    b = layers.Conv2D(8, 1)(b)
    merged = layers.Add()([a, b])
    c = layers.SeparableConv2D(6, 3, strides=2)(merged)
    c = layers.BatchNormalization()(c)
    c = layers.PReLU(shared_axes=[1, 2])(c)
    d = layers.ZeroPadding2D(((1, 0), (2, 1)))(c)
    d = layers.Cropping2D(1)(d)
    d = layers.UpSampling2D(2)(d)
    d = layers.AveragePooling2D(3, strides=2, padding="same")(d)
    e = layers.Concatenate()([d, layers.Conv2D(3, 1)(d)])
    e = layers.LayerNormalization()(e)
    e = layers.GlobalMaxPooling2D(keepdims=True)(e)
    e = layers.Reshape((-1,))(e)
    outputs = layers.Dense(10, activation="softmax")(layers.Dropout(0.1)(e))
    yield keras.Model(inputs, outputs)

    yield keras.Sequential([keras.Input(SHAPE), layers.Conv2D(4, 5, strides=2, dilation_rate=1), layers.ReLU(),
                            layers.MaxPooling2D(), layers.Flatten(), layers.Dense(32), layers.Dense(10)])
    # A Sequential inside a Functional model, and a grouped convolution.
    block = keras.Sequential([keras.Input((14, 14, 8)), layers.Conv2D(8, 3, groups=4, padding="same"),
                              layers.GlobalAveragePooling2D()])
    inputs = keras.Input(SHAPE)
    hidden = layers.Conv2D(8, 3, strides=2, padding="same")(inputs)
    yield keras.Model(inputs, layers.Dense(10)(block(hidden)))


def test_parameters_and_output_shape_match_keras(tmp_path):
    for model in keras_models():
        cost = model_cost(saved_config(model, tmp_path), SHAPE)
        assert cost.params == model.count_params(), model.name
        assert cost.output_shape == tuple(model.outputs[0].shape[1:])
        assert cost.weight_bytes == 4 * cost.params


def test_random_specs_match_keras(tmp_path):
    from tests.core.engine.test_specs import random_valid_spec

    rng = random.Random(11)
    for _ in range(8):
        model = build_model(random_valid_spec(rng))
        cost = model_cost(saved_config(model, tmp_path), SHAPE)
        assert cost.params == model.count_params()
        assert cost.output_shape == (10,)


def test_flops_of_a_small_convnet(tmp_path):
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input(SHAPE), layers.Conv2D(32, 3), layers.MaxPooling2D(),
                              layers.Flatten(), layers.Dense(10)])
    cost = model_cost(saved_config(model, tmp_path), SHAPE)
    conv = 2 * 3 * 3 * 1 * 32 * 26 * 26
    pool = 13 * 13 * 32 * 4
    dense = 2 * 13 * 13 * 32 * 10
    assert cost.flops == conv + pool + dense
    assert cost.layers == 4
    assert cost.largest_activation == 26 * 26 * 32


def sequential(*layers: dict) -> dict:
    return {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 28, 28, 1]}},
        *({"module": "keras.layers", "class_name": kind, "config": config} for kind, config in
          (next(iter(layer.items())) for layer in layers)),
    ]}}


def test_a_huge_dense_layer_is_costed_without_allocating():
    cost = model_cost(sequential({"Flatten": {}}, {"Dense": {"units": 650_000}}), SHAPE)
    assert cost.params == 784 * 650_000 + 650_000


def test_a_huge_kernel_is_costed():
    config = sequential({"Conv2D": {"filters": 1, "kernel_size": [12000, 12000], "padding": "same"}})
    assert model_cost(config, SHAPE).params == 12000 * 12000 + 1
    with pytest.raises(UserError, match="wider than"):
        model_cost(sequential({"Conv2D": {"filters": 1, "kernel_size": 12000}}), SHAPE)


def test_layer_count_is_capped_while_walking():
    layers = [{"Conv2D": {"filters": 1, "kernel_size": 1}}] * 300
    with pytest.raises(UserError, match="more than 100 layers"):
        model_cost(sequential(*layers), SHAPE, max_layers=100)


@pytest.mark.parametrize("activation", ["serialize", "get", {"class_name": "function", "config": "deserialize"}, 3])
def test_activations_must_be_activation_functions(activation):
    with pytest.raises(UserError, match="not an activation function"):
        model_cost(sequential({"Dense": {"units": 10, "activation": activation}}), SHAPE)
    assert model_cost(sequential({"Dense": {"units": 10, "activation": "relu"}}), SHAPE).params


def test_build_config_must_agree_with_the_graph():
    config = sequential({"Flatten": {}}, {"Dense": {"units": 10}})
    config["config"]["layers"][2]["build_config"] = {"input_shape": [None, 5_000_000]}
    with pytest.raises(UserError, match="built for inputs of shape"):
        model_cost(config, SHAPE)


def test_other_layers_and_inputs_are_refused():
    with pytest.raises(UserError, match="LSTM layer"):
        model_cost(sequential({"LSTM": {"units": 4}}), SHAPE)
    config = sequential({"Flatten": {}})
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, 32, 32, 1]
    with pytest.raises(WrongInputShape) as caught:
        model_cost(config, SHAPE)
    assert caught.value.shape == (32, 32, 1)
    with pytest.raises(UserError, match="does not describe a Keras model"):
        model_cost({"class_name": "Lambda"}, SHAPE)


def test_json_depth_needs_no_recursion():
    deep = "[" * 100_000 + "]" * 100_000
    assert json_depth(deep) == 100_000
    assert json_depth('{"a": "[[[[", "b": [1, {"c": "\\"]"}]}') == 3
    assert json_depth(b"[]") == 1 and json_depth("3") == 0
