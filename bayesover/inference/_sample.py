"""`bo.sample`: many chains of any sampler, vectorised, sharded over devices, resumable.

The chains run as one compiled program (`vmap`). When several devices are visible the chains
are split over them with `jax.shard_map` (one block of chains per device, the largest device
count that divides `num_chains`), and the draws stay sharded over those devices.

Reproducibility. Every step's key is `fold_in(chain_key, step_index)`, so the draws do not
depend on how the run is cut into chunks, and the same key on the same devices gives the same
draws bit for bit. Across device counts, SG-MCMC draws agree to float rounding; HMC/NUTS draws
agree only in distribution, because differently batched programs round differently and warm-up
and tree building amplify the difference.

Checkpoints. With `checkpoint=PATH` the sampler state and the draws so far are written
atomically (temporary file, then rename) after warm-up and after every chunk; a run restarted
with the same arguments continues from the last chunk and ends with exactly the draws of an
uninterrupted run.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import PRNGKeyArray

from bayesover._atomic import check_writable_directory
from bayesover.ensemble._ensemble import Ensemble
from bayesover.inference import _checkpoint as checkpoints
from bayesover.inference._fingerprint import fingerprint as run_fingerprint
from bayesover.inference._optimize import map_estimate
from bayesover.inference.samplers._base import AbstractSampler, check_positive_int
from bayesover.posterior._posterior import AbstractPosterior, Posterior


def sample(
    posterior: AbstractPosterior,
    sampler: AbstractSampler,
    *,
    key: PRNGKeyArray,
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_draws: int = 1000,
    thinning: int = 1,
    init: Any = "prior",
    init_jitter: float = 0.01,
    map_steps: int = 1000,
    chunk_size: int | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
) -> Ensemble:
    """Sample `num_chains` chains of `sampler` on `posterior`.

    **Arguments:**

    - `posterior`: a `bo.Posterior` or a NumPyro posterior (`bo.Posterior.from_numpyro`).
    - `sampler`: `bo.NUTS`, `bo.HMC`, `bo.SGLD`, `bo.SGHMC` or `bo.pSGLD`.
    - `key`: a JAX PRNG key; it alone fixes the draws (for a given device count).
    - `num_chains`, `num_warmup` (>= 0), `num_draws` (draws KEPT per chain), `thinning`:
      every sampler takes `num_warmup + num_draws * thinning` steps per chain and keeps the
      last step of every `thinning` window.
    - `init`: `"prior"` (a prior draw per chain), `"map"` (optax MAP from a prior draw per
      chain, `map_steps` Adam steps, then jittered by `init_jitter` standard normals), or a
      position pytree (one for all chains, or stacked with a leading `num_chains` axis).
    - `chunk_size`: draws per compiled chunk (default: a tenth of the run); progress and
      checkpoints happen between chunks.
    - `progress`: print progress to stderr; `checkpoint`: a file path (see module docstring).

    **Returns:** a `bo.Ensemble` with constrained draws and ArviZ-named statistics.
    """
    if not isinstance(posterior, AbstractPosterior):
        raise TypeError(
            f"`posterior` must be a bayesover posterior, got {type(posterior).__name__}."
        )
    if not isinstance(sampler, AbstractSampler):
        raise TypeError(
            f"`sampler` must be a bayesover sampler (bo.NUTS, bo.SGLD, ...), got {sampler!r}."
        )
    check_positive_int("num_chains", num_chains)
    check_positive_int("num_warmup", num_warmup, minimum=0)
    check_positive_int("num_draws", num_draws)
    check_positive_int("thinning", thinning)
    if chunk_size is None:
        chunk_size = max(1, math.ceil(num_draws / 10))
    check_positive_int("chunk_size", chunk_size)
    chunk_size = min(chunk_size, num_draws)
    key = _check_key(key)
    if checkpoint is not None:
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(
                f"`checkpoint` must be a file path (str or os.PathLike), got {checkpoint!r}."
            )
        check_writable_directory(checkpoint, "checkpoint")  # before any work is done

    sampler.build(posterior)  # configuration errors surface here, before any compile
    chain_keys = jax.random.split(key, num_chains)
    init_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(chain_keys)
    warmup_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(chain_keys)
    sample_keys = jax.vmap(lambda k: jax.random.fold_in(k, 2))(chain_keys)

    devices = jax.devices()
    num_devices = math.gcd(num_chains, len(devices))
    mesh = _mesh(num_devices)

    def start_fn(positions, init_keys, warmup_keys):
        return _start_chains(
            posterior, sampler, positions, init_keys, warmup_keys, num_warmup, num_devices
        )

    def chunk_fn(states, sample_keys, first_draw):
        return _run_chunk(
            posterior,
            sampler,
            states,
            sample_keys,
            jnp.asarray(first_draw, jnp.int32),
            chunk_size,
            thinning,
            num_devices,
        )

    fingerprint = run_fingerprint(
        posterior,
        sampler,
        key,
        num_chains,
        num_warmup,
        num_draws,
        thinning,
        init,
        chunk_size,
        num_devices,
    )
    restored = checkpoints.load(checkpoint, fingerprint) if checkpoint is not None else None
    report = _Progress(progress, num_draws, num_chains, num_devices)
    chunks: list = []
    if restored is None:
        positions = _initial_positions(posterior, init, init_keys, init_jitter, map_steps)
        _check_initial_positions(posterior, positions)
        states = start_fn(positions, init_keys, warmup_keys)
        jax.block_until_ready(states)
        report.warmup_done(num_warmup)
        draws_done = 0
        if checkpoint is not None:
            checkpoints.save(checkpoint, fingerprint, states, 0, [])
    else:
        one = posterior.initial_position()
        like = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_chains, *jnp.shape(x))), one)
        template = jax.eval_shape(start_fn, like, init_keys, warmup_keys)
        states, draws_done = restored.states(template), restored.draws_done
        if num_devices > 1:  # put restored states where the chunk program expects them
            states = jax.device_put(states, NamedSharding(mesh, P("chains")))
        report.resumed(draws_done)

    if restored is not None and draws_done > 0:
        _, chunk_template = jax.eval_shape(chunk_fn, states, sample_keys, 0)
        chunks = [restored.draws(chunk_template)]
    while draws_done < num_draws:
        states, chunk = chunk_fn(states, sample_keys, draws_done)
        take = min(chunk_size, num_draws - draws_done)
        chunks.append(jax.tree.map(lambda x, take=take: np.asarray(x[:, :take]), chunk))
        draws_done += take
        if checkpoint is not None:
            checkpoints.save(checkpoint, fingerprint, states, draws_done, chunks)
        report.chunk_done(draws_done)

    draws, stats = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *chunks)
    sharding = NamedSharding(mesh, P("chains"))
    draws, stats = jax.device_put((draws, stats), sharding)
    config = {
        "sampler": repr(sampler),
        "sampler_name": type(sampler).__name__,
        "num_chains": num_chains,
        "num_warmup": num_warmup,
        "num_draws": num_draws,
        "thinning": thinning,
        "init": init if isinstance(init, str) else "given",
        "key": tuple(int(x) for x in np.asarray(jax.random.key_data(key)).ravel()),
        "num_devices": num_devices,
        "temperature": posterior.temperature,
    }
    if hasattr(sampler, "max_tree_depth"):  # for the tree-depth saturation diagnostic
        config["max_tree_depth"] = int(sampler.max_tree_depth)
    if isinstance(posterior, Posterior):
        ensemble = Ensemble(draws, stats, config, posterior.model, posterior.data.target_shape)
    else:
        ensemble = Ensemble(draws, stats, config)
    _warn_if_stopped(ensemble)
    return ensemble


# -- the compiled programs: module-level, so that calls with the same shapes reuse them ----------


def _mesh(num_devices: int):
    # Auto axis: jax.make_mesh defaults to Explicit axes, under which shard_map refuses
    # replicated inputs.
    return jax.make_mesh(
        (num_devices,),
        ("chains",),
        axis_types=(jax.sharding.AxisType.Auto,),
        devices=jax.devices()[:num_devices],
    )


def _over_chains(fn, posterior, num_devices, shared, *mapped):
    """vmap `fn(posterior, shared, *one_chain)` over chains; shard_map it over devices.

    The posterior's arrays (data) enter as a replicated argument, not as a closure, so that
    shard_map sees every input explicitly.
    """
    arrays, static = eqx.partition(posterior, eqx.is_array)

    def body(arrays, shared, *one_chain):
        return fn(eqx.combine(arrays, static), shared, *one_chain)

    batched = jax.vmap(body, in_axes=(None, None) + (0,) * len(mapped))

    def vectorised(arrays, shared, *chains):
        # One chain on this device: no vmap, so that BlackJAX's while_loops and conds keep
        # unbatched predicates (under vmap they become selects that run both branches).
        if jax.tree.leaves(chains)[0].shape[0] == 1:
            one = [jax.tree.map(lambda v: v[0], c) for c in chains]
            return jax.tree.map(lambda v: v[None], body(arrays, shared, *one))
        return batched(arrays, shared, *chains)

    if num_devices == 1:
        return vectorised(arrays, shared, *mapped)
    specs = (P(), P()) + (P("chains"),) * len(mapped)
    return jax.shard_map(
        vectorised,
        mesh=_mesh(num_devices),
        in_specs=specs,
        out_specs=P("chains"),
        check_vma=False,
    )(arrays, shared, *mapped)


@eqx.filter_jit
def _start_chains(posterior, sampler, positions, init_keys, warmup_keys, num_warmup, num_devices):
    def start(posterior, _, position, init_key, warmup_key):
        algorithm = sampler.build(posterior)
        state = algorithm.init(position, init_key)
        return algorithm.warmup(warmup_key, state, num_warmup)

    return _over_chains(start, posterior, num_devices, (), positions, init_keys, warmup_keys)


@eqx.filter_jit
def _run_chunk(
    posterior, sampler, states, sample_keys, first_draw, chunk_size, thinning, num_devices
):
    def chunk(posterior, first_draw, state, sample_key):
        algorithm = sampler.build(posterior)

        def one_draw(state, draw_index):
            def one_step(state, t):
                step_index = draw_index * thinning + t
                return algorithm.step(jax.random.fold_in(sample_key, step_index), state)

            state, infos = jax.lax.scan(one_step, state, jnp.arange(thinning))
            info = jax.tree.map(lambda x: x[-1], infos)
            draw = posterior.constrain(state.position)
            stopped = getattr(info, "stopped", None)
            if stopped is not None:  # a stopped SG-MCMC chain has no draws: mark them NaN
                draw = jax.tree.map(lambda x: jnp.where(stopped, jnp.nan, x), draw)
            return state, (draw, info._asdict())

        return jax.lax.scan(one_draw, state, first_draw + jnp.arange(chunk_size))

    return _over_chains(chunk, posterior, num_devices, first_draw, states, sample_keys)


# -- helpers ------------------------------------------------------------------------------------


def _check_key(key):
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"`key` must be a single PRNG key, got shape {key.shape}.")
        return key
    if isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,):
        return jax.random.wrap_key_data(key)
    raise TypeError(f"`key` must be a JAX PRNG key (jax.random.key(seed)), got {key!r}.")


def _stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _initial_positions(posterior, init, keys, jitter, map_steps):
    num_chains = keys.shape[0]
    if isinstance(init, str):
        if init not in ("prior", "map"):
            raise ValueError(f"`init` must be 'prior', 'map' or a position pytree, got {init!r}.")
        if isinstance(posterior, Posterior):
            positions = _prior_positions(posterior, keys)
        else:
            positions = _stack([posterior.initial_position(k) for k in keys])
        if init == "prior":
            return positions
        check_positive_int("map_steps", map_steps)

        return _jittered_modes(posterior, keys, positions, jitter, map_steps)
    template = jax.tree.structure(posterior.initial_position())
    if jax.tree.structure(init) != template:
        raise ValueError(
            "`init` as a pytree must have the structure of the posterior's positions "
            f"(posterior.initial_position()): expected {template}, got {jax.tree.structure(init)}."
        )
    reference = jax.tree.leaves(posterior.initial_position())
    leaves = jax.tree.leaves(init)
    if all(jnp.shape(x) == jnp.shape(r) for x, r in zip(leaves, reference, strict=True)):
        return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_chains, *jnp.shape(x))), init)
    if all(
        jnp.shape(x) == (num_chains, *jnp.shape(r)) for x, r in zip(leaves, reference, strict=True)
    ):
        return init
    raise ValueError(
        "`init` leaves must have the shapes of one position, or a leading num_chains "
        f"({num_chains}) axis."
    )


@eqx.filter_jit
def _jittered_modes(posterior, keys, starts, jitter, map_steps):
    """One optax MAP point per chain (vmapped), plus `jitter` standard normals."""

    def find_mode(key, start):
        result = map_estimate(posterior, key=key, num_steps=map_steps, init=start)
        leaves, treedef = jax.tree.flatten(result.position)
        noise = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
        return jax.tree.unflatten(
            treedef,
            [
                x + jitter * jax.random.normal(k, x.shape, x.dtype)
                for x, k in zip(leaves, noise, strict=True)
            ],
        )

    return jax.vmap(find_mode)(keys, starts)


@eqx.filter_jit
def _prior_positions(posterior, keys):
    return jax.vmap(posterior.initial_position)(keys)


@eqx.filter_jit
def _values_and_grads(posterior, positions):
    return jax.vmap(jax.value_and_grad(posterior.logdensity))(positions)


def _leaf_names(tree) -> list[str]:
    paths, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [jax.tree_util.keystr(p) for p, _ in paths]


def _check_initial_positions(posterior, positions):
    values, grads = _values_and_grads(posterior, positions)
    bad = np.flatnonzero(~np.isfinite(np.asarray(values)))
    if bad.size == 0:
        return
    chain = int(bad[0])
    position = jax.tree.map(lambda x: x[chain], positions)
    names = _leaf_names(position)
    offending = [
        n
        for n, x in zip(names, jax.tree.leaves(position), strict=True)
        if not bool(jnp.all(jnp.isfinite(x)))
    ]
    reason = "non-finite values"
    if not offending:
        grad = jax.tree.map(lambda x: x[chain], grads)
        offending = [
            n
            for n, g in zip(names, jax.tree.leaves(grad), strict=True)
            if not bool(jnp.all(jnp.isfinite(g)))
        ]
        reason = "a non-finite gradient"
    raise ValueError(
        f"the initial point of chain(s) {bad.tolist()} has log density "
        f"{float(values[chain])}; parameter leaves with {reason}: "
        f"{offending or 'none (the density itself is -inf there)'}."
    )


def _warn_if_stopped(ensemble: Ensemble):
    ok = np.asarray(ensemble.chain_ok())
    if not ok.all():
        warnings.warn(
            f"chains {np.flatnonzero(~ok).tolist()} stopped: an SG-MCMC iterate turned non-finite "
            "(a step size too large, or a log density that is not finite there). Their later "
            "draws are NaN and flagged in stats['stopped']; the other chains' draws are kept.",
            RuntimeWarning,
            stacklevel=3,
        )


class _Progress:
    def __init__(self, enabled, num_draws, num_chains, num_devices):
        self.enabled = enabled
        self.num_draws = num_draws
        self.start = time.perf_counter()
        self.prefix = f"bayesover: {num_chains} chain(s) on {num_devices} device(s)"

    def _print(self, text):
        if self.enabled:
            print(
                f"{self.prefix}: {text} [{time.perf_counter() - self.start:.1f} s]",
                file=sys.stderr,
                flush=True,
            )

    def warmup_done(self, num_warmup):
        self._print(f"warm-up of {num_warmup} steps done")

    def resumed(self, draws_done):
        self._print(f"resumed from checkpoint at draw {draws_done}/{self.num_draws}")

    def chunk_done(self, draws_done):
        filled = 20 * draws_done // self.num_draws
        bar = "#" * filled + "-" * (20 - filled)
        self._print(
            f"[{bar}] draws {draws_done}/{self.num_draws} ({100 * draws_done // self.num_draws}%)"
        )
