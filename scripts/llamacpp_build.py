"""Install llama-cpp-python[server] built for this machine's CPU, never with ``-march=native`` or AMX.

Run with the interpreter of the target virtual environment (``make install-server`` runs
``.venv/bin/python scripts/llamacpp_build.py``)::

    python scripts/llamacpp_build.py                  # make sure the portable build is installed
    python scripts/llamacpp_build.py --if-installed   # only replace an installed build of another kind
    python scripts/llamacpp_build.py --print-key      # the build key and CMAKE_ARGS, nothing installed
    python scripts/llamacpp_build.py --rebuild        # compile again (drops this key's wheel) and reinstall
    python scripts/llamacpp_build.py --variant native # llama-cpp-python's default (benchmarks only)
    python scripts/llamacpp_build.py --features AVX,AVX2,FMA,F16C,BMI2,SSE42   # an explicit feature set

The portable build enables exactly the x86-64 features that ``scripts/cpu_features.c`` reports: CPUID says
the CPU has them *and* XCR0 says the OS lets a process use them. AMX is always off: a virtual machine can
advertise AMX and still fault at the first ``ldtilecfg``. The wheel is built once, with
``--no-cache-dir`` (pip's wheel cache is keyed by the sdist, not by ``CMAKE_ARGS``, so it could hand back a
native wheel), into ``<wheelhouse>/<key>/``; the key names the version and the feature set and ends with a
hash of everything that shapes the binary. The wheelhouse is ``$PONDER_WHEELHOUSE``, else
``${XDG_CACHE_HOME:-~/.cache}/ponder/wheels``: shared by every clone and venv of this user, and it
survives ``make clean``. The installed build is recorded in ``<venv>/.ponder-server`` (the key and the
SHA-256 of the installed CPU backend library); a venv whose record is missing or differs -- an old native
build, a manual ``pip install`` -- gets the wheel of the current key reinstalled.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VERSION = "0.3.36"
DIST = "llama_cpp_python"
#: Bump when the recipe changes in a way that changes the binary (it is part of the key).
RECIPE = 1
FEATURES = ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX_VNNI",
            "AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16")
NEVER = ("AMX_TILE", "AMX_INT8", "AMX_BF16")
HERE = Path(__file__).resolve().parent
STAMP = Path(sys.prefix) / ".ponder-server"


def detect_features() -> list[str]:
    """The GGML x86 features this CPU and OS allow, by compiling and running ``cpu_features.c``."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        sys.exit("llama-cpp-python: no C compiler (cc) found; building llama.cpp needs one "
                 "(Debian: apt-get install build-essential cmake)")
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "cpu_features"
        subprocess.run([cc, "-O1", "-o", str(exe), str(HERE / "cpu_features.c")], check=True)
        out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return [f for f in FEATURES if f in out.split()]


def cmake_args(variant: str, features: list[str]) -> str:
    """The ``CMAKE_ARGS`` of a build: every x86 feature switched explicitly, AMX always off."""
    if variant == "native":
        return ""  # llama-cpp-python's default: GGML_NATIVE=ON (-march=native)
    if platform.machine() not in ("x86_64", "AMD64"):
        return "-DGGML_NATIVE=OFF"
    switches = [f"-DGGML_{f}={'ON' if f in features else 'OFF'}" for f in FEATURES]
    return " ".join(["-DGGML_NATIVE=OFF", *switches, *(f"-DGGML_{f}=OFF" for f in NEVER)])


def build_key(variant: str, features: list[str], args: str) -> str:
    """``llama-cpp-python-<version>-<machine>-<features or native>-<hash>``: one wheel per distinct binary."""
    what = "native" if variant == "native" else (".".join(f.lower() for f in features) or "generic")
    digest = hashlib.sha256(f"{RECIPE}|{VERSION}|{platform.machine()}|{args}".encode()).hexdigest()[:10]
    return f"llama-cpp-python-{VERSION}-{platform.machine()}-{what}-{digest}"


