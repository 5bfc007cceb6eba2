"""MCLMC and adjusted MCLMC: BlackJAX's microcanonical kernels, tuned by BlackJAX's tuners.

Microcanonical Langevin Monte Carlo (Robnik, De Luca, Silverstein and Seljak 2023; Robnik and
Seljak 2024) moves the position x with a unit-norm velocity u under the isokinetic dynamics

    dx/dt = M^{-1/2} u,   du/dt = (I - u u^T) M^{-1/2} grad log p(x) / (d - 1),

integrated by the isokinetic McLachlan scheme, with a partial refresh of u after every step
(u <- (c u + sqrt(1 - c^2) z / sqrt(d)) normalised, c = exp(-step_size / L), z ~ N(0, I)): L is
the momentum decoherence length. `bo.MCLMC` is the unadjusted kernel (no accept/reject: its
bias is controlled by the energy error per dimension); `bo.AdjustedMCLMC` integrates a random
number of steps (mean L / step_size) without refreshes and accepts the end point with a
Metropolis-Hastings test, which removes the bias.

Both kernels, their tuners and the integrator are BlackJAX's (`blackjax.mcmc.mclmc`,
`blackjax.mcmc.adjusted_mclmc_dynamic`, `blackjax.mclmc_find_L_and_step_size`,
`blackjax.adjusted_mclmc_find_L_and_step_size`); this module only binds them to a posterior and
speaks the `(state, info)` protocol. BlackJAX works on pytree positions, so the chain's position
is the posterior's pytree; the diagonal inverse mass matrix (or with `metric="low_rank"` BlackJAX's
low-rank-plus-diagonal one, estimated by BlackJAX from a diagonal pilot) is over its flattened
leaves (`jax.flatten_util.ravel_pytree` order). The isokinetic McLachlan step evaluates the gradient
twice (its last half-kick's gradient is reused by the next step): an MCLMC step costs two
gradients, an adjusted MCLMC draw two per integration step (`n_steps`).

Three things around BlackJAX's tuners are ours, each for a measured failure (10k-weight MLPs
from MAP starts, float32): the tuners run in coordinates relative to the chain's start
(`_shifted`: their float32 variance estimate cancels otherwise), every metric they run with and
the tuned one pass through `_positive` (a variance estimate <= 0 made every later step NaN and
the tuned step exactly 0), and without a given `step_size` the starting step is halved from
BlackJAX's default until one trial step is reasonable (unadjusted only: `initial_step`). A tuned
step that still collapsed (0, or adjusted's floor 1e-5) warns (`_check_tuned`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
from blackjax.adaptation.mclmc_adaptation import MCLMCAdaptationState
from blackjax.adaptation.metric_estimators import fisher_score_low_rank
from blackjax.mcmc.adjusted_mclmc import rescale
from blackjax.mcmc.metrics import LowRankInverseMassMatrix
from jax.flatten_util import ravel_pytree
from jaxtyping import Array

from bayesover._checks import (
    ArgumentTypeError,
    check_bool,
    check_fraction,
    check_int,
    check_positive,
    check_real,
)
from bayesover.inference.samplers._base import AbstractSampler, Algorithm
from bayesover.posterior._posterior import AbstractPosterior


class MCLMCChainState(NamedTuple):
    """A chain of (adjusted) MCLMC: BlackJAX's state plus the tuned L, step size and metric
    (the diagonal of the inverse mass matrix, or with `metric="low_rank"` BlackJAX's
    `LowRankInverseMassMatrix`)."""

    mclmc: blackjax.mcmc.integrators.IntegratorState | blackjax.mcmc.dynamic_hmc.DynamicHMCState
    L: Array
    step_size: Array
    inverse_mass_matrix: Array | LowRankInverseMassMatrix

    @property
    def position(self):
        return self.mclmc.position


def _positive(inverse_mass_matrix: Array) -> Array:
    """The inverse mass matrix with its entries that are not finite and > 0 replaced by its
    smallest finite positive entry (1 if none). BlackJAX's tuners take the metric as
    estimated (E[x^2] - E[x]^2, which rounding can make <= 0) and a non-positive entry makes
    every later step NaN; the smallest positive variance is the cautious stand-in (those
    coordinates then move the least). Applied to every metric the tuners run with and to the
    tuned one."""
    ok = jnp.isfinite(inverse_mass_matrix) & (inverse_mass_matrix > 0)
    smallest = jnp.min(jnp.where(ok, inverse_mass_matrix, jnp.inf))
    return jnp.where(ok, inverse_mass_matrix, jnp.where(jnp.isfinite(smallest), smallest, 1.0))


def _positive_metric(inverse_mass_matrix):
    """`_positive` of a diagonal metric; of a low-rank one, of its `sigma` and `lam` (both
    must be > 0)."""
    if isinstance(inverse_mass_matrix, LowRankInverseMassMatrix):
        return inverse_mass_matrix._replace(
            sigma=_positive(inverse_mass_matrix.sigma), lam=_positive(inverse_mass_matrix.lam)
        )
    return _positive(inverse_mass_matrix)


def _with_positive_metric(kernel):
    """`kernel` with its `inverse_mass_matrix` argument passed through `_positive_metric` (for
    the tuners; both BlackJAX kernels take it as the fourth positional or a keyword argument)."""

    def guarded(rng_key, state, logdensity_fn, *args, inverse_mass_matrix, **kwargs):
        return kernel(
            rng_key,
            state,
            logdensity_fn,
            *args,
            inverse_mass_matrix=_positive_metric(inverse_mass_matrix),
            **kwargs,
        )

    return guarded


def _tuned(state: MCLMCChainState, tuned_state: Any, params: Any) -> MCLMCChainState:
    """The chain after a BlackJAX tuner: its state and tuned L, step size and metric (a
    scalar metric broadcast to the chain's shape; through `_positive_metric`), in the chain's
    dtype."""
    dtype = state.L.dtype
    if isinstance(state.inverse_mass_matrix, LowRankInverseMassMatrix):
        metric = jax.tree.map(lambda x: jnp.asarray(x, dtype), params.inverse_mass_matrix)
    else:
        metric = jnp.asarray(params.inverse_mass_matrix, dtype) * jnp.ones_like(
            state.inverse_mass_matrix
        )
    return MCLMCChainState(
        tuned_state,
        jnp.asarray(params.L, dtype),
        jnp.asarray(params.step_size, dtype),
        _positive_metric(metric),
    )


# -- metric="low_rank" ----------------------------------------------------------------------------

METRICS = ("diagonal", "low_rank")
# the warm-up's steps: the diagonal pilot's tuning, its draws (the low-rank estimate's sample),
# the tuning with the low-rank metric
LOW_RANK_SPLIT = (0.2, 0.5, 0.3)
MIN_LOW_RANK_WARMUP = 20
# adjusted MCLMC: the share of the warm-up's steps for the unadjusted low-rank warm-up, the rest
# for the adjusted tuning
ADJUSTED_LOW_RANK_PILOT = 0.6
MIN_ADJUSTED_LOW_RANK_WARMUP = 2 * MIN_LOW_RANK_WARMUP


def _check_metric(metric: Any, rank: Any, diagonal_preconditioning: bool) -> None:
    if not isinstance(metric, str):
        raise ArgumentTypeError(
            f"`metric` must be a str, 'diagonal' or 'low_rank', got "
            f"{type(metric).__name__} {metric!r}."
        )
    if metric not in METRICS:
        raise ValueError(f"`metric` must be 'diagonal' or 'low_rank', got {metric!r}.")
    check_int("rank", rank, minimum=1)
    if metric == "low_rank" and not diagonal_preconditioning:
        raise ValueError(
            "`metric='low_rank'` needs `diagonal_preconditioning=True`: its pilot runs with "
            "the tuned diagonal metric."
        )


def _recorded_metric(metric: str, rank: int) -> dict:
    if metric == "low_rank":
        return {"metric": metric, "rank": int(rank)}
    return {"metric": metric}


def _check_low_rank_warmup(num_steps: int, minimum: int) -> None:
    if num_steps < minimum:
        raise ValueError(
            f"`metric='low_rank'` needs num_warmup >= {minimum} (a tuned diagonal pilot, its "
            f"draws, then a tuning with the low-rank metric), got {num_steps}."
        )


def _low_rank_split(num_steps: int) -> tuple[int, int, int]:
    """The pilot's tuning steps, its draws and the low-rank tuning steps (`LOW_RANK_SPLIT`)."""
    _check_low_rank_warmup(num_steps, MIN_LOW_RANK_WARMUP)
    pilot = round(LOW_RANK_SPLIT[0] * num_steps)
    draws = round(LOW_RANK_SPLIT[1] * num_steps)
    return pilot, draws, num_steps - pilot - draws


def _identity_low_rank(dim: int, rank: int, dtype) -> LowRankInverseMassMatrix:
    """The unit metric as a `LowRankInverseMassMatrix` (U = 0, lam = 1), rank min(rank, dim):
    a low-rank chain's metric before warm-up."""
    rank = min(rank, dim)
    return LowRankInverseMassMatrix(
        jnp.ones(dim, dtype), jnp.zeros((dim, rank), dtype), jnp.ones(rank, dtype)
    )


def _pilot_low_rank(pilot_step, pilot: MCLMCChainState, rng_key, num_draws: int, rank: int):
    """Run the (tuned, diagonal) MCLMC pilot `num_draws` steps; return BlackJAX's
    `fisher_score_low_rank` estimate from its positions and log-density gradients (the state
    keeps the gradient, so they cost nothing), padded to rank `rank` (U = 0, lam = 1) when
    there are fewer draws, and the pilot's last state."""

    def one(state, key):
        state, _ = pilot_step(key, state)
        position, grad = state.mclmc.position, state.mclmc.logdensity_grad
        return state, (ravel_pytree(position)[0], ravel_pytree(grad)[0])

    pilot, (draws, grads) = jax.lax.scan(one, pilot, jax.random.split(rng_key, num_draws))
    usable = min(rank, num_draws)
    estimate = fisher_score_low_rank(draws, grads, usable)
    pad = rank - usable
    metric = LowRankInverseMassMatrix(
        estimate.sigma,
        jnp.pad(estimate.U, ((0, 0), (0, pad))),
        jnp.pad(estimate.lam, (0, pad), constant_values=1.0),
    )
    return metric, pilot


class MCLMCStats(NamedTuple):
    """Per-draw statistics of MCLMC. `energy_change` is the step's change of the total energy
    (kinetic change minus log density change; its variance per dimension is what the tuner
    targets), `kinetic_change` the kinetic part; `non_finite` is True where the step reached a
    non-finite value (BlackJAX then keeps the previous position with a fresh velocity)."""

    energy_change: Array
    kinetic_change: Array
    step_size: Array
    L: Array
    lp: Array
    non_finite: Array


class AdjustedMCLMCStats(NamedTuple):
    """Per-draw statistics of adjusted MCLMC, named as ArviZ names them (`n_steps`: the
    integration steps of the draw's trajectory; `energy`: minus the proposal's log density)."""

    acceptance_rate: Array
    diverging: Array
    n_steps: Array
    step_size: Array
    L: Array
    energy: Array
    lp: Array
    non_finite: Array


def _dim(position) -> int:
    flat = ravel_pytree(position)[0]
    if flat.size < 2:
        raise ValueError(
            f"MCLMC needs a posterior of at least 2 dimensions, this one has {flat.size}."
        )
    return int(flat.size)


def _dtype(position):
    return ravel_pytree(position)[0].dtype


def _check_optional_positive(name, value):
    if value is not None:
        check_positive(name, value)


def _check_fractions(names_values):
    for name, value in names_values:
        check_real(name, value)
        if not value >= 0.0:
            raise ValueError(f"`{name}` must be >= 0, got {value!r}.")


def _shifted(logdensity, origin):
    """`z -> logdensity(origin + z)`: the posterior in coordinates relative to `origin`.

    BlackJAX's tuners estimate the posterior variances (the diagonal inverse mass matrix) as
    E[x^2] - E[x]^2 from step-size-weighted running averages. In float32 that difference
    cancels catastrophically when a coordinate's sd is small against its value: on a 10k-weight
    MLP from MAP starts (weights ~1, some sds ~1e-3) about 20 of the 10,089 "variances" came out
    negative (~ -1e-5), every later step of the tuner was NaN, each NaN step shrinks the step
    size by 0.8, and once step**6 underflowed the tuner's step was exactly 0 (a frozen chain).
    A translation changes neither the dynamics nor the tuner, only the rounding: relative to the
    chain's start the coordinates are as small as the chain's travel, and the difference does
    not cancel (measured: no non-positive variance, tuned steps 0.7-1.4 on the same runs)."""

    def shifted(z):
        return logdensity(jax.tree.map(jnp.add, origin, z))

    return shifted


def _tune_relative_to_start(tune, blackjax_state):
    """Run `tune(shifted_logdensity, shifted_state) -> (state, params)` in coordinates relative
    to the chain's current position (`_shifted`); return the tuned state back in x."""
    origin = blackjax_state.position
    zero = jax.tree.map(jnp.zeros_like, origin)

    def relative(logdensity):
        return _shifted(logdensity, origin)

    tuned, params = tune(relative, blackjax_state._replace(position=zero))
    return tuned._replace(position=jax.tree.map(jnp.add, origin, tuned.position)), params


def _mclmc_tuner(
    kernel,
    logdensity,
    *,
    num_steps,
    rng_key,
    fracs,
    desired_energy_var,
    diagonal_preconditioning,
    params,
):
    """`tune(relative, state) -> (state, params)` for `_tune_relative_to_start`: BlackJAX's
    `mclmc_find_L_and_step_size` with phase fractions `fracs` from `params`."""

    def tune(relative, blackjax_state):
        tuned_state, tuned_params, _ = blackjax.mclmc_find_L_and_step_size(
            mclmc_kernel=_with_positive_metric(kernel),
            num_steps=num_steps,
            state=blackjax_state,
            rng_key=rng_key,
            logdensity_fn=relative(logdensity),
            frac_tune1=fracs[0],
            frac_tune2=fracs[1],
            frac_tune3=fracs[2],
            desired_energy_var=desired_energy_var,
            diagonal_preconditioning=diagonal_preconditioning,
            params=params,
        )
        return tuned_state, tuned_params

    return tune


def _halve_until(ok, step_size, max_halvings=40):
    """The first of `step_size * 2**-k` (k = 0, 1, ..., max_halvings) for which `ok(step)`
    holds (a traced bool); the last one if none does. A `lax.while_loop`: under `vmap` each
    chain keeps its own step."""

    def cond(carry):
        _, good, k = carry
        return ~good & (k < max_halvings)

    def body(carry):
        step, _, k = carry
        step = step / 2
        return step, ok(step), k + 1

    return jax.lax.while_loop(cond, body, (step_size, ok(step_size), 0))[0]


def _warn(message):
    warnings.warn(message, RuntimeWarning, stacklevel=2)


def _check_tuned(name, state: MCLMCChainState, floor: float) -> None:
    """Warn (from the host, once per chain, through `jax.debug.callback`) when the tuned step
    size is not finite and > `floor` (BlackJAX's adjusted tuner clamps the step at 1e-5), or L
    is not finite and > 0: such a chain does not move, or every draw diverges."""

    def report(step_size, L):
        step_size, L = float(step_size), float(L)
        if math.isfinite(step_size) and step_size > floor * 1.001 and math.isfinite(L) and L > 0:
            return
        _warn(
            f"{name}'s tuner returned step_size={step_size!r} and L={L!r}: the chain will not "
            "move, or every draw diverges. BlackJAX's tuners shrink the step after each tuning "
            "step that reached a non-finite log density, position or energy (unadjusted: by 0.8 "
            "until step**6 underflows to 0; adjusted: dual averaging down to its floor 1e-5): "
            "the log density or its gradient is not finite near the start (check "
            "posterior.logdensity there), or the start is far outside the typical set (start "
            "from init='map', or give a smaller `step_size`)."
        )

    jax.debug.callback(report, state.step_size, state.L)


class MCLMC(AbstractSampler):
    """`bo.MCLMC(L=None, step_size=None, desired_energy_var=5e-4, diagonal_preconditioning=True,
    frac_tune1=0.1, frac_tune2=0.1, frac_tune3=0.1, metric="diagonal", rank=10)`: unadjusted
    microcanonical Langevin.

    Warm-up runs `blackjax.mclmc_find_L_and_step_size` for the warm-up's steps, split among its
    three phases in proportion to `frac_tune1 : frac_tune2 * (4/3 if diagonal preconditioning)
    : frac_tune3`: (1) the step size is adapted so that the energy error's variance per
    dimension is `desired_energy_var`; (2) the same, while the posterior variances are
    estimated, which set the diagonal inverse mass matrix and L = sqrt(sum of variances) (with
    preconditioning: sqrt(d)), then a third of that many steps to readapt the step size;
    (3) L = 0.4 * step_size * (integrated autocorrelation time, from the ESS of phase 3's
    draws). `L` and `step_size` are the starting values (BlackJAX's sqrt(d) when L is None;
    when step_size is None, the first of 0.25 sqrt(d) * 2**-k whose trial step from the start
    raises the energy by at most sqrt(d * desired_energy_var)); with `num_warmup=0` they are used
    as given (0.25 sqrt(d) when None), with a unit mass matrix. Each step costs two gradients.

    Without an accept step a chain that starts outside the typical set may never reach it:
    on posteriordb's blr (posterior sds ~0.001) chains from prior starts, and one of four from
    `init="map"` after 1,000 Adam steps, were still out after 2,000 warm-up steps; from
    `init="map", map_steps=10_000` all matched the reference (`tests/test_posteriordb_mclmc.py`).

    `metric="low_rank"` replaces the diagonal metric by BlackJAX's low-rank-plus-diagonal one,
    `blackjax.mcmc.metrics.LowRankInverseMassMatrix(sigma, U, lam)`, which BlackJAX's MCLMC
    kernels take as their inverse mass matrix:

        M^{-1} = diag(sigma) (I + U (Lambda - I) U^T) diag(sigma),

    sigma > 0 (d), U (d x r, orthonormal columns), Lambda = diag(lam) > 0, r = min(`rank`, d);
    `rank` >= d makes it a dense metric, each step then costs O(d r) more than a diagonal one.
    BlackJAX does the work, in the shape of its `mclmc_lrd_warmup` (which cannot run inside
    `bo.sample`'s traced per-chain warm-up itself: it reads its intermediate results on the
    host): `LOW_RANK_SPLIT` = 20% of the warm-up's steps tune this sampler with the diagonal
    metric (the pilot, as above), the next 50% are the pilot's draws, from whose positions and
    log-density gradients BlackJAX's `fisher_score_low_rank` (nutpie's estimator, Seyboldt et al.
    2026) estimates sigma, U and lam, and the last 30% run `blackjax.mclmc_find_L_and_step_size`
    with that metric from the pilot's last state: its step-size phase from the pilot's step and
    L = sqrt(d), then its autocorrelation phase for L (not its variance phase, which would set
    L = sqrt(sum of the variances)). `mclmc_lrd_warmup`'s own estimator, the SVD of the
    standardised draws alone, failed on posteriordb's diamonds (measured, MAP starts, rank 26,
    2,000 / 4,000: min bulk ESS 7, |z| up to 4.6; its rank guard floor(n_eff / 2) clamped the
    rank to 1 at the pilots' n_eff of 2.7-2.9): a pilot that barely moves along a direction
    underestimates its variance, while the gradients' spread there corrects it. Needs
    `num_warmup` >= 20; the pilot keeps its draws and gradients (num_warmup x d numbers per
    chain).
    """

    L: float | None = None
    step_size: float | None = None
    desired_energy_var: float = 5e-4
    diagonal_preconditioning: bool = True
    frac_tune1: float = 0.1
    frac_tune2: float = 0.1
    frac_tune3: float = 0.1
    metric: str = "diagonal"
    rank: int = 10

    def __check_init__(self):
        _check_optional_positive("L", self.L)
        _check_optional_positive("step_size", self.step_size)
        check_positive("desired_energy_var", self.desired_energy_var)
        check_bool("diagonal_preconditioning", self.diagonal_preconditioning)
        _check_metric(self.metric, self.rank, self.diagonal_preconditioning)
        fractions = [
            ("frac_tune1", self.frac_tune1),
            ("frac_tune2", self.frac_tune2),
            ("frac_tune3", self.frac_tune3),
        ]
        _check_fractions(fractions)
        if sum(v for _, v in fractions) <= 0.0:
            raise ValueError("`frac_tune1 + frac_tune2 + frac_tune3` must be > 0, got 0.")

    def progress_stats(self, info) -> dict:
        """`step_size` and `L` (tuned, constant over the draws)."""
        return {"step_size": info.step_size, "L": info.L}

    def recorded_settings(self) -> dict:
        """`metric`, and `rank` for the low-rank metric."""
        return _recorded_metric(self.metric, self.rank)

    def build(self, posterior: AbstractPosterior) -> Algorithm:
        logdensity = posterior.logdensity
        kernel = blackjax.mcmc.mclmc.build_kernel(desired_energy_var=self.desired_energy_var)

        def initial_parameters(position):
            dim, dtype = _dim(position), _dtype(position)
            L = math.sqrt(dim) if self.L is None else self.L
            step_size = 0.25 * math.sqrt(dim) if self.step_size is None else self.step_size
            if self.metric == "low_rank":
                metric = _identity_low_rank(dim, self.rank, dtype)
            else:
                metric = jnp.ones(dim, dtype)
            return jnp.asarray(L, dtype), jnp.asarray(step_size, dtype), metric

        def init(position, rng_key):
            L, step_size, inverse_mass_matrix = initial_parameters(position)
            state = blackjax.mcmc.mclmc.init(position, logdensity, rng_key)
            return MCLMCChainState(state, L, step_size, inverse_mass_matrix)

        def warmup(rng_key, state, num_steps):
            if num_steps == 0:
                return state
            if self.metric == "low_rank":
                return low_rank_warmup(rng_key, state, num_steps)
            start_key, rng_key = jax.random.split(rng_key)
            if self.step_size is None:
                state = state._replace(step_size=initial_step(start_key, state))
            # the tuner runs round(num_steps * frac) steps per phase (phase 2 a third more with
            # preconditioning): normalise the fractions so that the phases add up to num_steps
            total = (
                self.frac_tune1
                + self.frac_tune2 * (4 / 3 if self.diagonal_preconditioning else 1)
                + self.frac_tune3
            )

            tune = _mclmc_tuner(
                kernel,
                logdensity,
                num_steps=num_steps,
                rng_key=rng_key,
                fracs=(self.frac_tune1 / total, self.frac_tune2 / total, self.frac_tune3 / total),
                desired_energy_var=self.desired_energy_var,
                diagonal_preconditioning=self.diagonal_preconditioning,
                params=MCLMCAdaptationState(state.L, state.step_size, state.inverse_mass_matrix),
            )
            tuned = _tuned(state, *_tune_relative_to_start(tune, state.mclmc))
            _check_tuned("MCLMC", tuned, 0.0)
            return tuned

        def low_rank_warmup(rng_key, state, num_steps):
            """The diagonal pilot (this sampler with the diagonal metric: its warm-up, then
            its draws), BlackJAX's low-rank estimate from them, then BlackJAX's tuner with that
            metric from the pilot's last state."""
            pilot_steps, num_draws, tune_steps = _low_rank_split(num_steps)
            pilot_key, draws_key, tune_key = jax.random.split(rng_key, 3)
            pilot_algorithm = dataclasses.replace(self, metric="diagonal").build(posterior)
            dim = state.inverse_mass_matrix.sigma.shape[0]
            pilot = state._replace(inverse_mass_matrix=jnp.ones(dim, state.L.dtype))
            pilot = pilot_algorithm.warmup(pilot_key, pilot, pilot_steps)
            metric, pilot = _pilot_low_rank(
                pilot_algorithm.step, pilot, draws_key, num_draws, self.rank
            )

            # the metric whitens the posterior: BlackJAX's preconditioned L = sqrt(d) to start,
            # then its step-size phase and its autocorrelation phase for L (its variance phase
            # would replace L by sqrt(sum of the variances))
            tune = _mclmc_tuner(
                kernel,
                logdensity,
                num_steps=tune_steps,
                rng_key=tune_key,
                fracs=(0.5, 0.0, 0.5),
                desired_energy_var=self.desired_energy_var,
                diagonal_preconditioning=False,
                params=MCLMCAdaptationState(
                    jnp.asarray(math.sqrt(dim), state.L.dtype), pilot.step_size, metric
                ),
            )
            tuned = _tuned(state, *_tune_relative_to_start(tune, pilot.mclmc))
            _check_tuned("MCLMC", tuned, 0.0)
            return tuned

        def initial_step(rng_key, state):
            """The first of 0.25 sqrt(d) * 2**-k whose one trial step from the start (not
            taken) raises the energy by at most sqrt(d * desired_energy_var), the tuner's
            target error: from a mode BlackJAX's 0.25 sqrt(d) can throw the chain far out
            (a 10k-weight MLP from a MAP start: log density -1.4e4 -> -1.5e6 in one step),
            while a step that lowers the energy (downhill, from a start outside the typical
            set) is kept."""
            dim = ravel_pytree(state.position)[0].size

            def ok(step_size):
                _, info = kernel(
                    rng_key, state.mclmc, logdensity, state.inverse_mass_matrix, state.L, step_size
                )
                return info.nonans & (
                    info.energy_change <= math.sqrt(dim * self.desired_energy_var)
                )

            return _halve_until(ok, state.step_size)

        def step(rng_key, state):
            new, info = kernel(
                rng_key,
                state.mclmc,
                logdensity,
                state.inverse_mass_matrix,
                state.L,
                state.step_size,
            )
            stats = MCLMCStats(
                energy_change=info.energy_change,
                kinetic_change=info.kinetic_change,
                step_size=state.step_size,
                L=state.L,
                lp=new.logdensity,
                non_finite=~info.nonans,
            )
            return state._replace(mclmc=new), stats

        return Algorithm(init, warmup, step)


def _num_steps_fn(rng_key, avg_num_integration_steps):
    """A uniform number of integration steps with mean `avg_num_integration_steps` (BlackJAX's
    sampling-book recipe: ceil(U * rescale(avg)), U ~ U(0, 1))."""
    return jnp.ceil(jax.random.uniform(rng_key) * rescale(avg_num_integration_steps)).astype(
        jnp.int32
    )


class AdjustedMCLMC(AbstractSampler):
    """`bo.AdjustedMCLMC(target_acceptance_rate=0.9, num_integration_steps=2.0,
    step_size=None, diagonal_preconditioning=True, frac_tune1=0.1, frac_tune2=0.1,
    divergence_threshold=1000.0, metric="diagonal", rank=10)`: Metropolis-adjusted
    microcanonical HMC.

    Each draw integrates the isokinetic dynamics (no refresh along the trajectory) for a
    uniformly random number of steps of mean L / step_size and accepts the end point with a
    Metropolis-Hastings test (`blackjax.mcmc.adjusted_mclmc_dynamic`); a draw whose energy
    error exceeds `divergence_threshold` is divergent. Warm-up runs
    `blackjax.adjusted_mclmc_find_L_and_step_size` for the warm-up's steps, split
    `frac_tune1 : frac_tune2 : frac_tune1`: dual averaging of the step size towards
    `target_acceptance_rate`, then the same while the posterior variances are estimated (the
    diagonal inverse mass matrix), then dual averaging again with that metric; throughout,
    L = `num_integration_steps` * step_size (BlackJAX's avg-preserving calibration: the mean
    trajectory has `num_integration_steps` steps). `step_size` is the starting value
    (BlackJAX's 0.2 sqrt(d) when None); with `num_warmup=0` it is used as given. Each
    integration step costs two gradients.

    Measured: BlackJAX's first tuning pass holds L = 2 x the starting step while it shrinks the
    step, so on networks from 0.2 sqrt(d) its trajectories grow to thousands of steps (981-weight
    MLP, MAP starts, 2 chains: 100 warm-up steps 27.7 s against 0.4 s from step 0.1); give such
    targets a smaller `step_size`. Halving the default start step until one trial draw is
    accepted (tried, not kept) leaves chains that start outside the typical set there: it broke
    three posteriordb references (sblri, sblrc, kidiq: sd errors up to 10^6 %, bulk ESS 4-7).

    `metric="low_rank"`: the low-rank-plus-diagonal metric of `bo.MCLMC` (see there), as
    `mclmc_lrd_warmup(inner_kernel="adjusted_mclmc")` builds it: `ADJUSTED_LOW_RANK_PILOT` = 60%
    of the warm-up's steps run `bo.MCLMC(metric="low_rank", rank=rank)`'s warm-up (unadjusted),
    the other 40% `blackjax.adjusted_mclmc_find_L_and_step_size` with its metric from its last
    position: dual averaging only (its variance phase would replace the metric), starting from
    the unadjusted step, since the first pass caps the step at `num_integration_steps` / 1.1
    times its start. Needs `num_warmup` >= 40.
    """

    target_acceptance_rate: float = 0.9
    num_integration_steps: float = 2.0
    step_size: float | None = None
    diagonal_preconditioning: bool = True
    frac_tune1: float = 0.1
    frac_tune2: float = 0.1
    divergence_threshold: float = 1000.0
    metric: str = "diagonal"
    rank: int = 10

    def __check_init__(self):
        check_fraction("target_acceptance_rate", self.target_acceptance_rate)
        check_real("num_integration_steps", self.num_integration_steps)
        if not self.num_integration_steps >= 1.2:
            raise ValueError(
                "`num_integration_steps` (the mean number of integration steps per draw) must be "
                f">= 1.2 (BlackJAX's tuner needs L / step_size > 1.1), got "
                f"{self.num_integration_steps!r}."
            )
        _check_optional_positive("step_size", self.step_size)
        check_bool("diagonal_preconditioning", self.diagonal_preconditioning)
        check_positive("frac_tune1", self.frac_tune1)
        _check_fractions([("frac_tune2", self.frac_tune2)])
        check_positive("divergence_threshold", self.divergence_threshold)
        _check_metric(self.metric, self.rank, self.diagonal_preconditioning)

    def progress_stats(self, info) -> dict:
        """`diverging`: the progress bar counts divergences so far."""
        return {"diverging": info.diverging}

    def recorded_settings(self) -> dict:
        """`metric`, and `rank` for the low-rank metric."""
        return _recorded_metric(self.metric, self.rank)

    def build(self, posterior: AbstractPosterior) -> Algorithm:
        logdensity = posterior.logdensity
        kernel = blackjax.mcmc.adjusted_mclmc_dynamic.build_kernel(
            integration_steps_fn=_num_steps_fn,
            divergence_threshold=self.divergence_threshold,
        )

        def init(position, rng_key):
            dim, dtype = _dim(position), _dtype(position)
            step_size = 0.2 * math.sqrt(dim) if self.step_size is None else self.step_size
            state = blackjax.mcmc.adjusted_mclmc_dynamic.init(position, logdensity, rng_key)
            if self.metric == "low_rank":
                metric = _identity_low_rank(dim, self.rank, dtype)
            else:
                metric = jnp.ones(dim, dtype)
            return MCLMCChainState(
                state,
                jnp.asarray(self.num_integration_steps * step_size, dtype),
                jnp.asarray(step_size, dtype),
                metric,
            )

        def warmup(rng_key, state, num_steps):
            if num_steps == 0:
                return state
            if self.metric == "low_rank":
                return low_rank_warmup(rng_key, state, num_steps)
            total = 2 * self.frac_tune1 + self.frac_tune2  # pass 1 + variances + pass 2

            def tune(relative, blackjax_state):
                tuned_state, params, _ = blackjax.adjusted_mclmc_find_L_and_step_size(
                    mclmc_kernel=_with_positive_metric(kernel),
                    logdensity_fn=relative(logdensity),
                    num_steps=num_steps,
                    state=blackjax_state,
                    rng_key=rng_key,
                    target=self.target_acceptance_rate,
                    frac_tune1=self.frac_tune1 / total,
                    frac_tune2=self.frac_tune2 / total,
                    frac_tune3=0.0,
                    diagonal_preconditioning=self.diagonal_preconditioning,
                    params=MCLMCAdaptationState(
                        state.L, state.step_size, state.inverse_mass_matrix
                    ),
                    target_num_integration_steps=self.num_integration_steps,
                )
                return tuned_state, params

            tuned = _tuned(state, *_tune_relative_to_start(tune, state.mclmc))
            _check_tuned("AdjustedMCLMC", tuned, 1e-5)
            return tuned

        def low_rank_warmup(rng_key, state, num_steps):
            """As `mclmc_lrd_warmup(inner_kernel="adjusted_mclmc")`: `bo.MCLMC(metric=
            "low_rank")`'s warm-up (a diagonal pilot, the low-rank estimate, the unadjusted
            tuning with it) for `ADJUSTED_LOW_RANK_PILOT` of the steps, then BlackJAX's adjusted
            tuner from its last position, step size and metric (dual averaging only: its
            variance phase would replace the metric)."""
            _check_low_rank_warmup(num_steps, MIN_ADJUSTED_LOW_RANK_WARMUP)
            pilot_steps = round(ADJUSTED_LOW_RANK_PILOT * num_steps)
            init_key, pilot_key, tune_key = jax.random.split(rng_key, 3)
            pilot_algorithm = MCLMC(metric="low_rank", rank=self.rank).build(posterior)
            pilot = pilot_algorithm.init(state.position, init_key)
            pilot = pilot_algorithm.warmup(pilot_key, pilot, pilot_steps)
            start = state.mclmc._replace(
                position=pilot.mclmc.position,
                logdensity=pilot.mclmc.logdensity,
                logdensity_grad=pilot.mclmc.logdensity_grad,
            )
            # BlackJAX's first dual-averaging pass caps the step at num_integration_steps / 1.1
            # times its start: it starts from the unadjusted step, larger than the adjusted one
            metric = pilot.inverse_mass_matrix

            def tune(relative, blackjax_state):
                tuned_state, params, _ = blackjax.adjusted_mclmc_find_L_and_step_size(
                    mclmc_kernel=_with_positive_metric(kernel),
                    logdensity_fn=relative(logdensity),
                    num_steps=num_steps - pilot_steps,
                    state=blackjax_state,
                    rng_key=tune_key,
                    target=self.target_acceptance_rate,
                    frac_tune1=1.0,
                    frac_tune2=0.0,
                    frac_tune3=0.0,
                    diagonal_preconditioning=False,
                    params=MCLMCAdaptationState(pilot.L, pilot.step_size, metric),
                    target_num_integration_steps=self.num_integration_steps,
                )
                return tuned_state, params

            tuned = _tuned(state, *_tune_relative_to_start(tune, start))
            _check_tuned("AdjustedMCLMC", tuned, 1e-5)
            return tuned

        def step(rng_key, state):
            new, info = kernel(
                rng_key,
                state.mclmc,
                logdensity,
                state.step_size,
                inverse_mass_matrix=state.inverse_mass_matrix,
                integration_steps_params=(state.L / state.step_size,),
            )
            stats = AdjustedMCLMCStats(
                acceptance_rate=info.acceptance_rate,
                diverging=info.is_divergent,
                n_steps=info.num_integration_steps,
                step_size=state.step_size,
                L=state.L,
                energy=info.energy,
                lp=new.logdensity,
                non_finite=~jnp.isfinite(info.proposal.logdensity),
            )
            return state._replace(mclmc=new), stats

        return Algorithm(init, warmup, step)
