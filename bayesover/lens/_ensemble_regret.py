"""`ensemble_regret`, `cumulative_regret`: the regret of an ensemble's own mixture predictive.

An ensemble theta_1..theta_S (posterior draws, SG-MCMC chains, deep-ensemble members) predicts
with its mixture M_E(y | x) = (1/S) sum_s p(y | x, theta_s) (`bo.Ensemble.predict`). On points
(x_i, y_i), i = 1..m, against a reference P_ref (the truth, or the best fit of the class):

    R = sum_i [log P_ref(y_i | x_i) - log M_E(y_i | x_i)]   (code-length regret, nats),
    r = R / m,   stderr(r) = std_i(term_i) / sqrt(m)          (per-point regret).

Given the truth's conditional law P_0(. | x_i) as a distribution instead, each term is its
expectation over y, KL(P_0(. | x_i) || M_E(. | x_i)), and the targets are not used: by
Gauss-Hermite quadrature for a Normal truth, exactly over the support for a discrete one. On
held-out x its mean is the instantaneous regret r_t = E_x KL(P_0 || M_E) of an ensemble trained
on t points, and E R_n = sum_{t<n} r_t (`cumulative_regret`).

Unlike `regret` (the exact Bayes mixture M, by an evidence estimator on the training data), M_E
is fixed: the members' own mixture, the predictive that a user of the ensemble gets. Neither
side is tempered: M_E is the untempered mixture, whatever temperature the draws were made at.

Why by hand: the mixture is `Ensemble.predict`'s; ArviZ and NumPyro score a predictive against
observed data (ELPD), not against a reference model or a truth's law.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from bayesover._checks import ArgumentTypeError, check_int, check_key, check_positive
from bayesover.data._container import Data
from bayesover.ensemble._ensemble import Ensemble
from bayesover.lens._regret import _reference_pointwise
from bayesover.lens._target import Target
from bayesover.posterior._posterior import Posterior


@dataclasses.dataclass(frozen=True, repr=False)
class EnsembleRegret:
    """The regret of an ensemble's mixture on m points (host values, float64).

    **Fields:**

    - `pointwise`: `(m,)` the terms log P_ref(y_i | x_i) - log M_E(y_i | x_i), nats (with
      `expected`, KL(P_0(. | x_i) || M_E(. | x_i))).
    - `reference_loglik`: `(m,)` log P_ref(y_i | x_i) (with `expected`, E_{y~P_0} of it).
    - `log_predictive`: `(m,)` log M_E(y_i | x_i) (with `expected`, E_{y~P_0} of it).
    - `reference`: "truth" or "best_fit".
    - `expected`: the terms are expectations over y under the truth's law (targets unused).
    - `num_members`: S, the ensemble's members.

    **Properties:** `num_points` (m); `regret`, the sum R; `curve`, the cumulative sums
    R_t = sum_{i<=t} term_i in data order; `mean` (R / m) and `stderr` (std(ddof=1) / sqrt(m)
    over the points: NaN for one point); `code_length_nats` = -sum_i log M_E (and `_bits`).
    """

    pointwise: np.ndarray
    reference_loglik: np.ndarray
    log_predictive: np.ndarray
    reference: str
    expected: bool
    num_members: int

    @property
    def num_points(self) -> int:
        return int(self.pointwise.size)

    @property
    def regret(self) -> float:
        return float(np.sum(self.pointwise))

    @property
    def curve(self) -> np.ndarray:
        return np.cumsum(self.pointwise)

    @property
    def mean(self) -> float:
        return float(np.mean(self.pointwise))

    @property
    def stderr(self) -> float:
        if self.num_points < 2:
            return float("nan")
        return float(np.std(self.pointwise, ddof=1) / math.sqrt(self.num_points))

    @property
    def code_length_nats(self) -> float:
        return float(-np.sum(self.log_predictive))

    @property
    def code_length_bits(self) -> float:
        return self.code_length_nats / math.log(2.0)

    @property
    def reliable(self) -> bool:
        """Every term is finite (a member mixture that puts no mass on a point is infinite)."""
        return bool(np.all(np.isfinite(self.pointwise)))

    def to_dataset(self) -> Any:
        """An `xarray.Dataset`: `ensemble_regret_pointwise`, `ensemble_reference_loglik` and
        `ensemble_log_predictive` along the dimension `point`, and the scalars
        `ensemble_regret` (R), `ensemble_regret_mean` and `ensemble_regret_stderr`. The names
        differ from `RegretResult`'s, so `bo.lens.attach` can hold both."""
        import xarray as xr

        return xr.Dataset(
            {
                "ensemble_regret_pointwise": ("point", self.pointwise),
                "ensemble_reference_loglik": ("point", self.reference_loglik),
                "ensemble_log_predictive": ("point", self.log_predictive),
                "ensemble_regret": ((), self.regret),
                "ensemble_regret_mean": ((), self.mean),
                "ensemble_regret_stderr": ((), self.stderr),
            },
            coords={"point": np.arange(self.num_points)},
            attrs={
                "ensemble_reference": self.reference,
                "ensemble_expected": int(self.expected),
                "ensemble_num_members": self.num_members,
            },
        )

    def __str__(self) -> str:
        against = "the truth" if self.reference == "truth" else "the best fit (MAP)"
        kind = "expected over y" if self.expected else "on the data"
        text = (
            f"ensemble ({self.num_members} members) regret vs {against}, {kind}, on "
            f"{self.num_points} points: {self.regret:.3f} nats, per point {self.mean:.4f} ± "
            f"{self.stderr:.4f}; code length -log M_E = {self.code_length_nats:.2f} nats = "
            f"{self.code_length_bits:.2f} bits"
        )
        if not self.reliable:
            text += " [UNRELIABLE: non-finite terms]"
        return text

    def __repr__(self) -> str:
        return f"EnsembleRegret({self})"


