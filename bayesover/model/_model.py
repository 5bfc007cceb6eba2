"""A Bayesian network: an Equinox module, a prior over its parameters and a likelihood.

The parameters are the module's inexact-array leaves (`eqx.partition(module,
eqx.is_inexact_array)`); everything else (activations, integer buffers, shapes) is static.

Positions. Samplers move a *position*, a dict of three unconstrained pytrees:

- `"net"`: the network parameters, in the structure of `eqx.partition`'s first part,
  unconstrained (equal to the weights for every prior on R; see `bo.priors.Uniform` for a box);
- `"prior"`: prior hyperparameters, `{leaf path: {name: value}}` (empty for fixed priors);
- `"likelihood"`: learned likelihood parameters, `{name: value}` (e.g. a Gaussian's log scale).

`Model.constrain(position)` returns the same structure on the natural scales.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from bayesover.model import _constrain
from bayesover.model.likelihoods import AbstractLikelihood
from bayesover.model.priors import AbstractPrior, LeafInfo, PriorSpec, leaf_infos, resolve

Position = dict[str, Any]

_POSITION_KEYS = frozenset(("net", "prior", "likelihood"))


def check_position(position: Any, where: str) -> None:
    """Raise a TypeError unless `position` is a position dict `{"net", "prior", "likelihood"}`.

    Looks only at the Python container and its keys (never at array values), so it costs well
    under a microsecond and behaves the same under `jit`, `vmap` and `grad`, where the dict
    holds tracers. `where` names the method in the message (`"Posterior.logdensity"`).
    """
    if type(position) is dict and position.keys() == _POSITION_KEYS:  # the fast common case
        return
    if isinstance(position, Mapping) and position.keys() == _POSITION_KEYS:
        return
    if isinstance(position, Mapping):
        got = f"a mapping with keys {sorted(map(str, position))}"
    elif isinstance(position, eqx.Module):
        got = f"an equinox Module ({type(position).__name__}), i.e. bare network parameters"
    else:
        got = f"{type(position).__name__}"
    raise TypeError(
        f"`position` of {where} must be a position dict {{'net', 'prior', 'likelihood'}} of "
        f"unconstrained pytrees (what `initial_position()` returns), got {got}. To build one "
        "from a network or its parameters (`eqx.partition(net, eqx.is_inexact_array)[0]`), "
        "use `posterior.position(net)` (or `model.position(net)`)."
    )


class Model(eqx.Module):
    """`bo.Model(module, prior, likelihood)`.

    **Arguments:**

    - `module`: any `equinox.Module` mapping ONE input to the likelihood's parameter; its
      floating-point array leaves are the parameters, and their current values are the default
      initial position.
    - `prior`: a `bo.priors` prior for every parameter array, a function `(path, leaf) -> prior`,
      or a pytree of priors with the structure of the parameters.
    - `likelihood`: a `bo.likelihoods` likelihood.
    """

    params: PyTree
    static: PyTree = eqx.field(static=True)
    priors: list[AbstractPrior]
    infos: tuple[LeafInfo, ...] = eqx.field(static=True)
    likelihood: AbstractLikelihood

    def __init__(self, module: eqx.Module, prior: PriorSpec, likelihood: AbstractLikelihood):
        if not isinstance(module, eqx.Module):
            raise TypeError(f"`module` must be an equinox.Module, got {type(module).__name__}.")
        if not isinstance(likelihood, AbstractLikelihood):
            raise TypeError(
                "`likelihood` must be a bayesover likelihood (bo.likelihoods.Gaussian, "
                f"Categorical, ...), got {type(likelihood).__name__}."
            )
        params, static = eqx.partition(module, eqx.is_inexact_array)
        if not jax.tree.leaves(params):
            raise ValueError(
                "`module` has no inexact-array leaves: there are no parameters to infer "
                "(are its weights integers, or wrapped in eqx.nn.Lambda?)."
            )
        for info, leaf in zip(leaf_infos(params), jax.tree.leaves(params), strict=True):
            if not bool(jnp.all(jnp.isfinite(leaf))):
                raise ValueError(f"`module` parameter {info.path} holds NaN or inf values.")
        self.params = params
        self.static = static
        self.priors = resolve(prior, params)
        self.infos = tuple(leaf_infos(params))
        self.likelihood = likelihood

    # -- the network ---------------------------------------------------------------------------
    def module(self, net: PyTree) -> eqx.Module:
        """The Equinox module with (constrained) parameters `net`."""
        return eqx.combine(net, self.static)

    def apply(self, net: PyTree, x: Array) -> Array:
        """The network output for ONE input `x`, with constrained parameters `net`."""
        return self.module(net)(x)  # type: ignore[operator]

    @property
    def num_params(self) -> int:
        """Number of scalar network weights."""
        return sum(leaf.size for leaf in jax.tree.leaves(self.params))

    # -- positions -----------------------------------------------------------------------------
    def _leaf_distributions(self, hyper: dict[str, dict[str, Array]]):
        return [
            prior.distribution(info, hyper.get(info.path, {}))
            for prior, info in zip(self.priors, self.infos, strict=True)
        ]

    def log_prior(self, position: Position) -> Float[Array, ""]:
        """log p(position) in unconstrained coordinates (Jacobians included): the network
        prior, the prior hyperparameters' hyperprior, and the likelihood parameters' prior."""
        total, hyper = self._hyper_log_prob(position["prior"])
        leaves = jax.tree.leaves(position["net"])
        for distribution, info, u in zip(
            self._leaf_distributions(hyper), self.infos, leaves, strict=True
        ):
            total = total + _constrain.unconstrained_log_prob(distribution, u, info.shape)
        lik_lp, _ = _constrain.log_prob_dict(
            self.likelihood.hyper_distributions(), position["likelihood"]
        )
        return total + lik_lp

    def _hyper_log_prob(self, prior_position):
        total = jnp.zeros(())
        hyper = {}
        for prior, info in zip(self.priors, self.infos, strict=True):
            distributions = prior.hyper_distributions(info)
            if distributions:
                lp, hyper[info.path] = _constrain.log_prob_dict(
                    distributions, prior_position[info.path]
                )
                total = total + lp
        return total, hyper

    def constrain(self, position: Position) -> Position:
        """The position on natural scales: weights, prior scales, likelihood parameters."""
        check_position(position, "Model.constrain")
        _, hyper = self._hyper_log_prob(position["prior"])
        treedef = jax.tree.structure(position["net"])
        net = [
            _constrain.constrain(d, u)
            for d, u in zip(
                self._leaf_distributions(hyper), jax.tree.leaves(position["net"]), strict=True
            )
        ]
        _, lik = _constrain.log_prob_dict(
            self.likelihood.hyper_distributions(), position["likelihood"]
        )
        return {"net": jax.tree.unflatten(treedef, net), "prior": hyper, "likelihood": lik}

    def initial_position(self, key: PRNGKeyArray | None = None) -> Position:
        """A starting position: the module's own weights when `key` is None (hyperparameters at
        their prior medians' unconstrained value ~ 0), else a draw from the prior."""
        if key is None:
            return self._position_from_params(jax.tree.leaves(self.params), "module")
        return self.sample_prior(key)

    def position(self, net: eqx.Module) -> Position:
        """The unconstrained position of the network `net`, the inverse of `module`.

        `net` is an `equinox.Module` with the architecture of the model's network (for example
        the same network after training elsewhere), or its parameter part
        `eqx.partition(net, eqx.is_inexact_array)[0]`. Its floating-point arrays become the
        `"net"` part, mapped to unconstrained coordinates (the identity for priors on R; the
        inverse bijection for a box prior such as `bo.priors.Uniform`). The prior
        hyperparameters and the likelihood parameters take the defaults of
        `initial_position()` (unconstrained value 0). Only the weights are read: activations
        and other static fields are the model's own. The weights are checked against the
        prior's support when they are concrete (the check is skipped under `jit`).

        Raises a TypeError if `net` is not a Module of the model's structure (a position dict,
        a list of arrays, another architecture) and a ValueError naming the first parameter
        whose shape differs or that lies outside its prior's support.
        """
        if isinstance(net, Mapping) and net.keys() == _POSITION_KEYS:
            raise TypeError(
                "`net` is already a position dict {'net', 'prior', 'likelihood'}; "
                "`position` takes the network (an equinox Module) or its parameters."
            )
        if not isinstance(net, eqx.Module):
            raise TypeError(
                "`net` must be an equinox Module with the model's architecture, or its "
                "parameters `eqx.partition(net, eqx.is_inexact_array)[0]`; got "
                f"{type(net).__name__}."
            )
        found = leaf_infos(eqx.filter(net, eqx.is_inexact_array))
        if [i.path for i in found] != [i.path for i in self.infos]:
            raise TypeError(
                f"`net` ({type(net).__name__}) does not have the structure of the model's "
                f"network: its parameter arrays are {[i.path for i in found]}, the model's "
                f"are {[i.path for i in self.infos]}."
            )
        for got, info in zip(found, self.infos, strict=True):
            if got.shape != info.shape:
                raise ValueError(
                    f"`net` parameter {info.path} has shape {got.shape}, but the model's "
                    f"network expects {info.shape}."
                )
        leaves = [
            jnp.asarray(leaf, dtype=reference.dtype)
            for leaf, reference in zip(
                jax.tree.leaves(eqx.filter(net, eqx.is_inexact_array)),
                jax.tree.leaves(self.params),
                strict=True,
            )
        ]
        return self._position_from_params(leaves, "net")

    def _position_from_params(self, leaves: list[Array], argument: str) -> Position:
        """Unconstrained position of constrained network `leaves`, other parts at defaults."""
        hyper = {
            info.path: {n: jnp.zeros(()) for n in prior.hyper_distributions(info)}
            for prior, info in zip(self.priors, self.infos, strict=True)
            if prior.hyper_distributions(info)
        }
        _, constrained_hyper = self._hyper_log_prob(hyper)
        net = [
            _checked_unconstrain(d, leaf, info, argument)
            for d, leaf, info in zip(
                self._leaf_distributions(constrained_hyper), leaves, self.infos, strict=True
            )
        ]
        lik = {n: jnp.zeros(()) for n in self.likelihood.hyper_distributions()}
        return {
            "net": jax.tree.unflatten(jax.tree.structure(self.params), net),
            "prior": hyper,
            "likelihood": lik,
        }

    def sample_prior(self, key: PRNGKeyArray) -> Position:
        """One draw from the prior, returned as an unconstrained position."""
        key_hyper, key_net, key_lik = jax.random.split(key, 3)
        hyper_u: dict[str, dict[str, Array]] = {}
        hyper_c: dict[str, dict[str, Array]] = {}
        hyper_keys = jax.random.split(key_hyper, len(self.infos))
        for prior, info, k in zip(self.priors, self.infos, hyper_keys, strict=True):
            distributions = prior.hyper_distributions(info)
            if distributions:
                hyper_u[info.path], hyper_c[info.path] = _sample_dict(k, distributions)
        net_keys = jax.random.split(key_net, len(self.infos))
        net = []
        for d, info, k in zip(self._leaf_distributions(hyper_c), self.infos, net_keys, strict=True):
            x = d.expand(info.shape).sample(k) if d.batch_shape != info.shape else d.sample(k)
            net.append(_constrain.unconstrain(d, x))
        lik, _ = _sample_dict(key_lik, self.likelihood.hyper_distributions())
        return {
            "net": jax.tree.unflatten(jax.tree.structure(self.params), net),
            "prior": hyper_u,
            "likelihood": lik,
        }


def _sample_dict(key, distributions):
    unconstrained, constrained = {}, {}
    for k, (name, d) in zip(
        jax.random.split(key, max(len(distributions), 1)), distributions.items(), strict=False
    ):
        constrained[name] = d.sample(k)
        unconstrained[name] = _constrain.unconstrain(d, constrained[name])
    return unconstrained, constrained


def _checked_unconstrain(distribution, leaf, info: LeafInfo, argument: str = "module"):
    u = _constrain.unconstrain(distribution, leaf)
    if isinstance(u, jax.core.Tracer):  # traced: the values cannot be checked here
        return u
    if not bool(jnp.all(jnp.isfinite(u))):
        hint = (
            "initialise the module inside it or pass a key"
            if argument == "module"
            else "move the weights inside it"
        )
        raise ValueError(
            f"`{argument}` parameter {info.path} lies outside the support of its prior "
            f"({distribution.support}); {hint}."
        )
    return u
