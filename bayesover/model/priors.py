"""Priors over the parameter arrays of a network.

A prior here is a distribution for ONE parameter array (a leaf of the module), built on
`numpyro.distributions`. A model may use one prior for every leaf, a different prior per leaf
(a function of the leaf's path, or a pytree of priors shaped like the parameters), and a prior
may carry hyperparameters of its own (the hierarchical prior's per-layer scale), which become
part of the sampled position.

Constrained supports are handled by transformation, not reflection: a leaf whose prior has a
bounded support (the `Uniform` box) is sampled as an unconstrained value u and used as
`theta = t(u)` with NumPyro's `biject_to` (for a box, an affine sigmoid), the log density gaining
log|dt/du|. Samplers therefore never see a boundary, and every draw lies strictly inside the box.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import numpyro.distributions as dist

from bayesover._checks import check_positive
from bayesover._trees import leaf_paths


class LeafInfo(NamedTuple):
    """What a prior may know of the parameter array it is placed on.

    **Fields:**

    - `path`: the leaf's path in the module, as `bayesover._trees.leaf_path` writes it
      (`jax.tree_util.keystr` without its leading dot, e.g. `layers[0].weight`).
    - `shape`: the array's shape.
    - `fan_in`: inputs per output unit: `prod(shape[1:])` for a weight (Equinox stores
      `(out, in, ...)`), the fan-in of the sibling `weight` for a `bias`, else 1.
    """

    path: str
    shape: tuple[int, ...]
    fan_in: int


class AbstractPrior(eqx.Module):
    """A prior over one parameter array.

    Subclasses give `distribution(info, hyper)`, a NumPyro distribution whose batch shape
    broadcasts to `info.shape`, and optionally `hyper_distributions(info)`, the priors of scalar
    hyperparameters that the leaf's distribution depends on (sampled jointly with the weights).
    """

    def hyper_distributions(self, info: LeafInfo) -> dict[str, dist.Distribution]:
        return {}

    @abc.abstractmethod
    def distribution(self, info: LeafInfo, hyper: dict[str, Any]) -> dist.Distribution:
        raise NotImplementedError


class Normal(AbstractPrior):
    """Isotropic Gaussian: theta_i ~ N(0, scale^2)."""

    scale: float = 1.0

    def __check_init__(self):
        check_positive("scale", self.scale)

    def distribution(self, info, hyper):
        return dist.Normal(0.0, self.scale)


class FanInNormal(AbstractPrior):
    """Fan-in scaled Gaussian: theta_i ~ N(0, gain^2 / fan_in), per layer (He/LeCun style)."""

    gain: float = 1.0

    def __check_init__(self):
        check_positive("gain", self.gain)

    def distribution(self, info, hyper):
        return dist.Normal(0.0, self.gain / math.sqrt(info.fan_in))


class Laplace(AbstractPrior):
    """Laplace: p(theta_i) = exp(-|theta_i| / scale) / (2 scale)."""

    scale: float = 1.0

    def __check_init__(self):
        check_positive("scale", self.scale)

    def distribution(self, info, hyper):
        return dist.Laplace(0.0, self.scale)


class Uniform(AbstractPrior):
    """The (almost) uniform prior: theta_i ~ U(-half_width, half_width), i.e. flat on a wide box.

    Sampled through theta = half_width * (2 sigmoid(u) - 1), u in R (see the module docstring):
    the box is never left, and its edge costs nothing to samplers that know nothing of it.
    """

    half_width: float = 10.0

    def __check_init__(self):
        check_positive("half_width", self.half_width)

    def distribution(self, info, hyper):
        return dist.Uniform(-self.half_width, self.half_width)


class Hierarchical(AbstractPrior):
    """Per-layer scale under a hyperprior: s ~ hyperprior, theta_i | s ~ N(0, s^2 / fan_in^a).

    One scale `s` per parameter array (per layer weight, per layer bias), sampled jointly with
    the weights as the position's `prior` entry (unconstrained as log s). With
    `fan_in_scaled=True` the conditional scale is s / sqrt(fan_in) (a = 1), else s (a = 0).
    The centred form is used; funnels in deep nets are the user's to reparameterise.
    """

    hyperprior: dist.Distribution = eqx.field(default_factory=lambda: dist.HalfNormal(1.0))
    fan_in_scaled: bool = eqx.field(default=False, static=True)

    def __check_init__(self):
        if not isinstance(self.hyperprior, dist.Distribution):
            raise TypeError(
                f"`hyperprior` must be a numpyro distribution, got {type(self.hyperprior)}."
            )
        if self.hyperprior.support is not dist.constraints.positive:
            raise ValueError(
                "`hyperprior` must have positive support (a scale), got support "
                f"{self.hyperprior.support}."
            )

    def hyper_distributions(self, info):
        return {"scale": self.hyperprior}

    def distribution(self, info, hyper):
        scale = hyper["scale"]
        if self.fan_in_scaled:
            scale = scale / math.sqrt(info.fan_in)
        return dist.Normal(0.0, scale)


PriorSpec = AbstractPrior | Callable[[str, Any], AbstractPrior] | Any
"""A prior for a whole network: one prior, a function `(path, leaf) -> prior`, or a pytree of
priors with the structure of the parameters."""


def leaf_infos(params) -> list[LeafInfo]:
    """`LeafInfo` for every leaf of a parameter pytree, in `jax.tree.leaves` order."""
    named = leaf_paths(params)
    shapes = {name: tuple(leaf.shape) for name, leaf in named}
    infos = []
    for name, leaf in named:
        shape = tuple(leaf.shape)
        if len(shape) >= 2:
            fan_in = math.prod(shape[1:])
        else:
            sibling = (
                shapes.get(name.removesuffix("bias") + "weight") if name.endswith("bias") else None
            )
            fan_in = math.prod(sibling[1:]) if sibling is not None and len(sibling) >= 2 else 1
        infos.append(LeafInfo(name, shape, max(int(fan_in), 1)))
    return infos


def resolve(prior: PriorSpec, params) -> list[AbstractPrior]:
    """One `AbstractPrior` per parameter leaf, from any accepted form of `prior`."""
    infos = leaf_infos(params)
    if isinstance(prior, AbstractPrior):
        return [prior] * len(infos)
    if callable(prior) and not isinstance(prior, eqx.Module):
        leaves = jax.tree.leaves(params)
        priors = [prior(info.path, leaf) for info, leaf in zip(infos, leaves, strict=True)]
    else:
        is_prior = lambda x: isinstance(x, AbstractPrior)  # noqa: E731
        priors = jax.tree.leaves(prior, is_leaf=is_prior)
        if len(priors) != len(infos):
            raise ValueError(
                f"`prior` as a pytree must hold one prior per parameter array: got {len(priors)} "
                f"priors for {len(infos)} arrays ({[i.path for i in infos]})."
            )
    for info, p in zip(infos, priors, strict=True):
        if not isinstance(p, AbstractPrior):
            raise TypeError(
                f"`prior` gave {p!r} for parameter {info.path}; expected a bayesover prior "
                "(bo.priors.Normal, FanInNormal, Laplace, Uniform, Hierarchical)."
            )
    return priors
