"""Run `bo.sample` on a model file (default: the linear-Gaussian model) in a fresh process, for
the device and checkpoint tests (a device count is fixed when JAX starts; a kill needs a process).

    python tests/scripts/sample_runs.py SPEC.json

SPEC (JSON):

    {"out": "result.npz", "model": {build kwargs of the model file},
     "model_file": "linear_gaussian",    # a model name or file (resolve_model_path)
     "runs": [{"name": ..., "sampler": "sgld" | "sghmc" | "psgld" | "nuts" | "hmc",
               "seed", "num_chains", "num_warmup", "num_draws", "thinning", "chunk_size",
               "checkpoint", "progress",     # the arguments of bo.sample
               "mesh", "store",              # (a store run records the draws read back)
               "model": {...},               # this run's posterior, if not the spec's
               "sampler_options": {...},     # keyword arguments of the sampler class
               "repeat": true,               # run twice; the copy is "<name>#2"
               "expect_error": true,         # record the exception instead of failing
               "slow_progress": seconds,     # sleep after each progress line of this run
               "die_in_save": k}, ...]}      # SIGKILL itself half-way through writing
                                             # the k-th checkpoint file of this run

Writes `out` (npz: "<name>/draws", shaped (chain, draw, 4) as [w_1..w_3, b] for the
linear-Gaussian model and (chain, draw, all weights raveled) for other models, and
"<name>/stat/<stat>") and `out` + ".json": the devices JAX saw and, per run,
`config["num_devices"]`, the (devices of its sharding, addressable shards) of every output
leaf, and the seconds the run took; for an expected error its type and message.

Before each run it prints "sample_runs: start <name>" to stderr. `slow_progress` sleeps after
each line that run prints (a chunk's line comes right after its checkpoint was written), so a
test can kill the process between chunks; it does not change what is computed.
"""

import io
import json
import os
import signal
import sys
import time
from pathlib import Path

import jax
import numpy as np

import bayesover as bo
from bayesover.cli.builders import load_module, resolve_model_path

lg = load_module(resolve_model_path("linear_gaussian"))

SAMPLERS = {
    "sgld": lambda **o: bo.SGLD(**{"step_size": 1e-3, "batch_size": 10, **o}),
    "sghmc": lambda **o: bo.SGHMC(**{"step_size": 1e-3, "batch_size": 10, "friction": 20.0, **o}),
    "psgld": lambda **o: bo.pSGLD(**{"step_size": 1e-3, "batch_size": 10, **o}),
    "nuts": lambda **o: bo.NUTS(**o),
    "hmc": lambda **o: bo.HMC(**{"num_integration_steps": 8, **o}),
}


def flat_draws(ensemble, model_file):
    """Draws as one (chain, draw, weights) array."""
    if model_file == "linear_gaussian":
        return np.asarray(jax.vmap(jax.vmap(lg.flatten))(ensemble.params))
    leaves = [np.asarray(x) for x in jax.tree.leaves(ensemble.params) if hasattr(x, "dtype")]
    return np.concatenate([x.reshape(*x.shape[:2], -1) for x in leaves], axis=-1)


class SlowStderr:
    """stderr that sleeps `seconds` after every line written to it."""

    def __init__(self, stream):
        self.stream, self.seconds = stream, 0.0

    def write(self, text):
        n = self.stream.write(text)
        self.stream.flush()
        if self.seconds and "\n" in text:
            time.sleep(self.seconds)
        return n

    def flush(self):
        self.stream.flush()


def die_in_save(k):
    """Make the k-th np.savez write half its bytes, then SIGKILL this process."""
    real_savez, calls = np.savez, [0]

    def savez(file, **arrays):
        calls[0] += 1
        if calls[0] < k:
            return real_savez(file, **arrays)
        buffer = io.BytesIO()
        real_savez(buffer, **arrays)
        data = buffer.getvalue()
        file.write(data[: len(data) // 2])
        file.flush()
        os.fsync(file.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    np.savez = savez


def main(spec_path):
    spec = json.loads(Path(spec_path).read_text())
    stderr = sys.stderr = SlowStderr(sys.stderr)
    real_savez = np.savez
    arrays, meta = {}, {"devices": [str(d) for d in jax.devices()], "runs": {}}
    model_file = spec.get("model_file", "linear_gaussian")
    module = load_module(resolve_model_path(model_file))
    for run in spec["runs"]:
        posterior = module.build(**run.get("model", spec.get("model", {}))).posterior
        for copy in range(2 if run.get("repeat") else 1):
            name = run["name"] + ("" if copy == 0 else f"#{copy + 1}")
            print(f"sample_runs: start {name}", file=sys.stderr, flush=True)
            stderr.seconds = float(run.get("slow_progress", 0.0))
            if run.get("die_in_save"):
                die_in_save(run["die_in_save"])
            start = time.perf_counter()
            try:
                ensemble = bo.sample(
                    posterior,
                    SAMPLERS[run["sampler"]](**run.get("sampler_options", {})),
                    key=jax.random.key(run.get("seed", 0)),
                    num_chains=run.get("num_chains", 4),
                    num_warmup=run.get("num_warmup", 100),
                    num_draws=run.get("num_draws", 100),
                    thinning=run.get("thinning", 1),
                    chunk_size=run.get("chunk_size"),
                    checkpoint=run.get("checkpoint"),
                    progress=run.get("progress", False),
                    mesh=tuple(run["mesh"]) if run.get("mesh") else None,
                    store=run.get("store"),
                )
                if run.get("store"):  # a StoredEnsemble: its draws, read back from the file
                    ensemble = ensemble.load()
            except Exception as error:
                if not run.get("expect_error"):
                    raise
                meta["runs"][name] = {"error": type(error).__name__, "message": str(error)}
                continue
            finally:
                np.savez, stderr.seconds = real_savez, 0.0
            leaves = jax.tree.leaves((ensemble.params, ensemble.stats))
            meta["runs"][name] = {
                "num_devices": ensemble.config["num_devices"],
                "mesh": dict(ensemble.config["mesh"]),
                "leaf_devices": [
                    [len(x.sharding.device_set), len(x.addressable_shards)] for x in leaves
                ],
                "seconds": time.perf_counter() - start,
            }
            arrays[f"{name}/draws"] = flat_draws(ensemble, model_file)
            for stat, value in ensemble.stats.items():
                arrays[f"{name}/stat/{stat}"] = np.asarray(value)
    np.savez(spec["out"], **arrays)
    Path(spec["out"] + ".json").write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
