"""`prequential_log_evidence`: the log evidence as an online code length, by data-annealed SMC.

By the chain rule, log M(x^n) = sum_t log M(x_t | x^{t-1}) with the sequential predictive
M(x_t | x^{t-1}) = E_{w(theta | x^{t-1})}[P_theta(x_t)^(1/T)]. Particles drawn from the prior
w are reweighted by P_theta(x_t)^(1/T) as each datum arrives (supervised: each pair (x_t, y_t),
conditional on x_t), so each term is log sum_i W_i P_i(x_t)^(1/T) with normalised weights W;
when the effective sample size drops below `ess_threshold * num_particles` the particles are
resampled (systematic) and moved by a few HMC steps that leave the partial posterior
w(theta) prod_{s <= t} P_theta(x_s)^(1/T) invariant. The HMC metric is the particles' variance
and the step size follows the acceptance rate, so the move adapts to the posterior's spread.

Why not `blackjax.partial_posteriors_smc`: it resamples and moves at every step and weighs the
particles *after* the move with the new target (E_{pi_t}[P(x_t)] rather than the prequential
E_{pi_{t-1}}[P(x_t)]), it recomputes the likelihood of every particle twice per step, and it has
no adaptive resampling. Here each particle's n per-datum log-likelihoods are cached (recomputed
only after a move), the step only reads column t, and the data mask (length n) keeps the scan
body one fixed shape: one compiled `lax.scan` over t, reused across calls of the same shape.
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.smc.resampling import systematic
from jax.flatten_util import ravel_pytree
from jax.scipy.special import logsumexp
from jaxtyping import Array, PRNGKeyArray

from bayesover._checks import check_int
from bayesover.inference.samplers._moves import adapt_step_size, hmc_chain
from bayesover.lens._result import EvidenceResult
from bayesover.lens._target import Target, as_target
from bayesover.posterior._posterior import AbstractPosterior


def prequential_log_evidence(
    posterior: AbstractPosterior | Target,
    *,
    key: PRNGKeyArray,
    num_particles: int = 1000,
    num_runs: int = 4,
    num_mcmc_steps: int = 5,
    num_integration_steps: int = 4,
    ess_threshold: float = 0.5,
    min_ess: float | None = None,
    order: Any = None,
) -> EvidenceResult:
    """log M(x^n) = sum_t log M(x_t | x^{t-1}) by data-annealed SMC (see the module docstring).

    **Arguments:**

    - `posterior`: a network `bo.Posterior`, a NumPyro target, or a `bo.lens.Target`.
    - `key`: a JAX PRNG key.
    - `num_particles`: particles per run, >= 2.
    - `num_runs`: independent runs (the standard error is taken across them), >= 1.
    - `num_mcmc_steps`, `num_integration_steps`: HMC steps per move and leapfrog steps per HMC
      step, >= 1.
    - `ess_threshold`: resample and move when ESS < `ess_threshold * num_particles`, in (0, 1].
    - `min_ess`: the run is `collapsed` when the ESS ever falls below it (default
      `max(2, num_particles / 100)`).
    - `order`: a permutation of `range(n)`: the order in which the data arrive (default: data
      order). `terms[:, t]` is then log M(x_{order[t]} | x_{order[:t]}).

    **Returns:** an `EvidenceResult` with `method="prequential"`, `terms` of shape
    `(num_runs, n)` (each run's terms sum to its entry of `runs`), `ess` the smallest ESS seen,
    and `num_nonfinite` the (particle, datum) log-likelihoods that were not finite (weight 0).
    """
    target = as_target(posterior)
    n = target.num_data
    num_particles = check_int("num_particles", num_particles, 2)
    num_runs = check_int("num_runs", num_runs, 1)
    num_mcmc_steps = check_int("num_mcmc_steps", num_mcmc_steps, 1)
    num_integration_steps = check_int("num_integration_steps", num_integration_steps, 1)
    if not 0.0 < float(ess_threshold) <= 1.0:
        raise ValueError(f"`ess_threshold` must be in (0, 1], got {ess_threshold!r}.")
    min_ess = max(2.0, num_particles / 100) if min_ess is None else float(min_ess)
    order_array = check_order(order, n)

    keys = jax.random.split(key, num_runs)
    out = _run(target, keys, jnp.asarray(order_array), num_particles, num_mcmc_steps,
               num_integration_steps, float(ess_threshold))  # fmt: skip
    out = jax.tree.map(np.asarray, out)
    terms = out["terms"].astype(np.float64)
    runs = terms.sum(axis=1)
    ess = out["ess"]
    finite = bool(np.all(np.isfinite(terms)))
    collapsed = (not finite) or float(ess.min()) < min_ess
    diagnostics: dict[str, Any] = {
        "ess_per_step": ess,
        "num_moves": out["num_moves"],
        "acceptance_rate": out["acceptance"],
        "step_size": out["step_size"],
        "order": order_array,
        "num_particles": num_particles,
    }
    if not finite:
        diagnostics["reason"] = "every particle had zero weight at some datum"
    elif collapsed:
        diagnostics["reason"] = f"the effective sample size fell below {min_ess:g}"
    return EvidenceResult.from_runs(
        runs,
        "prequential",
        ess=float(ess.min()),
        collapsed=collapsed,
        num_nonfinite=int(out["num_nonfinite"].sum()),
        diagnostics=diagnostics,
        terms=terms,
    )


def check_order(order: Any, n: int) -> np.ndarray:
    """`order` as an int array, checked to be a permutation of range(n) (None: the identity)."""
    if order is None:
        return np.arange(n)
    array = np.asarray(order)
    if (
        array.shape != (n,)
        or not np.issubdtype(array.dtype, np.integer)
        or not np.array_equal(np.sort(array), np.arange(n))
    ):
        raise ValueError(f"`order` must be a permutation of range({n}) (the data's indices).")
    return array.astype(np.int64)


@eqx.filter_jit
def _run(
    target: Target,
    keys: Array,
    order: Array,
    num_particles: int,
    num_mcmc_steps: int,
    num_integration_steps: int,
    ess_threshold: float,
) -> dict[str, Array]:
    n = target.num_data
    temperature = target.temperature
    example = target.sample_prior(jax.random.key(0))
    _, unravel = ravel_pytree(example)
    rank = jnp.zeros(n, jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32))

    def flat_prior(key):
        return ravel_pytree(target.sample_prior(key))[0]

    def pointwise(z):
        return target.pointwise_loglikelihood(unravel(z))

    def partial_logdensity(z, mask):
        position = unravel(z)
        loglik = target.pointwise_loglikelihood(position)
        value = target.log_prior(position) + jnp.sum(jnp.where(mask, loglik, 0.0)) / temperature
        return jnp.where(jnp.isfinite(value), value, -jnp.inf)

    def move(key, z, step_size, mask):
        """Resampled particles z -> num_mcmc_steps HMC steps targeting the partial posterior."""
        inverse_mass = jnp.maximum(jnp.var(z, axis=0), 1e-12)
        logdensity = jax.tree_util.Partial(partial_logdensity, mask=mask)

        def chain(key, position):
            key_jitter, key_steps = jax.random.split(key)
            eps = step_size * jax.random.uniform(key_jitter, minval=0.5, maxval=1.5)
            position, acceptance = hmc_chain(key_steps, position, logdensity, eps, inverse_mass,
                                             num_integration_steps, num_mcmc_steps)  # fmt: skip
            return position, jnp.mean(acceptance)

        z, acceptance = jax.vmap(chain)(jax.random.split(key, num_particles), z)
        acceptance = jnp.mean(jnp.nan_to_num(acceptance))
        step_size = adapt_step_size(step_size, acceptance, 0.65, gain=2.0, max_factor=2.0,
                                    bounds=None)  # fmt: skip
        return z, step_size, acceptance

    def one_run(key):
        key_init, key_scan = jax.random.split(key)
        z = jax.vmap(flat_prior)(jax.random.split(key_init, num_particles))
        loglik = jax.vmap(pointwise)(z)
        d = z.shape[1]
        step_size = jnp.asarray(0.8 * d**-0.25, z.dtype)
        log_weights = jnp.full((num_particles,), -math.log(num_particles), z.dtype)

        def step(carry, inputs):
            z, loglik, log_weights, step_size, num_moves, acceptance = carry
            t, key = inputs
            increment = loglik[:, order[t]] / temperature
            finite = jnp.isfinite(increment)
            increment = jnp.where(finite, increment, -jnp.inf)
            term = logsumexp(log_weights + increment)
            log_weights = log_weights + increment - term
            log_weights = jnp.where(jnp.isfinite(log_weights), log_weights, -jnp.inf)
            ess = jnp.exp(-logsumexp(2.0 * log_weights))
            ess = jnp.where(jnp.isfinite(term), ess, 0.0)
            resample = (ess < ess_threshold * num_particles) & (t < n - 1) & jnp.isfinite(term)

            def resample_move(args):
                z, loglik, log_weights, step_size, num_moves, acceptance = args
                key_resample, key_move = jax.random.split(key)
                idx = systematic(key_resample, jnp.exp(log_weights), num_particles)
                z, step_size, accepted = move(key_move, z[idx], step_size, rank <= t)
                uniform = jnp.full_like(log_weights, -math.log(num_particles))
                acceptance = acceptance + accepted
                return z, jax.vmap(pointwise)(z), uniform, step_size, num_moves + 1, acceptance

            carry = (z, loglik, log_weights, step_size, num_moves, acceptance)
            carry = jax.lax.cond(resample, resample_move, lambda args: args, carry)
            return carry, (term, ess, jnp.sum(~finite))

        init = (z, loglik, log_weights, step_size, jnp.int32(0), jnp.zeros((), z.dtype))
        xs = (jnp.arange(n), jax.random.split(key_scan, n))
        carry, (terms, ess, nonfinite) = jax.lax.scan(step, init, xs)
        _, _, _, step_size, num_moves, acceptance = carry
        return {
            "terms": terms,
            "ess": ess,
            "num_nonfinite": jnp.sum(nonfinite),
            "num_moves": num_moves,
            "acceptance": acceptance / jnp.maximum(num_moves, 1),
            "step_size": step_size,
        }

    return jax.lax.map(one_run, keys)
