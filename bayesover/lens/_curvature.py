"""The curvature at a point: Hessian or Gauss-Newton products, and the prior precision.

Near a minimum theta0 the per-sample KL is K ~ (1/2) delta^T F delta, so the KL ball
{K <= eps} is wide along flat directions (small eigenvalues) and its prior mass W(eps) large.
`curvature_matvec` gives v -> H v for H the Hessian or the generalised Gauss-Newton matrix of
the negative log-likelihood (by forward-over-reverse differentiation, never forming H);
`prior_precision_vector` the per-coordinate prior precision it is compared with.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PyTree

from bayesover.lens._target import Target
from bayesover.posterior._posterior import Posterior


def curvature_matvec(
    target: Target, position: PyTree, curvature: str = "hessian"
) -> Callable[[Array], Array]:
    """v -> H v on flat vectors, H the Hessian (`"hessian"`) or the generalised Gauss-Newton
    matrix J^T (d^2 loss / d out^2) J (`"ggn"`, network posteriors only) of the negative
    (tempered) log-likelihood -(1/T) sum_i log P_theta(x_i) at `position`."""
    flat, unravel = ravel_pytree(position)
    if curvature == "hessian":

        def nll(x):
            return -target.loglikelihood(unravel(x))

        grad = jax.grad(nll)
        return lambda v: jax.jvp(grad, (flat,), (v,))[1]
    if curvature != "ggn":
        raise ValueError(f"`curvature` must be 'hessian' or 'ggn', got {curvature!r}.")
    posterior = target.posterior
    if not isinstance(posterior, Posterior):
        raise ValueError("`curvature='ggn'` needs a network bo.Posterior (it needs outputs).")
    model, data = posterior.model, posterior.data
    hyper = model.constrain(position)["likelihood"]

    def outputs(x):
        net = model.constrain(unravel(x))["net"]
        return jax.vmap(lambda xi: model.apply(net, xi))(data.inputs)

    def loss(out):
        lp = jax.vmap(lambda o, y: model.likelihood.log_prob(o, y, hyper))(out, data.targets)
        return -jnp.sum(lp) / target.temperature

    out, out_vjp = jax.vjp(outputs, flat)
    loss_grad = jax.grad(loss)

    def matvec(v):
        jv = jax.jvp(outputs, (flat,), (v,))[1]
        hjv = jax.jvp(loss_grad, (out,), (jv,))[1]
        return out_vjp(hjv)[0]

    return matvec


def prior_precision_vector(target: Target, position: PyTree) -> Array:
    """Per-coordinate prior precision at `position` (flat): 1/scale^2 for the weights of a
    network leaf with a Normal prior (scale at the position's hyperparameters), 1 elsewhere
    (other priors, hyperparameters, NumPyro targets)."""
    flat, unravel = ravel_pytree(position)
    posterior = target.posterior
    if not isinstance(posterior, Posterior):
        return jnp.ones_like(flat)
    model = posterior.model
    _, hyper = model._hyper_log_prob(position["prior"])
    leaves = jax.tree.leaves(position["net"])
    precisions = []
    for d, leaf in zip(model._leaf_distributions(hyper), leaves, strict=True):
        if isinstance(d, dist.Normal):
            scale = jnp.broadcast_to(jnp.asarray(d.scale, flat.dtype), leaf.shape)
            precisions.append(1.0 / scale**2)
        else:
            precisions.append(jnp.ones_like(leaf))
    net = jax.tree.unflatten(jax.tree.structure(position["net"]), precisions)
    ones = jax.tree.map(jnp.ones_like, position)
    return ravel_pytree({**ones, "net": net})[0]
