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
uninterrupted run (file format: `bayesover.inference._checkpoint`).

The pieces live in modules of their own: `_starts` (initial positions and their check),
`_sharding` (chains over devices), `_checkpoint` (the file), `_progress` (the phase lines and
the live bar); this module holds the driver and the two compiled programs it runs (start =
init + warm-up, and one chunk of draws).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from bayesover._atomic import check_writable_directory
from bayesover._checks import check_int, check_key
from bayesover._trees import broadcast_leading, concatenate
from bayesover.ensemble._ensemble import Ensemble
from bayesover.ensemble._stored import StoredEnsemble
from bayesover.inference import _checkpoint as checkpoints
from bayesover.inference import _progress as live_progress
from bayesover.inference._fingerprint import fingerprint as run_fingerprint
from bayesover.inference._progress import Progress
from bayesover.inference._sharding import (
    choose_mesh,
    is_writer,
    mesh_shape,
    over_chains,
    put_on_chains,
    to_host,
)
from bayesover.inference._starts import check_initial_positions, initial_positions
from bayesover.inference._store import StoreWriter, check_store_path, finish_store, write_chunk
from bayesover.inference.samplers._base import AbstractSampler
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
    store: str | os.PathLike | None = None,
    mesh: Any = None,
) -> Ensemble | StoredEnsemble:
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
    - `chunk_size`: draws per compiled chunk (default: a tenth of the run); checkpoints
      happen between chunks.
    - `progress`: phase lines and a live tqdm bar on stderr (draws, draws/s, divergences or
      step size), updated from inside the compiled loop; False compiles it out
      (`bayesover.inference._progress`). `checkpoint`: a file path (see module docstring).
    - `store`: a file path: each chunk's draws are written there as they are made (netCDF,
      `bayesover.inference._store`) instead of kept, so memory holds one chunk; the result is
      then `bo.Ensemble.open(store, posterior)`, which reads the draws block by block. With
      `checkpoint` too, the checkpoint holds the sampler states only.
    - `mesh`: how the devices are split, `(chains, data)` or a `jax.sharding.Mesh` with axes
      `("chains", "data")`; default: chains first, the devices left over split the data
      of a network posterior (`bayesover.inference._sharding`).

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
    check_int("num_chains", num_chains, minimum=1)
    check_int("num_warmup", num_warmup, minimum=0)
    check_int("num_draws", num_draws, minimum=1)
    check_int("thinning", thinning, minimum=1)
    if chunk_size is None:
        chunk_size = max(1, math.ceil(num_draws / 10))
    check_int("chunk_size", chunk_size, minimum=1)
    chunk_size = min(chunk_size, num_draws)
    key = check_key(key)
    if checkpoint is not None:
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(
                f"`checkpoint` must be a file path (str or os.PathLike), got {checkpoint!r}."
            )
        check_writable_directory(checkpoint, "checkpoint")  # before any work is done
    if store is not None:
        store = check_store_path(store, checkpoint)

    sampler.build(posterior)  # configuration errors surface here, before any compile
    chain_keys = jax.random.split(key, num_chains)
    init_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(chain_keys)
    warmup_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(chain_keys)
    sample_keys = jax.vmap(lambda k: jax.random.fold_in(k, 2))(chain_keys)

    mesh = choose_mesh(mesh, num_chains, posterior)
    num_devices = mesh.size

    def start_fn(positions, init_keys, warmup_keys):
        return _start_chains(
            posterior, sampler, positions, init_keys, warmup_keys, num_warmup, mesh
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
            mesh,
            report.live,  # None with progress=False: no callback in the program
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
        mesh_shape(mesh),
    )
    restored = checkpoints.load(checkpoint, fingerprint) if checkpoint is not None else None
    report = Progress(progress, num_draws, num_chains, num_devices)
    chunks: list = []
    if restored is None:
        report.warmup_started(num_warmup)
        positions = initial_positions(posterior, init, init_keys, init_jitter, map_steps, mesh)
        check_initial_positions(posterior, positions)
        states = start_fn(positions, init_keys, warmup_keys)
        jax.block_until_ready(states)
        report.warmup_done(num_warmup)
        draws_done = 0
        if checkpoint is not None:
            _save_checkpoint(checkpoint, fingerprint, states, 0, [])
    else:
        like = broadcast_leading(posterior.initial_position(), num_chains)
        template = jax.eval_shape(start_fn, like, init_keys, warmup_keys)
        states, draws_done = restored.states(template), restored.draws_done
        if num_devices > 1:  # put restored states where the chunk program expects them
            states = put_on_chains(states, mesh)
        report.resumed(draws_done)

    writer = None  # the draw store's, with `store` (bayesover.inference._store)
    if restored is not None and draws_done > 0 and store is not None:
        writer = StoreWriter.resume(store, restored, fingerprint)
    elif restored is not None and draws_done > 0:
        _, chunk_template = jax.eval_shape(chunk_fn, states, sample_keys, 0)
        chunks = [restored.draws(chunk_template)]
    while draws_done < num_draws:
        states, chunk = chunk_fn(states, sample_keys, draws_done)
        take = min(chunk_size, num_draws - draws_done)
        chunk = jax.tree.map(lambda x, take=take: x[:, :take], to_host(chunk))
        if store is None:
            chunks.append(chunk)
        else:  # to disk: memory holds this one chunk
            writer = write_chunk(writer, store, chunk, posterior, num_draws, fingerprint)
        draws_done += take
        if checkpoint is not None:
            _save_checkpoint(checkpoint, fingerprint, states, draws_done, chunks)
            report.checkpoint_saved(draws_done)
        report.chunk_done(draws_done)

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
        "mesh": mesh_shape(mesh),
        "temperature": posterior.temperature,
    }
    config.update(sampler.recorded_settings())  # e.g. NUTS's max_tree_depth, for diagnose
    if store is not None:  # the draws are on disk: the ensemble reads them from there
        stored = finish_store(writer, store, config, posterior)
        _warn_if_stopped(stored)
        return stored
    draws, stats = concatenate(chunks, axis=1, xp=np)
    if jax.process_count() == 1:
        draws, stats = put_on_chains((draws, stats), mesh)
    else:  # under jax.distributed every process keeps all the draws, on its own device
        draws, stats = jax.device_put((draws, stats), jax.local_devices()[0])
    if isinstance(posterior, Posterior):
        ensemble = Ensemble(draws, stats, config, posterior.model, posterior.data.target_shape)
    else:
        ensemble = Ensemble(draws, stats, config)
    _warn_if_stopped(ensemble)
    return ensemble


