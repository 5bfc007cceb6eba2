"""`regret`, `expected_regret`: how far the Bayesian mixture codes behind a reference model.

Regret against the truth theta0 on one data set: R_n = log P_theta0(x^n) - log M(x^n) (nats);
its expectation over data sets from the truth is E R_n = D(P_theta0^n || M). By the chain rule
the prequential estimator gives the whole curve
R_t = sum_{s <= t} [log P_theta0(x_s) - log M(x_s | x^{s-1})], t = 1..n, for the price of R_n.
(Supervised: every term is conditional on its input x_s.) Without a truth (real data) the
reference is the best fitted model of the class, theta_hat = the MAP fit (optax); its regret
log P_theta_hat(x^n) - log M(x^n) is optimistic (theta_hat has seen the data) and can be small
or negative. The code length -log M(x^n) is reported alongside, in nats and bits.
At temperature T both sides are tempered: log P^(1/T), as in M.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray, PyTree

from bayesover._checks import ArgumentTypeError
from bayesover.ensemble._ensemble import Ensemble
from bayesover.inference._optimize import minimise
from bayesover.lens._prequential import prequential_log_evidence
from bayesover.lens._result import EvidenceResult
from bayesover.lens._target import Target, as_target
from bayesover.posterior._posterior import AbstractPosterior


@dataclasses.dataclass(frozen=True, repr=False)
class RegretResult:
    """A regret curve (host values).

    **Fields:**

    - `n`: `(m,)` the sample sizes evaluated (1..n for the prequential method, else `[n]`).
    - `regret`: `(m,)` R_t in nats (the mean over runs, or over data sets for `expected_regret`).
    - `regret_stderr`: `(m,)` its standard error (across runs, or across data sets).
    - `log_evidence`: the `EvidenceResult` (None for `expected_regret`: see `datasets`).
    - `truth_loglik`: `(m,)` log P_ref(x^t) of the reference (truth or best fit).
    - `code_length_nats`: `(m,)` -log M(x^t); `code_length_bits` is the same in bits.
    - `reference`: "truth" or "best_fit".
    - `collapsed`: an evidence estimate collapsed; the curve is then not trustworthy.
    - `datasets`: the per-data-set results of `expected_regret` (empty otherwise).
    """

    n: np.ndarray
    regret: np.ndarray
    regret_stderr: np.ndarray
    log_evidence: EvidenceResult | None
    truth_loglik: np.ndarray
    code_length_nats: np.ndarray
    reference: str
    collapsed: bool = False
    datasets: tuple[RegretResult, ...] = ()

    @property
    def code_length_bits(self) -> np.ndarray:
        return self.code_length_nats / math.log(2.0)

    @property
    def reliable(self) -> bool:
        """Not collapsed, and the final regret is finite."""
        return (not self.collapsed) and bool(np.isfinite(self.regret[-1]))

    def to_dataset(self, bound: Any = None) -> Any:
        """An `xarray.Dataset` with `regret`, `regret_stderr`, `truth_loglik` and
        `code_length_nats` along the dimension `n` (the `lens` DataTree group that the HTML
        report plots); `bound`, an `(m,)` array of upper bounds on the regret (e.g.
        (d/2) log n + c), is added as `bound` when given."""
        import xarray as xr

        variables = {
            "regret": ("n", self.regret),
            "regret_stderr": ("n", self.regret_stderr),
            "truth_loglik": ("n", self.truth_loglik),
            "code_length_nats": ("n", self.code_length_nats),
        }
        if bound is not None:
            bound = np.asarray(bound, np.float64)
            if bound.shape != self.n.shape:
                raise ValueError(f"`bound` must have shape {self.n.shape}, got {bound.shape}.")
            variables["bound"] = ("n", bound)
        return xr.Dataset(
            variables,
            coords={"n": self.n},
            attrs={"reference": self.reference, "collapsed": int(self.collapsed)},
        )

    def __str__(self) -> str:
        against = "the truth" if self.reference == "truth" else "the best fit (MAP)"
        kind = f"expected over {len(self.datasets)} data sets" if self.datasets else "regret"
        text = (
            f"{kind} vs {against} at n={int(self.n[-1])}: {self.regret[-1]:.3f} ± "
            f"{self.regret_stderr[-1]:.3f} nats; code length -log M = "
            f"{self.code_length_nats[-1]:.2f} nats = {self.code_length_bits[-1]:.2f} bits"
        )
        if self.collapsed:
            text += " [UNRELIABLE: an evidence estimate collapsed]"
        return text

    def __repr__(self) -> str:
        return f"RegretResult({self})"


def regret(
    posterior: AbstractPosterior | Target,
    *,
    key: PRNGKeyArray,
    truth: Any = None,
    method: str = "prequential",
    evidence: EvidenceResult | None = None,
    fit: str = "map",
    fit_steps: int = 2000,
    fit_learning_rate: float = 1e-2,
    **options: Any,
) -> RegretResult:
    """Regret of the Bayesian mixture M against a reference, on the posterior's data set.

    **Arguments:**

    - `posterior`: a network `bo.Posterior`, a NumPyro target or a `bo.lens.Target` (for a
      `bo.Ensemble`'s own mixture, see `bo.lens.ensemble_regret`).
    - `key`: a JAX PRNG key (evidence runs and the fit).
    - `truth`: theta0 as an unconstrained position of the target (a pytree like
      `Target.sample_prior`'s), or a `(n,)` array of per-datum log P_theta0(x_t | inputs) in data
      order (for a truth outside the class, e.g. a teacher of another width). `None`: the
      reference is the best fit theta_hat of the class, the MAP by `bo.map_estimate` with
      `optax.adam(fit_learning_rate)` for `fit_steps` steps: an optimistic reference.
    - `method`: the evidence estimator; "prequential" gives the whole curve R_t, t = 1..n,
      other methods (see `bo.lens.log_evidence`) only R_n.
    - `evidence`: an `EvidenceResult` already computed for this posterior (then no new run).
    - `**options`: passed to the evidence estimator (`num_particles`, `num_runs`, `order`, ...).

    **Returns:** a `RegretResult`; with several runs the standard error per t is across runs.
    """
    if isinstance(posterior, Ensemble):
        raise ArgumentTypeError(
            "`posterior` is a bo.Ensemble: `regret` estimates the exact Bayes mixture from a "
            "posterior; the regret of an ensemble's own mixture is "
            "bo.lens.ensemble_regret(ensemble, data, truth=...)."
        )
    target = as_target(posterior)
    n = target.num_data
    key_evidence, key_fit = jax.random.split(key)
    if fit not in ("map", "ml"):
        raise ValueError(f'`fit` must be "map" or "ml", got {fit!r}.')
    pointwise = _reference_pointwise(target, truth, key_fit, fit, fit_steps, fit_learning_rate)
    if evidence is None:
        if method == "prequential":
            evidence = prequential_log_evidence(target, key=key_evidence, **options)
        else:
            from bayesover.lens._evidence import log_evidence

            evidence = log_evidence(target, method, key=key_evidence, **options)
    elif not isinstance(evidence, EvidenceResult):
        raise TypeError(f"`evidence` must be an EvidenceResult, got {type(evidence).__name__}.")
    reference = pointwise / target.temperature
    if evidence.terms is not None:
        terms = np.asarray(evidence.terms, np.float64)
        if terms.ndim != 2 or terms.shape[1] != n:
            raise ValueError(f"`evidence.terms` must have shape (num_runs, {n}).")
        order = np.asarray(evidence.diagnostics.get("order", np.arange(n)))
        ns = np.arange(1, n + 1)
        truth_loglik = np.cumsum(reference[order])
        log_m = np.cumsum(terms, axis=1)  # (runs, n): log M(x^t) per run
    else:
        ns = np.array([n])
        truth_loglik = np.array([reference.sum()])
        log_m = np.asarray(evidence.runs, np.float64).reshape(-1, 1)
    curves = truth_loglik[None, :] - log_m
    stderr = _stderr(curves) if curves.shape[0] > 1 else np.full(ns.shape, evidence.stderr)
    return RegretResult(
        n=ns,
        regret=curves.mean(axis=0),
        regret_stderr=stderr,
        log_evidence=evidence,
        truth_loglik=truth_loglik,
        code_length_nats=-log_m.mean(axis=0),
        reference="best_fit" if truth is None else "truth",
        collapsed=bool(evidence.collapsed),
    )


def expected_regret(
    make_data: Callable[[PRNGKeyArray], tuple[AbstractPosterior | Target, Any]],
    *,
    key: PRNGKeyArray,
    num_datasets: int,
    **regret_options: Any,
) -> RegretResult:
    """E R_n = D(P_theta0^n || M): the regret curve averaged over independent data sets.

    `make_data(key)` returns `(posterior, truth)` for one data set drawn from the truth (all of
    the same size n); `regret_options` go to `regret` (method, num_particles, ...). The standard
    error is across data sets (it includes the estimator's own noise).
    """
    if isinstance(num_datasets, bool) or not isinstance(num_datasets, int) or num_datasets < 1:
        raise ValueError(f"`num_datasets` must be an int >= 1, got {num_datasets!r}.")
    results = []
    for k in jax.random.split(key, num_datasets):
        key_data, key_regret = jax.random.split(k)
        posterior, truth = make_data(key_data)
        results.append(regret(posterior, key=key_regret, truth=truth, **regret_options))
    if len({r.n.shape for r in results}) != 1:
        raise ValueError("`make_data` must return data sets of one size n.")
    curves = np.stack([r.regret for r in results])
    stderr = _stderr(curves) if num_datasets > 1 else results[0].regret_stderr
    return RegretResult(
        n=results[0].n,
        regret=curves.mean(axis=0),
        regret_stderr=stderr,
        log_evidence=None,
        truth_loglik=np.mean([r.truth_loglik for r in results], axis=0),
        code_length_nats=np.mean([r.code_length_nats for r in results], axis=0),
        reference=results[0].reference,
        collapsed=any(r.collapsed for r in results),
        datasets=tuple(results),
    )


def _stderr(curves: np.ndarray) -> np.ndarray:
    return np.std(curves, axis=0, ddof=1) / math.sqrt(curves.shape[0])


def _reference_pointwise(
    target: Target, truth: Any, key: PRNGKeyArray, fit: str, fit_steps: int, learning_rate: float
) -> np.ndarray:
    """(n,) untempered log P_ref(x_i): the truth's, or the fit's when `truth` is None."""
    n = target.num_data
    if truth is None:
        from bayesover.inference._optimize import map_estimate

        if isinstance(fit_steps, bool) or not isinstance(fit_steps, int) or fit_steps < 1:
            raise ValueError(f"`fit_steps` must be an int >= 1, got {fit_steps!r}.")
        optimizer = optax.adam(learning_rate)
        position: PyTree = map_estimate(
            target.posterior, key=key, optimizer=optimizer, num_steps=fit_steps
        ).position
        if fit == "ml":  # from the MAP, climb the log-likelihood alone
            position = _max_likelihood(target, position, jnp.asarray(learning_rate), fit_steps)
    elif isinstance(truth, (np.ndarray, jax.Array)):
        values = np.asarray(truth, np.float64)
        if values.shape != (n,):
            raise ValueError(
                f"`truth` as per-datum log-likelihoods must have shape ({n},) (one per datum), "
                f"got {values.shape}."
            )
        return values
    else:
        expected = jax.eval_shape(target.sample_prior, jax.random.key(0))
        same_tree = jax.tree.structure(truth) == jax.tree.structure(expected)  # type: ignore[operator]
        shapes = [np.shape(v) for v in jax.tree.leaves(truth)]
        if not same_tree or shapes != [v.shape for v in jax.tree.leaves(expected)]:
            raise ValueError(
                "`truth` must be an unconstrained position shaped like "
                "`Target.sample_prior(key)` or a (n,) array of per-datum log-likelihoods."
            )
        position = truth
    return np.asarray(_pointwise_jit(target, position), np.float64)


@eqx.filter_jit
def _max_likelihood(target: Target, init: PyTree, learning_rate: Array, num_steps: int) -> PyTree:
    def loss(position):
        return -jnp.sum(target.pointwise_loglikelihood(position))

    position, _ = minimise(loss, init, optax.adam(learning_rate), num_steps)
    return position


@eqx.filter_jit
def _pointwise_jit(target: Target, position: PyTree) -> jax.Array:
    return target.pointwise_loglikelihood(position)
