"""Altair charts as Vega-Lite specs, cheaply enough to redraw every second for every watcher.

Building an Altair chart validates every data row and `to_dict` validates the whole spec against
the Vega-Lite schema: for a 2,000-point training curve that was ~200 ms to build and ~150 ms to
convert, twice a second per watching learner (the live view), which is what made strokes wait
during a workshop's drain. The chart's shape only changes when its options do, so it is built once
per set of options with no rows, kept as JSON, and each redraw only puts the rows in.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Hashable
from typing import Any

# Stands for the rows while the chart's shape is built and cached; replaced wherever Altair put it.
_PLACEHOLDER = {"__rows__": True}


@functools.lru_cache(maxsize=512)
def _template(build: Callable[..., Any], options: tuple[tuple[str, Hashable], ...]) -> str:
    chart = build([_PLACEHOLDER], **dict(options))
    return json.dumps(chart.to_dict(validate=False))


def _fill(node: Any, rows: list[dict]) -> int:
    """Put `rows` where the placeholder's data is (top level or in a layer); how many places."""
    found = 0
    if isinstance(node, dict):
        for key, value in node.items():
            if value == [_PLACEHOLDER]:
                node[key] = rows
                found += 1
            else:
                found += _fill(value, rows)
    elif isinstance(node, list):
        for item in node:
            found += _fill(item, rows)
    return found


def spec(build: Callable[..., Any], rows: list[dict], **options: Hashable) -> dict:
    """The Vega-Lite spec of `build(rows, **options)`, an Altair chart drawn from `rows`.

    `options` must be hashable (tuples, not lists); the chart built from them is cached.
    """
    result = json.loads(_template(build, tuple(sorted(options.items()))))
    if not _fill(result, rows):
        raise ValueError(f"{build.__name__} does not draw the rows it is given.")
    return result
