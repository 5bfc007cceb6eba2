"""The Bayesian mixture predictive of an ensemble: average distributions, not weights or logits.

With members theta_1..theta_M (posterior draws, or deep-ensemble members),

    p(y | x, D) = (1/M) sum_m p(y | x, theta_m),
    log p(y | x, D) = logsumexp_m log p(y | x, theta_m) - log M.

Regression (Gaussian, StudentT, Poisson): the law of total variance splits the predictive
variance into an aleatoric part E_m[Var(y | theta_m)] and an epistemic part Var_m[E(y | theta_m)].
Classification (Categorical, Bernoulli): the predictive entropy H[p(y|x,D)] splits into the
expected entropy E_m H[p(y|x,theta_m)] (aleatoric) and the mutual information between y and
theta (epistemic).

Memory stays bounded: points are processed in batches of `batch_size` and, inside a batch,
members in chunks of `member_batch_size` under a `lax.scan` with running sums (and a running
logsumexp), so 10^4 members x 10^5 points never materialise at once.

Data parallel: with `predict(x, mesh=D)` (or a `jax.sharding.Mesh`) every batch of points is
split over D devices (`NamedSharding` along the points axis, the members replicated) and the
compiled batch program is partitioned by XLA (GSPMD): each device evaluates its points. The
values are the one-device values (the same operations per point).
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float, PRNGKeyArray

from bayesover._checks import check_int
from bayesover.model._model import Model
from bayesover.model.likelihoods import Bernoulli, Categorical


class Predictive(eqx.Module):
    """`ensemble.predict(x)`: the mixture predictive at inputs `x` (see the module docstring)."""

    model: Model
    members: Any
    x: Array
    target_shape: tuple[int, ...] = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    member_batch_size: int = eqx.field(static=True)
    points_sharding: Any = eqx.field(static=True, default=None)

    @classmethod
    def build(
        cls, ensemble, x, *, batch_size=None, member_batch_size=None, mesh=None
    ) -> Predictive:
        if ensemble.model is None:
            raise TypeError(
                "`predict` needs an ensemble of a network bo.Posterior (it has a model); this "
                "one holds NumPyro sites."
            )
        model = ensemble.model
        x = jnp.asarray(x)
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"`x` must have a leading axis of at least one point, got {x.shape}.")
        if jnp.issubdtype(x.dtype, jnp.integer):
            x = x.astype(jnp.float32)
        if not bool(jnp.all(jnp.isfinite(x))):
            raise ValueError("`x` holds NaN or inf values.")
        members = ensemble.flat_params()
        first = jax.tree.map(lambda v: v[0], members)
        try:
            jax.eval_shape(model.apply, first["net"], x[0])
        except Exception as error:
            raise ValueError(
                f"`x` has feature shape {x.shape[1:]}, which the module cannot take: "
                f"{type(error).__name__}: {error}"
            ) from error
        num_members = jax.tree.leaves(members)[0].shape[0]
        batch_size = x.shape[0] if batch_size is None else batch_size
        member_batch_size = (
            min(num_members, 256) if member_batch_size is None else member_batch_size
        )
        check_int("batch_size", batch_size, minimum=1)
        check_int("member_batch_size", member_batch_size, minimum=1)
        target_shape = ensemble.target_shape if ensemble.target_shape is not None else ()
        batch_size = min(batch_size, x.shape[0])
        sharding = _points_sharding(mesh)
        if sharding is not None:  # whole shards: the batch rounded up to the device count
            devices = len(sharding.device_set)
            batch_size = devices * math.ceil(batch_size / devices)
            members = jax.device_put(members, sharding.update(spec=P()))
        return cls(
            model,
            members,
            x,
            tuple(target_shape),
            batch_size,
            min(member_batch_size, num_members),
            sharding,
        )

    # -- basic facts ------------------------------------------------------------------------------
    @property
    def num_members(self) -> int:
        return jax.tree.leaves(self.members)[0].shape[0]

    @property
    def num_points(self) -> int:
        return self.x.shape[0]

    @property
    def is_classification(self) -> bool:
        return isinstance(self.model.likelihood, (Categorical, Bernoulli))

    # -- the reduction over members and points ----------------------------------------------------
    def _distribution(self, member, x):
        output = self.model.apply(member["net"], x)
        if not isinstance(self.model.likelihood, Categorical) and output.shape != self.target_shape:
            output = output.reshape(self.target_shape)
        return self.model.likelihood.distribution(output, member["likelihood"])

    def _blocks(self):
        """The predictives over blocks of members that `_reduce` adds up: here one, `self`
        (all members in memory); a stored ensemble's (`bayesover.ensemble._stored`) yields one
        per block of draws read from disk."""
        yield self

    def _reduce(self, per_member, extra=None):
        """Sum `per_member(distribution, extra_point)` over members, block by block."""
        total = None
        for block in self._blocks():
            part = block._reduce_members(per_member, extra)
            total = part if total is None else jax.tree.map(_accumulate, total, part, _kinds(part))
        return total

    def _reduce_members(self, per_member, extra=None):
        """Sum `per_member(distribution, extra_point)` over `members`, batched (docstring)."""
        outputs = []
        for start in range(0, self.num_points, self.batch_size):
            stop = min(start + self.batch_size, self.num_points)
            xb = _pad(self.x[start:stop], self.batch_size)
            eb = (
                None
                if extra is None
                else jax.tree.map(lambda e, a=start, b=stop: _pad(e[a:b], self.batch_size), extra)
            )
            if self.points_sharding is not None:
                xb, eb = jax.device_put((xb, eb), self.points_sharding)
            result = _reduce_batch(self, per_member, xb, eb)
            outputs.append(jax.tree.map(lambda r, n=stop - start: r[:n], result))
        return jax.tree.map(lambda *rs: jnp.concatenate(rs), *outputs)

    # -- the mixture ------------------------------------------------------------------------------
    def log_prob(self, y) -> Float[Array, " n"]:
        """log p(y_i | x_i, D) per point: logsumexp over members minus log M."""
        y = jnp.asarray(y)
        if y.shape[0] != self.num_points:
            raise ValueError(f"`y` has {y.shape[0]} points but `x` has {self.num_points}.")
        output_shape = jax.eval_shape(
            self.model.apply, jax.tree.map(lambda v: v[0], self.members)["net"], self.x[0]
        ).shape
        self.model.likelihood.check(tuple(output_shape), y)
        total = self._reduce(_log_prob_terms, y)["lse"]
        return total - math.log(self.num_members)

    def _moments(self):
        if self.is_classification:
            raise TypeError("mean and variance are for regression likelihoods; use `probs`.")
        return self._reduce(_moment_terms)

    @property
    def mean(self) -> Array:
        """E[y | x, D] = (1/M) sum_m E[y | x, theta_m]."""
        return self._moments()["mean"] / self.num_members

    def variance_parts(self) -> dict[str, Array]:
        """`{"total", "aleatoric", "epistemic"}`: Var = E_m Var_m + Var_m E_m."""
        sums = self._moments()
        m = self.num_members
        mean = sums["mean"] / m
        epistemic = jnp.maximum(sums["mean_sq"] / m - mean**2, 0.0)
        aleatoric = sums["variance"] / m
        return {"total": aleatoric + epistemic, "aleatoric": aleatoric, "epistemic": epistemic}

    @property
    def variance(self) -> Array:
        return self.variance_parts()["total"]

    def interval(self, prob: float = 0.9, *, num_iterations: int = 60) -> tuple[Array, Array]:
        """Central interval of the MIXTURE with mass `prob`: the (1-prob)/2 and (1+prob)/2
        quantiles, found by bisection on the mixture CDF (1/M) sum_m F_m(y)."""
        if not 0.0 < prob < 1.0:
            raise ValueError(f"`prob` must lie in (0, 1), got {prob!r}.")
        if self.is_classification:
            raise TypeError("intervals are for regression likelihoods.")
        parts = self.variance_parts()
        mean = self.mean
        width = 20.0 * jnp.sqrt(parts["total"]) + 1e-6

        def quantile(q):
            lo, hi = mean - width, mean + width
            for _ in range(num_iterations):
                mid = 0.5 * (lo + hi)
                cdf = self._reduce(_cdf_terms, mid) / self.num_members
                lo = jnp.where(cdf < q, mid, lo)
                hi = jnp.where(cdf < q, hi, mid)
            return 0.5 * (lo + hi)

        return quantile((1 - prob) / 2), quantile((1 + prob) / 2)

    @property
    def probs(self) -> Array:
        """p(y = k | x, D), shape (n, K) (K = 2 for Bernoulli: [p(0), p(1)])."""
        if not self.is_classification:
            raise TypeError("`probs` is for classification likelihoods; use `mean`.")
        return self._reduce(_class_terms)["probs"] / self.num_members

    @property
    def entropy(self) -> Array:
        """Predictive entropy H[p(y | x, D)] (total uncertainty), nats."""
        p = self.probs
        return -jnp.sum(jnp.where(p > 0, p * jnp.log(p), 0.0), axis=-1)

    @property
    def expected_entropy(self) -> Array:
        """E_m H[p(y | x, theta_m)] (aleatoric uncertainty), nats."""
        return self._reduce(_class_terms)["entropy"] / self.num_members

    @property
    def mutual_information(self) -> Array:
        """I(y; theta | x, D) = H[p(y|x,D)] - E_m H[p(y|x,theta_m)] (epistemic), nats."""
        return jnp.maximum(self.entropy - self.expected_entropy, 0.0)

    # -- draws ------------------------------------------------------------------------------------
    def sample(self, key: PRNGKeyArray, num_samples: int = 1) -> Array:
        """Draws from the mixture: member m ~ Uniform{1..M}, then y ~ p(y | x, theta_m);
        shape (num_samples, n, *target_shape)."""
        key_member, key_y = jax.random.split(key)
        index = jax.random.randint(key_member, (num_samples,), 0, self.num_members)
        chosen = jax.tree.map(lambda v: v[index], self.members)
        return _draw(self, chosen, jax.random.split(key_y, num_samples))

    def posterior_predictive(self, key: PRNGKeyArray) -> Array:
        """One y draw per member at every point: shape (M, n, *target_shape)."""
        return _draw(self, self.members, jax.random.split(key, self.num_members))


# -- compiled kernels -------------------------------------------------------------------------


def _points_sharding(mesh: Any) -> NamedSharding | None:
    """The sharding that splits a batch of points over `mesh` (None: one device). `mesh` is
    None, a device count D (the first D devices) or a `jax.sharding.Mesh` (all its devices)."""
    if mesh is None:
        return None
    if isinstance(mesh, Mesh):
        devices = list(mesh.devices.ravel())
    elif isinstance(mesh, int) and not isinstance(mesh, bool):
        if not 1 <= mesh <= len(jax.devices()):
            raise ValueError(
                f"`mesh` must be a device count in [1, {len(jax.devices())}] (the visible "
                f"devices), got {mesh}."
            )
        devices = jax.devices()[:mesh]
    else:
        raise TypeError(
            f"`mesh` must be None, a device count or a jax.sharding.Mesh, got {mesh!r}."
        )
    if len(devices) == 1:
        return None
    return NamedSharding(Mesh(np.asarray(devices), ("points",)), P("points"))


def _pad(array, size):
    missing = size - array.shape[0]
    if missing == 0:
        return array
    return jnp.concatenate([array, jnp.repeat(array[-1:], missing, axis=0)])


@eqx.filter_jit
def _reduce_batch(predictive: Predictive, per_member, xb, eb):
    m, c = predictive.num_members, predictive.member_batch_size
    num_chunks = -(-m // c)
    index = jnp.arange(num_chunks * c).reshape(num_chunks, c)
    valid = index < m
    index = jnp.minimum(index, m - 1)

    def over_points(member):
        def one(x, e):
            return per_member(predictive._distribution(member, x), e)

        return jax.vmap(one)(xb, eb)

    def chunk(carry, args):
        idx, ok = args
        members = jax.tree.map(lambda v: v[idx], predictive.members)
        values = jax.vmap(over_points)(members)
        combined = jax.tree.map(lambda v, k: _combine(v, ok, k), values, _kinds(values))
        return jax.tree.map(_accumulate, carry, combined, _kinds(values)), None

    first = jax.eval_shape(
        lambda: jax.vmap(over_points)(jax.tree.map(lambda v: v[:1], predictive.members))
    )
    init = jax.tree.map(
        lambda s, k: jnp.full(s.shape[1:], -jnp.inf if k == "lse" else 0.0, s.dtype),
        first,
        _kinds(first),
    )
    total, _ = jax.lax.scan(chunk, init, (index, valid))
    return total


def _kinds(tree):
    """Terms named `lse` combine by logsumexp, the others by sum."""
    if isinstance(tree, dict):
        return {k: ("lse" if k == "lse" else "sum") for k in tree}
    return "sum"


def _combine(values, ok, kind):
    mask = ok.reshape((-1,) + (1,) * (values.ndim - 1))
    if kind == "lse":
        return jax.nn.logsumexp(jnp.where(mask, values, -jnp.inf), axis=0)
    return jnp.sum(jnp.where(mask, values, 0.0), axis=0)


def _accumulate(carry, value, kind):
    return jnp.logaddexp(carry, value) if kind == "lse" else carry + value


def _log_prob_terms(distribution, y):
    return {"lse": jnp.sum(distribution.log_prob(y))}


def _moment_terms(distribution, _):
    mean, variance = distribution.mean, distribution.variance
    return {"mean": mean, "mean_sq": mean**2, "variance": variance}


def _cdf_terms(distribution, value):
    return distribution.cdf(value)


def _class_probs(distribution):
    probs = distribution.probs
    if probs.ndim == 0:  # Bernoulli: p(y = 1)
        probs = jnp.stack([1.0 - probs, probs])
    return probs


def _class_terms(distribution, _):
    probs = _class_probs(distribution)
    entropy = -jnp.sum(jnp.where(probs > 0, probs * jnp.log(probs), 0.0))
    return {"probs": probs, "entropy": entropy}


@eqx.filter_jit
def _draw(predictive: Predictive, members, keys):
    """One y draw per member (leading axis) at every point, member i with `keys[i]`."""

    def one_member(member, k):
        point_keys = jax.random.split(k, predictive.num_points)
        return jax.vmap(lambda x, pk: predictive._distribution(member, x).sample(pk))(
            predictive.x, point_keys
        )

    return jax.vmap(one_member)(members, keys)
