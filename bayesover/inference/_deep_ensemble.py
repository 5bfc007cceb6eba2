"""Deep ensembles: K MAP networks from K independent prior draws, trained as one program.

Member m starts at a prior draw u_m^(0) ~ p(u) and follows an optax optimiser on

    -log p(u) - (1/T) sum_i log p(y_i | x_i, u)

(the prior acts as the regulariser; with `batch_size` the likelihood is the unbiased minibatch
estimate scaled by N/b, each member with its own epoch-wise batch order). The K optimisations are
`jax.vmap`ped over one `lax.scan` (the loop of `bo.map_estimate`), so they compile and run as one
program, and that program is reused by later calls with the same shapes and optimiser object.

Keys. `key` splits into a training key and a sampling key (`then_sample`); the training key
splits into K member keys, and member m draws its start with `fold_in(member_key, 0)` and orders
its minibatches with `fold_in(member_key, 1)`, exactly as `bo.map_estimate(posterior,
key=fold_in(member_key, 1), init=posterior.initial_position(fold_in(member_key, 0)))` would.

The result is a `bo.Ensemble` with one chain per member and one draw per chain, so it joins MCMC
ensembles of the same network with `Ensemble.concat` (along chains).
"""

from __future__ import annotations

import warnings
from typing import Any

import equinox as eqx
import jax
import numpy as np
import optax
from jaxtyping import PRNGKeyArray

from bayesover._checks import check_int, check_int_between, check_key
from bayesover._trees import stack
from bayesover.ensemble._ensemble import Ensemble
from bayesover.inference._optimize import _map_loop
from bayesover.inference._sample import sample
from bayesover.inference._sharding import choose_mesh, mesh_shape, over_chains, to_host
from bayesover.inference.samplers._base import AbstractSampler
from bayesover.posterior._posterior import AbstractPosterior, Posterior

# One instance, so that calls without an optimiser share a compiled program (optax
# transformations are closures: a new `optax.adam(...)` is a new static argument).
_DEFAULT_OPTIMIZER = optax.adam(1e-2)


def deep_ensemble(
    posterior: AbstractPosterior,
    num_members: int,
    optimizer: optax.GradientTransformation | None,
    num_steps: int,
    *deprecated_positional: Any,
    key: PRNGKeyArray | None = None,
    batch_size: int | None = None,
    then_sample: AbstractSampler | None = None,
    num_warmup: int = 1000,
    num_draws: int = 1000,
    thinning: int = 1,
    progress: bool = False,
    mesh: Any = None,
) -> Ensemble:
    """Train `num_members` MAP networks together and return them as an ensemble.

    **Arguments:**

    - `posterior`: a `bo.Posterior` (network) or a NumPyro posterior (full batch only).
    - `num_members`: K >= 1, the number of independently initialised members.
    - `optimizer`: an optax transformation, or `None` for `optax.adam(1e-2)`. Pass the same
      object again to reuse the compiled program.
    - `num_steps`: optimiser steps per member, >= 1.
    - `key`: a JAX PRNG key, keyword-only (`key=`, as in `bo.sample`); it alone fixes the
      starts, batch orders and `then_sample` draws.
    - `batch_size`: keyword-only minibatch size in [1, N]; `None` means full batch.

    Passing `key` (and `batch_size`) positionally after `num_steps`, the signature before
    0.2, still works for one release with a DeprecationWarning.
    - `then_sample`: optional sampler (`bo.SGLD(...)`, `bo.NUTS()`, ...) run from the K modes,
      one chain per member ("MAP then sample"), with `num_warmup`, `num_draws`, `thinning` and
      `progress` passed to `bo.sample`.
    - `mesh`: the devices, as in `bo.sample`: members over the `chains` axis, the training
      data split over the `data` axis (gradients summed over shards); default: members first.

    **Returns:** a `bo.Ensemble`. Without `then_sample`: params (constrained) shaped
    `(num_members, 1, ...)`, stats `{"lp": (num_members, 1)}` (the full-data log density at
    each member's optimum) and config with `sampler_name="deep_ensemble"`. With `then_sample`:
    `bo.sample`'s ensemble of `num_members` chains, its config extended with the MAP settings
    (`sampler_name` becomes `"deep_ensemble+<Sampler>"`).
    """
    if not isinstance(posterior, AbstractPosterior):
        raise TypeError(
            f"`posterior` must be a bayesover posterior, got {type(posterior).__name__}."
        )
    key, batch_size = _deprecated_key_batch_size(deprecated_positional, key, batch_size)
    check_int("num_members", num_members, minimum=1)
    check_int("num_steps", num_steps, minimum=1)
    if optimizer is None:
        optimizer = _DEFAULT_OPTIMIZER
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"`optimizer` must be an optax GradientTransformation (optax.adam(1e-2), ...), "
            f"got {optimizer!r}."
        )
    key = check_key(key)
    if batch_size is not None:
        if not isinstance(posterior, Posterior):
            raise TypeError("`batch_size` needs a network bo.Posterior (it has data to batch).")
        check_int_between(
            "batch_size", batch_size, 1, posterior.num_data, high_name="N", allow_none=True
        )
    if then_sample is not None:
        if not isinstance(then_sample, AbstractSampler):
            raise TypeError(
                "`then_sample` must be a bayesover sampler (bo.SGLD(...), bo.NUTS(), ...) or "
                f"None, got {then_sample!r}."
            )
        check_int("num_warmup", num_warmup, minimum=0)
        check_int("num_draws", num_draws, minimum=1)
        check_int("thinning", thinning, minimum=1)
        then_sample.build(posterior)  # configuration errors surface before training
    layout = choose_mesh(mesh, num_members, posterior)

    train_key, sample_key = jax.random.split(key)
    member_keys = jax.random.split(train_key, num_members)
    init_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(member_keys)
    data_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(member_keys)
    starts = None  # network posteriors draw their starts inside the compiled program
    if not isinstance(posterior, Posterior):  # NumPyro initialisation is not traceable
        draws = [posterior.initial_position(k) for k in init_keys]
        starts = stack(draws)
    positions, params, lp = _train_members(
        posterior, optimizer, starts, init_keys, data_keys, num_steps, batch_size, layout
    )
    if jax.process_count() > 1:  # under jax.distributed every process keeps all members
        members = to_host((positions, params, lp))
        positions, params, lp = jax.device_put(members, jax.local_devices()[0])

    bad = np.flatnonzero(~np.isfinite(np.asarray(lp)))
    if bad.size:
        warnings.warn(
            f"deep-ensemble members {bad.tolist()} ended at a non-finite log density (learning "
            "rate too large?); they are kept, with lp recorded in stats['lp'].",
            RuntimeWarning,
            stacklevel=2,
        )
    config = {
        "optimizer": repr(optimizer),
        "num_members": num_members,
        "num_steps": num_steps,
        "batch_size": batch_size,
        "key": tuple(int(x) for x in np.asarray(jax.random.key_data(key)).ravel()),
        "temperature": posterior.temperature,
        "mesh": mesh_shape(layout),
    }
    if then_sample is not None:
        sampled = sample(
            posterior,
            then_sample,
            key=sample_key,
            num_chains=num_members,
            num_warmup=num_warmup,
            num_draws=num_draws,
            thinning=thinning,
            init=positions,
            progress=progress,
            mesh=mesh,
        )
        assert isinstance(sampled, Ensemble)  # no `store`: the draws are in memory
        merged = {
            **sampled.config,
            **{f"map_{k}": v for k, v in config.items() if k != "temperature"},
            "sampler_name": f"deep_ensemble+{type(then_sample).__name__}",
            "init": "deep_ensemble",
        }
        return Ensemble(sampled.params, sampled.stats, merged, sampled.model, sampled.target_shape)

    params = jax.tree.map(lambda x: x[:, None], params)
    stats = {"lp": lp[:, None]}
    config = {"sampler": "deep_ensemble", "sampler_name": "deep_ensemble", **config}
    if isinstance(posterior, Posterior):
        return Ensemble(params, stats, config, posterior.model, posterior.data.target_shape)
    return Ensemble(params, stats, config)


