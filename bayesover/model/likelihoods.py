"""Observation models p(y | f(x)), built on `numpyro.distributions`.

The network maps ONE input to the likelihood's parameter (a mean, logits, a log-rate). A
likelihood turns that output into a NumPyro distribution of ONE target and sums its log
density over the target's dimensions. Learned likelihood parameters (a Gaussian's noise scale)
are sampled with the network: they have their own prior and live, unconstrained, in the
position's `likelihood` entry.

Shapes: the output must have the target's shape, or be `(1,)` for a scalar target (the common
`eqx.nn.MLP(out_size=1)` head); `Categorical` wants `(num_classes,)` logits per integer label.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jaxtyping import Array, Float

from bayesover._checks import check_positive


class AbstractLikelihood(eqx.Module):
    """p(y | output): subclasses give `distribution`, and say which targets they accept."""

    def hyper_distributions(self) -> dict[str, dist.Distribution]:
        """Priors of learned likelihood parameters (empty when nothing is learned)."""
        return {}

    @abc.abstractmethod
    def distribution(self, output: Array, hyper: dict[str, Any]) -> dist.Distribution:
        """The distribution of one target, given the network output for its input."""
        raise NotImplementedError

    def log_prob(self, output: Array, target: Array, hyper: dict[str, Any]) -> Float[Array, ""]:
        """log p(target | output), summed over the target's dimensions."""
        if output.shape != target.shape:
            output = output.reshape(target.shape)
        return jnp.sum(self.distribution(output, hyper).log_prob(target))

    def check(self, output_shape: tuple[int, ...], targets: Array) -> None:
        """Raise a clear error unless `targets` (all of them, leading axis N) fit this likelihood
        and a network output of shape `output_shape` (per datum)."""
        target_shape = tuple(targets.shape[1:])
        if not (output_shape == target_shape or (output_shape == (1,) and target_shape == ())):
            raise ValueError(
                f"module output shape {output_shape} does not fit targets of shape {target_shape} "
                f"per datum for {type(self).__name__}: expected output shape {target_shape}"
                + (" or (1,)" if target_shape == () else "")
                + "."
            )
        self._check_values(np.asarray(targets))

    def _check_values(self, targets: np.ndarray) -> None:
        pass


def _check_float_targets(name: str, targets: np.ndarray) -> None:
    if not np.issubdtype(targets.dtype, np.floating):
        raise TypeError(
            f"`targets` for {name} must be real-valued (floating), got dtype {targets.dtype}; "
            "cast class labels with a classification likelihood instead."
        )


class _LearnedScale(AbstractLikelihood):
    """Shared handling of a scale that is either fixed (a number) or learned (`scale=None`)."""

    scale: float | None
    scale_prior: dist.Distribution | None

    def __check_init__(self):
        if self.scale is not None:
            check_positive("scale", self.scale)
        elif not isinstance(self.scale_prior, dist.Distribution):
            raise TypeError("`scale_prior` must be a numpyro distribution when `scale=None`.")
        elif self.scale_prior.support is not dist.constraints.positive:
            raise ValueError("`scale_prior` must have positive support (e.g. HalfNormal).")

    def hyper_distributions(self):
        return {"scale": self.scale_prior} if self.scale is None else {}

    def _scale(self, hyper):
        return hyper["scale"] if self.scale is None else self.scale


class Gaussian(_LearnedScale):
    """y ~ N(output, scale^2). `scale=None` learns the scale (as log scale) under `scale_prior`."""

    def __init__(self, scale: float | None = 1.0, *, scale_prior: dist.Distribution | None = None):
        self.scale = scale
        self.scale_prior = (
            dist.HalfNormal(1.0) if scale is None and scale_prior is None else scale_prior
        )

    def distribution(self, output, hyper):
        return dist.Normal(output, self._scale(hyper))

    def _check_values(self, targets):
        _check_float_targets("Gaussian", targets)


class StudentT(_LearnedScale):
    """y ~ StudentT(df, loc=output, scale): heavy-tailed regression noise."""

    df: float

    def __init__(
        self,
        df: float = 4.0,
        scale: float | None = 1.0,
        *,
        scale_prior: dist.Distribution | None = None,
    ):
        check_positive("df", df)
        self.df = df
        self.scale = scale
        self.scale_prior = (
            dist.HalfNormal(1.0) if scale is None and scale_prior is None else scale_prior
        )

    def distribution(self, output, hyper):
        return dist.StudentT(self.df, output, self._scale(hyper))

    def _check_values(self, targets):
        _check_float_targets("StudentT", targets)


class Bernoulli(AbstractLikelihood):
    """y in {0, 1} ~ Bernoulli(sigmoid(output)): the output is a logit."""

    def distribution(self, output, hyper):
        return dist.BernoulliLogits(output)

    def _check_values(self, targets):
        if not np.all((targets == 0) | (targets == 1)):
            raise ValueError("`targets` for Bernoulli must be 0 or 1.")


class Categorical(AbstractLikelihood):
    """y in {0, ..., K-1} ~ Categorical(softmax(output)): the output is K logits."""

    def log_prob(self, output, target, hyper):
        return self.distribution(output, hyper).log_prob(target)

    def distribution(self, output, hyper):
        return dist.CategoricalLogits(output)

    def check(self, output_shape, targets):
        if len(output_shape) != 1:
            raise ValueError(
                f"module output shape {output_shape} does not fit Categorical: expected "
                "(num_classes,) logits per datum."
            )
        if targets.ndim != 1:
            raise ValueError(
                f"`targets` for Categorical must be integer labels of shape (N,), got shape "
                f"{tuple(targets.shape)}."
            )
        labels = np.asarray(targets)
        if not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(
                f"`targets` for Categorical must be integer labels, got {labels.dtype}."
            )
        num_classes = output_shape[0]
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(
                f"`targets` labels must lie in [0, {num_classes - 1}] for {num_classes} logits, "
                f"got range [{labels.min()}, {labels.max()}]."
            )


class Poisson(AbstractLikelihood):
    """y in {0, 1, 2, ...} ~ Poisson(exp(output)): the output is a log-rate."""

    def distribution(self, output, hyper):
        return dist.Poisson(jnp.exp(output))

    def _check_values(self, targets):
        if np.any(targets < 0) or np.any(targets != np.round(targets)):
            raise ValueError("`targets` for Poisson must be non-negative integer counts.")