# -- the compiled programs: module-level, so that calls with the same shapes reuse them ----------


@eqx.filter_jit
def _start_chains(posterior, sampler, positions, init_keys, warmup_keys, num_warmup, mesh):
    def start(posterior, _, position, init_key, warmup_key):
        algorithm = sampler.build(posterior)
        state = algorithm.init(position, init_key)
        return algorithm.warmup(warmup_key, state, num_warmup)

    return over_chains(start, posterior, mesh, (), positions, init_keys, warmup_keys)


@eqx.filter_jit
def _run_chunk(
    posterior, sampler, states, sample_keys, first_draw, chunk_size, thinning, mesh, live=None
):
    def chunk(posterior, shared, state, sample_key):
        first_draw, live = shared
        algorithm = sampler.build(posterior)

        def one_draw(state, draw_index):
            def one_step(state, t):
                step_index = draw_index * thinning + t
                return algorithm.step(jax.random.fold_in(sample_key, step_index), state)

            state, infos = jax.lax.scan(one_step, state, jnp.arange(thinning))
            info = jax.tree.map(lambda x: x[-1], infos)
            draw = posterior.constrain(state.position)
            stopped = sampler.chain_stopped(info)
            if stopped is not None:  # a stopped chain has no draws: mark them NaN
                draw = jax.tree.map(lambda x: jnp.where(stopped, jnp.nan, x), draw)
            return state, (draw, info)

        # with a live bar: the scan in blocks, each reporting to it (bayesover.inference._progress)
        state, (draws, infos) = live_progress.scan_draws(
            one_draw, state, first_draw, chunk_size, live, sampler.progress_stats, sample_key
        )
        return state, (draws, infos._asdict())

    return over_chains(chunk, posterior, mesh, (first_draw, live), states, sample_keys)


def _save_checkpoint(path, fingerprint, states, draws_done, chunks):
    """Gather the states on every process; write them (and the draws) from process 0."""
    states = to_host(states)
    if is_writer():
        checkpoints.save(path, fingerprint, states, draws_done, chunks)


def _warn_if_stopped(ensemble: Ensemble | StoredEnsemble):
    ok = np.asarray(ensemble.chain_ok())
    if not ok.all():
        warnings.warn(
            f"chains {np.flatnonzero(~ok).tolist()} stopped: an SG-MCMC iterate turned non-finite "
            "(a step size too large, or a log density that is not finite there). Their later "
            "draws are NaN and flagged in stats['stopped']; the other chains' draws are kept.",
            RuntimeWarning,
            stacklevel=3,
        )