def _deprecated_key_batch_size(args: tuple, key: Any, batch_size: Any) -> tuple[Any, Any]:
    """`key` and `batch_size` from the old positional form `(..., num_steps, key, batch_size)`,
    with a DeprecationWarning; a TypeError for too many or duplicated arguments."""
    if len(args) > 2:
        raise TypeError(
            "deep_ensemble() takes 4 positional arguments (posterior, num_members, optimizer, "
            f"num_steps) but {4 + len(args)} were given; pass `key=` and `batch_size=` (and "
            "the other options) by keyword."
        )
    if args:
        if key is not None:
            raise TypeError("deep_ensemble() got `key` both positionally and as `key=`.")
        if len(args) == 2 and batch_size is not None:
            raise TypeError(
                "deep_ensemble() got `batch_size` both positionally and as `batch_size=`."
            )
        warnings.warn(
            "passing `key` (and `batch_size`) to bo.deep_ensemble positionally is deprecated "
            "and will be removed in the next release: call "
            "bo.deep_ensemble(posterior, num_members, optimizer, num_steps, key=key, "
            "batch_size=...), as bo.sample takes `key=`.",
            DeprecationWarning,
            stacklevel=3,
        )
        key = args[0]
        if len(args) == 2:
            batch_size = args[1]
    if key is None:
        raise TypeError("deep_ensemble() needs `key=`, a JAX PRNG key (jax.random.key(0)).")
    return key, batch_size


# -- the compiled programs: module-level, so that calls with the same shapes reuse them ----------


def _train_members_impl(
    posterior, optimizer, starts, init_keys, data_keys, num_steps, batch_size, mesh
):
    def one(posterior, _, init_key, data_key, start=None):
        if start is None:
            start = posterior.initial_position(init_key)
        result = _map_loop(posterior, data_key, optimizer, num_steps, batch_size, start)
        position = result.position
        return position, posterior.constrain(position), posterior.logdensity(position)

    mapped = (init_keys, data_keys) if starts is None else (init_keys, data_keys, starts)
    return over_chains(one, posterior, mesh, (), *mapped)


# `eqx.debug.get_num_traces(_train_members_traced)` counts compilations (tests use it).
_train_members_traced = eqx.debug.assert_max_traces(_train_members_impl, max_traces=None)
_train_members = eqx.filter_jit(_train_members_traced)
