"""Own classes in the workspace and the registry, and how each job runner trains on them."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_core.engine import datasets, registry
from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, MaxPool, ModelSpec, TrainingConfig
from cnn_core.service import own_classes
from cnn_core.service.queue import JobQueue
from cnn_core.service.settings import Settings
from cnn_core.service.workspace import MemoryWorkspaceStore, Workspace, new_id


def shapes(per_class: int = 10) -> dict[str, np.ndarray]:
    collection = {}
    for index, name in enumerate(("circle", "triangle", "square")):
        images = np.zeros((per_class, 28, 28), np.uint8)
        images[:, 4 + 6 * index:10 + 6 * index, 6:22] = 255
        collection[name] = images
    return collection


@pytest.fixture
def workspace():
    space = Workspace(MemoryWorkspaceStore(), new_id())
    yield space
    registry.unregister(own_classes.dataset_name(space))


def test_saved_classes_are_registered_under_a_name_that_hides_the_workspace_id(workspace):
    info = own_classes.save(workspace, shapes())
    name = own_classes.dataset_name(workspace)
    assert info is not None and info.name == name and workspace.id not in name
    assert registry.get(name).class_names == ("circle", "triangle", "square")
    assert (info.train_size, info.test_size) == (3 * 8 * 4, 3 * 2)
    loaded = datasets.load(name)
    assert loaded.x_train.shape == (96, 28, 28, 1) and loaded.x_train.max() == 1.0
    assert np.bincount(loaded.y_test).tolist() == [2, 2, 2]
    # A second session of the same workspace (a reload) finds them again.
    assert own_classes.load(workspace).keys() == shapes().keys()
    assert own_classes.register(workspace) is info


def test_classes_that_cannot_train_are_kept_but_not_registered(workspace):
    own_classes.save(workspace, shapes())
    one_empty = shapes() | {"square": np.zeros((0, 28, 28), np.uint8)}
    assert own_classes.save(workspace, one_empty) is None
    assert own_classes.dataset_name(workspace) not in registry.names()
    assert own_classes.counts(own_classes.load(workspace)) == {"circle": 10, "triangle": 10, "square": 0}


def _experiment(dataset: str) -> Experiment:
    model = ModelSpec((Conv2D(4, 3), MaxPool(2), Flatten(), Dense(3, "softmax")), name="tiny-own", num_classes=3)
    return Experiment(model, TrainingConfig(dataset=dataset, epochs=1, batch_size=16, validation_split=0.2))


def test_the_process_runner_ships_own_classes_to_its_worker(workspace):
    # The worker is a fresh process: it has never seen this registration, so the arrays must travel.
    own_classes.save(workspace, shapes())
    queue = JobQueue(Settings(job_runner="process", max_concurrent_jobs=1))
    try:
        job = queue.submit(_experiment(own_classes.dataset_name(workspace)), owner="own")
        assert job.wait(timeout=300)
        assert job.state == "finished", job.error
        result = job.take_result()
        assert result.model.output_shape == (None, 3)
        assert result.test_accuracy is not None
    finally:
        queue.shutdown(timeout=60)


def test_the_redis_runner_sends_own_classes_once_under_their_hash(workspace, redis_url):
    import numpy as np

    from cnn_core.service import redis_queue
    from cnn_core.service.redis_queue import RedisJobQueue

    own_classes.save(workspace, shapes())
    name = own_classes.dataset_name(workspace)
    # Database 8 has no workers: the runs stay queued, and what they need waits in Redis.
    queue = RedisJobQueue(Settings(redis_url=redis_url.replace("/0", "/8")))
    try:
        first = queue.submit(_experiment(name), owner="own")
        second = queue.submit(_experiment(name), owner="own-too")
        (key,) = queue.redis.keys(redis_queue.dataset_key("*"))
        digest = key.decode().rsplit(":", 1)[1]
        class_names, arrays = redis_queue.dataset_from_bytes(queue.redis.get(key), digest)
        expected = registry.get(name).arrays()
        assert class_names == registry.get(name).class_names
        assert all(np.array_equal(a, b) for a, b in zip(arrays, expected, strict=True))
        for job in (first, second):
            job.stop()
    finally:
        queue.shutdown()
