"""`Target`: what every lens estimator needs of a posterior, for both kinds of posterior.

The evidence M(x^n) = integral w(theta) prod_i P_theta(x_i)^(1/T) d theta splits the log density
into a log prior (unconstrained coordinates, Jacobians included, so that integrating over the
unconstrained space is integrating over the natural one) and per-datum log-likelihoods
log P_theta(x_i) (conditional on the inputs in the supervised case). `Target` gives these for a
network `bo.Posterior` and for a NumPyro target alike; the estimators never look further.

Why by hand: neither BlackJAX nor NumPyro splits a model into prior and per-datum likelihood for
an arbitrary network; NumPyro's `log_likelihood` gives the per-site terms used here.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from bayesover.posterior._posterior import AbstractPosterior, NumPyroPosterior, Posterior


class Target(eqx.Module):
    """`Target(posterior)`: prior sampler, log prior and per-datum log-likelihoods.

    **Methods:**

    - `sample_prior(key)`: an unconstrained position drawn from the prior w.
    - `log_prior(position)`: log w(position) in unconstrained coordinates.
    - `pointwise_loglikelihood(position)`: `(num_data,)` untempered log P_theta(x_i).
    - `loglikelihood(position)`: (1/T) sum_i log P_theta(x_i), the tempered total.
    - `logdensity(position)`: log_prior + loglikelihood (the posterior's log density).
    """

    posterior: AbstractPosterior
    num_data: int = eqx.field(static=True)

    def __init__(self, posterior: AbstractPosterior):
        if not isinstance(posterior, (Posterior, NumPyroPosterior)):
            raise TypeError(
                "`posterior` must be a bo.Posterior or a bo.Posterior.from_numpyro target, got "
                f"{type(posterior).__name__}."
            )
        self.posterior = posterior
        position = posterior.initial_position()
        self.num_data = int(jax.eval_shape(lambda z: _pointwise(posterior, z), position).shape[0])
        if self.num_data == 0:
            raise ValueError("`posterior` has an empty data set; the evidence needs data.")

    @property
    def temperature(self) -> float:
        return self.posterior.temperature

    def sample_prior(self, key: PRNGKeyArray) -> PyTree:
        if isinstance(self.posterior, Posterior):
            return self.posterior.model.sample_prior(key)
        assert isinstance(self.posterior, NumPyroPosterior)
        return _numpyro_prior_draw(self.posterior, key)

    def _pointwise(self, position: PyTree) -> Float[Array, " n"]:
        return _pointwise(self.posterior, position)

    def pointwise_loglikelihood(self, position: PyTree) -> Float[Array, " n"]:
        """Untempered log P_theta(x_i) per datum (NumPyro: all observed sites, flattened in
        site order)."""
        return self._pointwise(position)

    def loglikelihood(self, position: PyTree) -> Float[Array, ""]:
        return jnp.sum(self._pointwise(position)) / self.temperature

    def log_prior(self, position: PyTree) -> Float[Array, ""]:
        if isinstance(self.posterior, Posterior):
            return self.posterior.log_prior(position)
        # NumPyro's log density at T = 1 is log prior + log-lik (Jacobians included)
        import numpyro.infer.util as numpyro_util

        p = self.posterior
        assert isinstance(p, NumPyroPosterior)
        logdensity = -numpyro_util.potential_energy(p.model_fn, p.args, p.kwargs, position)
        return logdensity - jnp.sum(self._pointwise(position))

    def logdensity(self, position: PyTree) -> Float[Array, ""]:
        return self.log_prior(position) + self.loglikelihood(position)


def _pointwise(posterior: AbstractPosterior, position: PyTree) -> Float[Array, " n"]:
    if isinstance(posterior, Posterior):
        values = posterior.pointwise_loglikelihood(position)
        return values.reshape(values.shape[0], -1).sum(axis=1)
    assert isinstance(posterior, NumPyroPosterior)
    sites = posterior.pointwise_loglikelihood(position)
    parts = [jnp.reshape(v, (-1,)) for v in jax.tree.leaves(sites)]
    return jnp.concatenate(parts) if parts else jnp.zeros((0,))


def as_target(posterior: AbstractPosterior | Target) -> Target:
    """`posterior` as a `Target` (a Target passes through)."""
    return posterior if isinstance(posterior, Target) else Target(posterior)


def _numpyro_prior_draw(posterior: NumPyroPosterior, key: PRNGKeyArray) -> dict[str, Array]:
    """An exact prior draw of the latent sites, unconstrained. Not `initial_position`: NumPyro's
    `initialize_model` redraws until the whole log density is finite, which truncates the prior
    wherever the likelihood is -inf (e.g. a Uniform(0, theta) likelihood below max x)."""
    from numpyro import handlers
    from numpyro.infer.util import unconstrain_fn

    model = handlers.seed(posterior.model_fn, key)
    trace = handlers.trace(model).get_trace(*posterior.args, **posterior.kwargs)
    latent = {
        name: site["value"]
        for name, site in trace.items()
        if site["type"] == "sample" and not site["is_observed"]
    }
    return unconstrain_fn(posterior.model_fn, posterior.args, posterior.kwargs, latent)
