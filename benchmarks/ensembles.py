"""Ensemble benchmarks: vectorised deep-ensemble training, and a 1,000-member predictive.

Run from the repository root (about five minutes on a quiet 2-core CPU):

    .venv/bin/python benchmarks/ensembles.py            # updates its section of RESULTS.md
    .venv/bin/python benchmarks/ensembles.py --quick    # tiny sizes, a smoke test (no write)

(a) **Deep ensemble, vectorised vs sequential.** One network,
    `eqx.nn.MLP(4, 1, width_size=48, depth=2, activation=tanh)` (2,641 weights), prior N(0, 1),
    Gaussian likelihood with fixed noise 0.1, on N = 1,000 teacher-student regression points.
    K = 8 members, each `--steps` Adam(1e-2) steps on minibatches of 100:

    - vectorised: ONE `bo.deep_ensemble(posterior, 8, opt, steps, key=key, batch_size=100)` call;
    - sequential: 8 `bo.map_estimate(posterior, key=..., optimizer=opt, num_steps=steps,
      batch_size=100, init=prior draw)` calls, one after the other, each wrapped in ONE
      outer `jax.jit` compiled beforehand (so that no call compiles);
    - sequential as a user writes it: 8 plain `bo.map_estimate` calls. `map_estimate` defines
      its jitted loop inside the call, so every call traces and lowers again; the time JAX
      reports for tracing, lowering and compiling inside these calls is measured
      (`jax.monitoring`) and shown separately.

    - the first two again with full-batch steps (all 1,000 points per gradient).

    Compile time is excluded for all but the plain calls: each is called once untimed first.
    Every number is the median of `--repeats` repeats, the variants interleaved within a
    repeat.

(b) **Predictive of 1,000 members on 10,000 points.** `eqx.nn.MLP(4, K, 32, 2, tanh)` with
    K = 1 (Gaussian, learned noise scale) and K = 10 (Categorical); 1,000 members (weights
    N(0, 1/fan_in) drawn with NumPy, noise scale 1) wrapped as
    `bo.Ensemble(params, {}, config, model, ())` with (chain, draw) = (10, 100). Timed:
    `log_prob(y)`, `mean` (regression) / `probs` (classification), with the default batching
    (all points in one batch, members in chunks of 256) and with `member_batch_size=32`; each
    measurement is the median of `--repeats` warm calls (after one compiling call). Peak memory
    is measured in a FRESH subprocess per configuration: the increase of the peak RSS (VmHWM)
    over the first call and over the warm calls, above the resident memory once the inputs and
    members exist (with freed memory returned to the OS and the peak reset before each part); the
    naive sizes that a full materialisation would need (every member's outputs, and its hidden
    activations, at every point) are printed next to it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
from _sections import cpu_name, write_section

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
START, END = "<!-- ensembles:start -->", "<!-- ensembles:end -->"

# -- helpers ------------------------------------------------------------------------------------

_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_SPANS: list[tuple[float, float]] = []


def _record(event, start_time, end_time, **kwargs):
    if event in _COMPILE_EVENTS:
        _SPANS.append((start_time, end_time))


def timed(fn):
    """(result, wall seconds, seconds of tracing/lowering/compiling reported inside)."""
    _SPANS.clear()
    start = time.time()
    result = fn()
    jax.block_until_ready(result)
    end = time.time()
    total, reach = 0.0, start
    for a, b in sorted((max(a, start), min(b, end)) for a, b in _SPANS):
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return result, end - start, total


def machine():
    import equinox
    import jaxlib
    import optax

    cpu = cpu_name()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "devices": ", ".join(str(d) for d in jax.devices()),
        "python": platform.python_version(),
        "versions": f"jax {jax.__version__}, jaxlib {jaxlib.__version__}, equinox "
        f"{equinox.__version__}, optax {optax.__version__}",
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "load": os.getloadavg()[0],
    }


def log(*args):
    print(*args, flush=True)


# -- (a) deep ensemble ----------------------------------------------------------------------------


def bench_deep_ensemble(cfg):
    import equinox as eqx
    import jax.numpy as jnp
    import optax

    import bayesover as bo

    jax.monitoring.register_event_time_span_listener(_record)
    key = jax.random.key(0)
    teacher = eqx.nn.MLP(4, 1, 16, 1, activation=jnp.tanh, key=jax.random.key(1))
    data = bo.data.teacher_student(key, teacher, cfg["n"], input_shape=4, noise_scale=0.1)
    net = eqx.nn.MLP(4, 1, 48, 2, activation=jnp.tanh, key=jax.random.key(2))
    model = bo.Model(net, bo.priors.Normal(1.0), bo.likelihoods.Gaussian(0.1))
    posterior = bo.Posterior(model, data)
    opt = optax.adam(1e-2)
    k, steps = cfg["members"], cfg["steps"]

    def variants(batch):
        def vectorised(seed):
            return bo.deep_ensemble(
                posterior, k, opt, steps, key=jax.random.key(seed), batch_size=batch
            )

        @jax.jit
        def one_map(key):
            init = posterior.initial_position(jax.random.fold_in(key, 0))
            return bo.map_estimate(
                posterior,
                key=jax.random.fold_in(key, 1),
                optimizer=opt,
                num_steps=steps,
                batch_size=batch,
                init=init,
            ).position

        def sequential(seed):
            keys = jax.random.split(jax.random.key(seed), k)
            out = []
            for i in range(k):
                out.append(one_map(keys[i]))
                jax.block_until_ready(out[-1])  # one training after the other
            return out

        def sequential_plain(seed):
            keys = jax.random.split(jax.random.key(seed), k)
            out = []
            for i in range(k):
                init = posterior.initial_position(jax.random.fold_in(keys[i], 0))
                result = bo.map_estimate(
                    posterior,
                    key=jax.random.fold_in(keys[i], 1),
                    optimizer=opt,
                    num_steps=steps,
                    batch_size=batch,
                    init=init,
                )
                out.append(jax.block_until_ready(result.position))
            return out

        return vectorised, sequential, sequential_plain

    vectorised, sequential, sequential_plain = variants(cfg["batch"])
    cold = {}
    for name, fn in (("vectorised", vectorised), ("sequential", sequential)):
        _, wall, comp = timed(lambda fn=fn: fn(1000))
        cold[name] = (wall, comp)
        log(f"  (a) cold {name}: {wall:.2f} s ({comp:.2f} s compiling)")
    runs = {"vectorised": [], "sequential": [], "plain": [], "plain_compile": []}
    for r in range(cfg["repeats"]):
        _, w_vec, c_vec = timed(lambda r=r: vectorised(r))
        _, w_seq, c_seq = timed(lambda r=r: sequential(r))
        _, w_pl, c_pl = timed(lambda r=r: sequential_plain(r))
        runs["vectorised"].append(w_vec - c_vec)
        runs["sequential"].append(w_seq - c_seq)
        runs["plain"].append(w_pl)
        runs["plain_compile"].append(c_pl)
        log(
            f"  (a) repeat {r}: vectorised {w_vec:.2f} s, sequential (pre-compiled) {w_seq:.2f} s, "
            f"sequential plain map_estimate {w_pl:.2f} s ({c_pl:.2f} s of it tracing/compiling); "
            f"compile inside the first two: {c_vec:.2f} / {c_seq:.2f} s"
        )
    med = {name: statistics.median(v) for name, v in runs.items()}

    # The same comparison with full-batch steps (N = 1,000 points per gradient): more
    # arithmetic per step.
    full_vec, full_seq, _ = variants(None)
    for fn in (full_vec, full_seq):
        timed(lambda fn=fn: fn(1000))
    full = {"vectorised": [], "sequential": []}
    for r in range(cfg["repeats"]):
        _, w_vec, c_vec = timed(lambda r=r: full_vec(r))
        _, w_seq, c_seq = timed(lambda r=r: full_seq(r))
        full["vectorised"].append(w_vec - c_vec)
        full["sequential"].append(w_seq - c_seq)
        log(f"  (a) full batch, repeat {r}: vectorised {w_vec:.2f} s, sequential {w_seq:.2f} s")
    med_full = {name: statistics.median(v) for name, v in full.items()}
    return {
        "median_full": med_full,
        "ratio_full": med_full["sequential"] / med_full["vectorised"],
        "num_params": model.num_params,
        "cold": cold,
        "runs": runs,
        "median": med,
        "ratio": med["sequential"] / med["vectorised"],
        "ratio_plain": med["plain"] / med["vectorised"],
    }


# -- (b) predictive: one configuration per fresh subprocess ----------------------------------------


def predictive_child(spec: dict) -> dict:
    """Runs in a fresh process: build 1,000 members, time one operation, report the peak-RSS
    increases (kB on Linux, reported in MB)."""
    import equinox as eqx
    import jax.numpy as jnp
    import numpy as np

    import bayesover as bo

    m, n, width, classes = spec["members"], spec["points"], spec["width"], spec["classes"]
    out_size = classes if classes else 1
    net = eqx.nn.MLP(4, out_size, width, 2, activation=jnp.tanh, key=jax.random.key(0))
    likelihood = bo.likelihoods.Categorical() if classes else bo.likelihoods.Gaussian(scale=None)
    model = bo.Model(net, bo.priors.FanInNormal(1.0), likelihood)
    # Members drawn with NumPy (weights N(0, 1/fan_in) by leaf size, noise scale 1), so that
    # no large JAX compilation happens before the measured call: compiler memory freed
    # before it would be reused by the call without raising the RSS.
    template = model.constrain(model.initial_position())
    rng = np.random.default_rng(1)
    chains = spec["chains"]

    def draw(leaf):
        leaf = np.asarray(leaf)
        fan_in = leaf.shape[-1] if leaf.ndim == 2 else width
        values = rng.normal(0.0, 1.0 / np.sqrt(fan_in), (chains, m // chains, *leaf.shape))
        return jnp.asarray(values, jnp.float32)

    params = {
        "net": jax.tree.map(draw, template["net"]),
        "prior": template["prior"],
        "likelihood": jax.tree.map(
            lambda leaf: jnp.ones((chains, m // chains, *jnp.shape(leaf))), template["likelihood"]
        ),
    }
    ensemble = bo.Ensemble(params, {}, {"sampler_name": "numpy draws"}, model, ())
    x = jnp.asarray(rng.normal(size=(n, 4)), jnp.float32)
    if classes:
        y = jnp.asarray(rng.integers(0, classes, n), jnp.int32)
    else:
        y = jnp.asarray(rng.normal(size=n), jnp.float32)
    jax.block_until_ready((params, x, y))
    kwargs = {}
    if spec["member_batch_size"] is not None:
        kwargs["member_batch_size"] = spec["member_batch_size"]

    def op():
        predictive = ensemble.predict(x, **kwargs)
        if spec["op"] == "log_prob":
            return predictive.log_prob(y)
        if spec["op"] == "mean":
            return predictive.mean
        return predictive.probs

    def peak_kb() -> int:
        """The peak RSS in kB: VmHWM of /proc/self/status, which `clear_refs` resets. Not
        `ru_maxrss`: across fork + exec it keeps the parent's peak at the fork, so in a child
        of a big parent it stays at that floor."""
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def reset_peak() -> tuple[bool, int]:
        """Return freed memory to the OS (`malloc_trim`; otherwise an operation can reuse it
        without the RSS growing), then reset the peak ("high water mark") to the current RSS
        (Linux >= 4.0), so that the peak afterwards is the peak since this call. Returns
        (reset done, peak now) in kB."""
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            done = True
        except OSError:
            done = False
        return done, peak_kb()

    reset, before = reset_peak()  # the resident memory with inputs and members in place
    t0 = time.perf_counter()
    result = jax.block_until_ready(op())
    cold = time.perf_counter() - t0
    after_cold = peak_kb()
    reset_warm, _ = reset_peak()  # the compiled program stays; freed compiler memory goes
    warm = []
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        jax.block_until_ready(op())
        warm.append(time.perf_counter() - t0)
    after = peak_kb()
    return {
        "cold_s": cold,
        "warm_s": statistics.median(warm),
        "rss_before_mb": before / 1024,
        "rss_delta_cold_mb": (after_cold - before) / 1024,
        "rss_delta_mb": (after - before) / 1024,
        "finite": bool(jnp.all(jnp.isfinite(result))),
        "peak_reset": reset and reset_warm,
        "num_params": model.num_params,
    }


def bench_predictive(cfg):
    rows = []
    for classes, ops in ((0, ("log_prob", "mean")), (10, ("log_prob", "probs"))):
        for member_batch_size in (None, 32):
            for op in ops:
                spec = {
                    "members": cfg["pred_members"],
                    "chains": 10,
                    "points": cfg["pred_points"],
                    "width": 32,
                    "classes": classes,
                    "op": op,
                    "member_batch_size": member_batch_size,
                    "repeats": cfg["repeats"],
                }
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", json.dumps(spec)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if proc.returncode != 0:
                    raise RuntimeError(f"child {spec} failed:\n{proc.stderr[-3000:]}")
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                result.update(spec)
                rows.append(result)
                log(
                    f"  (b) {'classification' if classes else 'regression'} {op:<8} "
                    f"member_batch_size={member_batch_size}: warm {result['warm_s']:.3f} s, "
                    f"cold {result['cold_s']:.2f} s, peak RSS +{result['rss_delta_mb']:.0f} MB"
                )
    return rows


def naive_sizes(cfg):
    m, n, width = cfg["pred_members"], cfg["pred_points"], 32
    return {
        "outputs_reg": m * n * 1 * 4,
        "outputs_cls": m * n * 10 * 4,
        "hidden": m * n * width * 2 * 4,  # two hidden layers, float32
    }


# -- report -------------------------------------------------------------------------------------


def section(cfg, mach, a, b, elapsed):
    L = []
    w = L.append
    w(START)
    w("## Ensembles (`benchmarks/ensembles.py`)")
    w("")
    w(
        f"Written by `benchmarks/ensembles.py` on {mach['date']} in {elapsed / 60:.1f} min. "
        f"Machine: {mach['cpu']}, {mach['cores']} cores, JAX devices {mach['devices']}; Python "
        f"{mach['python']}, {mach['versions']}. Load average (1 min) at start: "
        f"{mach['load']:.1f}."
    )
    if cfg["quick"]:
        w("")
        w("**Quick mode: tiny sizes, a smoke test; these numbers mean nothing.**")
    w("")
    w("### (a) Deep ensemble: one vectorised call vs sequential trainings")
    w("")
    w(
        f"`eqx.nn.MLP(4, 1, 48, depth=2, tanh)` ({a['num_params']:,} weights), prior N(0, 1), "
        f"Gaussian noise 0.1, N = {cfg['n']:,} teacher-student points; {cfg['members']} members, "
        f"each {cfg['steps']} Adam(1e-2) steps on minibatches of {cfg['batch']}. Medians of "
        f"{cfg['repeats']} repeats (variants interleaved); compile time excluded (each variant "
        "ran once untimed, and any compile time JAX reports inside a timed call is subtracted)."
    )
    w("")
    med = a["median"]
    w("| variant | wall time (s) | vs vectorised |")
    w("|---|---:|---:|")
    w(f"| one `bo.deep_ensemble` call (8 members, vmapped) | {med['vectorised']:.2f} | 1.00 |")
    w(
        f"| 8 sequential `bo.map_estimate`, inside one pre-compiled `jax.jit` | "
        f"{med['sequential']:.2f} | {a['ratio']:.2f} |"
    )
    w(
        f"| 8 sequential plain `bo.map_estimate` calls (as a user writes them; compile NOT "
        f"excluded) | {med['plain']:.2f} | {a['ratio_plain']:.2f} |"
    )
    mf = a["median_full"]
    w(
        f"| full batch (N = {cfg['n']:,} per step): one `bo.deep_ensemble` call | "
        f"{mf['vectorised']:.2f} | 1.00 |"
    )
    w(
        f"| full batch: 8 sequential `bo.map_estimate`, pre-compiled | {mf['sequential']:.2f} | "
        f"{a['ratio_full']:.2f} |"
    )
    w("")
    w(
        "The last column is the time of the variant divided by that of the vectorised call "
        "of the same batch size: above 1, the vectorised call is faster."
    )
    w("")
    cv, cs = a["cold"]["vectorised"], a["cold"]["sequential"]
    w(
        f"First (compiling) calls: `deep_ensemble` {cv[0]:.1f} s ({cv[1]:.1f} s compiling); "
        f"the jitted single `map_estimate` {cs[0]:.1f} s for 8 trainings ({cs[1]:.1f} s "
        f"compiling). Of the plain sequential calls' median {med['plain']:.2f} s, "
        f"{med['plain_compile']:.2f} s is tracing, lowering and compiling that JAX reports inside "
        "them: `map_estimate` builds its jitted loop inside every call, so each call traces and "
        "lowers again (XLA's compiled executable is reused only where JAX's caches recognise it)."
    )
    w("")
    faster = (
        "as fast as"
        if abs(a["ratio"] - 1) < 0.05
        else ("faster than" if a["ratio"] > 1 else "slower than")
    )
    if max(a["ratio"], a["ratio_full"]) < 1.1:
        verdict = (
            "XLA on this CPU gains nothing from running the 8 members' small matrix products "
            "as one batched program (with minibatches it also gathers a separate batch per "
            "member), so vectorising buys convenience here (one call, one compile, one "
            "`Ensemble`), not speed."
        )
    else:
        verdict = "Batching the members into one program pays where the ratio exceeds 1."
    w(
        f"Reading: on this {mach['cores']}-core CPU, with minibatches of {cfg['batch']}, one "
        f"vectorised call is {faster} eight pre-compiled sequential trainings "
        f"(sequential / vectorised = {a['ratio']:.2f}); with full batches the ratio is "
        f"{a['ratio_full']:.2f}. {verdict} The vectorised call does beat eight plain "
        f"`bo.map_estimate` calls by {a['ratio_plain']:.0f}x, because those trace and compile "
        "again at every call. Not measured on an accelerator."
    )
    w("")
    w("### (b) Predictive of 1,000 members on 10,000 points")
    w("")
    naive = naive_sizes(cfg)
    first = b[0]
    w(
        f"`eqx.nn.MLP(4, K, 32, depth=2, tanh)`: K = 1 with a Gaussian likelihood and a learned "
        f"noise scale ({first['num_params']:,} weights), and K = 10 with a Categorical likelihood; "
        f"{cfg['pred_members']:,} random members as "
        "`bo.Ensemble(params, {}, config, model, ())` with "
        f"(chain, draw) = (10, {cfg['pred_members'] // 10}); x ~ N(0, I_4), "
        f"{cfg['pred_points']:,} points. Warm time: median of {cfg['repeats']} calls after a "
        "compiling one (the call includes building the `Predictive`). Peak memory: in a fresh "
        "subprocess per row, the peak RSS (`VmHWM` of `/proc/self/status`, not `ru_maxrss`, "
        "which keeps the parent's peak across fork + exec; XLA allocations are invisible to "
        "tracemalloc) above the resident memory once the inputs and members exist, over the "
        "first call (compilation included) and over the warm calls (what the runtime keeps "
        "between calls included). The members are drawn with NumPy, weights N(0, 1/fan_in) "
        "and noise scale 1, so that no large JAX compilation precedes the measured call. "
        + (
            "Before each part, freed memory was returned to the OS (`malloc_trim(0)`) and the "
            "peak reset to the current RSS (`/proc/self/clear_refs`)."
            if all(r["peak_reset"] for r in b)
            else "The peak could not be reset, so a part smaller than an earlier peak "
            "(imports, building the members) reads as 0: a lower bound."
        )
    )
    w("")
    w(
        "Naive full materialisation for comparison (float32): every member's outputs at every "
        f"point {naive['outputs_reg'] / 1e6:,.0f} MB (regression) / "
        f"{naive['outputs_cls'] / 1e6:,.0f} MB (10 classes); the two hidden layers' "
        f"activations {naive['hidden'] / 1e9:,.2f} GB."
    )
    w("")
    w(
        "| task | operation | member_batch_size | warm time (s) | first call (s) | RSS before "
        "(MB) | peak RSS increase, warm calls (MB) | peak RSS increase, first call incl. "
        "compile (MB) |"
    )
    w("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in b:
        task = "classification (10 classes)" if r["classes"] else "regression (Gaussian)"
        mbs = "256 (default)" if r["member_batch_size"] is None else str(r["member_batch_size"])
        w(
            f"| {task} | `{r['op']}` | {mbs} | {r['warm_s']:.3f} | {r['cold_s']:.2f} | "
            f"{r['rss_before_mb']:.0f} | {r['rss_delta_mb']:.0f} | "
            f"{r['rss_delta_cold_mb']:.0f} |"
        )
    w("")
    by = {(r["classes"], r["op"], r["member_batch_size"]): r for r in b}
    pairs = [(by[(c, o, None)], by[(c, o, 32)]) for (c, o, m) in by if m is None]
    time_ratio = [d["warm_s"] / s["warm_s"] for d, s in pairs]
    big = [d["rss_delta_cold_mb"] for d, _ in pairs]
    small = [s["rss_delta_cold_mb"] for _, s in pairs]
    speed = (
        " On this CPU the large default chunk buys no speed."
        if min(time_ratio) >= 0.9
        else " The large default chunk is faster in some rows."
    )
    w(
        f"Over the first call, the default chunk of 256 members raised the peak by "
        f"{min(big):,.0f} to {max(big):,.0f} MB, `member_batch_size=32` by {min(small):,.0f} to "
        f"{max(small):,.0f} MB (compiler memory included in both). The default's warm time is "
        f"{min(time_ratio):.2f}x to {max(time_ratio):.2f}x that of the 32-member chunk (above "
        f"1: the default is slower).{speed}"
    )
    w("")
    w(
        "The reduction runs members in chunks under a `lax.scan` with running sums (a running "
        "logsumexp for `log_prob`), so memory follows the chunk (member_batch_size x points x "
        "width), not the ensemble: at the default chunk of 256 members one hidden layer of the "
        f"chunk is {256 * cfg['pred_points'] * 32 * 4 / 1e6:,.0f} MB, at 32 members "
        f"{32 * cfg['pred_points'] * 32 * 4 / 1e6:,.0f} MB. Lower `member_batch_size` (or "
        "`batch_size`, points per batch) when memory is tight."
    )
    w(END)
    return "\n".join(L)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Ensemble benchmarks.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes; does not write")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(predictive_child(json.loads(args.child))))
        return
    cfg = {
        "quick": args.quick,
        "repeats": args.repeats,
        "n": 1000,
        "members": 8,
        "steps": 50 if args.quick else args.steps,
        "batch": 100,
        "pred_members": 50 if args.quick else 1000,
        "pred_points": 500 if args.quick else 10000,
    }
    mach = machine()
    log(f"machine: {mach}")
    start = time.perf_counter()
    a = bench_deep_ensemble(cfg)
    log(
        f"(a) medians: vectorised {a['median']['vectorised']:.2f} s, sequential "
        f"{a['median']['sequential']:.2f} s (x{a['ratio']:.2f}), plain {a['median']['plain']:.2f} s"
    )
    b = bench_predictive(cfg)
    elapsed = time.perf_counter() - start
    text = section(cfg, mach, a, b, elapsed)
    print(text)
    if args.quick and args.out == RESULTS:
        log("quick mode: RESULTS.md not written")
        return
    write_section(args.out, text, START, END)
    log(f"section written to {args.out}")


if __name__ == "__main__":
    main()
