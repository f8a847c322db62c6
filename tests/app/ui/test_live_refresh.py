"""The live view refreshes fast only while a started run has drawn no point yet."""

from types import SimpleNamespace

from ui.components import live_training


def _job(state: str, points: int):
    snapshot = SimpleNamespace(batch_loss=[0.5] * points)
    return SimpleNamespace(state=state, progress=SimpleNamespace(snapshot=lambda: snapshot))


def test_the_refresh_period_is_a_quarter_second_only_until_the_first_point(monkeypatch):
    periods = []

    def fragment(*, run_every):
        periods.append(run_every)
        return lambda function: (lambda: None)  # record the period; draw nothing

    monkeypatch.setattr(live_training.st, "fragment", fragment)
    for state, points in (("running", 0), ("running", 3), ("queued", 0)):
        live_training.show(_job(state, points), key="k")
    assert periods == [live_training.FIRST_POINT_REFRESH_S, live_training.REFRESH_S, live_training.REFRESH_S]
    assert live_training.FIRST_POINT_REFRESH_S <= 0.25 < live_training.REFRESH_S


def test_a_run_that_leaves_the_queue_keeps_the_slow_period_without_a_full_rerun():
    queued_then_started = _job("running", 0)
    snapshot = queued_then_started.progress.snapshot()
    # Drawn while queued (slow period): starting is no reason to rerun the whole page.
    assert not live_training.needs_full_rerun(queued_then_started, snapshot, fast=False)
    # Drawn while awaiting its first point (fast period): still waiting, nothing to do.
    assert not live_training.needs_full_rerun(queued_then_started, snapshot, fast=True)
    # The first point came while fast: back to the slow period, through a full rerun.
    with_points = _job("running", 3)
    assert live_training.needs_full_rerun(with_points, with_points.progress.snapshot(), fast=True)
    assert not live_training.needs_full_rerun(with_points, with_points.progress.snapshot(), fast=False)
    # Ended, in either period: the page shows the result.
    for state in ("finished", "failed", "stopped"):
        ended = _job(state, 3)
        assert live_training.needs_full_rerun(ended, ended.progress.snapshot(), fast=False)
