"""scripts/llamacpp_build.py: the portable llama.cpp build's flags and wheel key (nothing is compiled here)."""

from __future__ import annotations

import importlib.util
import itertools
import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "llamacpp_build.py"
spec = importlib.util.spec_from_file_location("llamacpp_build", SCRIPT)
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)

x86_only = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 feature detection")


def test_every_feature_set_is_portable_and_never_amx() -> None:
    for n in range(len(build.FEATURES) + 1):
        for features in itertools.islice(itertools.combinations(build.FEATURES, n), 20):
            args = build.cmake_args("portable", list(features)).split()
            assert "-DGGML_NATIVE=OFF" in args
            assert {f"-DGGML_{f}=OFF" for f in build.NEVER} <= set(args)
            assert not any(a.startswith("-DGGML_AMX") and a.endswith("=ON") for a in args)
            assert {a for a in args if a.endswith("=ON")} == {f"-DGGML_{f}=ON" for f in features}


def test_the_key_names_the_feature_set_and_changes_with_it() -> None:
    avx2 = ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2"]
    avx512 = [*avx2, "AVX512"]
    key2 = build.build_key("portable", avx2, build.cmake_args("portable", avx2))
    key512 = build.build_key("portable", avx512, build.cmake_args("portable", avx512))
    assert key2 != key512
    assert key2.startswith(f"llama-cpp-python-{build.VERSION}-") and ".avx2.bmi2-" in key2
    assert "avx512" in key512 and "avx512" not in key2
    assert "native" in build.build_key("native", [], build.cmake_args("native", []))


@x86_only
def test_detected_features_are_ones_the_kernel_reports() -> None:
    """cpu_features.c (CPUID and XCR0) never reports a feature that /proc/cpuinfo lacks."""
    flags = set(Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0].split())
    names = {"SSE42": {"sse4_2"}, "AVX": {"avx"}, "F16C": {"f16c"}, "FMA": {"fma"}, "AVX2": {"avx2"},
             "BMI2": {"bmi2"}, "AVX_VNNI": {"avx_vnni"}, "AVX512_VBMI": {"avx512vbmi"},
             "AVX512_VNNI": {"avx512_vnni"}, "AVX512_BF16": {"avx512_bf16"},
             "AVX512": {"avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"}}
    detected = build.detect_features()
    assert "AVX2" in detected or "avx2" not in flags
    for feature in detected:
        assert names[feature] <= flags, feature


def test_print_key_and_forbidden_features_through_the_command_line() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--print-key", "--features", "avx,avx2,fma"],
                         capture_output=True, text=True, check=True).stdout
    record = json.loads(out)
    assert "-avx.avx2.fma-" in record["key"] and Path(record["wheelhouse"]).name == record["key"]
    assert "-DGGML_AVX2=ON" in record["cmake_args"] and "-DGGML_AMX_INT8=OFF" in record["cmake_args"]
    bad = subprocess.run([sys.executable, str(SCRIPT), "--print-key", "--features", "AVX2,AMX_INT8"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "AMX_INT8" in bad.stderr
