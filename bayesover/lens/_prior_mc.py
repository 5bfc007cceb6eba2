"""`prior_log_evidence`: the log evidence by naive Monte Carlo over prior draws (the baseline)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jaxtyping import PRNGKeyArray

from bayesover._checks import check_int
from bayesover.lens._particles import effective_sample_size, flat_target, prior_draws, result
from bayesover.lens._result import EvidenceResult
from bayesover.lens._target import Target, as_target
from bayesover.posterior._posterior import AbstractPosterior


def prior_log_evidence(
    posterior: AbstractPosterior | Target,
    *,
    key: PRNGKeyArray,
    num_runs: int = 4,
    num_draws: int = 10_000,
    min_ess: float | None = None,
) -> EvidenceResult:
    """Naive Monte Carlo: log M ~ log (1/K) sum_k L(theta_k), theta_k ~ w. Unbiased for M, but
    when the posterior is a rare event under the prior (d >> n, sharp likelihoods) the sum is
    dominated by a few draws and log M is underestimated by many nats; the ESS of the weights
    L(theta_k) then falls below `min_ess` (default max(2, num_draws / 100)) and the result is
    marked `collapsed`. Kept as the baseline the other estimators must beat."""
    target = as_target(posterior)
    num_runs = check_int("num_runs", num_runs, 1)
    num_draws = check_int("num_draws", num_draws, 1)
    min_ess = max(2.0, num_draws / 100) if min_ess is None else float(min_ess)
    _, x, template = prior_draws(target, key, num_runs, num_draws)
    out = jax.tree.map(np.asarray, _prior_runs(target, x, template))
    return result(
        out["log_z"],
        "prior",
        ess=float(out["ess"].min()),
        min_ess=min_ess,
        num_nonfinite=int(out["num_nonfinite"].sum()),
        diagnostics={"ess_per_run": out["ess"], "num_draws": num_draws},
    )


@eqx.filter_jit
def _prior_runs(target, x, template):
    _, loglik = flat_target(target, template)

    def one(x):
        ll = jax.lax.map(loglik, x, batch_size=1024)
        return {"log_z": logsumexp(ll) - jnp.log(x.shape[0]), "ess": effective_sample_size(ll),
                "num_nonfinite": jnp.sum(~jnp.isfinite(ll))}  # fmt: skip

    return jax.lax.map(one, x)
