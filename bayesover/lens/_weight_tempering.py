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
(BlackJAX's tempered SMC with `blackjax.hmc`, the metric the particles' variance, the step
size tuned on the prior draws, then following the acceptance rate), which scale with d where
a random walk in a level set does not. Z(beta) is also the exponential-integral bound's
integral at n = beta.

The read-out's weights e^(beta K) 1{K <= eps} keep an ESS of at most about sqrt(4 / (pi d)) N
when K has d stiff directions (the level set's K lies within eps / d of eps, any stage's K
spreads over eps / sqrt(d)); the points where it runs thin are re-estimated by annealing from
their stage into the level set (`_weight_shell`, `refine`).

A pilot run (BlackJAX's adaptive tempering) picks the betas and tunes the kernels; the counted
runs replay them fixed, as `smc_log_evidence` does, since kernels tuned on the particles they
move bias Z. Written here (not in BlackJAX): the stopping rule (stop once half the particles
have K <= min eps), the per-stage record of K and the importance-sampling read-out of W with
its per-eps effective sample size and reliability.
"""

from __future__ import annotations

import math

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.special as sc
from blackjax.smc import tempered
from blackjax.smc.resampling import systematic
from jax.flatten_util import ravel_pytree
from jax.scipy.special import logsumexp

from bayesover.inference.samplers._moves import (
    adapt_step_size,
    hmc_chain,
    hmc_kernel,
    target_acceptance,
)
from bayesover.lens._particles import FLOOR, prior_draws, weighted_variance
from bayesover.lens._weight_shell import shell_functions, shell_read_out

MIN_ACCEPTANCE = 0.05


def tempering_runs(target, kl, grid, key, *, num_particles, num_runs, num_mcmc_steps,
                   num_integration_steps, target_ess, max_stages, beta_max, step_size,
                   stop_fraction, min_ess, refine):  # fmt: skip
    """A pilot run (adaptive: it picks the betas, tunes the HMC step and metric, and stops)
    and `num_runs` counted runs that replay its schedule with fixed kernels. Kernels tuned on
    the particles they move bias log Z: measured on the linear-Gaussian at d = N = 500, the
    adaptive run's log Z(beta) was +16 to +86 nats high after 150-240 stages, the replayed
    runs' within 0.4 nats. With `refine`, every eps whose read-out had an ESS below
    2 `min_ess` in the pilot or in any run is re-estimated by annealing into its level set
    (`_weight_shell`), pilot and replays again, from each run's particles at the first stage
    with half of them below eps (kept for every eps: N d numbers per eps and run). Returns
    the counted runs' curves and per-eps diagnostics (host numpy, see `_read_out`), beta_max
    and the pilot's last lambda."""
    keys, x, template = prior_draws(target, key, num_runs + 1, num_particles)
    d = x.shape[-1]
    if beta_max is None:
        beta_max = 10.0 * d / float(grid[0])
    functions = _functions(target, kl, template, beta_max)
    options = dict(num_mcmc_steps=num_mcmc_steps, num_integration_steps=num_integration_steps)
    pilot = _pilot(*functions, keys[0], x[0], jnp.asarray(grid[0], x.dtype),
                   jnp.asarray(beta_max, x.dtype), jnp.asarray(step_size, x.dtype),
                   jnp.asarray(grid, x.dtype), target_ess=target_ess, max_stages=max_stages,
                   stop_fraction=stop_fraction, snapshot=refine, **options)  # fmt: skip
    schedule = (pilot["lam"], pilot["step_size"], pilot["variance"], pilot["num_stages"])
    rows = np.asarray(pilot["row"])
    candidates = np.flatnonzero(rows > 0) if refine else np.zeros(0, int)
    runs, snapshots = [], []
    for r in range(1, num_runs + 1):
        out = _replay(*functions, keys[r], x[r], schedule, jnp.asarray(rows[candidates]),
                      **options)  # fmt: skip
        snapshots.append(out.pop("snapshots"))
        out = jax.tree.map(np.asarray, dict(out, num_stages=pilot["num_stages"]))
        # row 0: the prior draws, row j >= 1: moved at the lambda before stage j
        lams = np.asarray(pilot["lam"], np.float64)
        out["beta"] = beta_max * np.concatenate([[0.0, 0.0], lams])
        runs.append(_read_out(out, grid, min_ess))
    for run in runs:  # the read-out alone, kept beside the refined points for comparison
        run["read_out"], run["read_out_ess"] = run["log_weight"].copy(), run["ess"].copy()
        run["refined"] = np.zeros(grid.size, bool)
        run["shell_stages"] = np.zeros(grid.size, int)
    # thin in the pilot or in any run (the replays' ESS can fall below the pilot's)
    thin = np.min([np.asarray(pilot["best_ess"])] + [r["ess"] for r in runs], axis=0)
    for k, g in enumerate(candidates):
        if thin[g] >= 2 * min_ess:
            continue
        starts = jnp.stack([pilot["snapshots"][g]] + [s[k] for s in snapshots])
        beta = float(runs[0]["beta"][rows[g]])
        shell_keys = jax.random.split(jax.random.fold_in(keys[0], 1 + int(g)), num_runs + 1)
        parts = _shell(functions[0], functions[1], starts, shell_keys, float(grid[g]), beta,
                       step_size, target_ess, max_stages, min_ess, options)  # fmt: skip
        j = int(rows[g])
        for run, part in zip(runs, parts, strict=True):
            run["log_weight"][g] = min(run["log_z"][j] + part["log_weight"], 0.0)
            run["ess"][g], run["stage"][g] = part["ess"], j
            run["reason"][g] = run["acceptance_reason"] if j >= run["first_bad"] else part["reason"]
            run["refined"][g], run["shell_stages"][g] = True, part["num_stages"]
    return runs, float(beta_max), float(pilot["lam"][int(pilot["num_stages"]) - 1])


def _shell(k_fn, log_prior, starts, keys, eps, beta, step_size, target_ess, max_stages,
           min_ess, options):  # fmt: skip
    """`_weight_shell`'s annealing into {K <= eps} from pi_beta: a pilot from `starts[0]`
    (the tempering pilot's particles), then one replay from each run's `starts[r]`."""
    dtype = starts.dtype
    functions = shell_functions(k_fn, log_prior, jnp.asarray(eps, dtype),
                                jnp.asarray(beta, dtype))  # fmt: skip
    pilot = _pilot(*functions, keys[0], starts[0], jnp.asarray(-jnp.inf, dtype),
                   jnp.asarray(beta, dtype), jnp.asarray(step_size, dtype),
                   jnp.zeros((0,), dtype), target_ess=target_ess, max_stages=max_stages,
                   stop_fraction=0.5, retune=True, **options)  # fmt: skip
    m = int(pilot["num_stages"])
    schedule = (pilot["lam"], pilot["step_size"], pilot["variance"], pilot["num_stages"])
    lams = np.asarray(pilot["lam"][:m], np.float64)
    parts = []
    for r in range(1, starts.shape[0]):
        out = _replay(*functions, keys[r], starts[r], schedule, jnp.asarray([m]), **options)
        K_last = np.asarray(_values(k_fn, out["snapshots"][0]), np.float64)
        part = shell_read_out(np.asarray(out["K"]), K_last, np.asarray(out["acceptance"]),
                              lams, beta, eps, min_ess, MIN_ACCEPTANCE)  # fmt: skip
        parts.append(dict(part, num_stages=m))
    return parts


@eqx.filter_jit
def _values(fn, x):
    return jax.vmap(fn)(x)


def _functions(target, kl, template, beta_max):
    """K, log w and the tempering log-likelihood -beta_max K on raveled positions."""
    _, unravel = ravel_pytree(template)

    def k_fn(z):
        value = kl(unravel(z)).astype(z.dtype)
        return jnp.where(jnp.isnan(value), jnp.inf, value)

    def log_prior(z):
        return target.log_prior(unravel(z))

    def loglik(z):  # BlackJAX tempers lambda in [0, 1]: beta = beta_max lambda
        return jnp.maximum(-beta_max * k_fn(z), FLOOR)

    return k_fn, log_prior, loglik


def _jittered(key, eps, n, dtype):
    """Each particle's step size uniform in [0.5, 1.5] eps (independent of the particles, so
    the kernels stay fixed): a fixed trajectory length can resonate with the target's period."""
    return eps * jax.random.uniform(key, (n,), dtype, 0.5, 1.5)


@eqx.filter_jit
def _pilot(k_fn, log_prior, loglik, key, x, eps_min, beta_max, step_size, grid, *,
           num_mcmc_steps, num_integration_steps, target_ess, max_stages, stop_fraction,
           snapshot=False, retune=False):  # fmt: skip
    """Adaptive tempered SMC until half the particles have K <= min eps (or lambda = 1, or
    `max_stages`); records per stage the lambda reached and the kernel used. The next lambda
    is `_next_lambda`'s (BlackJAX's adaptive kernel bisects delta on a linear scale with an
    absolute tolerance, and at d = 20,000 jumped from beta 5e3 to 5e7 in one stage).

    For each eps of `grid (G,)` it also records the best importance-weight ESS of the read-out
    over the stages (`best_ess`), the first row whose particles have half their K <= eps
    (`row`, -1 if none) and, with `snapshot`, those particles (`snapshots (G, N, d)`): the
    starts of `_weight_shell`'s annealing into the level set. With `retune`, each stage's step
    is tuned on its particles before they move (`_tune_step`), not only followed from the last
    stage's acceptance: for paths whose geometry changes faster than one stage's control."""
    kernel = tempered.build_kernel(
        log_prior, loglik, hmc_kernel(num_integration_steps), blackjax.hmc.init, systematic
    )
    target_acc = target_acceptance(num_integration_steps)
    n, d = x.shape
    num_eps = grid.shape[0]
    buffers = {
        "lam": jnp.ones((max_stages,), x.dtype),
        "step_size": jnp.zeros((max_stages,), x.dtype),
        "variance": jnp.ones((max_stages, d), x.dtype),
        "best_ess": jnp.zeros((num_eps,), x.dtype),
        "row": jnp.full((num_eps,), -1, jnp.int32),
        "snapshots": jnp.zeros((num_eps if snapshot else 0, n, d), x.dtype),
    }

    def track(buffers, row, beta, K, particles):
        """Row `row`'s equally weighted particles, at `beta`, seen from every eps."""
        below = K[None, :] <= grid[:, None]
        log_v = jnp.where(below, beta * jnp.where(jnp.isfinite(K), K, 0.0)[None, :], -jnp.inf)
        lse, lse2 = logsumexp(log_v, axis=1), logsumexp(2 * log_v, axis=1)
        ess = jnp.where(jnp.isfinite(lse), jnp.exp(2 * lse - lse2), 0.0)
        take = (buffers["row"] < 0) & (jnp.mean(below, axis=1) >= 0.5)
        out = dict(buffers, best_ess=jnp.maximum(buffers["best_ess"], ess),
                   row=jnp.where(take, row, buffers["row"]))  # fmt: skip
        if snapshot:
            out["snapshots"] = jnp.where(take[:, None, None], particles[None],
                                         buffers["snapshots"])  # fmt: skip
        return out

    def cond(carry):
        state, _, i, _, K, _ = carry
        return (
            (state.tempering_param < 1.0)
            & (i < max_stages)
            & (jnp.mean(K <= eps_min) < stop_fraction)
        )

    def body(carry):
        state, key, i, eps, K, buffers = carry
        key, step_key, jitter_key, tune_key = jax.random.split(key, 4)
        var = weighted_variance(state.particles, state.weights)
        before = state.tempering_param  # the particles are moved at it, then reweighted
        if retune:

            def moved_at(z):
                return log_prior(z) + before * loglik(z)

            eps = _tune_step(moved_at, tune_key, state.particles, eps, num_integration_steps,
                             var, rounds=6)  # fmt: skip
        params = {"step_size": _jittered(jitter_key, eps, n, x.dtype),
                  "inverse_mass_matrix": var[None]}  # fmt: skip
        lam = _next_lambda(K, before, beta_max, target_ess)
        state, info = kernel(step_key, state, num_mcmc_steps, lam, params)
        K = jax.vmap(k_fn)(state.particles)
        buffers = dict(
            buffers,
            lam=buffers["lam"].at[i].set(lam),
            step_size=buffers["step_size"].at[i].set(eps),
            variance=buffers["variance"].at[i].set(var),
        )
        buffers = track(buffers, i + 1, beta_max * before, K, state.particles)
        eps = adapt_step_size(eps, jnp.mean(info.update_info.acceptance_rate), target_acc)
        return state, key, i + 1, eps, K, buffers

    key, tune_key = jax.random.split(key)
    step_size = _tune_step(log_prior, tune_key, x, step_size, num_integration_steps,
                           jnp.var(x, axis=0))  # fmt: skip
    init = (tempered.init(x), key, jnp.zeros((), jnp.int32), step_size, jax.vmap(k_fn)(x),
            buffers)  # fmt: skip
    _, _, num_stages, _, _, buffers = jax.lax.while_loop(cond, body, init)
    return dict(buffers, num_stages=num_stages)


def _tune_step(log_density, key, x, step_size, num_integration_steps, variance,
               rounds: int = 12):  # fmt: skip
    """A step size for HMC on `log_density`, tuned on its draws x before any move (the first
    stage's: the prior draws, lambda = 0).

    Each round proposes one HMC transition from every particle with the current (jittered)
    step and `variance` as metric, and updates eps <- eps exp(a - a*) from the mean
    acceptance a; the particles are not moved, so they stay exact draws. Why: the
    leapfrog energy error grows like d eps^4, so one starting step cannot suit every d (at
    d = 16,385 the default 0.5 accepted 8% on the first stage, at d = 20,000 under 5%, which
    flags every point after it); the stage-to-stage control alone would spend several
    nearly frozen stages getting there."""
    n = x.shape[0]
    target_acc = target_acceptance(num_integration_steps)

    def acceptance(move_key, steps):
        def one(k, position, step):
            _, acc = hmc_chain(k, position, log_density, step, variance, num_integration_steps, 1)
            return acc[0]

        return jnp.mean(jax.vmap(one)(jax.random.split(move_key, n), x, steps))

    def round_(_, carry):
        eps, key = carry
        key, move_key, jitter_key = jax.random.split(key, 3)
        rate = acceptance(move_key, _jittered(jitter_key, eps, n, x.dtype))
        return adapt_step_size(eps, rate, target_acc), key

    eps, _ = jax.lax.fori_loop(0, rounds, round_, (step_size, key))
    return eps


def _next_lambda(K, lam, beta_max, target_ess, iterations: int = 60):
    """The lambda' > lambda at which the weights e^(-(lambda' - lambda) beta_max K_i) keep an
    ESS of `target_ess` N: bisection on log(lambda' - lambda), 60 halvings of a range of
    e^-60 to 1 - lambda (or 1 - lambda itself if its ESS is still above the target)."""
    finite = jnp.isfinite(K)
    shifted = jnp.where(finite, K - jnp.min(jnp.where(finite, K, jnp.inf)), 0.0)

    def log_ess(delta):
        log_w = jnp.where(finite, -delta * beta_max * shifted, -jnp.inf)
        return 2 * logsumexp(log_w) - logsumexp(2 * log_w) - jnp.log(K.shape[0])

    goal = jnp.log(target_ess)
    top = jnp.log(jnp.maximum(1.0 - lam, 1e-12))

    def halve(_, bounds):
        low, high = bounds
        mid = 0.5 * (low + high)
        above = log_ess(jnp.exp(mid)) >= goal
        return jnp.where(above, mid, low), jnp.where(above, high, mid)

    low, _ = jax.lax.fori_loop(0, iterations, halve, (top - 60.0, top))
    delta = jnp.where(log_ess(jnp.exp(top)) >= goal, jnp.exp(top), jnp.exp(low))
    new = lam + delta
    return jnp.where(new >= 1.0 - 1e-6, 1.0, new).astype(K.dtype)


@eqx.filter_jit
def _replay(k_fn, log_prior, loglik, key, x, schedule, snapshot_rows, *, num_mcmc_steps,
            num_integration_steps):  # fmt: skip
    """Tempered SMC on the pilot's lambdas and kernels. Row 0 of the record is the prior
    draws; row j >= 1 the particles after stage j's moves (at the pilot's lambda_{j-1});
    `snapshots (S, N, d)` the particles of the rows `snapshot_rows (S,)`."""
    lams, step_sizes, variances, num_stages = schedule
    kernel = tempered.build_kernel(
        log_prior, loglik, hmc_kernel(num_integration_steps), blackjax.hmc.init, systematic
    )
    n = x.shape[0]
    rows = lams.shape[0] + 1
    record = {
        "K": jnp.full((rows, n), jnp.inf, x.dtype).at[0].set(jax.vmap(k_fn)(x)),
        "acceptance": jnp.full((rows,), jnp.nan, x.dtype),
        "step_size": jnp.full((rows,), jnp.nan, x.dtype),
        "snapshots": jnp.zeros((snapshot_rows.shape[0], n, x.shape[1]), x.dtype),
    }

    def body(i, carry):
        state, key, record = carry
        key, step_key, jitter_key = jax.random.split(key, 3)
        params = {"step_size": _jittered(jitter_key, step_sizes[i], n, x.dtype),
                  "inverse_mass_matrix": variances[i][None]}  # fmt: skip
        state, info = kernel(step_key, state, num_mcmc_steps, lams[i], params)
        record = {
            "K": record["K"].at[i + 1].set(jax.vmap(k_fn)(state.particles)),
            "acceptance": record["acceptance"]
            .at[i + 1]
            .set(jnp.mean(info.update_info.acceptance_rate)),
            "step_size": record["step_size"].at[i + 1].set(step_sizes[i]),
            "snapshots": jnp.where((snapshot_rows == i + 1)[:, None, None],
                                   state.particles[None], record["snapshots"]),
        }  # fmt: skip
        return state, key, record

    _, _, record = jax.lax.fori_loop(0, num_stages, body, (tempered.init(x), key, record))
    return record


def _read_out(out, grid, min_ess):
    """log Z at every recorded beta, then each eps's best stage (float64 on the host):
    `log_weight (G,)`, `ess (G,)`, `stage (G,)` (-1: not reached), `reason (G,)` strings
    ('' where reliable) and the stage record."""
    rows = int(out["num_stages"]) + 1
    beta = out["beta"][:rows]
    K = out["K"][:rows].astype(np.float64)
    acceptance = out["acceptance"][:rows]
    n = K.shape[1]
    # row 0 and row 1 are both at beta = 0; row j's particles give Z(beta_{j+1}) / Z(beta_j)
    log_z = np.zeros(rows)
    for j in range(1, rows - 1):
        step = beta[j + 1] - beta[j]
        log_z[j + 1] = log_z[j] + sc.logsumexp(-step * K[j]) - math.log(n)
    bad = np.where(np.nan_to_num(acceptance, nan=1.0) < MIN_ACCEPTANCE)[0]
    first_bad = int(bad[0]) if bad.size else rows
    acceptance_reason = (
        f"HMC acceptance fell below {MIN_ACCEPTANCE:.0%} at stage {first_bad} "
        f"(beta {beta[first_bad]:.3g})"
        if bad.size
        else ""
    )
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
            reason[g] = acceptance_reason
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
        "first_bad": first_bad,
        "acceptance_reason": acceptance_reason,
    }
