"""Scaling out on this machine: meshes of 1, 2 and 4 forced host devices, and 1 vs 2 processes.

Run from the repository root (about 15 minutes on a 2-core CPU):

    .venv/bin/python benchmarks/scaling.py            # writes its section of RESULTS.md
    .venv/bin/python benchmarks/scaling.py --quick    # tiny sizes: a smoke test only

The network: `eqx.nn.MLP(8, 1, 100, depth=2, tanh)`: 8*100+100 + 100*100+100 + 100+1 =
11,101 weights, prior N(0, 1), Gaussian likelihood (noise 0.1), on
N = 10,000 teacher-student points (x ~ N(0, I_8)). Workloads, 4 chains each:

- NUTS (`max_tree_depth=3`: at most 8 gradients per draw, a bounded workload), no warm-up (a
  window adaptation of a few steps cannot tune a 10k-weight posterior with N = 10,000; it
  left NUTS at ~1 gradient per draw) but a fixed step size of 1e-4, 20 draws, full-batch
  gradients over the 10,000 points;
- SGLD with minibatches of 1,024, step size 2e-8 (stable here: no chain stops), 300 steps.

Each device count runs in its own process (the count is fixed when JAX starts, set by
`XLA_FLAGS=--xla_force_host_platform_device_count=D`): every mesh `(chains, data)` with
chains * data = D and chains dividing 4 (chains-only `(D, 1)`, data-only `(1, D)`, mixed
`(2, 2)`). Every configuration runs once untimed (compile) and then `--repeats` times with new
keys; the median wall time is reported, and the speed-up is the 1-device median divided by
it. Gradients/s counts NUTS's leapfrog steps (`n_steps`, summed over draws and chains).

Forced host devices share the machine's cores: on 2 cores, 4 devices cannot beat 2, so the
figures here measure the overhead and the parallel efficiency of the mesh on CPU; the same
programs spread over real accelerators.

1 vs 2 processes: SGLD on mesh (2, 1), once as one process with 2 forced host devices and once
as two `jax.distributed` processes (one device each, gloo collectives, coordinator on
127.0.0.1): the ratio of the median times is the overhead of the distributed path here.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
START, END = "<!-- scaling:start -->", "<!-- scaling:end -->"
NOISE = 0.1


def _posterior(quick: bool):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import bayesover as bo

    width, num_points = (16, 512) if quick else (100, 10_000)
    net = eqx.nn.MLP(8, 1, width, 2, activation=jnp.tanh, key=jax.random.key(0))
    teacher = eqx.nn.MLP(8, 1, 16, 1, activation=jnp.tanh, key=jax.random.key(1000))
    data = bo.data.teacher_student(
        jax.random.key(1), teacher, num_points, input_shape=8, noise_scale=NOISE
    )
    model = bo.Model(net, bo.priors.Normal(1.0), bo.likelihoods.Gaussian(NOISE))
    return bo.Posterior(model, data)


def _workloads(quick: bool):
    import bayesover as bo

    nuts = dict(
        sampler=bo.NUTS(max_tree_depth=3, initial_step_size=1e-4), num_warmup=0, num_draws=20
    )
    steps = 40 if quick else 300
    batch = 128 if quick else 1024
    sgld = dict(sampler=bo.SGLD(step_size=2e-8, batch_size=batch), num_warmup=0, num_draws=steps)
    return {"nuts": nuts, "sgld": sgld}


def worker(spec: dict) -> dict:
    """Run in a subprocess: time every (workload, mesh) of `spec` on this process's devices."""
    import jax
    import numpy as np

    if spec.get("process_id") is not None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            f"127.0.0.1:{spec['port']}", num_processes=2, process_id=spec["process_id"]
        )
    import bayesover as bo

    posterior = _posterior(spec["quick"])
    workloads = _workloads(spec["quick"])
    out: dict = {
        "devices": len(jax.devices()),
        "weights": sum(x.size for x in jax.tree.leaves(posterior.model.params)),
    }
    for name, mesh in spec["runs"]:
        work = workloads[name]
        times, grads = [], []
        for repeat in range(spec["repeats"] + 1):
            start = time.perf_counter()
            ensemble = bo.sample(
                posterior,
                work["sampler"],
                key=jax.random.key(repeat),
                num_chains=4,
                num_warmup=work["num_warmup"],
                num_draws=work["num_draws"],
                chunk_size=work["num_draws"],
                progress=False,
                mesh=tuple(mesh),
            )
            jax.block_until_ready(ensemble.params)
            stopped = np.asarray(ensemble.stats.get("stopped", False))
            if stopped.any() or np.asarray(ensemble.stats.get("diverging", False)).any():
                raise RuntimeError(f"{name} on mesh {mesh}: chains stopped or diverged")
            if repeat == 0:
                continue  # the compile
            times.append(time.perf_counter() - start)
            if name == "nuts":
                n_steps = np.asarray(ensemble.stats["n_steps"])
                grads.append(float(n_steps.sum()))
        out[f"{name}@{mesh[0]}x{mesh[1]}"] = {
            "median_s": statistics.median(times),
            "times": times,
            "gradients": statistics.median(grads) if grads else None,
        }
    if spec.get("process_id") is not None:
        jax.distributed.shutdown()
    return out