def wheelhouse() -> Path:
    """Where built wheels are kept (``$PONDER_WHEELHOUSE`` or the user's cache)."""
    if os.environ.get("PONDER_WHEELHOUSE"):
        return Path(os.environ["PONDER_WHEELHOUSE"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "ponder" / "wheels"


def cpu_library_sha256() -> str | None:
    """SHA-256 of the installed ``libggml-cpu.so`` (None when llama-cpp-python is not installed)."""
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or []:
        if entry.name.startswith("libggml-cpu"):
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return hashlib.sha256(path.read_bytes()).hexdigest()
    return "missing"


def pip(*args: str, env: dict[str, str] | None = None) -> None:
    """Run this interpreter's pip; exit with its status when it fails."""
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    result = subprocess.run(cmd, env=env)
    if result.returncode:
        sys.exit(f"llama-cpp-python: `{' '.join(cmd)}` failed (exit {result.returncode})")


def build_wheel(key: str, args: str) -> Path:
    """Build llama-cpp-python from source into ``<wheelhouse>/<key>/`` (once) and return the wheel."""
    target = wheelhouse() / key
    wheels = sorted(target.glob("*.whl"))
    if wheels:
        return wheels[0]
    print(f"llama-cpp-python: compiling llama.cpp {VERSION} ({args or 'native'}); about 5-8 minutes on 2 cores",
          flush=True)
    env = dict(os.environ, CMAKE_ARGS=args, FORCE_CMAKE="1",
               CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 1))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
    try:
        pip("wheel", "-q", "--no-deps", "--no-cache-dir", "--no-binary", "llama-cpp-python",
            "--wheel-dir", str(tmp), f"llama-cpp-python=={VERSION}", env=env)
        if not list(tmp.glob("*.whl")):
            sys.exit("llama-cpp-python: pip wheel produced no wheel")
        (tmp / "build.json").write_text(json.dumps({"key": key, "cmake_args": args}) + "\n")
        try:
            tmp.rename(target)  # atomic: a half-built wheelhouse entry never exists
        except OSError:
            if not list(target.glob("*.whl")):  # not "another build finished first"
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(target.glob("*.whl"))[0]


def install(wheel: Path, key: str) -> None:
    """Install ``wheel`` (with the [server] extra's dependencies) over whatever build is there."""
    pip("install", "-q", "--no-cache-dir", f"{wheel}[server]")
    pip("install", "-q", "--no-cache-dir", "--force-reinstall", "--no-deps", str(wheel))
    STAMP.write_text(json.dumps({"key": key, "libggml_cpu_sha256": cpu_library_sha256()}) + "\n")


def installed_key(installed: str | None) -> str | None:
    """The key recorded for the installed build, when the record still matches ``installed`` (its library's hash)."""
    try:
        record = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or installed is None or record.get("libggml_cpu_sha256") != installed:
        return None
    return record.get("key")


def main() -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["portable", "native"], default="portable")
    parser.add_argument("--features", help="comma-separated GGML features instead of the detected ones")
    parser.add_argument("--if-installed", action="store_true",
                        help="do nothing unless some llama-cpp-python is installed")
    parser.add_argument("--print-key", action="store_true", help="print the key and CMAKE_ARGS; install nothing")
    parser.add_argument("--rebuild", action="store_true", help="drop this key's wheel, compile and reinstall")
    opts = parser.parse_args()
    features = [f.strip().upper() for f in opts.features.split(",") if f.strip()] if opts.features else []
    if opts.variant == "portable" and not opts.features and platform.machine() in ("x86_64", "AMD64"):
        features = detect_features()
    unknown = sorted(set(features) - set(FEATURES))
    if unknown:
        parser.error(f"unknown or forbidden features {unknown}; allowed: {','.join(FEATURES)}")
    args = cmake_args(opts.variant, features)
    key = build_key(opts.variant, features, args)
    if opts.print_key:
        print(json.dumps({"key": key, "cmake_args": args, "wheelhouse": str(wheelhouse() / key)}))
        return 0
    installed = cpu_library_sha256()  # hashes the library once: it is several MB
    current = installed_key(installed)
    if opts.rebuild:
        shutil.rmtree(wheelhouse() / key, ignore_errors=True)
    elif current == key:
        return 0
    if opts.if_installed and installed is None:
        return 0
    if installed is not None:
        print(f"llama-cpp-python: the installed build ({current or 'unknown, e.g. native'}) is not {key}; "
              "replacing it", flush=True)
    install(build_wheel(key, args), key)
    print(f"llama-cpp-python: installed {key}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
