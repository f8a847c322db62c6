"""Saving one name from several threads or processes: every read is a whole bundle, old or new."""

import os
import subprocess
import sys
import textwrap
import threading

from cnn_core.engine.specs import Dense, Experiment, Flatten, ModelSpec, TrainingConfig
from cnn_core.service.persistence import ModelBundle, load_bundle, save_bundle
from tests.conftest import REPO_ROOT

SPEC = ModelSpec((Flatten(), Dense(10, "softmax")))


def marked_bundle(marker: int) -> ModelBundle:
    """A bundle whose model and description both carry `marker`, so a mix of two saves shows."""
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")], name=f"m{marker}")
    return ModelBundle(model, Experiment(SPEC, TrainingConfig(epochs=marker)), {"marker": marker}, "shared")


def check(path) -> int:
    loaded = load_bundle(path)
    marker = loaded.metrics["marker"]
    assert loaded.model.name == f"m{marker}" and loaded.experiment.training.epochs == marker
    return marker


def test_threads_saving_one_name_never_leave_a_mix(tmp_path):
    path = save_bundle(marked_bundle(1), tmp_path)
    errors: list[BaseException] = []

    def saver(marker):
        try:
            for _ in range(3):
                save_bundle(marked_bundle(marker), tmp_path)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    savers = [threading.Thread(target=saver, args=(m,)) for m in (2, 3)]
    for thread in savers:
        thread.start()
    seen = set()
    while any(t.is_alive() for t in savers):
        seen.add(check(path))
    for thread in savers:
        thread.join()
    assert errors == []
    assert check(path) in (2, 3) and seen
    assert [p.name for p in tmp_path.iterdir()] == ["shared.keras"]


SAVER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from tests.core.service.test_persistence_races import marked_bundle
    from cnn_core.service.persistence import save_bundle
    folder, marker, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    bundles = [marked_bundle(marker), marked_bundle(marker + 1)]
    for i in range(rounds):
        save_bundle(bundles[i % 2], folder)
""")


def test_two_processes_saving_one_name_never_leave_a_mix(tmp_path):
    path = save_bundle(marked_bundle(1), tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "CUDA_VISIBLE_DEVICES": ""}
    savers = [subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path), str(m), "4"], cwd=REPO_ROOT, env=env)
              for m in (10, 20)]
    reads = 0
    while any(s.poll() is None for s in savers):
        check(path)
        reads += 1
    assert [s.wait() for s in savers] == [0, 0]
    assert check(path) in (10, 11, 20, 21)
    assert reads > 0
    assert [p.name for p in tmp_path.iterdir()] == ["shared.keras"]
