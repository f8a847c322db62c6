"""The filmstrip of a run: a slider over its frames, the first layer's filters and the probe's feature maps.

Shown under the curves while a run trains (the live fragment redraws it) and after it ends. The
slider follows the newest frame until the learner moves it; the curves mark where it stands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from ui import images

if TYPE_CHECKING:
    from cnn_core.engine.filmstrip import Filmstrip, Frame

MAX_MAPS = 16


def frame_label(frame: Frame) -> str:
    return f"step {frame.step:,} · epoch {frame.epochs:.2f}"


def choose(strip: Filmstrip, key: str) -> Frame | None:
    """The slider; returns the chosen frame (the newest one until the learner picks another)."""
    frames = strip.frames
    if not frames:
        return None
    labels = [frame_label(frame) for frame in frames]
    slider_key, seen_key = f"{key}-frame", f"{key}-frames-seen"
    seen = st.session_state.get(seen_key, 0)
    current = st.session_state.get(slider_key)
    # Follow the newest frame while the slider sits on the newest one the learner has seen.
    if current not in labels or (seen and current == labels[min(seen, len(labels)) - 1]):
        st.session_state[slider_key] = labels[-1]
    st.session_state[seen_key] = len(labels)
    if len(labels) == 1:
        st.caption(f"Filmstrip: {labels[0]} (more frames come as training goes on).")
        return frames[0]
    chosen = st.select_slider(
        "Filmstrip: scrub through training", options=labels, key=slider_key,
        help="Frames taken before the first step, after steps 10, 30, 100, 300… and at every epoch's end. "
        "The curves above mark where you are.",
    )
    return frames[labels.index(chosen)]


def filter_mosaic(kernel: np.ndarray) -> np.ndarray:
    """The first layer's kernels (k, k, in, out) as tiles; with colour input, the mean over channels."""
    stack = np.asarray(kernel, dtype=np.float32).mean(axis=2)
    return images.mosaic(stack, max_channels=64, columns=8, tile=36, gap=3)


def show_frame(strip: Filmstrip, frame: Frame) -> None:
    """The filters and feature maps of one frame, with the probe image they come from."""
    probe_col, filters_col = st.columns([1, 3])
    with probe_col:
        if strip.probe is not None:
            st.image(images.png(images.enlarge(np.asarray(strip.probe, np.float32), 112, frame=True)),
                     caption="probe image")
    with filters_col:
        if frame.filters is None:
            st.caption("This model has no convolution, so there are no filters to watch.")
        else:
            k = frame.filters.shape[0]
            st.image(images.png(filter_mosaic(frame.filters)),
                     caption=f"first layer's {frame.filters.shape[-1]} filters ({k}×{k}), at {frame_label(frame)}")
    if frame.weight_histograms:
        from ui.components.inside_model import histogram_chart

        with st.expander("Weight histograms at this frame"):
            columns = st.columns(min(3, len(frame.weight_histograms)))
            for number, (name, counts, edges) in enumerate(frame.weight_histograms):
                columns[number % len(columns)].altair_chart(
                    histogram_chart(counts, edges, f"{name} weights", "#4c72b0"), height=140)
    for picture in frame.maps:
        count = picture.array.shape[-1]
        shown = min(count, MAX_MAPS)
        st.image(images.png(images.mosaic(picture.array.astype(np.float32), max_channels=MAX_MAPS, columns=8, tile=48)),
                 caption=f"{picture.description}: {shown} of {count} feature maps of the probe image")


def show(strip: Filmstrip, key: str) -> Frame | None:
    """Slider plus pictures; returns the chosen frame so the caller can mark it on the curves."""
    frame = choose(strip, key)
    if frame is not None:
        show_frame(strip, frame)
    return frame
