"""NUTS and HMC: BlackJAX kernels, tuned by BlackJAX's window adaptation.

Full-batch Hamiltonian Monte Carlo on the posterior's log density. Warm-up runs
`blackjax.window_adaptation` (Stan's windowed step size and mass matrix adaptation, diagonal
or dense) with an info filter that keeps nothing of the warm-up steps, so its memory does not
grow with the number of parameters times warm-up steps.

Non-finite log densities. A trajectory that reaches a point where the log density (or its
gradient) is NaN or infinite is divergent and rejected by BlackJAX, so the chain itself stays
finite; the draw's `non_finite` statistic records that it happened (a model that overflows in
part of the space is sampled there as if truncated, which `bo.diagnose` reports).
"""

from __future__ import annotations

from typing import NamedTuple

import blackjax
import jax.numpy as jnp
from blackjax.adaptation.base import get_filter_adapt_info_fn
from jax.flatten_util import ravel_pytree
from jaxtyping import Array

from bayesover._checks import check_fraction, check_int, check_positive
from bayesover.inference.samplers._base import AbstractSampler, Algorithm
from bayesover.inference.samplers._moves import hmc_step
from bayesover.posterior._posterior import AbstractPosterior


class HMCChainState(NamedTuple):
    """A chain of HMC/NUTS: BlackJAX's `HMCState` plus the tuned kernel parameters."""

    hmc: blackjax.mcmc.hmc.HMCState
    step_size: Array
    inverse_mass_matrix: Array

    @property
    def position(self):
        return self.hmc.position


class NUTSStats(NamedTuple):
    """Per-draw statistics of NUTS, named as ArviZ names them."""

    acceptance_rate: Array
    diverging: Array
    tree_depth: Array
    n_steps: Array
    step_size: Array
    energy: Array
    lp: Array
    non_finite: Array


class HMCStats(NamedTuple):
    """Per-draw statistics of HMC, named as ArviZ names them."""

    acceptance_rate: Array
    diverging: Array
    n_steps: Array
    step_size: Array
    energy: Array
    lp: Array
    non_finite: Array


def _non_finite(*integrator_states) -> Array:
    """True when any of the trajectory's end states holds a non-finite log density."""
    finite = jnp.all(jnp.stack([jnp.isfinite(s.logdensity) for s in integrator_states]))
    return ~finite


def _identity_metric(position, dense: bool) -> Array:
    size = ravel_pytree(position)[0].size
    return jnp.eye(size) if dense else jnp.ones(size)


class _HMCFamily(AbstractSampler):
    initial_step_size: float
    target_acceptance_rate: float
    dense_mass_matrix: bool

    def _check(self):
        check_positive("initial_step_size", self.initial_step_size)
        check_fraction("target_acceptance_rate", self.target_acceptance_rate)

    def _kernel_args(self) -> dict:
        raise NotImplementedError

    def progress_stats(self, info) -> dict:
        """`diverging`: the progress bar counts divergences so far."""
        return {"diverging": info.diverging}

    def _build(self, posterior, algorithm, kernel, stats):
        logdensity = posterior.logdensity
        kernel_args = self._kernel_args()

        def init(position, rng_key=None):
            return HMCChainState(
                blackjax.hmc.init(position, logdensity),
                jnp.asarray(self.initial_step_size, jnp.float32),
                _identity_metric(position, self.dense_mass_matrix),
            )

        def warmup(rng_key, state, num_steps):
            if num_steps == 0:
                return state
            adaptation = blackjax.window_adaptation(
                algorithm,
                logdensity,
                is_mass_matrix_diagonal=not self.dense_mass_matrix,
                initial_step_size=self.initial_step_size,
                target_acceptance_rate=self.target_acceptance_rate,
                adaptation_info_fn=get_filter_adapt_info_fn(),
                **kernel_args,
            )
            (result, _) = adaptation.run(rng_key, state.position, num_steps)
            return HMCChainState(
                result.state,
                jnp.asarray(result.parameters["step_size"], jnp.float32),
                result.parameters["inverse_mass_matrix"],
            )

        def step(rng_key, state):
            hmc_state, info = kernel(
                rng_key,
                state.hmc,
                logdensity,
                state.step_size,
                state.inverse_mass_matrix,
                **kernel_args,
            )
            return state._replace(hmc=hmc_state), stats(hmc_state, info, state.step_size)

        return Algorithm(init, warmup, step)


class NUTS(_HMCFamily):
    """`bo.NUTS(max_tree_depth=10, target_acceptance_rate=0.8, dense_mass_matrix=False)`.

    BlackJAX's multinomial NUTS (Hoffman and Gelman 2014; Betancourt 2017). `tree_depth` is
    the number of trajectory doublings, `n_steps` the leapfrog steps of each draw.
    """

    max_tree_depth: int = 10
    initial_step_size: float = 1.0
    target_acceptance_rate: float = 0.8
    dense_mass_matrix: bool = False

    def __check_init__(self):
        self._check()
        check_int("max_tree_depth", self.max_tree_depth, minimum=1)

    def _kernel_args(self):
        return {"max_num_doublings": self.max_tree_depth}

    def recorded_settings(self) -> dict:
        """`max_tree_depth`, for the diagnostics' tree-depth saturation check."""
        return {"max_tree_depth": int(self.max_tree_depth)}

    def build(self, posterior: AbstractPosterior) -> Algorithm:
        kernel = blackjax.nuts.build_kernel()

        def stats(state, info, step_size):
            return NUTSStats(
                acceptance_rate=info.acceptance_rate,
                diverging=info.is_divergent,
                tree_depth=info.num_trajectory_expansions,
                n_steps=info.num_integration_steps,
                step_size=step_size,
                energy=info.energy,
                lp=state.logdensity,
                non_finite=_non_finite(
                    info.trajectory_leftmost_state, info.trajectory_rightmost_state
                ),
            )

        return self._build(posterior, blackjax.nuts, kernel, stats)


class HMC(_HMCFamily):
    """`bo.HMC(num_integration_steps, target_acceptance_rate=0.8, dense_mass_matrix=False)`.

    Static-trajectory HMC with `num_integration_steps` leapfrog steps per draw.
    """

    num_integration_steps: int = 16
    initial_step_size: float = 1.0
    target_acceptance_rate: float = 0.8
    dense_mass_matrix: bool = False

    def __check_init__(self):
        self._check()
        check_int("num_integration_steps", self.num_integration_steps, minimum=1)

    def _kernel_args(self):
        return {"num_integration_steps": self.num_integration_steps}

    def build(self, posterior: AbstractPosterior) -> Algorithm:
        kernel = hmc_step

        def stats(state, info, step_size):
            return HMCStats(
                acceptance_rate=info.acceptance_rate,
                diverging=info.is_divergent,
                n_steps=info.num_integration_steps,
                step_size=step_size,
                energy=info.energy,
                lp=state.logdensity,
                non_finite=_non_finite(info.proposal),
            )

        return self._build(posterior, blackjax.hmc, kernel, stats)
