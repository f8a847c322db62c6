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
