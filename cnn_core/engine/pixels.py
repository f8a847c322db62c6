"""The one uint8 → float scaling every image takes on its way to a model."""

from __future__ import annotations

import numpy as np


def to_unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 pixels (0–255) → float32 in [0, 1]; booleans → 0/1; anything else → float32 as it is."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32, copy=False)
