"""`log_evidence(posterior, method, *, key)`: the log evidence log M(x^n) by five estimators.

    M(x^n) = integral w(theta) prod_i P_theta(x_i)^(1/T) d theta      (T: the temperature)

The integral is over the unconstrained coordinates of `bo.lens.Target` (its log prior includes
the Jacobians, so this is the integral over the natural space). Every sampler works on the
position raveled to one vector (`jax.flatten_util.ravel_pytree`).

- "smc": adaptive tempered SMC (BlackJAX), log M = sum of the log normalising-constant
  increments of the path w(theta) L(theta)^beta, beta: 0 -> 1.
- "prequential": data-annealed SMC, log M = sum_t log M(x_t | x^{t-1}).
- "ais": annealed importance sampling (Neal, 2001) on a fixed schedule of beta, no resampling.
- "nested": nested sampling with slice moves (BlackJAX's `nss`).
- "laplace": log p(D | theta*) + log w(theta*) + (d/2) log 2 pi - (1/2) log det H at the mode.
- "prior": naive Monte Carlo, log mean_k L(theta_k) over prior draws: the baseline that fails
  when the posterior is a rare event under the prior (its ESS says so).

One module per estimator (`_smc`, `_prequential`, `_ais`, `_nested`, `_laplace`, `_prior_mc`);
what the particle methods share is in `_particles` (non-finite log-likelihoods weigh zero).
Their HMC moves are the samplers' (`bayesover.inference.samplers._moves`). Every compiled kernel
is a module-level `eqx.filter_jit` function, so calls with the same shapes and settings reuse
one compile.

Caveat (NumPyro targets): `Target.sample_prior` draws through NumPyro's initialisation, which
redraws points of infinite potential energy, and `Target.log_prior` is NaN where the
likelihood is -inf. With a likelihood that is -inf on part of the prior the particles then
start from the prior truncated to the valid region and log M comes out too high by
-log w(valid). Network posteriors are not affected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaxtyping import PRNGKeyArray

from bayesover._checks import check_int
from bayesover.lens._ais import ais_log_evidence
from bayesover.lens._laplace import laplace_log_evidence
from bayesover.lens._nested import nested_log_evidence
from bayesover.lens._prequential import prequential_log_evidence
from bayesover.lens._prior_mc import prior_log_evidence
from bayesover.lens._result import EvidenceResult
from bayesover.lens._smc import smc_log_evidence
from bayesover.lens._target import Target, as_target
from bayesover.posterior._posterior import AbstractPosterior

METHODS = ("smc", "prequential", "ais", "nested", "laplace", "prior")

__all__ = ["METHODS", "log_evidence"]


def log_evidence(
    posterior: AbstractPosterior | Target,
    method: str,
    *,
    key: PRNGKeyArray,
    num_runs: int = 4,
    **options: Any,
) -> EvidenceResult:
    """The log evidence log M(x^n) of `posterior` (nats) by `method`.

    **Arguments:**

    - `posterior`: a network `bo.Posterior`, a `bo.Posterior.from_numpyro` target, or a
      `bo.lens.Target`.
    - `method`: one of "smc", "prequential", "ais", "nested", "laplace", "prior".
    - `key`: a JAX PRNG key.
    - `num_runs`: independent runs; the standard error is std(runs) / sqrt(num_runs) ("laplace":
      restarts of the optimiser, see `laplace_log_evidence`).
    - `options`: the method's settings (see `smc_log_evidence`, `ais_log_evidence`,
      `nested_log_evidence`, `laplace_log_evidence`, `prior_log_evidence` and
      `prequential_log_evidence`).

    **Returns:** an `EvidenceResult`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown `method` {method!r}; choose one of {', '.join(METHODS)}.")
    if method == "prequential":
        check_int("num_runs", num_runs, 1)
        return prequential_log_evidence(as_target(posterior), key=key, num_runs=num_runs, **options)
    estimators: dict[str, Callable[..., EvidenceResult]] = {
        "smc": smc_log_evidence,
        "ais": ais_log_evidence,
        "nested": nested_log_evidence,
        "laplace": laplace_log_evidence,
        "prior": prior_log_evidence,
    }
    return estimators[method](posterior, key=key, num_runs=num_runs, **options)
