"""Start `sample_runs.py` in a subprocess with a chosen number of (virtual CPU) devices.

Every process of a test session shares one persistent JAX compilation cache (a directory the
test passes in): a restarted or repeated run then loads its compiled programs instead of
compiling them again. The cache holds executables keyed by their program, so it changes how
long a run takes, never what it computes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parent / "sample_runs.py"
ROOT = SCRIPT.parents[2]


def environment(num_devices: int, cache_dir: Path) -> dict:
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("XLA_FLAGS", None)
    if num_devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={num_devices}"
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return env


def start(
    spec: dict, folder: Path, name: str, *, num_devices: int, cache_dir: Path, pipe=False
) -> subprocess.Popen:
    """Start a run of `spec` (its "out" is set to folder/name.npz). stderr goes to
    folder/name.log, or to a pipe (text, line by line) with `pipe=True`."""
    spec = {**spec, "out": str(folder / f"{name}.npz")}
    spec_file = folder / f"{name}.json"
    spec_file.write_text(json.dumps(spec))
    log = None if pipe else open(folder / f"{name}.log", "w")  # noqa: SIM115
    try:
        return subprocess.Popen(
            [sys.executable, str(SCRIPT), str(spec_file)],
            cwd=ROOT,
            env=environment(num_devices, cache_dir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE if pipe else log,
            text=True,
        )
    finally:
        if log is not None:
            log.close()  # the child holds its own copy


def finish(proc: subprocess.Popen, folder: Path, name: str, timeout: float = 400):
    """Wait for a run started by `start`; return its arrays (dict) and metadata."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    finally:
        if proc.stderr is not None and not proc.stderr.closed:
            proc.stderr.close()
    log = folder / f"{name}.log"
    text = log.read_text() if log.exists() else ""
    assert proc.returncode == 0, f"{name} failed (exit {proc.returncode}):\n{text[-4000:]}"
    with np.load(folder / f"{name}.npz") as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads((folder / f"{name}.npz.json").read_text())
    return arrays, meta


def run(spec: dict, folder: Path, name: str, *, num_devices: int, cache_dir: Path):
    """Run `spec` to completion in a subprocess; return (arrays, metadata)."""
    proc = start(spec, folder, name, num_devices=num_devices, cache_dir=cache_dir)
    return finish(proc, folder, name)