def ensemble_regret(
    ensemble: Ensemble,
    data: Data,
    *,
    truth: Any = None,
    key: PRNGKeyArray | None = None,
    fit: str = "map",
    fit_steps: int = 2000,
    fit_learning_rate: float = 1e-2,
    num_nodes: int = 16,
    batch_size: int | None = None,
    member_batch_size: int | None = None,
) -> EnsembleRegret:
    """Regret of the mixture M_E(y | x) = (1/S) sum_s p(y | x, theta_s) of `ensemble` on `data`.

    **Arguments:**

    - `ensemble`: a `bo.Ensemble` of a network posterior (it has a model).
    - `data`: a `bo.Data` of m points: held out (the per-point regret estimates the ensemble's
      expected excess log-loss) or the training set (its code-length regret).
    - `truth`: the reference.
      - a `(m,)` array: per-datum log P_0(y_i | x_i) in data order (as `regret`'s `truth`);
      - an unconstrained position of the ensemble's model (a truth inside the class);
      - a NumPyro distribution of batch shape `(m,)`, the truth's law of y at each input
        (e.g. `numpyro.distributions.Normal(f0(x), sigma)`): the terms are then
        KL(P_0(. | x_i) || M_E(. | x_i)), by Gauss-Hermite quadrature on `num_nodes` nodes
        for a Normal, exactly for a distribution with finite support (Bernoulli,
        Categorical); the targets are not used;
      - `None`: the best fit of the class on `data`, the MAP by `bo.map_estimate` with
        `optax.adam(fit_learning_rate)` for `fit_steps` steps (`fit="ml"` then climbs the
        likelihood alone), as in `regret`; it needs `key`. On the training data this is an
        optimistic reference (the fit has seen the data).
    - `key`: a JAX PRNG key, for the fit (only with `truth=None`).
    - `batch_size`, `member_batch_size`: passed to `Ensemble.predict` (memory).

    **Returns:** an `EnsembleRegret` (`regret` the sum, `mean` and `stderr` per point).
    """
    if not isinstance(ensemble, Ensemble):
        raise ArgumentTypeError(f"`ensemble` must be a bo.Ensemble, got {type(ensemble).__name__}.")
    if ensemble.model is None:
        raise ArgumentTypeError(
            "`ensemble` holds NumPyro sites, not a network: its mixture needs the model that "
            "`bo.sample` records for a network bo.Posterior."
        )
    if not isinstance(data, Data):
        raise ArgumentTypeError(f"`data` must be a bo.Data, got {type(data).__name__}.")
    if fit not in ("map", "ml"):
        raise ValueError(f'`fit` must be "map" or "ml", got {fit!r}.')
    num_nodes = check_int("num_nodes", num_nodes, minimum=1)
    predict = {"batch_size": batch_size, "member_batch_size": member_batch_size}
    if _is_distribution(truth):
        reference, log_m = _expected_terms(ensemble, data, truth, num_nodes, predict)
        expected = True
    else:
        if truth is None:
            if key is None:
                raise ArgumentTypeError(
                    "`key` is needed with `truth=None` (the best fit is fitted); pass "
                    "key=jax.random.key(seed), or give a truth."
                )
            fit_key = check_key(key)
            fit_steps = check_int("fit_steps", fit_steps, minimum=1)
            fit_learning_rate = check_positive("fit_learning_rate", fit_learning_rate)
        else:
            fit_key = jax.random.key(0)  # unused: nothing is fitted
        target = Target(Posterior(ensemble.model, data))
        reference = _reference_pointwise(target, truth, fit_key, fit, fit_steps, fit_learning_rate)
        log_m = np.asarray(ensemble.predict(data.inputs, **predict).log_prob(data.targets))
        expected = False
    reference = np.asarray(reference, np.float64)
    log_m = np.asarray(log_m, np.float64)
    return EnsembleRegret(
        pointwise=reference - log_m,
        reference_loglik=reference,
        log_predictive=log_m,
        reference="best_fit" if truth is None else "truth",
        expected=expected,
        num_members=ensemble.num_members,
    )


def _is_distribution(value: Any) -> bool:
    if value is None or isinstance(value, (np.ndarray, jax.Array, dict)):
        return False
    import numpyro.distributions as dist

    return isinstance(value, dist.Distribution)


