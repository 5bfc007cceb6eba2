"""Distillation: one network trained to reproduce an ensemble's predictive distribution.

The teacher is the ensemble's mixture predictive p(y | x, D) = (1/M) sum_m p(y | x, theta_m)
(`Ensemble.predict`), evaluated once on an input pool {x_j}_{j=1}^P. The student f_phi (any
Equinox module with the output shape of the ensemble's network) minimises, over the pool:

- classification (Categorical, Bernoulli): the mean Kullback-Leibler divergence

      L(phi) = (1/P) sum_j T^2 KL( p_T(. | x_j) || softmax(f_phi(x_j) / T) ),

  with soft targets p_T proportional to p(. | x_j, D)^(1/T) (T = `temperature`; T = 1 is the plain
  KL to the ensemble's class probabilities, T > 1 softens both sides as in Hinton et al. 2015);
  a Bernoulli output is one logit z, i.e. the two logits (0, z);
- regression (Gaussian, StudentT): the squared error to the mixture MEAN,

      L(phi) = (1/P) sum_j || f_phi(x_j) - E[y | x_j, D] ||^2,

  so the student outputs the predictive mean only. The predictive variance is not distilled:
  `DistillResult.log_prob` pairs the student's mean with a Gaussian of fixed scale, the square
  root of the ensemble's aleatoric variance E_m Var(y | x, theta_m) averaged over the pool.

Parameters are the student's inexact arrays (`eqx.partition(student, eqx.is_inexact_array)`),
trained by optax in one `lax.scan` (full pool, or epoch-wise minibatches of the pool).
"""

from __future__ import annotations

import functools as ft
import math
from collections.abc import Callable
from typing import Any, cast

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from bayesover._checks import check_int, check_int_between, check_key, check_positive
from bayesover.ensemble._ensemble import Ensemble
from bayesover.model.likelihoods import (
    AbstractLikelihood,
    Bernoulli,
    Categorical,
    Gaussian,
    StudentT,
)

_DEFAULT_OPTIMIZER = optax.adam(1e-3)  # one instance: calls without an optimiser share a compile


