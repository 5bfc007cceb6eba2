"""Posteriors: the log densities that samplers target.

Temperature convention, used everywhere in bayesover: a posterior at temperature T is

    p_T(theta | D)  proportional to  p(theta) * prod_i p(y_i | x_i, theta)^(1/T),

i.e. the likelihood is tempered and the prior is not. T = 1 is the Bayes posterior, T < 1 a
"cold" posterior, T -> infinity the prior. For a minibatch B of size b drawn without
replacement from N points, the unbiased estimator of the log density is

    log p(theta) + (1/T) * (N / b) * sum_{i in B} log p(y_i | x_i, theta).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro
import numpyro.infer.util as numpyro_util
from jaxtyping import Array, Float, PRNGKeyArray

from bayesover._checks import check_positive
from bayesover.data._container import Data
from bayesover.model._model import Model, Position, check_position


class AbstractPosterior(eqx.Module):
    """What every sampler needs: a log density on R^d positions and a way to start.

    **Methods:**

    - `logdensity(position)`: the unnormalised log posterior (unconstrained coordinates).
    - `initial_position(key=None)`: a starting position (a prior draw when a key is given).
    - `constrain(position)`: the position on natural scales (named sites for NumPyro models).
    """

    temperature: eqx.AbstractVar[float]

    @abc.abstractmethod
    def logdensity(self, position: Any) -> Float[Array, ""]:
        raise NotImplementedError

    @abc.abstractmethod
    def initial_position(self, key: PRNGKeyArray | None = None) -> Any:
        raise NotImplementedError

    @abc.abstractmethod
    def constrain(self, position: Any) -> Any:
        raise NotImplementedError


class Posterior(AbstractPosterior):
    """`bo.Posterior(model, data, temperature=1.0)`: a network posterior on a data set.

    **Arguments:**

    - `model`: a `bo.Model`.
    - `data`: the training `bo.Data`; its targets are checked against the likelihood and the
      module's output shape.
    - `temperature`: T in p(theta) p(D | theta)^(1/T) (see the module docstring).
    """

    model: Model
    data: Data
    temperature: float = eqx.field(static=True)

    def __init__(self, model: Model, data: Data, temperature: float = 1.0):
        if not isinstance(model, Model):
            raise TypeError(f"`model` must be a bo.Model, got {type(model).__name__}.")
        if not isinstance(data, Data):
            raise TypeError(f"`data` must be a bo.Data, got {type(data).__name__}.")
        self.temperature = check_positive("temperature", temperature)
        try:
            output = jax.eval_shape(model.apply, model.params, data.inputs[0])
        except Exception as error:  # the module rejects the input's shape
            raise ValueError(
                f"the module cannot be applied to one input of shape {data.feature_shape}: "
                f"{type(error).__name__}: {error}"
            ) from error
        model.likelihood.check(tuple(output.shape), data.targets)
        self.model = model
        self.data = data

    @property
    def num_data(self) -> int:
        return self.data.num_points

    def initial_position(self, key: PRNGKeyArray | None = None) -> Position:
        return self.model.initial_position(key)

    def position(self, net: eqx.Module) -> Position:
        """The unconstrained position of the network `net` (an `equinox.Module` with the
        model's architecture, or its `eqx.partition(net, eqx.is_inexact_array)[0]`), with the
        prior and likelihood parameters at their defaults; the inverse of `module`. See
        `bo.Model.position`."""
        return self.model.position(net)

    def constrain(self, position: Position) -> Position:
        check_position(position, "Posterior.constrain")
        return self.model.constrain(position)

    def module(self, position: Position) -> eqx.Module:
        """The Equinox network at `position` (weights constrained); `position(net)` inverts it."""
        check_position(position, "Posterior.module")
        return self.model.module(self.model.constrain(position)["net"])

    def log_prior(self, position: Position) -> Float[Array, ""]:
        check_position(position, "Posterior.log_prior")
        return self.model.log_prior(position)

    def loglikelihood(self, position: Position, x: Array, y: Array) -> Float[Array, ""]:
        """log p(y | x, theta) for ONE datum (untempered)."""
        check_position(position, "Posterior.loglikelihood")
        values = self.model.constrain(position)
        output = self.model.apply(values["net"], x)
        return self.model.likelihood.log_prob(output, y, values["likelihood"])

    def pointwise_loglikelihood(self, position: Position, data: Data | None = None) -> Array:
        """log p(y_i | x_i, theta) for every datum of `data` (default: the training data)."""
        check_position(position, "Posterior.pointwise_loglikelihood")
        data = self.data if data is None else data
        values = self.model.constrain(position)

        def one(x, y):
            output = self.model.apply(values["net"], x)
            return self.model.likelihood.log_prob(output, y, values["likelihood"])

        return jax.vmap(one)(data.inputs, data.targets)

    def logdensity(self, position: Position) -> Float[Array, ""]:
        """log p(theta) + (1/T) sum_i log p(y_i | x_i, theta), up to a constant.

        `position` is the dict `{"net", "prior", "likelihood"}` of `initial_position()`; build
        one from a network with `position(net)`."""
        check_position(position, "Posterior.logdensity")
        loglik = jnp.sum(self.pointwise_loglikelihood(position))
        return self.model.log_prior(position) + loglik / self.temperature

    def minibatch(self, indices: Array) -> Data:
        """The training points at `indices` (what SG-MCMC and minibatch MAP evaluate); a
        data-parallel posterior gathers them from its shards."""
        return self.data.take(indices)

    def logdensity_estimate(self, position: Position, batch: Data) -> Float[Array, ""]:
        """Unbiased minibatch estimate: log p(theta) + (1/T) (N/b) sum_{i in B} log p(y_i | x_i)."""
        check_position(position, "Posterior.logdensity_estimate")
        loglik = jnp.sum(self.pointwise_loglikelihood(position, batch))
        scale = self.num_data / batch.inputs.shape[0]
        return self.model.log_prior(position) + scale * loglik / self.temperature

    @classmethod
    def from_numpyro(
        cls, model_fn: Callable[..., Any], *args: Any, temperature: float = 1.0, **kwargs: Any
    ) -> NumPyroPosterior:
        """The posterior of a NumPyro model function `model_fn(*args, **kwargs)`.

        The position is NumPyro's unconstrained latent dict; `logdensity` is minus NumPyro's
        potential energy (Jacobians included) with observed sites tempered by 1/T;
        `constrain(position)` returns the named constrained sites, deterministic sites included.
        (NumPyro's `handlers.scale` on observed sites would also rescale the Jacobians of the
        latent sites in `potential_energy`, so the tempering is added explicitly.)
        `temperature` is reserved: it is not passed to `model_fn`.
        """
        return NumPyroPosterior(model_fn, args, kwargs, check_positive("temperature", temperature))


class NumPyroPosterior(AbstractPosterior):
    """A NumPyro model as a target; built by `bo.Posterior.from_numpyro`."""

    model_fn: Callable[..., Any] = eqx.field(static=True)
    args: tuple
    kwargs: dict[str, Any]
    temperature: float = eqx.field(static=True)

    def __init__(self, model_fn, args, kwargs, temperature):
        if not callable(model_fn):
            raise TypeError(f"`model_fn` must be a NumPyro model function, got {model_fn!r}.")
        self.model_fn = model_fn
        self.args = tuple(args)
        self.kwargs = dict(kwargs)
        self.temperature = temperature
        self._info(jax.random.key(0))  # fail now, with NumPyro's message, if the model is broken

    def _info(self, key, init_strategy=numpyro.infer.init_to_sample):
        return numpyro_util.initialize_model(
            key,
            self.model_fn,
            model_args=self.args,
            model_kwargs=self.kwargs,
            init_strategy=init_strategy,
        )

    def initial_position(self, key: PRNGKeyArray | None = None) -> dict[str, Array]:
        """A prior draw for `key`, else NumPyro's default start (uniform in [-2, 2] unconstrained,
        drawn with a fixed key)."""
        if key is None:
            return self._info(jax.random.key(0), numpyro.infer.init_to_uniform).param_info.z
        return self._info(key).param_info.z

    def logdensity(self, position: dict[str, Array]) -> Float[Array, ""]:
        """-U(z) + (1/T - 1) log p(y | theta(z)): NumPyro's potential energy U (prior, likelihood
        and Jacobians), with the observed sites' log density re-weighted to 1/T."""
        logdensity = -numpyro_util.potential_energy(self.model_fn, self.args, self.kwargs, position)
        if self.temperature == 1.0:
            return logdensity
        loglik = sum(jnp.sum(v) for v in jax.tree.leaves(self.pointwise_loglikelihood(position)))
        return logdensity + (1.0 / self.temperature - 1.0) * loglik

    def constrain(self, position: dict[str, Array]) -> dict[str, Array]:
        return numpyro_util.constrain_fn(
            self.model_fn, self.args, self.kwargs, position, return_deterministic=True
        )

    def pointwise_loglikelihood(self, position: dict[str, Array]) -> dict[str, Array]:
        """Per-datum log p(y | theta) for every observed site (untempered)."""
        samples = jax.tree.map(lambda v: v[None], self.constrain(position))
        result = numpyro.infer.util.log_likelihood(
            self.model_fn, samples, *self.args, **self.kwargs
        )
        return jax.tree.map(lambda v: v[0], result)
