"""ui.charts: a cached chart shape with the rows put in must be exactly the spec Altair would make."""

import numpy as np
import pytest

from cnn_core.engine.health import LayerOverTime
from ui import charts
from ui.components import filmstrip_view, live_training


def _curve_rows(count: int) -> list[dict]:
    rows = [{"epochs": i / 100, "loss": 1 / (1 + i), "curve": "training (running average)"} for i in range(count)]
    return rows + [{"epochs": e, "loss": 0.1 * e, "curve": "validation"} for e in (1, 2)]


def test_the_live_curve_spec_equals_altairs_own_for_the_same_rows_and_options():
    markers = ({"epochs": 0.5, "label": "learning rate → 0.01"}, {"epochs": 1.5, "label": "paused"})
    for rows in (_curve_rows(3), _curve_rows(1500)):
        expected = live_training.curve_chart(rows, "loss", position=1.0, markers=markers, overfitting=2).to_dict(
            validate=False)
        got = charts.spec(live_training.curve_chart, rows, metric="loss", position=1.0,
                          markers=tuple(tuple(sorted(m.items())) for m in markers), overfitting=2)
        assert got == expected
        assert got["data"]["values"] is rows


def test_the_health_heatmap_spec_equals_altairs_own_with_its_rows_inside_a_layer():
    rng = np.random.default_rng(0)
    layer = LayerOverTime(0, "conv", "conv2d", "relu", 8, (0, 50, 100), np.linspace(-1, 1, 5), rng.random((3, 4)),
                          np.linspace(0, 2, 5), rng.random((3, 4)))
    rows = filmstrip_view.heatmap_rows(layer, "weights")
    assert len(rows) == 12
    expected = filmstrip_view.heatmap_chart(rows, order=("0", "50", "100"), part="weights", current="50",
                                            span=(-1.0, 1.0)).to_dict(validate=False)
    assert filmstrip_view.heatmap(layer, "weights", 50) == expected


def test_a_shape_is_built_once_and_a_builder_that_drops_its_rows_is_refused():
    built = []

    def chart(rows, *, title):
        import altair as alt

        built.append(title)
        return alt.Chart(alt.Data(values=rows)).mark_point().encode(x="a:Q").properties(title=title)

    first = charts.spec(chart, [{"a": 1}], title="t")
    second = charts.spec(chart, [{"a": 2}, {"a": 3}], title="t")
    assert built == ["t"] and first["data"]["values"] == [{"a": 1}] and len(second["data"]["values"]) == 2

    def ignores_rows(rows):
        import altair as alt

        return alt.Chart(alt.Data(values=[{"a": 0}])).mark_point().encode(x="a:Q")

    with pytest.raises(ValueError, match="does not draw the rows"):
        charts.spec(ignores_rows, [{"a": 1}])