class DistillResult(eqx.Module):
    """What `bo.distill` returns.

    **Fields:**

    - `student`: the trained Equinox module.
    - `losses`: the distillation loss at every step (its minibatch value when batched), shape
      `(num_steps,)`: mean KL (nats) for classification, mean squared error for regression.
    - `likelihood`: the ensemble's likelihood (it says how to read the student's output).
    - `noise_scale`: regression only: the Gaussian scale used by `log_prob`, shape
      `target_shape` (None for classification).
    - `target_shape`: the per-datum target shape of the ensemble.
    """

    student: eqx.Module
    losses: Float[Array, " num_steps"]
    likelihood: AbstractLikelihood
    noise_scale: Array | None
    target_shape: tuple[int, ...] = eqx.field(static=True)

    @property
    def is_classification(self) -> bool:
        return isinstance(self.likelihood, (Categorical, Bernoulli))

    def log_prob(self, x, y) -> Float[Array, " n"]:
        """The student's log predictive density per point: classification log softmax(f(x))[y];
        regression sum over target dimensions of log N(y; f(x), noise_scale^2).

        **Arguments:** inputs `x` `(n, *feature_shape)` and targets `y` `(n, *target_shape)`.

        **Returns:** shape `(n,)`; `-mean` is the student's test NLL, comparable with
        `-ensemble.predict(x).log_prob(y).mean()`.
        """
        x = _as_points("x", x)
        y = jnp.asarray(y)
        if y.shape != (x.shape[0], *self.target_shape):
            raise ValueError(
                f"`y` must have shape (n, *target_shape) = {(x.shape[0], *self.target_shape)}, "
                f"got {y.shape}."
            )
        if self.is_classification:
            labels = np.asarray(y)
            num_classes = 2 if isinstance(self.likelihood, Bernoulli) else None
            if num_classes is None:
                num_classes = jax.eval_shape(self.student, x[0]).shape[-1]  # type: ignore[arg-type]
            if not np.issubdtype(labels.dtype, np.integer) and not np.all(labels == labels // 1):
                raise TypeError(f"`y` must hold integer class labels, got {labels.dtype}.")
            if labels.min() < 0 or labels.max() >= num_classes:
                raise ValueError(f"`y` labels must lie in [0, {num_classes - 1}].")
        return _student_log_prob(self, x, y)

    def predict(self, x) -> Array:
        """Class probabilities `(n, K)` (K = 2 for Bernoulli) or predictive means
        `(n, *target_shape)`."""
        x = _as_points("x", x)
        return _student_predict(self, x)


def distill(
    ensemble: Ensemble,
    student_module: eqx.Module,
    x_pool: Any,
    *,
    key: PRNGKeyArray,
    optimizer: optax.GradientTransformation | None = None,
    num_steps: int = 1000,
    batch_size: int | None = None,
    temperature: float = 1.0,
) -> DistillResult:
    """Fit one network to the ensemble's predictive distribution on `x_pool`.

    **Arguments:**

    - `ensemble`: a `bo.Ensemble` of a network posterior (it has a model).
    - `student_module`: an Equinox module mapping ONE input to an output of the ensemble
      network's output shape (logits, or the mean for regression); its weights are the start.
    - `x_pool`: inputs `(P, *feature_shape)` on which the predictives are matched (the training
      inputs, plus unlabelled or augmented points if available).
    - `key`: orders the minibatches of the pool.
    - `optimizer`: optax transformation (default `optax.adam(1e-3)`).
    - `num_steps`: optimiser steps, >= 1; `batch_size`: pool points per step, in [1, P], or
      `None` for the whole pool.
    - `temperature`: T > 0 of the softened KL (classification only; regression needs T = 1).

    **Returns:** a `DistillResult(student, losses, ...)`; see its `log_prob`.
    """
    if not isinstance(ensemble, Ensemble):
        raise TypeError(f"`ensemble` must be a bo.Ensemble, got {type(ensemble).__name__}.")
    if ensemble.model is None:
        raise TypeError(
            "`ensemble` holds NumPyro sites, not networks: distillation needs an ensemble of a "
            "network bo.Posterior (with a model)."
        )
    likelihood = ensemble.model.likelihood
    classification = isinstance(likelihood, (Categorical, Bernoulli))
    if not classification and not isinstance(likelihood, (Gaussian, StudentT)):
        raise TypeError(
            "distillation supports Categorical, Bernoulli, Gaussian and StudentT likelihoods, "
            f"got {type(likelihood).__name__}."
        )
    if not isinstance(student_module, eqx.Module):
        raise TypeError(
            f"`student_module` must be an equinox.Module, got {type(student_module).__name__}."
        )
    params, static = eqx.partition(student_module, eqx.is_inexact_array)
    if not jax.tree.leaves(params):
        raise ValueError("`student_module` has no inexact-array leaves: nothing to train.")
    x_pool = _as_points("x_pool", x_pool)
    check_int("num_steps", num_steps, minimum=1)
    if optimizer is None:
        optimizer = _DEFAULT_OPTIMIZER
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"`optimizer` must be an optax GradientTransformation, got {optimizer!r}.")
    num_pool = x_pool.shape[0]
    batch_size = check_int_between(
        "batch_size", batch_size, 1, num_pool, high_name="P", allow_none=True
    )
    temperature = check_positive("temperature", temperature)
    if not classification and temperature != 1.0:
        raise ValueError(
            f"`temperature` softens class probabilities; regression needs 1.0, got {temperature}."
        )
    key = check_key(key)

    first = jax.tree.map(lambda v: v[0, 0], ensemble.params)
    try:
        expected = jax.eval_shape(ensemble.model.apply, first["net"], x_pool[0]).shape
    except Exception as error:
        raise ValueError(
            f"`x_pool` has feature shape {x_pool.shape[1:]}, which the ensemble's network cannot "
            f"take: {type(error).__name__}: {error}"
        ) from error
    try:
        got = jax.eval_shape(student_module, x_pool[0]).shape  # type: ignore[arg-type]
    except Exception as error:
        raise ValueError(
            f"`student_module` cannot be applied to one input of `x_pool` (shape "
            f"{x_pool.shape[1:]}): {type(error).__name__}: {error}"
        ) from error
    if got != expected:
        raise ValueError(
            f"`student_module` output shape {got} does not match the ensemble network's output "
            f"shape {expected}."
        )

    target_shape = tuple(ensemble.target_shape or ())
    predictive = ensemble.predict(x_pool)
    noise_scale = None
    if classification:
        targets = predictive.probs
    else:
        targets = predictive.mean
        aleatoric = predictive.variance_parts()["aleatoric"]
        noise_scale = jnp.sqrt(jnp.mean(aleatoric, axis=0))
    if not bool(jnp.all(jnp.isfinite(targets))):
        raise ValueError(
            "the ensemble's predictive is not finite on `x_pool` (members with NaN weights, e.g. "
            "stopped SG-MCMC chains? distill `ensemble.healthy()`)."
        )

    if batch_size is None:
        indices = jnp.zeros((num_steps, 0), jnp.int32)
    else:
        indices = _pool_indices(key, num_pool, batch_size, num_steps)
    kind = "classification" if classification else "regression"
    params, losses = _fit(
        params, static, optimizer, x_pool, targets, indices, kind, likelihood, temperature
    )
    student = eqx.combine(params, static)
    return DistillResult(student, losses, likelihood, noise_scale, target_shape)


