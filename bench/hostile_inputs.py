"""Hostile inputs: each one built here, fed to the app's own entry point, timed and weighed.

The red-team pass of issue #12 found small files that cost gigabytes or minutes: a 45 KB
`.keras` asking for a 650,000-unit Dense layer (+9.9 GB), a 12000×12000 Conv2D kernel (+7.1 GB),
three 11×11 convolutions of 128 filters (Evaluate: ~9 CPU minutes), 300 Conv2D layers (12–18 s to
load), a config.json nested 100,000 deep (RecursionError), a 470 KB PNG of 121 Mpx (+4.6 GB) as an
upload or inside a canvas message. Each is rebuilt here (configs written as JSON, no Keras
needed to make them) and must be refused with a UserError in ≤ 2 s and ≤ 300 MB of extra memory
(peak RSS over the process's RSS before the attempt, sampled every 2 ms).

    python -m bench.hostile_inputs           # prints the table
"""

from __future__ import annotations

import base64
import io
import json
import struct
import threading
import time
import zipfile
import zlib
from collections.abc import Callable

GOAL_S = 2.0
GOAL_MB = 300.0


def _layer(kind: str, name: str, **config) -> dict:
    return {"module": "keras.layers", "class_name": kind, "config": {"name": name, "trainable": True, **config},
            "registered_name": None}


def sequential_config(*layers: dict) -> dict:
    """A Keras 3 Sequential config.json for 28×28×1 inputs, written by hand."""
    return {
        "module": "keras", "class_name": "Sequential",
        "config": {"name": "hostile", "trainable": True, "layers": [
            _layer("InputLayer", "input", batch_shape=[None, 28, 28, 1], dtype="float32"), *layers]},
        "build_config": {"input_shape": [None, 28, 28, 1]},
    }


def keras_file(config: dict | str) -> bytes:
    """A .keras zip holding only this config (no weights: the checks must refuse it before they matter)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        archive.writestr("config.json", config if isinstance(config, str) else json.dumps(config))
    return buffer.getvalue()


def _softmax_head(*layers: dict) -> dict:
    return sequential_config(*layers, _layer("Dense", "out", units=10, activation="softmax"))


def hostile_models() -> dict[str, bytes]:
    """name → .keras bytes, one per attack on the upload path."""
    conv = {"strides": [1, 1], "padding": "same", "activation": "relu", "use_bias": True}
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps(_softmax_head(_layer("Flatten", "flat"))))
        archive.writestr("model.weights.h5", bytes(300_000_000))
    return {
        "Dense of 650,000 units": keras_file(_softmax_head(_layer("Flatten", "flat"),
                                                           _layer("Dense", "huge", units=650_000))),
        "Conv2D 12000×12000 kernel": keras_file(_softmax_head(
            _layer("Conv2D", "huge", filters=1, kernel_size=[12000, 12000], **conv), _layer("Flatten", "flat"))),
        "three Conv2D 128×11×11": keras_file(_softmax_head(
            *(_layer("Conv2D", f"c{i}", filters=128, kernel_size=[11, 11], **conv) for i in range(3)),
            _layer("GlobalAveragePooling2D", "gap"))),
        "three Conv2D 64×11×11 (under the parameter cap)": keras_file(_softmax_head(
            *(_layer("Conv2D", f"c{i}", filters=64, kernel_size=[11, 11], **conv) for i in range(3)),
            _layer("GlobalAveragePooling2D", "gap"))),
        "300 Conv2D layers": keras_file(_softmax_head(
            *(_layer("Conv2D", f"c{i}", filters=4, kernel_size=[3, 3], **conv) for i in range(300)),
            _layer("GlobalAveragePooling2D", "gap"))),
        "config.json nested 100,000 deep": keras_file("[" * 100_000 + "]" * 100_000),
        "activation keras.activations.serialize": keras_file(sequential_config(
            _layer("Flatten", "flat"), _layer("Dense", "out", units=10, activation="serialize"))),
        "build_config asking for a bigger layer": keras_file(_with_build_config(_softmax_head(_layer("Flatten", "f")))),
        "zip bomb (300 MB of zeros)": bomb.getvalue(),
    }


def _with_build_config(config: dict) -> dict:
    # Keras builds each layer from its build_config while loading, before the graph is traced.
    config["config"]["layers"][-1]["build_config"] = {"input_shape": [None, 50_000_000]}
    return config


def huge_png(width: int = 11_000, height: int = 11_000) -> bytes:
    """A black grayscale PNG of width × height, written row by row (a few hundred KB, never in memory whole)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then black pixels
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def hostile_images() -> dict[str, tuple[str, object]]:
    """name → (entry point, payload) for the image and canvas paths."""
    png = huge_png()
    return {
        f"PNG of 121 Mpx ({len(png) // 1000} KB) uploaded": ("upload", png),
        "canvas data URL carrying that PNG": ("canvas", "data:image/png;base64," + base64.b64encode(png).decode()),
        "canvas data URL of 6 MB": ("canvas", "data:image/png;base64," + "A" * 6_000_000),
        "canvas value that is not a data URL": ("canvas", {"objects": []}),
    }


