"""The run panel's filmstrip slider, pause/resume, learning rate, continue training, export and inside-the-model views."""

from __future__ import annotations

import json

from cnn_core.engine.filmstrip import Filmstrip
from tests.app.conftest import run_until, texts
from tests.app.test_train import app_state, configure_small_run, job_ended


def _charts(at):
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def _rules_at(spec) -> list[float]:
    """x positions of the filmstrip rule in one curve chart's spec."""
    found = []
    for layer in spec.get("layer", []):
        tooltip = layer.get("encoding", {}).get("tooltip", [])
        if any(item.get("title") == "filmstrip at epoch" for item in tooltip if isinstance(item, dict)):
            data = layer["data"]
            rows = data["values"] if "values" in data else spec["datasets"][data["name"]]
            found += [row["epochs"] for row in rows]
    return found


def _x_title(spec) -> str | None:
    layers = spec.get("layer") or [spec]
    return layers[0].get("encoding", {}).get("x", {}).get("title")


def _rows(spec, layer: int) -> list[dict]:
    data = spec["layer"][layer]["data"]
    return data["values"] if "values" in data else spec["datasets"][data["name"]]


def test_after_a_run_the_slider_scrubs_the_filmstrip_and_the_curves_follow(open_page):
    at = configure_small_run(open_page("train"), subset=1200, epochs=2)
    at.button(key="train-run-start").click().run()
    job = app_state(at).training_job
    run_until(at, job_ended)
    at.run()
    assert not at.exception
    assert job.state == "finished", job.error

    slider = at.select_slider(key="train-run-frame")
    frames = job.filmstrip.frames
    assert len(slider.options) == len(frames) >= 8
    # The newest frame is shown first, marked at the end of the run on both curves.
    assert slider.value == slider.options[-1]
    assert [_rules_at(spec) for spec in _charts(at)[:2]] == [[2.0], [2.0]]
    slider.set_value(slider.options[2]).run()
    assert not at.exception
    assert [_rules_at(spec) for spec in _charts(at)[:2]] == [[frames[2].epochs]] * 2
    assert any(f"at {slider.options[2]}" in str(image.proto) for image in at.get("image"))
    # Health across the filmstrip: per hidden layer a weight and a probe-activation heatmap, a row per point,
    # the slider's point outlined; the diagnoses are those at the slider's point.
    heatmaps = [spec for spec in _charts(at) if _x_title(spec) in ("weight value", "outputs on the probe")]
    layers = [picture.name for picture in (*frames[2].maps, *frames[2].units)]
    assert len(heatmaps) == 2 * len(layers) >= 6
    for spec in heatmaps:
        assert len({row["step"] for row in _rows(spec, 0)}) == len(frames)
        assert [row["step"] for row in _rows(spec, 1)] == [f"{frames[2].step:,}"]
    assert any(alert.value.startswith(f"At step {frames[2].step:,}: ") for alert in (*at.warning, *at.success))

    # Stored with the run in the workspace, frame for frame.
    state = app_state(at)
    key = state.workspace.run_keys()[-1]
    stored = Filmstrip.from_bytes(state.workspace.filmstrip(key))
    assert [frame.step for frame in stored.frames] == [frame.step for frame in frames]

    # Export and continue training.
    downloads = {button.proto.label for button in at.get("download_button")}
    assert {"Download as script", "Download as notebook"} <= downloads
    at.number_input(key="train-run-more-epochs").set_value(1).run()
    at.button(key="train-run-continue").click().run()
    more = app_state(at).training_job
    assert more is not job and more.initial_weights is not None and more.experiment.training.epochs == 1
    run_until(at, job_ended)
    at.run()
    assert more.state == "finished", more.error
    assert not at.exception


def test_inside_the_model_shows_the_embedding_map_and_the_health_check(open_page):
    at = configure_small_run(open_page("train"), subset=600, epochs=1)
    at.button(key="train-run-start").click().run()
    run_until(at, job_ended)
    at.run()
    at.button(key="train-run-embed").click().run()
    assert not at.exception
    titles = [spec.get("title") for spec in _charts(at)]
    assert "before training" in titles and "after training" in titles
    assert sum("Class separation" in caption.value for caption in at.caption) == 2
    at.button(key="train-run-health").click().run()
    assert not at.exception
    assert "layer 1" in texts(at).lower()


def test_pause_resume_and_a_new_learning_rate_from_the_live_view(open_page):
    at = configure_small_run(open_page("train"), subset=20_000, epochs=5)
    at.button(key="train-run-start").click().run()
    job = app_state(at).training_job
    run_until(at, lambda at: job.progress.snapshot().step > 0)
    at.button(key="train-run-pause").click().run()
    assert job.paused
    run_until(at, lambda at: job.progress.snapshot().paused)
    at.run()
    assert "Paused at epoch" in str([p.proto for p in at.get("progress")])
    assert at.button(key="train-run-resume")
    at.number_input(key="train-run-lr").set_value(0.0003).run()
    at.button(key="train-run-lr-apply").click().run()
    at.button(key="train-run-resume").click().run()
    run_until(at, lambda at: any(m["label"] == "learning rate → 0.0003" for m in job.progress.snapshot().markers))
    assert not job.paused
    at.button(key="train-run-stop").click().run()
    run_until(at, job_ended)
    at.run()
    assert job.state == "stopped" and not at.exception
