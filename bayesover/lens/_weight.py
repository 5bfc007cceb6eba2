"""The weight of the hypothesis: W(eps) = w{theta : K(theta) <= eps}, for a whole grid of eps.

W is the prior mass of the models within per-sample KL eps of the truth; it bounds the regret of
the Bayes mixture, D(P_theta0^n || M) <= min_eps [-log W(eps) + n eps] (see `bounds`). Two
estimators:

- `"splitting"`: adaptive multilevel splitting on K (nested sampling's prior-mass curve is
  exactly W). N prior particles; at stage k the level L_{k+1} is the rho-quantile of their K;
  the survivors {K < L_{k+1}} are a fraction r_k ~ rho, and log W(L_{k+1}) = sum_j log r_j.
  Between levels the curve is the stage's empirical distribution: for L_{k+1} <= eps < L_k,

      log W(eps) = sum_{j<k} log r_j + log #{i : K_i <= eps} / N,

  unbiased for W(eps) / W(L_k) since the stage-k particles are prior draws restricted to
  {K < L_k}. The killed particles are replaced by copies of survivors, and everyone moves by
  Metropolis steps (`bayesover.inference.samplers._moves.random_walk_metropolis`) that leave
  the prior restricted to {K < L} invariant: a random walk with the
  survivors' covariance (its correlation shrunk towards I, Ledoit-Wolf; diagonal only above
  `full_covariance_max` dimensions), accepted with probability min(1, w(theta') / w(theta))
  if K(theta') < L, its scale tuned towards `target_acceptance` on the population's acceptance.
  The steps come in blocks of `num_mcmc_steps` until the particles are decorrelated from where
  the level started them (mean squared whitened jump >= `target_mixing` * 2d, and rank
  correlation of K before/after <= max(0.1, 3 / sqrt(N))) or `max_mcmc_steps`: clones that
  have not spread out sit too deep and bias W UP (about 3d steps per level in d dimensions).
  One run gives the whole curve down to min(eps); `num_runs` independent runs give the mean
  of log W and its stderr.
- `"laplace"`: the quadratic model K ~ (1/2) delta^T H delta at theta0 (see `weight_curve`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.special as sc
from jax.flatten_util import ravel_pytree
from jaxtyping import PRNGKeyArray, PyTree

from bayesover._checks import check_bool, check_fraction, check_int
from bayesover.inference._optimize import minimise
from bayesover.inference.samplers._moves import random_walk_metropolis
from bayesover.lens._kl import as_kl
from bayesover.lens._lanczos import top_eigenpairs
from bayesover.lens._target import Target, as_target
from bayesover.lens._weight_tempering import tempering_runs
from bayesover.posterior._posterior import AbstractPosterior

_COLLAPSE_ACCEPTANCE = 0.01
_COLLAPSE_MOVED = 0.5
_COLLAPSE_MIXING = 0.25
_DENSE_HESSIAN_MAX = 1000
_MAX_CORRELATION = 0.1


def _ranks(values):
    return jnp.argsort(jnp.argsort(values)).astype(values.dtype)


@dataclasses.dataclass(frozen=True)
class WeightCurve:
    """log W(eps) on a grid (host numpy).

    **Fields:**

    - `eps`: `(G,)` ascending grid of eps > 0.
    - `log_weight`: `(G,)` log W(eps) (mean over runs; NaN where no run reached eps).
    - `log_weight_stderr`: `(G,)` std over runs / sqrt(num_runs) (NaN for one run; 0 for the
      deterministic "laplace").
    - `method`: `"splitting"`, `"tempering"` or `"laplace"`.
    - `num_levels`: splitting levels of the longest run (0 for "laplace").
    - `diagnostics`: per-method arrays: splitting `(num_runs, levels)` arrays `acceptance`,
      `moved` (fraction of particles that moved), `mixing` (squared whitened jump / 2d),
      `correlation` (rank correlation of K before/after), `steps`, `levels` L_k and `log_mass`
      log W(L_k); `runs` (the per-run curves), `poorly_mixed`, `reason` when collapsed;
      tempering `runs`, `ess`, `stage`, `beta`, `log_z`, `acceptance`, `step_size` per run,
      `refined` `(G,)` (annealed into the level set), `shell_stages` `(num_runs, G)`,
      `read_out` / `read_out_ess` `(num_runs, G)` (the plain read-out at every eps);
      laplace `eigenvalues`, `stiff` (directions counted per eps), `log_prior_density`.
    - `collapsed`: no point of the curve is to be trusted (none is `reliable`).
    - `reliable`: `(G,)` bool, per eps: the estimate there rests only on moves that worked.
      Splitting: the point was assigned at a stage every earlier level of whose Metropolis
      moves passed (acceptance >= 1%, at least half the particles moved, mixing >= 0.25), not
      below a plateau of K or the level cap, in every run. Tempering: its stage's importance
      weights have ESS >= `min_ess` (for a refined point: the annealing reached the level set
      and the fraction inside has ESS >= `min_ess`) and the HMC acceptance stayed >= 5% up to
      that stage, in every run. `bounds` uses only the reliable points.
    - `reasons`: `(G,)` strings, why each unreliable point is not reliable ('' where it is).
    """

    eps: np.ndarray
    log_weight: np.ndarray
    log_weight_stderr: np.ndarray
    method: str
    num_levels: int
    diagnostics: dict[str, Any] = dataclasses.field(default_factory=dict)
    collapsed: bool = False
    reliable: np.ndarray | None = None
    reasons: tuple[str, ...] = ()

    def __post_init__(self):
        finite = np.isfinite(np.asarray(self.log_weight))
        reliable = finite if self.reliable is None else np.asarray(self.reliable, bool) & finite
        reasons = tuple(self.reasons) or tuple("" if r else "not estimated" for r in finite)
        object.__setattr__(self, "reliable", reliable)
        object.__setattr__(self, "reasons", reasons)

    def __str__(self) -> str:
        lo, hi = float(self.eps[0]), float(self.eps[-1])
        finite = self.log_weight[np.isfinite(self.log_weight)]
        low = float(finite.min()) if finite.size else math.nan
        unit = "stages" if self.method == "tempering" else "levels"
        text = (
            f"WeightCurve({self.method}: log W from {low:.2f} to "
            f"{float(np.nanmax(self.log_weight)):.2f} nats over eps in [{lo:.3g}, {hi:.3g}], "
            f"{self.eps.size} points, {self.num_levels} {unit})"
        )
        if self.collapsed:
            text += f" [UNRELIABLE: {self.diagnostics.get('reason', 'collapsed')}]"
        elif not (reliable := np.asarray(self.reliable, bool)).all():
            first = next(r for r, ok in zip(self.reasons, reliable, strict=True) if not ok)
            good = self.eps[reliable]
            text += (
                f" [{int(reliable.sum())} of {self.eps.size} points reliable, eps in "
                f"[{good.min():.3g}, {good.max():.3g}]; the others: {first}]"
            )
        elif self.diagnostics.get("poorly_mixed", False):
            text += (
                " [WARNING: poorly mixed at some level (log W likely too high); "
                "raise max_mcmc_steps]"
            )
        return text

    def to_dataset(self):
        """`xarray.Dataset` with `neg_log_weight` and `neg_log_weight_stderr` along `eps`."""
        import xarray as xr

        return xr.Dataset(
            {
                "neg_log_weight": ("eps", -self.log_weight),
                "neg_log_weight_stderr": ("eps", self.log_weight_stderr),
                "reliable": ("eps", np.asarray(self.reliable, np.int8)),
            },
            coords={"eps": self.eps},
            attrs={"method": self.method, "collapsed": int(self.collapsed)},
        )


def check_eps(eps: Any) -> np.ndarray:
    """`eps` as a sorted, de-duplicated float64 grid of finite values > 0."""
    grid = np.asarray(eps, np.float64).reshape(-1)
    if grid.size == 0:
        raise ValueError("`eps` is empty; give a grid of KL levels eps > 0.")
    if not np.all(np.isfinite(grid)) or np.any(grid <= 0):
        raise ValueError(f"`eps` must hold finite values > 0, got min {grid.min()!r}.")
    return np.unique(grid)


def weight_curve(
    posterior: AbstractPosterior | Target,
    kl: Any,
    eps: Any,
    *,
    key: PRNGKeyArray,
    method: str = "splitting",
    num_particles: int = 1000,
    num_runs: int = 4,
    fraction: float = 0.5,
    num_mcmc_steps: int = 10,
    max_mcmc_steps: int | None = None,
    target_mixing: float = 0.8,
    max_levels: int = 1000,
    target_acceptance: float = 0.25,
    full_covariance_max: int = 500,
    truth_position: PyTree | None = None,
    optimize_steps: int = 2000,
    num_eigs: int = 50,
    num_prior_draws: int = 4096,
    num_integration_steps: int = 5,
    target_ess: float = 0.5,
    max_stages: int = 2000,
    beta_max: float | None = None,
    step_size: float = 0.5,
    min_ess: float | None = None,
    refine: bool = True,
) -> WeightCurve:
    """log W(eps), W(eps) = w{theta : K(theta) <= eps}, on the grid `eps`.

    **Arguments:**

    - `posterior`: a network `bo.Posterior` or NumPyro target; only its prior is used.
    - `kl`: a function `position -> K(theta)` (`kl_from_sample`, `kl_gaussian_outputs`, or an
      exact KL).
    - `eps`: the grid, values > 0 (returned sorted).
    - `key`: a JAX PRNG key.
    - `method`: `"splitting"` (see the module docstring), `"tempering"` or `"laplace"`.

    Tempering (`bayesover.lens._weight_tempering`; the one that scales with d): adaptive
    tempered SMC on w e^(-beta K), beta: 0 -> until half the particles have K <= min(eps)
    (or `beta_max`, default 10 d / min(eps), or `max_stages`), `num_particles` N, ESS
    `target_ess` N per stage, `num_mcmc_steps` HMC steps of `num_integration_steps` leapfrog
    steps per stage (initial whitened step `step_size`, then tuned to acceptance 0.65) in a
    pilot run whose schedule and kernels `num_runs` counted runs replay, fixed; then
    log W(eps) = log Z(beta_j) + log mean_i e^(beta_j K_i) 1{K_i <= eps} at the stage j whose
    weights have the largest ESS; points whose ESS is below `min_ess` (default max(10,
    N / 50)) are not `reliable`. Cost: about sqrt(d_eff / 2) log(beta_end / beta_1) stages of
    N * num_mcmc_steps * num_integration_steps gradients of log w - beta K. With `refine`
    (default), each eps whose read-out ESS was below 2 `min_ess` (in the pilot or any run) is
    estimated instead by annealing from the first stage with half its particles below eps
    into the level set {K <= eps} (`bayesover.lens._weight_shell`: W = Z(beta) Z_S
    P(K <= eps), reliable if that last fraction's ESS is at least `min_ess`); it costs one
    more pilot and replays per such eps, 4-10 stages each on the closed forms, and keeps
    each run's N x d particles at every eps's starting stage. The read-out's ESS is at most
    about sqrt(4 / (pi d)) N for a K with d stiff directions, so without it high-dimensional
    points are flagged.

    Splitting: `num_particles` N, `num_runs`, `fraction` rho (survivors per level),
    `num_mcmc_steps` (a block of Metropolis steps), `max_mcmc_steps` per level (default
    max(50 blocks, 10 d)), `target_mixing`, `max_levels`, `target_acceptance`,
    `full_covariance_max`. Cost: about N * log(1/W(min eps)) / log(1/rho) * 3d evaluations of K
    and log w; the levels run in one compiled while loop, the particles vectorised.

    Laplace: W(eps) ~ prior mass of the ellipsoid E = {(1/2) delta^T H delta <= eps},
    delta = theta - theta0, H the Hessian of K at theta0 (`truth_position`, else the minimiser
    of K by Adam from the prior mean in `optimize_steps` steps), eigenpairs (lambda_i, u_i)
    (exact from the dense Hessian for d <= 1000, else the top `num_eigs` by Lanczos,
    `flatness.top_eigenpairs`).
    Order the directions with lambda_i > 0 by lambda_i / a_i, a_i = 1 / (u_i^T Sigma u_i) the
    prior precision along u_i, stiffest first, and let S_k be the first k. E lies inside the
    cylinder {sum_{i in S_k} lambda_i z_i^2 / 2 <= eps} (the other directions left free: their
    prior mass is 1), and for eps small against the prior's scale along S_k the prior density
    is constant across it, so each k gives (the volume of a k-ellipsoid times the density)

        log W_k(eps) = log w_k(theta0) + (k/2) log(2 pi eps) - (1/2) sum_{i in S_k} log lambda_i
                       - log Gamma(k/2 + 1),                log W_0 = 0,

    and the estimate is min_k log W_k(eps): flat directions (whose ellipsoid half-width
    sqrt(2 eps / lambda_i) exceeds the prior's width) drop out by themselves, continuously in
    eps. w_k is the prior's marginal density of the S_k coordinates at theta0: log w(theta0)
    when k = d, else log w(theta0) - log N_d(theta0; mu, Sigma) + log N_k(U_k theta0; U_k mu,
    U_k Sigma U_k^T), the exact density times the marginal-to-joint ratio of the prior's
    Gaussian approximation (mu, diagonal Sigma from `num_prior_draws` prior draws; exact for a
    Gaussian prior with diagonal covariance). Deterministic given H: stderr 0. It is the
    small-eps limit: good where K is quadratic over E, poor once E reaches the prior's scale.
    """
    target = as_target(posterior)
    kl = as_kl(kl)
    grid = check_eps(eps)
    if method == "splitting":
        return _splitting(
            target,
            kl,
            grid,
            key,
            num_particles=num_particles,
            num_runs=num_runs,
            fraction=fraction,
            num_mcmc_steps=num_mcmc_steps,
            max_mcmc_steps=max_mcmc_steps,
            target_mixing=target_mixing,
            max_levels=max_levels,
            target_acceptance=target_acceptance,
            full_covariance_max=full_covariance_max,
        )
    if method == "tempering":
        return _tempering(
            target,
            kl,
            grid,
            key,
            num_particles=check_int("num_particles", num_particles, 2),
            num_runs=check_int("num_runs", num_runs, 1),
            num_mcmc_steps=check_int("num_mcmc_steps", num_mcmc_steps, 1),
            num_integration_steps=check_int("num_integration_steps", num_integration_steps, 1),
            target_ess=check_fraction("target_ess", target_ess),
            max_stages=check_int("max_stages", max_stages, 1),
            beta_max=None if beta_max is None else _positive("beta_max", beta_max),
            step_size=_positive("step_size", step_size),
            min_ess=(
                max(10.0, num_particles / 50) if min_ess is None else _positive("min_ess", min_ess)
            ),
            refine=check_bool("refine", refine),
        )
    if method == "laplace":
        return _laplace(
            target, kl, grid, key, truth_position, optimize_steps, num_eigs, num_prior_draws
        )
    raise ValueError(f"`method` must be 'splitting', 'tempering' or 'laplace', got {method!r}.")


def _positive(name: str, value: Any) -> float:
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
    return number


# ---------------------------------------------------------------------------- tempering


def _tempering(target, kl, grid, key, **options) -> WeightCurve:
    runs, beta_max, final_lambda = tempering_runs(
        target, kl, grid, key, stop_fraction=0.5, **options
    )
    log_w = np.stack([r["log_weight"] for r in runs])
    num_runs = len(runs)
    reasons = tuple(
        next((r["reason"][g] for r in runs if r["reason"][g]), "") for g in range(grid.size)
    )
    reliable = np.array([not text for text in reasons]) & np.all(np.isfinite(log_w), axis=0)
    mean = np.mean(log_w, axis=0)
    stderr = (
        np.std(log_w, axis=0, ddof=1) / math.sqrt(num_runs)
        if num_runs > 1
        else np.full_like(mean, np.nan)
    )
    diagnostics: dict[str, Any] = {
        "runs": log_w,
        "ess": np.stack([r["ess"] for r in runs]),
        "stage": np.stack([r["stage"] for r in runs]),
        "num_stages_per_run": np.array([r["num_stages"] for r in runs]),
        "beta": [r["beta"] for r in runs],
        "log_z": [r["log_z"] for r in runs],
        "acceptance": [r["acceptance"] for r in runs],
        "step_size": [r["step_size"] for r in runs],
        "beta_max": beta_max,
        "beta_end": beta_max * final_lambda,
        "refined": runs[0]["refined"],
        "read_out": np.stack([r["read_out"] for r in runs]),
        "read_out_ess": np.stack([r["read_out_ess"] for r in runs]),
        "shell_stages": np.stack([r["shell_stages"] for r in runs]),
    }
    if not reliable.any():
        diagnostics["reason"] = next((t for t in reasons if t), "no finite point")
    return WeightCurve(
        eps=grid,
        log_weight=mean,
        log_weight_stderr=stderr,
        method="tempering",
        num_levels=int(diagnostics["num_stages_per_run"].max()),
        diagnostics=diagnostics,
        collapsed=not reliable.any(),
        reliable=reliable,
        reasons=reasons,
    )


# ---------------------------------------------------------------------------- splitting


def _splitting(target, kl, grid, key, **options) -> WeightCurve:
    num_particles = check_int("num_particles", options["num_particles"], 4)
    num_runs = check_int("num_runs", options["num_runs"], 1)
    num_steps = check_int("num_mcmc_steps", options["num_mcmc_steps"], 1)
    max_steps = options["max_mcmc_steps"]
    if max_steps is None:
        d = ravel_pytree(target.sample_prior(jax.random.key(0)))[0].shape[0]
        max_steps = max(50 * num_steps, 10 * d)
    max_steps = check_int("max_mcmc_steps", max_steps, num_steps)
    target_mixing = float(options["target_mixing"])
    if not 0.0 <= target_mixing < 1.0:
        raise ValueError(f"`target_mixing` must lie in [0, 1), got {target_mixing!r}.")
    max_levels = check_int("max_levels", options["max_levels"], 1)
    fraction = check_fraction("fraction", options["fraction"])
    num_keep = int(math.floor(fraction * num_particles))
    if not 1 <= num_keep < num_particles:
        raise ValueError("`fraction * num_particles` must keep between 1 and N - 1 particles.")
    target_acceptance = check_fraction("target_acceptance", options["target_acceptance"])
    runs = []
    for run_key in jax.random.split(key, num_runs):
        out = _splitting_run(
            target,
            kl,
            jnp.asarray(grid, jnp.float32),
            run_key,
            num_particles,
            num_keep,
            num_steps,
            max_steps,
            target_mixing,
            max_levels,
            target_acceptance,
            int(options["full_covariance_max"]),
        )
        runs.append(jax.tree.map(np.asarray, out))
    log_w = np.stack([r["log_weight"] for r in runs]).astype(np.float64)
    levels = np.array([int(r["num_levels"]) for r in runs])
    width = int(levels.max())
    acceptance = np.stack([r["acceptance"][:width] for r in runs])
    moved = np.stack([r["moved"][:width] for r in runs])
    mixing = np.stack([r["mixing"][:width] for r in runs])
    for a, m, x, k in zip(acceptance, moved, mixing, levels, strict=True):
        a[k:], m[k:], x[k:] = np.nan, np.nan, np.nan
    reason = None
    if any(bool(r["plateau"]) for r in runs):
        reason = "fewer than 2 particles survived a level (K is flat there)"
    elif any(bool(r["capped"]) for r in runs):
        reason = f"`max_levels` ({max_levels}) was reached before min(eps)"
    elif np.nanmin(acceptance, initial=1.0) < _COLLAPSE_ACCEPTANCE:
        reason = f"Metropolis acceptance fell below {_COLLAPSE_ACCEPTANCE:.0%}"
    elif np.nanmin(moved, initial=1.0) < _COLLAPSE_MOVED:
        reason = f"fewer than {_COLLAPSE_MOVED:.0%} of the particles moved at a level"
    elif np.nanmin(mixing, initial=1.0) < _COLLAPSE_MIXING:
        reason = f"the particles barely moved (mixing < {_COLLAPSE_MIXING}) at a level"
    diagnostics: dict[str, Any] = {
        "acceptance": acceptance,
        "moved": moved,
        "mixing": mixing,
        "steps": np.stack([r["steps"][:width] for r in runs]),
        "correlation": np.stack([r["correlation"][:width] for r in runs]),
        "levels": np.stack([r["levels"][:width] for r in runs]),
        "log_mass": np.stack([r["log_mass"][:width] for r in runs]),
        "num_levels_per_run": levels,
        "runs": log_w,
    }
    point_reasons = [
        _point_reasons(r, a, m, x, max_levels)
        for r, a, m, x in zip(runs, acceptance, moved, mixing, strict=True)
    ]
    reasons = tuple(next((p[g] for p in point_reasons if p[g]), "") for g in range(grid.size))
    reliable = np.array([not text for text in reasons])
    if reason is not None:
        diagnostics["reason"] = reason
    correlation = diagnostics["correlation"]
    max_correlation = max(_MAX_CORRELATION, 3 / math.sqrt(num_particles))
    diagnostics["poorly_mixed"] = bool(
        np.nanmin(mixing, initial=1.0) < target_mixing
        or np.nanmax(correlation, initial=0.0) > max_correlation
    )
    mean = np.mean(log_w, axis=0)  # NaN wherever a run did not reach eps
    stderr = (
        np.std(log_w, axis=0, ddof=1) / math.sqrt(num_runs)
        if num_runs > 1
        else np.full_like(mean, np.nan)
    )
    return WeightCurve(
        eps=grid,
        log_weight=mean,
        log_weight_stderr=stderr,
        method="splitting",
        num_levels=width,
        diagnostics=diagnostics,
        collapsed=not reliable.any(),
        reliable=reliable,
        reasons=reasons,
    )


def _point_reasons(run, acceptance, moved, mixing, max_levels) -> list[str]:
    """Per grid point of one run, why it is unreliable ('' if it is not): the point assigned
    at stage k rests on the moves of levels 0..k-1, and on the level reached."""
    out = []
    for g in range(run["stage"].shape[0]):
        k = int(run["stage"][g])
        if k < 0 or not np.isfinite(run["log_weight"][g]):
            out.append("no particle reached K <= eps")
        elif bool(run["beyond"][g]):
            out.append(
                "at a plateau of K (fewer than 2 particles survived a level)"
                if bool(run["plateau"])
                else f"below the last level reached (`max_levels` = {max_levels})"
            )
        elif np.nanmin(acceptance[:k], initial=1.0) < _COLLAPSE_ACCEPTANCE:
            out.append(f"Metropolis acceptance fell below {_COLLAPSE_ACCEPTANCE:.0%} above eps")
        elif np.nanmin(moved[:k], initial=1.0) < _COLLAPSE_MOVED:
            out.append(f"fewer than {_COLLAPSE_MOVED:.0%} of the particles moved above eps")
        elif np.nanmin(mixing[:k], initial=1.0) < _COLLAPSE_MIXING:
            out.append(f"the particles barely moved (mixing < {_COLLAPSE_MIXING}) above eps")
        else:
            out.append("")
    return out


@eqx.filter_jit
def _splitting_run(
    target: Target,
    kl,
    grid,
    key,
    num_particles: int,
    num_keep: int,
    num_steps: int,
    max_steps: int,
    target_mixing: float,
    max_levels: int,
    target_acceptance: float,
    full_covariance_max: int,
):
    """One splitting run, one compiled program (a while loop over levels, a scan of Metropolis
    steps inside, everything vectorised over the particles)."""
    n_part = num_particles
    _, unravel = ravel_pytree(target.sample_prior(jax.random.key(0)))
    key_init, key_loop = jax.random.split(key)
    x = jax.vmap(lambda k: ravel_pytree(target.sample_prior(k))[0])(
        jax.random.split(key_init, n_part)
    )
    d = x.shape[1]

    def k_and_lp(z):
        position = unravel(z)
        k_value = kl(position).astype(z.dtype)
        lp = target.log_prior(position).astype(z.dtype)
        k_value = jnp.where(jnp.isnan(k_value), jnp.inf, k_value)
        return k_value, jnp.where(jnp.isnan(lp), -jnp.inf, lp)

    evaluate = jax.vmap(k_and_lp)
    K, LP = evaluate(x)
    num_grid = grid.shape[0]

    def proposal_factor(x, alive, count):
        """Cholesky factor of the survivors' covariance: the correlation matrix shrunk towards
        I with the Ledoit-Wolf intensity (a sample covariance in d ~ N dimensions has a wide,
        wrong spectrum, and the random walk then crawls along the underestimated directions)."""
        mean = (alive / count) @ x
        centred = (x - mean) * jnp.sqrt(alive)[:, None]
        var = jnp.sum(centred**2, axis=0) / jnp.maximum(count - 1.0, 1.0)
        std = jnp.sqrt(var + 1e-12 * (jnp.mean(var) + 1e-30))
        if d > full_covariance_max:
            return jnp.diag(std)
        z = centred / std
        corr = z.T @ z / count
        # sum_k ||z_k z_k^T - R||_F^2 over the survivors (the dead rows of z are zero)
        spread = jnp.sum(jnp.sum(z**2, axis=1) ** 2) - 2 * jnp.sum((z @ corr) * z)
        spread = spread + count * jnp.sum(corr**2)
        distance = jnp.sum((corr - jnp.eye(d)) ** 2)
        shrink = jnp.clip(spread / (count**2 * distance + 1e-30), 0.0, 1.0)
        corr = (1 - shrink) * corr + shrink * jnp.eye(d)
        return std[:, None] * jnp.linalg.cholesky(corr + 1e-9 * jnp.eye(d))

    def metropolis(carry, step_key):
        x, K, LP, log_scale, moved, factor, level = carry

        def restricted(z):
            """log w(z) on {K(z) < level}, -inf outside (and where log w is not finite)."""
            K_z, LP_z = evaluate(z)
            inside = (K_z < level) & jnp.isfinite(LP_z)
            return jnp.where(inside, LP_z, -jnp.inf), (K_z, LP_z)

        # the particles lie inside {K < level}: their restricted log density is LP
        x, _, (K, LP), accept = random_walk_metropolis(
            step_key, x, LP, (K, LP), restricted, factor, jnp.exp(log_scale)
        )
        rate = jnp.mean(accept)
        log_scale = log_scale + (rate - target_acceptance)
        return (x, K, LP, log_scale, moved | accept, factor, level), rate

    def assign(log_w, done, sorted_K, log_mass, cutoff):
        counts = jnp.searchsorted(sorted_K, grid, side="right")
        value = log_mass + jnp.log(counts / n_part)
        value = jnp.where(counts > 0, value, jnp.nan)
        take = (~done) & (grid >= cutoff)
        return jnp.where(take, value, log_w), done | take, take

    def cond(state):
        return ~state["stop"]

    def body(state):
        k = state["k"]
        x, K, LP = state["x"], state["K"], state["LP"]
        sorted_K = jnp.sort(K)
        level = sorted_K[num_keep]
        alive = K < level
        count = jnp.sum(alive)
        plateau = count < 2
        capped = k + 1 >= max_levels
        reached = level <= grid[0]
        stop = plateau | capped | reached
        # eps in [level, previous level) from this stage's particles; all the rest when stopping
        cutoff = jnp.where(plateau | capped, -jnp.inf, level)
        log_w, done, take = assign(
            state["log_w"], state["done"], sorted_K, state["log_mass"], cutoff
        )
        stage = jnp.where(take, k, state["stage"])
        # below the level reached, or anywhere at a plateau (K has an atom: no split)
        beyond = jnp.where(take, (grid < level) | plateau, state["beyond"])
        log_mass = state["log_mass"] + jnp.log(count / n_part)
        # resample the killed particles from the survivors, then move everyone
        key_pick, key_move, key_next = jax.random.split(state["key"], 3)
        survivors = jnp.argsort(~alive, stable=True)  # the survivors' indices first
        u = jax.random.uniform(key_pick, (n_part,), x.dtype)  # (cheaper to compile than randint)
        pick = survivors[jnp.minimum(jnp.floor(u * count).astype(jnp.int32), count - 1)]
        index = jnp.where(alive, jnp.arange(n_part), pick)
        x, K, LP = x[index], K[index], LP[index]
        factor = proposal_factor(state["x"], alive.astype(x.dtype), count.astype(x.dtype))

        def move(_):
            start_rank = _ranks(K)
            # 0.1, or 3 standard errors of a null correlation for small N
            max_correlation = max(_MAX_CORRELATION, 3 / math.sqrt(n_part))

            def block(carry):
                inner, num_done, rate_sum, _, _ = carry
                keys = jax.random.split(jax.random.fold_in(key_move, num_done), num_steps)
                inner, rates = jax.lax.scan(metropolis, inner, keys)
                # squared jump in the survivors' whitened coordinates / 2d: ~1 once decorrelated
                jump = jax.scipy.linalg.solve_triangular(factor, (inner[0] - x).T, lower=True)
                mixing = jnp.mean(jnp.sum(jump**2, axis=0)) / (2 * d)
                # rank correlation of K before and after: ~0 once K forgot where it started
                correlation = jnp.corrcoef(start_rank, _ranks(inner[1]))[0, 1]
                rate_sum = rate_sum + jnp.sum(rates)
                return inner, num_done + num_steps, rate_sum, mixing, correlation

            def more(carry):
                mixed = (carry[3] >= target_mixing) & (carry[4] <= max_correlation)
                return ~mixed & (carry[1] < max_steps)

            inner = (x, K, LP, state["log_scale"], jnp.zeros((n_part,), bool), factor, level)
            zero = jnp.zeros((), x.dtype)
            inner, num_done, rate_sum, mixing, correlation = jax.lax.while_loop(
                more, block, block((inner, jnp.zeros((), jnp.int32), zero, zero, zero))
            )
            stats = jnp.stack(
                [
                    rate_sum / num_done,
                    jnp.mean(inner[4]),
                    mixing,
                    num_done.astype(x.dtype),
                    correlation,
                ]
            )
            return (*inner[:4], stats)

        def skip(_):
            return x, K, LP, state["log_scale"], jnp.full((5,), jnp.nan, x.dtype)

        x, K, LP, log_scale, stats = jax.lax.cond(stop, skip, move, None)
        return {
            "k": k + 1,
            "x": x,
            "K": K,
            "LP": LP,
            "log_mass": log_mass,
            "log_w": log_w,
            "done": done,
            "stage": stage,
            "beyond": beyond,
            "log_scale": log_scale,
            "key": key_next,
            "stop": stop,
            "plateau": plateau,
            "capped": capped & ~reached,
            "stats": state["stats"].at[k].set(stats),
            "levels": state["levels"].at[k].set(level),
            "log_mass_hist": state["log_mass_hist"].at[k].set(log_mass),
        }

    history = jnp.full((max_levels,), jnp.nan, x.dtype)
    state = {
        "k": jnp.zeros((), jnp.int32),
        "x": x,
        "K": K,
        "LP": LP,
        "log_mass": jnp.zeros((), x.dtype),
        "log_w": jnp.full((num_grid,), jnp.nan, x.dtype),
        "done": jnp.zeros((num_grid,), bool),
        "stage": jnp.full((num_grid,), -1, jnp.int32),
        "beyond": jnp.zeros((num_grid,), bool),
        "log_scale": jnp.log(jnp.asarray(2.38 / math.sqrt(d), x.dtype)),
        "key": key_loop,
        "stop": jnp.zeros((), bool),
        "plateau": jnp.zeros((), bool),
        "capped": jnp.zeros((), bool),
        "stats": jnp.full((max_levels, 5), jnp.nan, x.dtype),
        "levels": history,
        "log_mass_hist": history,
    }
    state = jax.lax.while_loop(cond, body, state)
    return {
        "log_weight": state["log_w"],
        "num_levels": state["k"],
        "acceptance": state["stats"][:, 0],
        "moved": state["stats"][:, 1],
        "mixing": state["stats"][:, 2],
        "steps": state["stats"][:, 3],
        "correlation": state["stats"][:, 4],
        "levels": state["levels"],
        "log_mass": state["log_mass_hist"],
        "plateau": state["plateau"],
        "capped": state["capped"],
        "stage": state["stage"],
        "beyond": state["beyond"],
    }


# ---------------------------------------------------------------------------- laplace


_minimise_kl = eqx.filter_jit(minimise)  # module level: one compile per shape


@eqx.filter_jit
def _prior_draws(target, keys):
    return jax.vmap(lambda k: ravel_pytree(target.sample_prior(k))[0])(keys)


def _laplace(target, kl, grid, key, truth_position, optimize_steps, num_eigs, num_draws):
    key_prior, key_eig = jax.random.split(key)
    draws = np.asarray(_prior_draws(target, jax.random.split(key_prior, num_draws)), np.float64)
    mu, var = draws.mean(axis=0), draws.var(axis=0)
    _, unravel = ravel_pytree(target.sample_prior(key_prior))
    if truth_position is None:
        start = unravel(jnp.asarray(mu, jnp.float32))
        truth_position, _ = _minimise_kl(kl, start, optax.adam(1e-2), optimize_steps)
    theta0, unravel = ravel_pytree(truth_position)
    d = int(theta0.shape[0])
    flat_kl = lambda z: kl(unravel(z))  # noqa: E731
    if d <= max(num_eigs, _DENSE_HESSIAN_MAX):
        hessian = np.asarray(jax.hessian(flat_kl)(theta0), np.float64)
        lam, vectors = np.linalg.eigh(0.5 * (hessian + hessian.T))
        vectors = vectors.T
    else:
        grad = jax.grad(flat_kl)
        matvec = jax.jit(lambda v: jax.jvp(grad, (theta0,), (v,))[1])
        lam, vectors = top_eigenpairs(matvec, d, key=key_eig, k=num_eigs, num_steps=2 * num_eigs)
        lam, vectors = np.asarray(lam, np.float64), np.asarray(vectors, np.float64)
        valid = np.linalg.norm(vectors, axis=1) > 0.5  # Lanczos breakdown leaves zero vectors
        lam, vectors = lam[valid], vectors[valid]
    precision_along = 1.0 / np.einsum("kd,d,kd->k", vectors, var, vectors)
    # directions with lambda > 0, stiffest relative to the prior first
    order = [i for i in np.argsort(-lam / precision_along) if lam[i] > 0]
    t0 = np.asarray(theta0, np.float64)
    log_exact = float(target.log_prior(truth_position))
    log_joint = -0.5 * np.sum((t0 - mu) ** 2 / var + np.log(2 * np.pi * var))
    candidates = [np.zeros_like(grid)]  # k = 0: no direction constrained, W <= 1
    log_density = []
    for k in range(1, len(order) + 1):
        U = vectors[order[:k]]
        if k == d:
            log_wk = log_exact
        else:
            cov = U @ (var[:, None] * U.T)
            r = U @ (t0 - mu)
            _, logdet = np.linalg.slogdet(2 * np.pi * cov)
            log_wk = log_exact - log_joint - 0.5 * (r @ np.linalg.solve(cov, r) + logdet)
        log_density.append(log_wk)
        candidates.append(
            log_wk
            + 0.5 * k * np.log(2 * np.pi * grid)
            - 0.5 * float(np.sum(np.log(lam[order[:k]])))
            - float(sc.gammaln(0.5 * k + 1))
        )
    stacked = np.stack(candidates)
    log_w = stacked.min(axis=0)
    return WeightCurve(
        eps=grid,
        log_weight=log_w,
        log_weight_stderr=np.zeros_like(grid),
        method="laplace",
        num_levels=0,
        diagnostics={
            "eigenvalues": lam,
            "stiff": stacked.argmin(axis=0),
            "log_prior_density": np.array(log_density),
            "truth_position": np.asarray(theta0),
        },
        collapsed=False,
    )
