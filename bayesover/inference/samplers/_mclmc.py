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
is the posterior's pytree; the diagonal inverse mass matrix is over its flattened leaves
(`jax.flatten_util.ravel_pytree` order).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
from blackjax.adaptation.mclmc_adaptation import MCLMCAdaptationState
from blackjax.mcmc.adjusted_mclmc import rescale
from jax.flatten_util import ravel_pytree
from jaxtyping import Array

from bayesover._checks import check_bool, check_fraction, check_positive, check_real
from bayesover.inference.samplers._base import AbstractSampler, Algorithm
from bayesover.posterior._posterior import AbstractPosterior


class MCLMCChainState(NamedTuple):
    """A chain of (adjusted) MCLMC: BlackJAX's state plus the tuned L, step size and metric."""

    mclmc: blackjax.mcmc.integrators.IntegratorState | blackjax.mcmc.dynamic_hmc.DynamicHMCState
    L: Array
    step_size: Array
    inverse_mass_matrix: Array

    @property
    def position(self):
        return self.mclmc.position


def _tuned(state: MCLMCChainState, tuned_state: Any, params: Any) -> MCLMCChainState:
    """The chain after a BlackJAX tuner: its state and tuned L, step size and metric (a
    scalar metric broadcast to the chain's shape), in the chain's dtype."""
    dtype = state.L.dtype
    return MCLMCChainState(
        tuned_state,
        jnp.asarray(params.L, dtype),
        jnp.asarray(params.step_size, dtype),
        jnp.asarray(params.inverse_mass_matrix, dtype) * jnp.ones_like(state.inverse_mass_matrix),
    )


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


class MCLMC(AbstractSampler):
    """`bo.MCLMC(L=None, step_size=None, desired_energy_var=5e-4, diagonal_preconditioning=True,
    frac_tune1=0.1, frac_tune2=0.1, frac_tune3=0.1)`: unadjusted microcanonical Langevin.

    Warm-up runs `blackjax.mclmc_find_L_and_step_size` for the warm-up's steps, split among its
    three phases in proportion to `frac_tune1 : frac_tune2 * (4/3 if diagonal preconditioning)
    : frac_tune3`: (1) the step size is adapted so that the energy error's variance per
    dimension is `desired_energy_var`; (2) the same, while the posterior variances are
    estimated, which set the diagonal inverse mass matrix and L = sqrt(sum of variances) (with
    preconditioning: sqrt(d)), then a third of that many steps to readapt the step size;
    (3) L = 0.4 * step_size * (integrated autocorrelation time, from the ESS of phase 3's
    draws). `L` and `step_size` are the starting values (BlackJAX's sqrt(d) and 0.25 sqrt(d)
    when None); with `num_warmup=0` they are used as given, with a unit mass matrix.
    """

    L: float | None = None
    step_size: float | None = None
    desired_energy_var: float = 5e-4
    diagonal_preconditioning: bool = True
    frac_tune1: float = 0.1
    frac_tune2: float = 0.1
    frac_tune3: float = 0.1

    def __check_init__(self):
        _check_optional_positive("L", self.L)
        _check_optional_positive("step_size", self.step_size)
        check_positive("desired_energy_var", self.desired_energy_var)
        check_bool("diagonal_preconditioning", self.diagonal_preconditioning)
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

    def build(self, posterior: AbstractPosterior) -> Algorithm:
        logdensity = posterior.logdensity
        kernel = blackjax.mcmc.mclmc.build_kernel(desired_energy_var=self.desired_energy_var)

        def initial_parameters(position):
            dim, dtype = _dim(position), _dtype(position)
            L = math.sqrt(dim) if self.L is None else self.L
            step_size = 0.25 * math.sqrt(dim) if self.step_size is None else self.step_size
            return (
                jnp.asarray(L, dtype),
                jnp.asarray(step_size, dtype),
                jnp.ones(dim, dtype),
            )

        def init(position, rng_key):
            L, step_size, inverse_mass_matrix = initial_parameters(position)
            state = blackjax.mcmc.mclmc.init(position, logdensity, rng_key)
            return MCLMCChainState(state, L, step_size, inverse_mass_matrix)

        def warmup(rng_key, state, num_steps):
            if num_steps == 0:
                return state
            # the tuner runs round(num_steps * frac) steps per phase (phase 2 a third more with
            # preconditioning): normalise the fractions so that the phases add up to num_steps
            total = (
                self.frac_tune1
                + self.frac_tune2 * (4 / 3 if self.diagonal_preconditioning else 1)
                + self.frac_tune3
            )
            tuned_state, params, _ = blackjax.mclmc_find_L_and_step_size(
                mclmc_kernel=kernel,
                num_steps=num_steps,
                state=state.mclmc,
                rng_key=rng_key,
                logdensity_fn=logdensity,
                frac_tune1=self.frac_tune1 / total,
                frac_tune2=self.frac_tune2 / total,
                frac_tune3=self.frac_tune3 / total,
                desired_energy_var=self.desired_energy_var,
                diagonal_preconditioning=self.diagonal_preconditioning,
                params=MCLMCAdaptationState(state.L, state.step_size, state.inverse_mass_matrix),
            )
            return _tuned(state, tuned_state, params)

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
    divergence_threshold=1000.0)`: Metropolis-adjusted microcanonical HMC.

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
    (BlackJAX's 0.2 sqrt(d) when None); with `num_warmup=0` it is used as given.
    """

    target_acceptance_rate: float = 0.9
    num_integration_steps: float = 2.0
    step_size: float | None = None
    diagonal_preconditioning: bool = True
    frac_tune1: float = 0.1
    frac_tune2: float = 0.1
    divergence_threshold: float = 1000.0

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

    def progress_stats(self, info) -> dict:
        """`diverging`: the progress bar counts divergences so far."""
        return {"diverging": info.diverging}

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
            return MCLMCChainState(
                state,
                jnp.asarray(self.num_integration_steps * step_size, dtype),
                jnp.asarray(step_size, dtype),
                jnp.ones(dim, dtype),
            )

        def warmup(rng_key, state, num_steps):
            if num_steps == 0:
                return state
            total = 2 * self.frac_tune1 + self.frac_tune2  # pass 1 + variances + pass 2
            tuned_state, params, _ = blackjax.adjusted_mclmc_find_L_and_step_size(
                mclmc_kernel=kernel,
                logdensity_fn=logdensity,
                num_steps=num_steps,
                state=state.mclmc,
                rng_key=rng_key,
                target=self.target_acceptance_rate,
                frac_tune1=self.frac_tune1 / total,
                frac_tune2=self.frac_tune2 / total,
                frac_tune3=0.0,
                diagonal_preconditioning=self.diagonal_preconditioning,
                params=MCLMCAdaptationState(state.L, state.step_size, state.inverse_mass_matrix),
                target_num_integration_steps=self.num_integration_steps,
            )
            return _tuned(state, tuned_state, params)

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
