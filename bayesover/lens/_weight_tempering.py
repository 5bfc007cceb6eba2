"""W(eps) by tempering: adaptive tempered SMC on w(theta) e^(-beta K(theta)), then importance
sampling back to the level sets.

Along the path pi_beta(theta) = w(theta) e^(-beta K(theta)) / Z(beta), beta: 0 -> beta_max,

    Z(beta_{j+1}) = Z(beta_j) E_{pi_beta_j}[e^(-(beta_{j+1} - beta_j) K)],
    W(eps)       = Z(beta) E_{pi_beta}[e^(beta K) 1{K <= eps}]          for every beta,

so each stage's N equally weighted particles (after its HMC moves) give an estimate of the
whole curve, log W(eps) = log Z(beta_j) + log mean_i e^(beta_j K_i) 1{K_i <= eps}, and each
eps takes the stage where that estimate's importance weights have the largest effective
sample size (the stage whose K distribution straddles eps). Why not splitting: splitting
needs one level per log(1/rho) nats, and -log W grows like (d/2) log(1/eps) (62,000 nats at
d = 20,000, eps = 1e-3: 90,000 levels); tempering needs about sqrt(d/2) log(beta_max /
beta_1) stages at a fixed ESS per stage, and its moves are HMC on a smooth density
(BlackJAX's `adaptive_tempered_smc` with `blackjax.hmc`, the metric the particles' variance,
the step size following the acceptance rate), which scale with d where a random walk in a
level set does not. Z(beta) is also the exponential-integral bound's integral at n = beta.

Written here (not in BlackJAX): the stopping rule (stop once half the particles have K <=
min eps), the per-stage record of K and the importance-sampling read-out of W with its
per-eps effective sample size and reliability.
"""

from __future__ import annotations

import math

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.special as sc
from blackjax.smc import adaptive_tempered
from blackjax.smc.resampling import systematic
from jax.flatten_util import ravel_pytree

from bayesover.inference.samplers._moves import adapt_step_size, hmc_kernel, target_acceptance
from bayesover.lens._particles import FLOOR, prior_draws, weighted_variance

MIN_ACCEPTANCE = 0.05


def tempering_runs(target, kl, grid, key, *, num_particles, num_runs, num_mcmc_steps,
                   num_integration_steps, target_ess, max_stages, beta_max, step_size,
                   stop_fraction, min_ess):  # fmt: skip
    """`num_runs` independent runs; returns the per-run curves and their per-eps diagnostics
    (host numpy): `log_weight (R, G)`, `ess (R, G)`, `stage (R, G)` (-1: not reached),
    `reason (R, G)` strings ('' where reliable) and the per-run stage records."""
    keys, x, template = prior_draws(target, key, num_runs, num_particles)
    d = x.shape[-1]
    if beta_max is None:
        beta_max = 10.0 * d / float(grid[0])
    runs = []
    for r in range(num_runs):
        out = _tempering_run(
            target, kl, template, keys[r], x[r], jnp.asarray(grid[0], x.dtype),
            jnp.asarray(beta_max, x.dtype), jnp.asarray(step_size, x.dtype),
            num_mcmc_steps=num_mcmc_steps, num_integration_steps=num_integration_steps,
            target_ess=target_ess, max_stages=max_stages, stop_fraction=stop_fraction,
        )  # fmt: skip
        runs.append(_read_out(jax.tree.map(np.asarray, out), grid, beta_max, min_ess))
    return runs, float(beta_max)


