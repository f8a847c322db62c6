"""Fast predictions for one image at a time, as the drawing page needs on every stroke.

`keras.Model.predict` sets up a data pipeline on every call, which costs tens of milliseconds
for a single image. A `tf.function` with a fixed input signature is traced once and then
runs the model graph directly: about a millisecond per image on a CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

# Large batches are split so memory stays bounded (an evaluation of 10,000 images, say). 256 rather
# than 1024: a chunk's feature maps then stay in cache (a 'same'-padded 32-filter layer holds 100 KB
# per image), which made the 10,000-image test pass of conv32_64_64 1.6x faster on 2 cores and
# cost none of the presets anything beyond noise (BENCHMARKS.md, "Training speed").
MAX_CHUNK = 256


class Predictor:
    """Wraps a trained classifier once; safe to share between sessions and threads.

    `predict(image)` takes one (H, W) or (H, W, C) image and returns the class probabilities;
    `predict_batch(images)` takes (N, H, W) or (N, H, W, C). Pixels are floats in [0, 1] (uint8
    0–255 is scaled, as the datasets do).
    """

    def __init__(self, model: keras.Model):
        import tensorflow as tf

        input_shape = tuple(model.input_shape)
        if len(input_shape) != 4 or any(v is None for v in input_shape[1:]):
            raise ValueError(
                f"Predictor needs a model over fixed-size images (batch, height, width, channels), got {input_shape}."
            )
        self.model = model
        self.input_shape: tuple[int, int, int] = tuple(int(v) for v in input_shape[1:])
        self.num_classes = int(model.output_shape[-1])

        # One signature with a free batch size: traced once, whatever the batch.
        @tf.function(
            input_signature=[tf.TensorSpec((None, *self.input_shape), tf.float32)], reduce_retracing=True
        )
        def forward(images):
            return model(images, training=False)

        self._forward = forward
        # Trace here, before any other thread can see this object: no two sessions ever race to build
        # the graph, and the first prediction is as fast as the rest.
        self._concrete = forward.get_concrete_function()

    def _prepare(self, images: np.ndarray, batched: bool) -> np.ndarray:
        if not isinstance(images, np.ndarray):
            images = np.asarray(images)
        height, width, channels = self.input_shape
        expected = f"(N, {height}, {width}) or (N, {height}, {width}, {channels})" if batched else (
            f"({height}, {width}) or ({height}, {width}, {channels})"
        )
        what = "a batch of images" if batched else "one image"
        if not (np.issubdtype(images.dtype, np.number) or images.dtype == np.bool_):
            raise ValueError(f"Expected {what} of numbers, got dtype {images.dtype}.")
        if images.dtype == np.uint8:
            images = images.astype(np.float32) / 255.0
        else:
            images = images.astype(np.float32, copy=False)
        lead = 1 if batched else 0
        if images.ndim == lead + 2 and channels == 1:
            images = images[..., np.newaxis]
        if images.ndim != lead + 3 or images.shape[lead:] != self.input_shape:
            raise ValueError(f"Expected {what} shaped {expected}, got {images.shape}.")
        return images if batched else images[np.newaxis]

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities for one image: a (num_classes,) float32 array summing to 1."""
        batch = self._prepare(image, batched=False)
        return self._concrete(batch).numpy()[0].astype(np.float32, copy=False)

    def predict_batch(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch: (N, num_classes) float32."""
        batch = self._prepare(images, batched=True)
        if len(batch) == 0:
            return np.zeros((0, self.num_classes), dtype=np.float32)
        chunks = [
            self._concrete(batch[start : start + MAX_CHUNK]).numpy() for start in range(0, len(batch), MAX_CHUNK)
        ]
        return np.concatenate(chunks).astype(np.float32, copy=False)
