"""The exported script and notebook: valid, the exact layers, and the script trains to a comparable accuracy."""

import json
import os
import subprocess
import sys

import nbformat
import pytest

from cnn_core.engine import datasets, training
from cnn_core.engine.datasets import Dataset
from cnn_core.engine.specs import (
    Conv2D,
    Dense,
    Dropout,
    Experiment,
    Flatten,
    MaxPool,
    ModelSpec,
    TrainingConfig,
    count_params,
)
from cnn_core.workshop import export, presets

SUBSET = 2000


def test_every_preset_exports_a_valid_notebook_and_a_compilable_script():
    for preset in presets.PRESETS.values():
        code = export.script(preset.experiment, preset.title)
        compile(code, f"{preset.key}.py", "exec")
        assert f"EPOCHS = {preset.training.epochs}" in code
        assert f"BATCH_SIZE = {preset.training.batch_size}" in code
        assert f"SEED = {preset.training.seed}" in code
        assert "model.fit(" in code and "keras.datasets." in code
        book = nbformat.reads(export.notebook(preset.experiment, preset.title), as_version=4)
        nbformat.validate(book)
        cells = [cell for cell in book.cells if cell.cell_type == "code"]
        # The notebook is the script's code, cell by cell.
        assert all(cell.source in code for cell in cells)
        assert book.cells[0].source.startswith(f"# {preset.title}")
    quick = export.script(presets.get("quick_mnist").experiment)
    assert "warmup_target=0.01" in quick and "CosineDecay" in quick


def test_the_exported_script_trains_the_same_model_to_a_comparable_accuracy(tmp_path):
    spec = ModelSpec((Conv2D(8, 3), MaxPool(2), Dropout(0.25), Flatten(), Dense(10, "softmax")), name="exported")
    config = TrainingConfig(epochs=1, batch_size=64, validation_split=0.1, seed=4, lr_schedule="one_cycle",
                            learning_rate=0.005, target_accuracy=0.999, restore_best=True,
                            target_loss=0.01)
    experiment = Experiment(spec, config)
    path = tmp_path / "run.py"
    path.write_text(export.script(experiment, "A test run"))
    environment = {**os.environ, "CNN_EXPORT_SUBSET": str(SUBSET), "TF_CPP_MIN_LOG_LEVEL": "3",
                   "CNN_DATA_NPZ": str(datasets.DATA_DIR / "mnist.npz")}
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=environment,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "callbacks=[StopAtAccuracy(), StopAtLoss(), KeepBest()]" in path.read_text()
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if line.startswith(("Parameters", "Test")))
    assert int(lines["Parameters"]) == count_params(spec) == 13_610
    exported_accuracy = float(lines["Test accuracy"])
    mnist = datasets.load("mnist")
    ours = training.train(Experiment(spec, config), dataset=Dataset(
        "mnist", mnist.x_train[:SUBSET], mnist.y_train[:SUBSET], mnist.x_test, mnist.y_test, mnist.class_names))
    assert exported_accuracy > 0.7
    assert abs(exported_accuracy - ours.test_accuracy) < 0.05
    assert json.dumps(export.sections(experiment))  # plain strings all the way


def test_a_subset_in_the_run_is_kept_in_the_export():
    experiment = Experiment(presets.get("quick_mnist").model, TrainingConfig(train_subset=5000))
    assert "x_train[:5000], y_train[:5000]" in export.script(experiment)
    with pytest.raises(ValueError):
        export.script(Experiment(ModelSpec((Dense(10, "softmax"), Conv2D(4, 3))), TrainingConfig()))


def test_the_exported_loss_callback_stops_at_or_below_the_target(capsys):
    import keras

    experiment = Experiment(presets.get("dense_baseline").model, TrainingConfig(dataset="fashion_mnist", epochs=10,
                                                                               target_loss=0.4))
    code = export.script(experiment)
    assert "callbacks=[StopAtLoss()]" in code
    # The class as the script defines it, run against the logs Keras hands a callback.
    start = code.index("class StopAtLoss(keras.callbacks.Callback):")
    namespace = {"keras": keras}
    exec(code[start:code.index("\nhistory = model.fit(", start)], namespace)
    callback = namespace["StopAtLoss"]()
    model = type("Model", (), {"stop_training": False})()
    callback.set_model(model)
    callback.on_epoch_end(0, {"loss": 0.41, "accuracy": 0.85})
    assert model.stop_training is False and capsys.readouterr().out == ""
    callback.on_epoch_end(1, {"loss": 0.4, "accuracy": 0.86})
    assert model.stop_training is True
    assert capsys.readouterr().out == "\nLoss is at or below 0.4 so cancelling training!\n"
    assert "StopAtLoss" not in export.script(presets.get("dense_baseline").experiment)
