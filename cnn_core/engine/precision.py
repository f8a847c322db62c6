"""Which number format training computes in: bfloat16 where the CPU does it natively, float32 elsewhere.

Keras' ``mixed_bfloat16`` keeps the weights in float32 and computes each layer in bfloat16. On a
CPU with AVX-512 BF16 or AMX instructions oneDNN runs those layers much faster (Chollet's
convnet trained 1.77× faster here at the same test accuracy, BENCHMARKS.md); on a CPU without
them bfloat16 is emulated and slower, so it is never chosen there. The classifier's last Dense
layer and the loss stay float32, so the softmax and cross-entropy keep their precision.

The policy is given to each layer when the model is built, never set globally: Keras' global
dtype policy is process-wide state that a run in one thread would change under a prediction or
another run in the next.
"""

from __future__ import annotations

import sys
from pathlib import Path

PRECISIONS = ("float32", "bfloat16")
# Setting values: "auto" uses bfloat16 only where the CPU has native bfloat16 instructions.
MODES = ("auto", "on", "off")
# /proc/cpuinfo flags of the instructions that make bfloat16 matrix products fast.
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The flags every processor in a /proc/cpuinfo text reports (an empty set when there are none)."""
    per_cpu = []
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        # x86 says "flags"; arm64 says "Features".
        if key.strip() in ("flags", "Features"):
            per_cpu.append(frozenset(value.split()))
    # A flag counts only when every core has it: a run may be scheduled on any of them.
    return frozenset.intersection(*per_cpu) if per_cpu else frozenset()


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU has AMX or AVX-512 BF16; reads /proc/cpuinfo (Linux) unless given its text."""
    if cpuinfo is None:
        if not sys.platform.startswith("linux"):
            # macOS and Windows have no /proc/cpuinfo; the safe default there is float32.
            return False
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:
            return False
    return bool(cpu_flags(cpuinfo) & BF16_FLAGS)


def resolve(mode: str, cpuinfo: str | None = None) -> str:
    """The precision a setting asks for: "bfloat16" or "float32".

    ``auto`` is bfloat16 on a CPU with native bfloat16 instructions and float32 elsewhere;
    ``on`` forces bfloat16 (slower on CPUs without them), ``off`` forces float32.
    """
    if mode not in MODES:
        raise ValueError(f"The bfloat16 setting must be one of {', '.join(MODES)}, got {mode!r}.")
    if mode == "off":
        return "float32"
    if mode == "on":
        return "bfloat16"
    return "bfloat16" if cpu_has_bf16(cpuinfo) else "float32"


def check(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")


def layer_dtype(precision: str):
    """The `dtype` argument for a hidden layer: a mixed policy for bfloat16, Keras' default otherwise."""
    check(precision)
    if precision == "float32":
        return None
    import keras

    return keras.DTypePolicy("mixed_bfloat16")


def model_precision(model) -> str:
    """"bfloat16" when any layer of a Keras model computes in bfloat16, else "float32"."""
    return "bfloat16" if any(layer.compute_dtype == "bfloat16" for layer in model.layers) else "float32"