class PeakMemory:
    """Peak RSS above the starting RSS while the block runs, sampled by a thread."""

    def __init__(self, interval_s: float = 0.002):
        import psutil

        self.process = psutil.Process()
        self.interval_s = interval_s

    def __enter__(self):
        self.start = self.process.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval_s)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        self.extra_mb = (self.peak - self.start) / 2**20
        return False


def attempt(action: Callable[[], object]) -> dict:
    """Run one attack; it is handled when it raises UserError within the time and memory goals."""
    from cnn_core.engine.errors import UserError

    outcome, message = "accepted", ""
    with PeakMemory() as memory:
        begun = time.perf_counter()
        try:
            action()
        except UserError as error:
            outcome, message = "refused", str(error)
        except Exception as error:  # noqa: BLE001 - a crash is what this benchmark looks for
            outcome, message = f"crashed ({type(error).__name__})", str(error)[:200]
        seconds = time.perf_counter() - begun
    handled = outcome == "refused" and seconds <= GOAL_S and memory.extra_mb <= GOAL_MB
    return {"outcome": outcome, "seconds": round(seconds, 3), "extra_mb": round(memory.extra_mb, 1),
            "handled": handled, "message": message[:160]}


def run(quick: bool) -> dict:
    import keras  # noqa: F401 - loaded first, so its import is not counted against the first file

    from cnn_core.service import persistence
    from cnn_core.service.settings import host_profile
    from ui.components import canvas, image_source

    settings = host_profile()
    limits = persistence.UploadLimits(max_params=settings.max_params, max_mflops=settings.max_upload_mflops,
                                      max_layers=settings.max_upload_layers)
    rows = {}
    for name, data in hostile_models().items():
        rows[name] = attempt(lambda data=data: persistence.load_upload(
            data, "hostile.keras", "mnist", max_bytes=settings.max_upload_bytes, limits=limits))
        rows[name]["file_kb"] = round(len(data) / 1000, 1)
    for name, (entry, payload) in hostile_images().items():
        if entry == "upload":
            rows[name] = attempt(lambda p=payload: image_source.decode_upload(p, settings.max_image_bytes))
        else:
            rows[name] = attempt(lambda p=payload: canvas.decode_data_url(p))
    handled = sum(row["handled"] for row in rows.values())
    worst_s = max(row["seconds"] for row in rows.values())
    worst_mb = max(row["extra_mb"] for row in rows.values())
    return {
        "notes": "Each attack fed to the app's own entry point (`persistence.load_upload` with the host profile's "
                 "limits, `image_source.decode_upload`, `canvas.decode_data_url`); refused = a UserError sentence. "
                 "Peak RSS sampled every 2 ms over the RSS before the attempt.",
        **{name: f"{row['outcome']} in {row['seconds']:.3f} s, +{row['extra_mb']:.0f} MB"
           + (f" ({row['file_kb']:g} KB file)" if "file_kb" in row else "") for name, row in rows.items()},
        "attacks": rows,
        "tried": len(rows),
        "handled": handled,
        "slowest_s": worst_s,
        "most_extra_mb": worst_mb,
        "summary": [{
            "what": "hostile uploads, canvas values and images refused",
            "value": f"{handled} of {len(rows)}; slowest {worst_s:.2f} s, at most +{worst_mb:.0f} MB",
            "compared_with": "before: +9.9 GB (Dense 650k), +4.6 GB (121 Mpx PNG), RecursionError",
            "goal": f"all, each ≤ {GOAL_S:g} s and ≤ +{GOAL_MB:g} MB",
            "met": handled == len(rows),
        }],
    }


if __name__ == "__main__":
    result = run(quick=False)
    for name, row in result["attacks"].items():
        print(f"{name:45s} {row['outcome']:10s} {row['seconds']:7.3f} s {row['extra_mb']:8.1f} MB  {row['message'][:70]}")
    print(f"handled {result['handled']} of {result['tried']}")
