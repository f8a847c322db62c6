"""Which pixels mattered: occlusion and saliency maps laid over the 28×28 input, for two classes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st

from ui import images
from ui.components import explain_cache
from ui.text import plain

FOR_RGB = np.array([214, 39, 40], dtype=np.float64)  # argued for the class
AGAINST_RGB = np.array([31, 119, 180], dtype=np.float64)  # argued against it


def overlay(image: np.ndarray, heat: np.ndarray, size: int = 168) -> np.ndarray:
    """The image in grey with `heat` on top: red where positive, blue where negative, stronger = more opaque."""
    grey = np.asarray(image, dtype=np.float64).reshape(heat.shape)
    base = np.repeat((0.15 + 0.55 * grey)[..., np.newaxis] * 255, 3, axis=2)
    heat = np.asarray(heat, dtype=np.float64)
    limit = float(np.abs(heat).max())
    strength = np.clip(np.abs(heat) / limit, 0, 1)[..., np.newaxis] if limit > 0 else np.zeros((*heat.shape, 1))
    colour = np.where(heat[..., np.newaxis] >= 0, FOR_RGB, AGAINST_RGB)
    mixed = base * (1 - 0.85 * strength) + colour * 0.85 * strength
    picture = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    factor = max(1, size // heat.shape[0])
    return np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1)


def show(name: str, model, image: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]) -> None:
    """Occlusion and saliency for the top class and the runner-up, side by side."""
    order = np.argsort(probabilities)[::-1]
    top, runner_up = int(order[0]), int(order[1])
    st.subheader("Which pixels mattered")
    st.caption(
        "**Occlusion**: a 6×6 black square slides over the image; red where hiding the pixels lowered the "
        "class's probability (they argued for it), blue where hiding them raised it. **Saliency** "
        "(SmoothGrad × input): how much each pixel's ink pushed the class's score up (red) or down (blue)."
    )
    columns = st.columns(2, gap="large")
    for column, target in zip(columns, (top, runner_up), strict=True):
        occlusion = explain_cache.occlusion(name, model, image, target)
        saliency = explain_cache.saliency(name, model, image, target)
        with column:
            label = plain(class_names[target])  # a class of your own is named by you
            st.markdown(f"**what argued for {label}** ({probabilities[target]:.1%})"
                        + (" · the answer" if target == top else " · the runner-up"))
            left, right = st.columns(2)
            drop = float(occlusion.max())
            left.image(images.png(overlay(image, occlusion)), output_format="PNG",
                       caption=f"occlusion: hiding pixels here cost up to {drop:.1%}")
            right.image(images.png(overlay(image, saliency)), output_format="PNG",
                        caption="saliency: red pushed the score up")
