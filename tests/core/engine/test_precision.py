"""bfloat16 detection from /proc/cpuinfo, and what each setting resolves to."""

import pytest

from cnn_core.engine import precision

# Trimmed from real machines: a Sapphire Rapids Xeon (AMX), a Cooper Lake-style Xeon (AVX-512 BF16 only),
# a Skylake Xeon (AVX-512 without BF16), a laptop without AVX-512, and an arm64 board.
SAPPHIRE_RAPIDS = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8
"""
AVX512_BF16 = """processor\t: 0
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16

processor\t: 1
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16
"""
SKYLAKE = """processor\t: 0
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni
"""
LAPTOP = """processor\t: 0
flags\t\t: fpu sse2 avx avx2 fma
"""
ARM64 = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid bf16
"""
# Only one of two cores reports the flag (a hybrid CPU): a run may land on either, so no.
ONE_CORE_OF_TWO = """processor\t: 0
flags\t\t: fpu avx2 avx512_bf16

processor\t: 1
flags\t\t: fpu avx2
"""


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [(SAPPHIRE_RAPIDS, True), (AVX512_BF16, True), (SKYLAKE, False), (LAPTOP, False), (ARM64, False),
     (ONE_CORE_OF_TWO, False), ("", False)],
)
def test_bf16_support_is_read_from_the_cpu_flags(cpuinfo, expected):
    assert precision.cpu_has_bf16(cpuinfo) is expected


def test_flags_are_those_every_core_has():
    assert precision.cpu_flags(AVX512_BF16) == {"fpu", "sse2", "avx2", "avx512f", "avx512_vnni", "avx512_bf16"}
    assert precision.cpu_flags(ONE_CORE_OF_TWO) == {"fpu", "avx2"}
    assert "asimd" in precision.cpu_flags(ARM64)


@pytest.mark.parametrize(
    ("mode", "cpuinfo", "expected"),
    [("auto", SAPPHIRE_RAPIDS, "bfloat16"), ("auto", AVX512_BF16, "bfloat16"), ("auto", SKYLAKE, "float32"),
     ("auto", LAPTOP, "float32"), ("off", SAPPHIRE_RAPIDS, "float32"), ("on", LAPTOP, "bfloat16")],
)
def test_each_setting_resolves_to_a_precision(mode, cpuinfo, expected):
    assert precision.resolve(mode, cpuinfo) == expected


def test_unknown_setting_and_precision_are_refused():
    with pytest.raises(ValueError, match="auto, on, off"):
        precision.resolve("fast", LAPTOP)
    with pytest.raises(ValueError, match="float32, bfloat16"):
        precision.check("float16")


def test_no_cpuinfo_means_float32(monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "missing")
    monkeypatch.setattr(precision.sys, "platform", "linux")
    assert precision.cpu_has_bf16() is False
    # macOS has no /proc/cpuinfo at all: never bfloat16 there, even if the file happened to exist.
    (tmp_path / "cpuinfo").write_text(SAPPHIRE_RAPIDS)
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "cpuinfo")
    assert precision.cpu_has_bf16() is True
    monkeypatch.setattr(precision.sys, "platform", "darwin")
    assert precision.cpu_has_bf16() is False
    assert precision.resolve("auto") == "float32"
