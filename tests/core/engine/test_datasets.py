import shutil

import numpy as np
import pytest

from cnn_core.engine import datasets, registry


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_shapes_dtypes_and_ranges(name):
    data = datasets.load(name)
    assert data.x_train.shape == (60_000, 28, 28, 1)
    assert data.x_test.shape == (10_000, 28, 28, 1)
    assert data.x_train.dtype == np.float32 and data.x_test.dtype == np.float32
    assert data.y_train.shape == (60_000,) and data.y_test.shape == (10_000,)
    assert data.y_train.dtype == np.int64
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    assert set(np.unique(data.y_test)) == set(range(10))
    assert len(data.class_names) == 10


def test_mnist_is_the_original_order():
    data = datasets.load("mnist")
    assert data.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert data.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(data.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # Pixels were uint8, so every value is a multiple of 1/255.
    assert np.allclose(data.x_test[0] * 255, np.round(data.x_test[0] * 255), atol=1e-4)


def test_class_names():
    assert datasets.load("mnist").class_names == tuple("0123456789")
    fashion = datasets.load("fashion_mnist")
    assert fashion.class_names[0] == "T-shirt/top" and fashion.class_names[9] == "Ankle boot"
    assert fashion.title == "Fashion-MNIST"


def test_cached_and_read_only():
    first = datasets.load("mnist")
    assert datasets.load("mnist") is first
    assert datasets.load("mnist", datasets.DATA_DIR) is first
    assert datasets.load("mnist", str(datasets.DATA_DIR) + "/") is first
    with pytest.raises(ValueError, match="read-only"):
        first.x_train[0, 0, 0, 0] = 1.0


def test_unknown_dataset():
    with pytest.raises(ValueError, match="Unknown dataset 'cifar10'"):
        datasets.load("cifar10")


def test_corrupted_file_names_the_file(tmp_path):
    source = datasets.DATA_DIR / "mnist.npz"
    broken = tmp_path / "mnist.npz"
    shutil.copyfile(source, broken)
    with broken.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00corrupted\x00")
    with pytest.raises(ValueError, match=r"mnist\.npz is corrupted"):
        datasets.load("mnist", tmp_path)


def test_to_model_input_converts_uint8_and_adds_channel():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    converted = datasets.to_model_input(images)
    assert converted.shape == (1, 2, 2, 1) and converted.dtype == np.float32
    assert np.allclose(converted[0, :, :, 0], [[0.0, 1.0], [0.2, 0.4]])
    floats = np.zeros((3, 28, 28, 1), dtype=np.float64)
    assert datasets.to_model_input(floats).shape == (3, 28, 28, 1)


def test_a_run_gets_a_private_slice_equal_to_the_shared_arrays():
    shared = datasets.load("fashion_mnist")
    one_run = datasets.load_for_one_run("fashion_mnist", train_images=1_000)
    assert one_run.x_train.shape == (1_000, 28, 28, 1)
    np.testing.assert_array_equal(one_run.x_train, shared.x_train[:1_000])
    np.testing.assert_array_equal(one_run.y_train, shared.y_train[:1_000])
    np.testing.assert_array_equal(one_run.x_test, shared.x_test)
    assert not np.shares_memory(one_run.x_test, shared.x_test)
    assert len(datasets.load_for_one_run("mnist").x_train) == registry.get("mnist").train_size


def test_a_worker_unpacks_a_bundled_file_once_and_every_run_gets_its_own_writable_copy(monkeypatch):
    reads = []
    original = datasets._read_arrays
    monkeypatch.setattr(datasets, "_read_arrays", lambda name, *a, **k: reads.append(name) or original(name, *a, **k))
    datasets._bundled_arrays.cache_clear()
    datasets.keep_bundled()
    bundled = [name for name in registry.names() if registry.get(name).bundled]
    assert sorted(reads) == sorted(bundled) == ["fashion_mnist", "mnist"]
    first = datasets.load_for_one_run("mnist", train_images=100)
    second = datasets.load_for_one_run("mnist", train_images=200)
    assert sorted(reads) == ["fashion_mnist", "mnist"]  # no file read for either run
    assert first.x_train.flags.writeable and not np.shares_memory(first.x_test, second.x_test)
    first.x_test[:] = 0  # one run scribbling on its copy changes nothing for the next
    np.testing.assert_array_equal(datasets.load_for_one_run("mnist", 1).x_test, second.x_test)
    assert second.x_test.max() == 1.0 and len(second.x_train) == 200


def test_the_test_slice_reads_no_training_images():
    import numpy as np

    full = datasets.load("mnist")
    part = datasets.load_test("mnist", 50)
    assert part.x_train.shape == (0, 28, 28, 1) and len(part.y_train) == 0
    assert np.array_equal(part.x_test, full.x_test[:50]) and np.array_equal(part.y_test, full.y_test[:50])
    assert part.class_names == full.class_names and not part.x_test.flags.writeable
    labels = datasets.load_test_labels("fashion_mnist")
    assert np.array_equal(labels, datasets.load("fashion_mnist").y_test) and labels.dtype == np.int64


def test_samples_labels_and_class_means_without_the_whole_set():
    full = datasets.load("mnist")
    head = datasets.load_train("mnist", 500)
    assert head.x_train.shape == (500, 28, 28, 1) and head.x_test.shape == (0, 28, 28, 1)
    assert np.array_equal(head.x_train, full.x_train[:500]) and not head.x_train.flags.writeable
    labels = datasets.load_labels("mnist", "train")
    assert np.array_equal(labels, full.y_train) and labels.dtype == np.int64
    means = datasets.class_means("mnist", "train")
    assert means.shape == (10, 28, 28) and not means.flags.writeable
    np.testing.assert_allclose(means[3], full.x_train[full.y_train == 3, ..., 0].mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(datasets.class_means("mnist", "test")[7],
                               full.x_test[full.y_test == 7, ..., 0].mean(axis=0), atol=1e-4)
    with pytest.raises(ValueError, match="'train' or 'test'"):
        datasets.load_labels("mnist", "validation")


def test_a_registered_dataset_is_read_as_it_is_now():
    """A learner's classes change with every drawing: `load` may not keep (or hand back) an older version."""
    def register(size):
        arrays = (np.full((size, 28, 28), 255, np.uint8), np.arange(size) % 2, np.zeros((2, 28, 28), np.uint8),
                  np.array([0, 1]))
        registry.register(registry.DatasetInfo(name="own-now", title="t", class_names=("a", "b"),
                                               train_size=size, test_size=2, arrays=lambda: arrays))

    try:
        register(4)
        assert len(datasets.load("own-now").x_train) == 4
        register(6)
        loaded = datasets.load("own-now")
        assert len(loaded.x_train) == 6 and loaded.x_train.max() == 1.0 and not loaded.x_train.flags.writeable
    finally:
        registry.unregister("own-now")
