"""`learning_coefficient`: the local learning coefficient lambda-hat at a point, on `bo.SGLD`.

Lau, Furman, Wang, Murfet and Wei (singular learning theory): at a local minimum w* of
L_n(w) = -(1/n) sum_i log P_w(x_i),

    lambda-hat = n beta* (E_w^beta*[L_n(w)] - L_n(w*)),   beta* = 1 / log n,

the expectation under the localised tempered posterior
p(w) ~ exp(-n beta* L_n(w) - (gamma/2) ||w - w*||^2), sampled by SGLD. The chain is bo.SGLD's:
its step size and schedule (`SGLD.step_size_at`) and its move (`_moves.sgld_step`,
x <- x + eps g + sqrt(2 eps) xi, the move `bo.SGLD` makes), in bo.SGLD's `(state, info)`
protocol; only the target is the lens's own (`_localised_target`): no prior, a Gaussian
localisation at w*, temperature 1/beta*, on `Target` so that NumPyro targets work too
(`SGLD.build` takes network posteriors only).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PRNGKeyArray, PyTree
from numpyro.infer.util import unconstrain_fn

from bayesover._checks import ArgumentTypeError, check_int, check_positive, check_real
from bayesover.ensemble._ensemble import Ensemble
from bayesover.inference.samplers._moves import sgld_step
from bayesover.inference.samplers._sgmcmc import SGLD
from bayesover.lens._target import Target, as_target
from bayesover.model._constrain import unconstrain
from bayesover.model._model import Model
from bayesover.posterior._posterior import AbstractPosterior, NumPyroPosterior, Posterior


@dataclasses.dataclass(frozen=True)
class LearningCoefficient:
    """The local learning coefficient lambda-hat (host).

    **Fields:** `value` (mean over chains), `stderr` (std over chains / sqrt(num_chains)),
    `chain_values` `(num_chains,)`, `trace` `(num_steps,)`: n beta* (L_n(w_t) - L_n(w*)) at every
    step, averaged over chains (the minibatch estimate of L_n when `batch_size` is set),
    `beta` (beta* = 1 / log n), `num_data`, `loss_at_center` L_n(w*), `diverged` (a chain turned
    non-finite: reduce `step_size`).
    """

    value: float
    stderr: float
    chain_values: np.ndarray
    trace: np.ndarray
    beta: float
    num_data: int
    loss_at_center: float
    diverged: bool

    def __str__(self) -> str:
        text = f"lambda-hat = {self.value:.3f} ± {self.stderr:.3f} (n = {self.num_data})"
        return text + (" [DIVERGED: reduce step_size]" if self.diverged else "")


class LocalSGLDState(NamedTuple):
    """**Fields:** `position` (raveled), `step` (steps taken)."""

    position: Array
    step: Array


class LocalSGLDInfo(NamedTuple):
    """Per step: `step_size`, `lp` (the localised log density at the step's start) and `loss`
    (L_n there, on the step's minibatch)."""

    step_size: Array
    lp: Array
    loss: Array


def _localised_target(target, center, gamma, beta, batch_size):
    """`(log_density(x, indices) -> (log p(x), L(x)), loss_at_center)` on raveled positions."""
    flat0, unravel = ravel_pytree(center)
    n = target.num_data
    posterior = target.posterior

    def mean_loss(x, indices):
        if batch_size is None:
            return -jnp.mean(target.pointwise_loglikelihood(unravel(x)))
        assert isinstance(posterior, Posterior)
        batch = posterior.data.take(indices)
        values = posterior.pointwise_loglikelihood(unravel(x), batch)
        return -jnp.mean(values.reshape(values.shape[0], -1).sum(axis=1))

    def log_density(x, indices):
        loss = mean_loss(x, indices)
        return -n * beta * loss - 0.5 * gamma * jnp.sum((x - flat0) ** 2), loss

    return log_density, -jnp.mean(target.pointwise_loglikelihood(center))


def _localised_sgld(sampler: SGLD, log_density, num_data: int, batch_size: int | None):
    """bo.SGLD's step on the localised target: `(init, step)`, step(key, state) ->
    (state, info). The minibatch (when `batch_size` is set) is drawn afresh at every step
    without replacement; full batch otherwise."""

    def init(position):
        return LocalSGLDState(position, jnp.zeros((), jnp.int32))

    def step(key, state):
        k_batch, k_noise = jax.random.split(key)
        size = 1 if batch_size is None else batch_size
        indices = jax.random.choice(k_batch, num_data, (size,), replace=False)
        (lp, loss), grad = jax.value_and_grad(log_density, has_aux=True)(state.position, indices)
        step_size = sampler.step_size_at(state.step)
        position = sgld_step(k_noise, state.position, grad, step_size)
        return LocalSGLDState(position, state.step + 1), LocalSGLDInfo(step_size, lp, loss)

    return init, step


@eqx.filter_jit
def _llc_chains(target, center, keys, num_steps, num_burnin, sampler, gamma, beta, batch_size):
    n = target.num_data
    log_density, loss_center = _localised_target(target, center, gamma, beta, batch_size)
    init, step = _localised_sgld(sampler, log_density, n, batch_size)

    def chain(key):
        state = init(ravel_pytree(center)[0])
        _, info = jax.lax.scan(lambda s, k: step(k, s), state, jax.random.split(key, num_steps))
        return info.loss

    losses = jax.vmap(chain)(keys)
    draws = n * beta * (losses - loss_center)
    return draws, loss_center, jnp.mean(draws[:, num_burnin:], axis=1)


def learning_coefficient(
    posterior: AbstractPosterior | Target,
    position: PyTree | Ensemble,
    *,
    key: PRNGKeyArray,
    member: int | None = None,
    num_chains: int = 4,
    num_steps: int = 2000,
    num_burnin: int | None = None,
    step_size: float = 5e-5,
    localization: float = 1.0,
    batch_size: int | None = None,
) -> LearningCoefficient:
    """The local learning coefficient at a local minimum w* = `position` (Lau et al.):

        lambda-hat = n beta* (E_w^beta*[L_n(w)] - L_n(w*)),   beta* = 1 / log n,

    L_n(w) = -(1/n) sum_i log P_w(x_i) (untempered), the expectation under the localised tempered
    posterior  p(w) ~ exp(-n beta* L_n(w) - (gamma/2) ||w - w*||^2)  (no prior: the localisation
    replaces it), sampled in the unconstrained coordinates by `bo.SGLD`'s step,

        w <- w + eps grad log p(w) + sqrt(2 eps) xi,     eps = `step_size`,

    with L_n on a minibatch when `batch_size` is set (network posteriors), from w* for
    `num_steps` steps, the first `num_burnin` (default a quarter) dropped. Lau et al. and
    devinterp write the step as w <- w + (eps'/2) grad log p(w) + sqrt(eps') xi: their
    eps' is 2 `step_size` (the default 5e-5 is their 1e-4).

    For a regular model lambda = d/2; for a singular one it is smaller. It is the exponent of the
    weight of the hypothesis at small eps: W(eps) ~ c eps^lambda (-log eps)^(m-1) (Watanabe), so
    lambda is the slope d log W / d log eps as eps -> 0 (the multiplicity m adds a log factor).

    **Arguments:**

    - `posterior`: a network `bo.Posterior`, a NumPyro target, or a `bo.lens.Target`.
    - `position`: w*, an unconstrained position; or a `bo.Ensemble` of this posterior with
      `member` the index of the member to centre on (members counted chain-major, as in
      `Ensemble.flat_params`; for `bo.deep_ensemble`, the k-th MAP member; may be left out
      for a one-member ensemble).
    - `key`: a JAX PRNG key.
    - `num_chains`, `num_steps`, `num_burnin`; `step_size` eps in bo.SGLD's convention (keep
      2 eps n beta* curvature << 1); `localization` gamma; `batch_size` (None: full batch).
    """
    target = as_target(posterior)
    n = target.num_data
    if n < 2:
        raise ValueError("the learning coefficient needs at least 2 data points (beta* = 1/log n).")
    num_chains = check_int("num_chains", num_chains, 1)
    num_steps = check_int("num_steps", num_steps, 1)
    num_burnin = num_steps // 4 if num_burnin is None else num_burnin
    num_burnin = check_int("num_burnin", num_burnin, 0)
    if num_burnin >= num_steps:
        raise ValueError(f"`num_burnin` must be an int in [0, num_steps), got {num_burnin!r}.")
    step_size = check_positive("step_size", step_size)
    localization = check_real("localization", localization)
    if not localization >= 0:
        raise ValueError(f"`localization` must be >= 0, got {localization!r}.")
    if batch_size is not None:
        if not isinstance(target.posterior, Posterior):
            raise ValueError("`batch_size` needs a network bo.Posterior (NumPyro: full batch).")
        batch_size = check_int("batch_size", batch_size, 1)
        if batch_size > n:
            raise ValueError(f"`batch_size` must be an int in [1, {n}], got {batch_size!r}.")
    if isinstance(position, Ensemble):
        position = member_position(target.posterior, position, member)
    elif member is not None:
        raise ValueError("`member` selects a member of a bo.Ensemble; `position` is not one.")
    sampler = SGLD(step_size=step_size, batch_size=n if batch_size is None else batch_size)
    beta = 1.0 / math.log(n)
    keys = jax.random.split(key, num_chains)
    draws, loss_center, chain_values = _llc_chains(
        target, position, keys, num_steps, num_burnin, sampler, localization, beta, batch_size
    )
    draws, chain_values = np.asarray(draws, np.float64), np.asarray(chain_values, np.float64)
    diverged = not bool(np.all(np.isfinite(draws)))
    stderr = (
        float(np.std(chain_values, ddof=1) / math.sqrt(num_chains)) if num_chains > 1 else math.nan
    )
    return LearningCoefficient(
        value=float(np.mean(chain_values)),
        stderr=stderr,
        chain_values=chain_values,
        trace=np.mean(draws, axis=0),
        beta=beta,
        num_data=n,
        loss_at_center=float(loss_center),
        diverged=diverged,
    )


def member_position(posterior: AbstractPosterior, ensemble: Ensemble, member: Any) -> PyTree:
    """The unconstrained position of `ensemble`'s member `member` (an index into the members,
    chain-major; None for a one-member ensemble) for `posterior`: the inverse of the
    constraining map that made its draws (`Model.constrain`, or NumPyro's `constrain_fn` on the
    latent sites)."""
    if member is None and ensemble.num_members == 1:
        member = 0
    if isinstance(member, bool) or not isinstance(member, int | np.integer):
        raise ArgumentTypeError(
            "`member` must be an int (the index of the ensemble member to centre on), got "
            f"{type(member).__name__} {member!r}."
        )
    if not -ensemble.num_members <= member < ensemble.num_members:
        raise ValueError(
            f"`member` must index one of the ensemble's {ensemble.num_members} members, "
            f"got {member}."
        )
    params = jax.tree.map(lambda leaf: leaf[member], ensemble.flat_params())
    if isinstance(posterior, Posterior):
        if ensemble.model is None:
            raise TypeError("`position` holds NumPyro sites, but `posterior` is a network.")
        return _unconstrain_network(posterior.model, params)
    assert isinstance(posterior, NumPyroPosterior)
    latent = posterior.initial_position()
    missing = sorted(set(latent) - set(params))
    if ensemble.model is not None or missing:
        raise TypeError(
            "`position` is not an ensemble of this NumPyro target's sites"
            + (f" (missing {missing})." if missing else ".")
        )
    values = {name: params[name] for name in latent}
    return unconstrain_fn(posterior.model_fn, posterior.args, posterior.kwargs, values)


def _unconstrain_network(model: Model, params: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `Model.constrain` (weights, prior hyperparameters, likelihood's)."""
    hyper = params["prior"]
    hyper_u = {
        info.path: {
            name: unconstrain(d, hyper[info.path][name])
            for name, d in prior.hyper_distributions(info).items()
        }
        for prior, info in zip(model.priors, model.infos, strict=True)
        if prior.hyper_distributions(info)
    }
    leaves = jax.tree.leaves(params["net"])
    distributions = model._leaf_distributions(hyper)
    net = [unconstrain(d, leaf) for d, leaf in zip(distributions, leaves, strict=True)]
    likelihood = {
        name: unconstrain(d, params["likelihood"][name])
        for name, d in model.likelihood.hyper_distributions().items()
    }
    return {
        "net": jax.tree.unflatten(jax.tree.structure(params["net"]), net),
        "prior": hyper_u,
        "likelihood": likelihood,
    }
