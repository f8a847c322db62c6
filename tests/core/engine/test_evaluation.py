import numpy as np
import pytest

from cnn_core.engine.datasets import Dataset
from cnn_core.engine.evaluation import evaluate, mistakes, most_confident_mistakes

CLASSES = ("a", "b", "c")
# Twelve test images whose "pixel" [0, 0, 0, 0] encodes the image's index, so the fake model can
# look up the answer it was told to give for each image.
LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
PREDICTED = np.array([0, 0, 1, 2, 1, 1, 0, 2, 2, 0, 0, 2])
CONFIDENCE = np.array([0.9, 0.8, 0.6, 0.7, 0.95, 0.5, 0.99, 0.9, 0.6, 0.55, 0.8, 0.4])


def make_dataset() -> Dataset:
    x_test = np.zeros((len(LABELS), 28, 28, 1), np.float32)
    x_test[:, 0, 0, 0] = np.arange(len(LABELS))
    empty = np.zeros((0, 28, 28, 1), np.float32)
    return Dataset("mnist", empty, np.zeros(0, np.int64), x_test, LABELS, CLASSES)


def fake_predict(images: np.ndarray) -> np.ndarray:
    index = images[:, 0, 0, 0].astype(int)
    probabilities = np.full((len(index), 3), 0.0, np.float32)
    for row, i in enumerate(index):
        rest = (1 - CONFIDENCE[i]) / 2
        probabilities[row] = rest
        probabilities[row, PREDICTED[i]] = CONFIDENCE[i]
    return probabilities


def test_exact_scores_and_confusion():
    calls = []

    def counting_predict(images):
        calls.append(len(images))
        return fake_predict(images)

    evaluation = evaluate(counting_predict, make_dataset(), batch_size=5)
    assert calls == [5, 5, 2]
    assert evaluation.predictions.tolist() == PREDICTED.tolist()
    assert evaluation.labels.tolist() == LABELS.tolist()
    assert evaluation.accuracy == pytest.approx(7 / 12)
    assert evaluation.confusion.tolist() == [
        [2, 1, 1],
        [1, 2, 0],
        [2, 0, 3],
    ]
    assert evaluation.per_class_accuracy.tolist() == pytest.approx([2 / 4, 2 / 3, 3 / 5])
    assert evaluation.class_names == CLASSES
    assert evaluation.probabilities.shape == (12, 3)
    assert evaluation.confidences.tolist() == pytest.approx(CONFIDENCE.tolist())


def test_limit_uses_the_first_images():
    evaluation = evaluate(fake_predict, make_dataset(), limit=4)
    assert evaluation.labels.tolist() == [0, 0, 0, 0]
    assert evaluation.accuracy == pytest.approx(0.5)
    # Classes absent from the slice have no accuracy rather than a misleading 0.
    assert evaluation.per_class_accuracy[0] == pytest.approx(0.5)
    assert np.isnan(evaluation.per_class_accuracy[1:]).all()


def test_mistakes_sorted_by_confidence():
    evaluation = evaluate(fake_predict, make_dataset())
    assert mistakes(evaluation, 2, 0).tolist() == [10, 9]
    assert mistakes(evaluation, 0, 2).tolist() == [3]
    assert mistakes(evaluation, 1, 2).tolist() == []
    assert mistakes(evaluation, 2, 2).tolist() == [7, 8, 11]


def test_most_confident_mistakes():
    evaluation = evaluate(fake_predict, make_dataset())
    assert most_confident_mistakes(evaluation, 3).tolist() == [6, 10, 3]
    assert most_confident_mistakes(evaluation, 100).tolist() == [6, 10, 3, 2, 9]
    assert most_confident_mistakes(evaluation, 0).tolist() == []


def test_bad_arguments():
    evaluation = evaluate(fake_predict, make_dataset())
    with pytest.raises(ValueError, match="true_class"):
        mistakes(evaluation, 3, 0)
    with pytest.raises(ValueError, match="predicted_class"):
        mistakes(evaluation, 0, -1)
    with pytest.raises(ValueError, match="n must be"):
        most_confident_mistakes(evaluation, -2)
    with pytest.raises(ValueError, match="limit"):
        evaluate(fake_predict, make_dataset(), limit=0)
    with pytest.raises(ValueError, match="one probability per class"):
        evaluate(lambda images: np.zeros((len(images), 2)), make_dataset())


def test_a_time_budget_scores_the_images_done_so_far():
    from cnn_core.engine import evaluation

    now = [0.0]
    batches: list[int] = []
    slept: list[float] = []

    def slow_predict(images):
        batches.append(len(images))
        now[0] += 1.0  # every batch takes a second
        return fake_predict(images)

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    data = make_dataset()
    result = evaluation.evaluate(slow_predict, data, batch_size=2, time_budget_s=3.0, pause_fraction=0.5,
                                 clock=lambda: now[0], sleep=sleep)
    # Batches end at 1.5 s and 3.0 s of wall time (1 s of work + 0.5 s of pause each): the third never starts.
    assert batches == [2, 2] and slept == [0.5, 0.5]
    assert not result.complete and result.requested == len(data.y_test) and len(result.labels) == 4
    assert result.confusion.sum() == 4
    whole = evaluation.evaluate(fake_predict, data, batch_size=2)
    assert whole.complete and len(whole.labels) == len(data.y_test)


def test_batch_size_follows_the_cost_per_image():
    from cnn_core.engine.evaluation import batch_size_for

    assert batch_size_for(100e6) == 64
    assert batch_size_for(1e6) == 1000
    assert batch_size_for(3e9) == 16 and batch_size_for(None) == 16


def test_probabilities_computed_elsewhere_score_the_same():
    from cnn_core.engine.evaluation import from_probabilities

    dataset = make_dataset()
    computed = evaluate(fake_predict, dataset)
    given = from_probabilities(fake_predict(dataset.x_test), LABELS, CLASSES)
    assert given.accuracy == pytest.approx(7 / 12)
    np.testing.assert_array_equal(given.confusion, computed.confusion)
    np.testing.assert_array_equal(given.predictions, computed.predictions)
    assert given.class_names == CLASSES and given.complete
    with pytest.raises(ValueError, match=r"Expected probabilities of shape \(12, 3\)"):
        from_probabilities(np.zeros((12, 4), np.float32), LABELS, CLASSES)