@eqx.filter_jit
def _tempering_run(target, kl, template, key, x, eps_min, beta_max, step_size, *,
                   num_mcmc_steps, num_integration_steps, target_ess, max_stages,
                   stop_fraction):  # fmt: skip
    """One run, one compiled while loop over the stages. Row 0 of the record is the prior
    draws (beta = 0); row j >= 1 the particles after stage j's moves, at `beta[j]`."""
    _, unravel = ravel_pytree(template)

    def k_fn(z):
        value = kl(unravel(z)).astype(z.dtype)
        return jnp.where(jnp.isnan(value), jnp.inf, value)

    def log_prior(z):
        return target.log_prior(unravel(z))

    def loglik(z):  # -beta_max K on the lambda in [0, 1] scale of BlackJAX's tempering
        return jnp.maximum(-beta_max * k_fn(z), FLOOR)

    kernel = adaptive_tempered.build_kernel(
        log_prior, loglik, hmc_kernel(num_integration_steps), blackjax.hmc.init, systematic,
        target_ess,
    )  # fmt: skip
    target_acc = target_acceptance(num_integration_steps)
    n = x.shape[0]
    K0 = jax.vmap(k_fn)(x)
    record = {
        "beta": jnp.full((max_stages + 1,), jnp.nan, x.dtype).at[0].set(0.0),
        "K": jnp.full((max_stages + 1, n), jnp.inf, x.dtype).at[0].set(K0),
        "acceptance": jnp.full((max_stages + 1,), jnp.nan, x.dtype),
        "step_size": jnp.full((max_stages + 1,), jnp.nan, x.dtype),
    }

    def below(K):
        return jnp.mean(K <= eps_min)

    def cond(carry):
        state, _, i, _, K, _ = carry
        return (state.tempering_param < 1.0) & (i < max_stages) & (below(K) < stop_fraction)

    def body(carry):
        state, key, i, eps, _, record = carry
        key, step_key = jax.random.split(key)
        var = weighted_variance(state.particles, state.weights)
        params = {"step_size": eps[None], "inverse_mass_matrix": var[None]}
        lam = state.tempering_param  # the moves of this stage target pi at beta_max * lam
        state, info = kernel(step_key, state, num_mcmc_steps, params)
        state = state._replace(
            tempering_param=jnp.where(state.tempering_param >= 1.0 - 1e-6, 1.0,
                                      state.tempering_param).astype(x.dtype)
        )  # fmt: skip
        K = jax.vmap(k_fn)(state.particles)
        acceptance = jnp.mean(info.update_info.acceptance_rate)
        record = {
            "beta": record["beta"].at[i + 1].set(beta_max * lam),
            "K": record["K"].at[i + 1].set(K),
            "acceptance": record["acceptance"].at[i + 1].set(acceptance),
            "step_size": record["step_size"].at[i + 1].set(eps),
        }
        eps = adapt_step_size(eps, acceptance, target_acc)
        return state, key, i + 1, eps, K, record

    init = (adaptive_tempered.init(x), key, jnp.zeros((), jnp.int32), step_size, K0, record)
    state, _, num_stages, _, _, record = jax.lax.while_loop(cond, body, init)
    return dict(record, num_stages=num_stages, final_lambda=state.tempering_param)


def _read_out(out, grid, beta_max, min_ess):
    """log Z at every recorded beta, then each eps's best stage (float64 on the host)."""
    rows = int(out["num_stages"]) + 1
    beta = out["beta"][:rows].astype(np.float64)
    K = out["K"][:rows].astype(np.float64)
    acceptance = out["acceptance"][:rows]
    n = K.shape[1]
    # row 0 and row 1 are both at beta = 0; row j's particles give Z(beta_{j+1}) / Z(beta_j)
    log_z = np.zeros(rows)
    for j in range(1, rows - 1):
        step = beta[j + 1] - beta[j]
        log_z[j + 1] = log_z[j] + sc.logsumexp(-step * K[j]) - math.log(n)
    log_z[1] = 0.0
    bad = np.where(np.nan_to_num(acceptance, nan=1.0) < MIN_ACCEPTANCE)[0]
    first_bad = int(bad[0]) if bad.size else rows
    log_w = np.full(grid.size, np.nan)
    ess = np.zeros(grid.size)
    stage = np.full(grid.size, -1)
    reason = np.full(grid.size, "", dtype=object)
    finite = np.isfinite(K)
    for g, e in enumerate(grid):
        log_v = np.where(finite & (K <= e), beta[:, None] * np.where(finite, K, 0.0), -np.inf)
        lse = sc.logsumexp(log_v, axis=1)
        lse2 = sc.logsumexp(2 * log_v, axis=1)
        with np.errstate(invalid="ignore"):
            row_ess = np.where(np.isfinite(lse), np.exp(2 * lse - lse2), 0.0)
        j = int(np.argmax(row_ess))
        if row_ess[j] == 0.0:
            reason[g] = "no particle reached K <= eps (raise `max_stages` or `beta_max`)"
            continue
        log_w[g] = log_z[j] + lse[j] - math.log(n)
        ess[g], stage[g] = row_ess[j], j
        if j >= first_bad:
            reason[g] = (
                f"HMC acceptance fell below {MIN_ACCEPTANCE:.0%} at stage {first_bad} "
                f"(beta {beta[first_bad]:.3g})"
            )
        elif row_ess[j] < min_ess:
            reason[g] = (
                f"the importance weights of stage {j} have ESS {row_ess[j]:.1f} (< {min_ess:g})"
            )
    return {
        "log_weight": np.minimum(log_w, 0.0),
        "ess": ess,
        "stage": stage,
        "reason": reason,
        "beta": beta,
        "log_z": log_z,
        "acceptance": acceptance,
        "step_size": out["step_size"][:rows],
        "num_stages": rows - 1,
        "final_lambda": float(out["final_lambda"]),
    }