# -- helpers and compiled programs --------------------------------------------------------------


def _as_points(name: str, x) -> Array:
    try:
        x = jnp.asarray(x)
    except (TypeError, ValueError) as error:
        raise TypeError(f"`{name}` must be an array of inputs: {error}") from None
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"`{name}` must have a leading axis of at least one point, got {x.shape}.")
    if jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == jnp.bool_:
        x = x.astype(float)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"`{name}` must be real-valued, got dtype {x.dtype}.")
    if not bool(np.all(np.isfinite(np.asarray(x)))):
        raise ValueError(f"`{name}` holds NaN or inf values.")
    return x


@ft.partial(jax.jit, static_argnums=(1, 2, 3))
def _pool_indices(key, num_pool: int, batch_size: int, num_steps: int) -> Array:
    """Epoch-wise permutations of the pool, cut into `num_steps` batches (remainders dropped)."""
    per_epoch = num_pool // batch_size
    num_epochs = -(-num_steps // per_epoch)
    keys = jax.random.split(key, num_epochs)
    perms = jax.vmap(lambda k: jax.random.permutation(k, num_pool)[: per_epoch * batch_size])(keys)
    return perms.reshape(-1, batch_size)[:num_steps]


def _class_log_probs(likelihood, output, temperature=1.0):
    """log softmax of the logits / T, shape (K,); a Bernoulli logit z gives logits (0, z)."""
    if isinstance(likelihood, Bernoulli):
        z = output.reshape(()) / temperature
        return jnp.stack([jax.nn.log_sigmoid(-z), jax.nn.log_sigmoid(z)])
    return jax.nn.log_softmax(output / temperature)


def _loss(params, static, x, targets, kind, likelihood, temperature):
    student = eqx.combine(params, static)
    outputs = jax.vmap(student)(x)
    if kind == "classification":
        log_q = jax.vmap(lambda o: _class_log_probs(likelihood, o, temperature))(outputs)
        log_p = jnp.where(targets > 0, jnp.log(jnp.where(targets > 0, targets, 1.0)), -jnp.inf)
        log_p = jax.nn.log_softmax(log_p / temperature, axis=-1)
        p = jnp.exp(log_p)
        kl = jnp.sum(jnp.where(p > 0, p * (log_p - log_q), 0.0), axis=-1)
        return temperature**2 * jnp.mean(kl)
    outputs = outputs.reshape(targets.shape)
    return jnp.mean(jnp.sum((outputs - targets).reshape(targets.shape[0], -1) ** 2, axis=-1))


@eqx.filter_jit
def _fit(params, static, optimizer, x_pool, targets, indices, kind, likelihood, temperature):
    full = indices.shape[1] == 0

    def step(carry, batch):
        params, opt_state = carry
        x, t = (x_pool, targets) if full else (x_pool[batch], targets[batch])
        loss, grads = jax.value_and_grad(_loss)(params, static, x, t, kind, likelihood, temperature)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), indices)
    return params, losses


def _outputs(result: DistillResult, x) -> Array:
    student = cast(Callable[[Array], Array], result.student)
    return jax.vmap(student)(x)


@eqx.filter_jit
def _student_log_prob(result: DistillResult, x, y):
    outputs = _outputs(result, x)
    if result.is_classification:
        log_q = jax.vmap(lambda o: _class_log_probs(result.likelihood, o))(outputs)
        return jnp.take_along_axis(log_q, y.astype(jnp.int32)[:, None], axis=-1)[:, 0]
    assert result.noise_scale is not None
    mean = outputs.reshape(y.shape)
    z = (y - mean) / result.noise_scale
    logpdf = -0.5 * z**2 - jnp.log(result.noise_scale) - 0.5 * math.log(2 * math.pi)
    return jnp.sum(logpdf.reshape(y.shape[0], -1), axis=-1)


@eqx.filter_jit
def _student_predict(result: DistillResult, x):
    outputs = _outputs(result, x)
    if result.is_classification:
        return jax.vmap(lambda o: jnp.exp(_class_log_probs(result.likelihood, o)))(outputs)
    return outputs.reshape((x.shape[0], *result.target_shape))