def _expected_terms(
    ensemble: Ensemble, data: Data, truth: Any, num_nodes: int, predict: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """(E_{y~P_0} log P_0(y | x_i), E_{y~P_0} log M_E(y | x_i)) per input: a weighted sum over
    K values y_k per input, the Gauss-Hermite nodes y = mu + sigma z_k (probabilists' weights,
    exp(-z^2/2), normalised) of a Normal, or the support of a finite distribution."""
    import numpyro.distributions as dist

    m = data.num_points
    if tuple(truth.batch_shape) != (m,) or tuple(truth.event_shape) != ():
        raise ValueError(
            f"`truth` as a distribution must have batch shape ({m},) (one law of y per point "
            f"of `data`) and event shape (), got batch {tuple(truth.batch_shape)} and event "
            f"{tuple(truth.event_shape)}."
        )
    if ensemble.target_shape not in (None, ()):
        raise ValueError(
            f"`truth` as a distribution needs scalar targets; this ensemble predicts targets "
            f"of shape {ensemble.target_shape}: pass per-datum log-likelihoods instead."
        )
    if isinstance(truth, dist.Normal):
        z, w = np.polynomial.hermite_e.hermegauss(num_nodes)
        loc = jnp.broadcast_to(truth.loc, (m,))
        dtype = loc.dtype
        y = (
            loc[None, :]
            + jnp.broadcast_to(truth.scale, (m,))[None, :] * jnp.asarray(z, dtype)[:, None]
        )  # (K, m)
        weights = jnp.broadcast_to(jnp.asarray(w / w.sum(), dtype)[:, None], y.shape)
    elif truth.has_enumerate_support:
        y = truth.enumerate_support(expand=True)  # (K, m)
        weights = jnp.exp(truth.log_prob(y))
    else:
        raise ArgumentTypeError(
            "`truth` as a distribution must be a numpyro Normal (Gauss-Hermite quadrature) or "
            f"have finite support (Bernoulli, Categorical), got {type(truth).__name__}: pass "
            "per-datum log-likelihoods of observed targets instead."
        )
    num_values = y.shape[0]
    x = jnp.tile(data.inputs, (num_values,) + (1,) * (data.inputs.ndim - 1))
    log_m = ensemble.predict(x, **predict).log_prob(y.reshape(-1)).reshape(num_values, m)
    log_p0 = truth.log_prob(y)
    keep = weights > 0  # a zero-probability value adds nothing, whatever log M_E is there
    reference = jnp.sum(jnp.where(keep, weights * log_p0, 0.0), axis=0)
    expected_log_m = jnp.sum(jnp.where(keep, weights * log_m, 0.0), axis=0)
    return np.asarray(reference, np.float64), np.asarray(expected_log_m, np.float64)


def cumulative_regret(t: Any, rate: Any, stderr: Any, n: Any) -> tuple[np.ndarray, np.ndarray]:
    """E R_n = sum_{s<n} r_s from instantaneous regrets r measured on a grid of training-set
    sizes `t` (e.g. `ensemble_regret(...).mean` of ensembles trained on the first t points).

    Between the grid points r is interpolated linearly from t[0] to t[1], then as a power law
    (linear in log t, log r: the shape of a rate r_s ~ c / s^a; r is floored at 1e-12 there),
    and held constant outside the grid. The standard errors, interpolated linearly, add (the
    errors of neighbouring sizes are correlated, so this is conservative).

    **Arguments:** `t`, `(k,)` increasing sizes >= 0 (k >= 2; t = 0 is the prior predictive);
    `rate` and `stderr`, `(k,)` r_t and its standard errors; `n`, one size or an array of sizes
    >= 1 to sum to. **Returns:** `(regret, stderr)`, arrays of `n`'s shape.
    """
    t, rate, stderr = (np.asarray(v, np.float64) for v in (t, rate, stderr))
    if t.ndim != 1 or t.size < 2:
        raise ValueError(f"`t` must be a 1-D grid of at least 2 sizes, got shape {t.shape}.")
    if rate.shape != t.shape or stderr.shape != t.shape:
        raise ValueError(
            f"`rate` and `stderr` must have the shape of `t` {t.shape}, got {rate.shape} and "
            f"{stderr.shape}."
        )
    if not (np.all(np.isfinite(t)) and t[0] >= 0 and np.all(np.diff(t) > 0)):
        raise ValueError(f"`t` must be strictly increasing sizes >= 0, got {t.tolist()}.")
    sizes = np.asarray(n)
    if not np.issubdtype(sizes.dtype, np.integer) or np.any(sizes < 1):
        raise ValueError(f"`n` must be an int or an array of ints >= 1, got {n!r}.")
    values, errors = np.empty(sizes.shape), np.empty(sizes.shape)
    for index, size in np.ndenumerate(sizes):
        grid = np.arange(int(size), dtype=np.float64)
        head = grid < t[1]
        curve = np.empty_like(grid)
        curve[head] = np.interp(grid[head], t, rate)
        positive = np.maximum(rate[1:], 1e-12)
        curve[~head] = np.exp(np.interp(np.log(grid[~head]), np.log(t[1:]), np.log(positive)))
        values[index] = curve.sum()
        errors[index] = np.interp(grid, t, stderr).sum()
    return values, errors