def _launch(spec: dict, num_devices: int) -> subprocess.Popen:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    if num_devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={num_devices}"
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def _result(proc: subprocess.Popen) -> dict:
    stdout, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"a benchmark worker failed (exit {proc.returncode})")
    return json.loads(stdout.strip().splitlines()[-1])


def _meshes(num_devices: int) -> list[tuple[int, int]]:
    return [(c, num_devices // c) for c in (4, 2, 1) if num_devices % c == 0 and c <= num_devices]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--worker")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    from _sections import machine_line, write_section

    results = {}
    for num_devices in (1, 2, 4):  # one at a time: they would compete for the cores
        runs = [(name, mesh) for name in ("nuts", "sgld") for mesh in _meshes(num_devices)]
        spec = {"quick": args.quick, "repeats": args.repeats, "runs": runs}
        results[num_devices] = _result(_launch(spec, num_devices))
        print(f"{num_devices} device(s): {results[num_devices]}", file=sys.stderr)

    spec = {"quick": args.quick, "repeats": args.repeats, "runs": [("sgld", (2, 1))]}
    one_process = _result(_launch(spec, 2))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [_launch({**spec, "port": port, "process_id": i}, 1) for i in range(2)]
    two_processes = [_result(p) for p in procs]
    print(f"1 process: {one_process}\n2 processes: {two_processes}", file=sys.stderr)

    weights = results[1]["weights"]
    base = {name: results[1][f"{name}@1x1"]["median_s"] for name in ("nuts", "sgld")}
    lines = [
        START,
        "## Scaling out: meshes and processes (`benchmarks/scaling.py`)",
        "",
        machine_line() + (" (--quick: tiny sizes, not the benchmark)" if args.quick else ""),
        "",
        f"{weights:,}-weight tanh MLP (8 -> 100 -> 100 -> 1), N = "
        f"{10_000 if not args.quick else 512:,}; 4 chains. NUTS: max_tree_depth 3, step size "
        "1e-4, no warm-up, 20 draws, full batch. SGLD: batch 1,024, 300 steps. Median of "
        f"{args.repeats} timed runs after a compile run; speed-up = 1-device median / median. "
        "Forced host devices share the 2 cores (4 devices cannot beat 2).",
        "",
        "| devices | mesh (chains x data) | NUTS s | NUTS speed-up | NUTS gradients/s "
        "| SGLD s | SGLD speed-up | SGLD steps/s (all chains) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    sgld_steps = 4 * _workloads(args.quick)["sgld"]["num_draws"]
    for num_devices in (1, 2, 4):
        for mesh in _meshes(num_devices):
            nuts = results[num_devices][f"nuts@{mesh[0]}x{mesh[1]}"]
            sgld = results[num_devices][f"sgld@{mesh[0]}x{mesh[1]}"]
            lines.append(
                f"| {num_devices} | {mesh[0]} x {mesh[1]} | {nuts['median_s']:.2f} "
                f"| {base['nuts'] / nuts['median_s']:.2f}x "
                f"| {nuts['gradients'] / nuts['median_s']:,.0f} | {sgld['median_s']:.2f} "
                f"| {base['sgld'] / sgld['median_s']:.2f}x "
                f"| {sgld_steps / sgld['median_s']:,.0f} |"
            )
    single = one_process["sgld@2x1"]["median_s"]
    multi = max(p["sgld@2x1"]["median_s"] for p in two_processes)
    lines += [
        "",
        "1 vs 2 processes (SGLD as above, mesh 2 x 1): one process with 2 forced host devices "
        f"{single:.2f} s; two `jax.distributed` processes (gloo, 127.0.0.1) {multi:.2f} s (the "
        f"slower process): the distributed path costs {multi / single:.2f}x here (draws "
        "gathered with `process_allgather` after every chunk included).",
        END,
    ]
    write_section(args.out, "\n".join(lines), START, END)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
