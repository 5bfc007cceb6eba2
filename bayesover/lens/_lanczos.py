"""Lanczos on a symmetric operator given by its matrix-vector product: Ritz values, quadrature.

A network's Hessian is never formed, only Hessian-vector products: `m` Lanczos steps from v0
give a tridiagonal T = Q H Q^T whose eigenvalues (Ritz values) approximate H's extreme ones and
whose eigenvectors' squared first components are the weights of the Gauss quadrature of the
spectral measure of v0 (Golub and Meurant). Used by `effective_dimension` (stochastic Lanczos
quadrature) and by the Laplace weight curve (`top_eigenpairs`).

Why by hand: neither JAX nor SciPy has a traceable Lanczos; `scipy.sparse.linalg.eigsh` runs on
the host, outside `jit`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray


def lanczos(matvec: Callable[[Array], Array], v0: Array, num_steps: int) -> tuple[Array, ...]:
    """`num_steps` Lanczos steps with full re-orthogonalisation from `v0` (traceable).

    **Returns:** `(alpha, beta, Q)`: the tridiagonal T's diagonal `(m,)` and off-diagonal
    `(m - 1,)`, and the orthonormal Krylov basis `Q (m, d)` (T = Q H Q^T). On breakdown (an
    invariant subspace found) the remaining vectors are zero, which gives T zero rows whose Ritz
    values carry zero quadrature weight.
    """
    d = v0.shape[0]
    v = v0 / jnp.linalg.norm(v0)

    def step(carry, i):
        Q, v, v_prev, b_prev = carry
        Q = Q.at[i].set(v)
        w = matvec(v)
        a = jnp.vdot(v, w)
        w = w - a * v - b_prev * v_prev
        w = w - Q.T @ (Q @ w)  # twice is enough (Kahan, Parlett)
        w = w - Q.T @ (Q @ w)
        b = jnp.linalg.norm(w)
        alive = b > 1e-6 * jnp.maximum(jnp.abs(a), 1e-30)
        v_next = jnp.where(alive, w / jnp.where(alive, b, 1.0), 0.0)
        return (Q, v_next, v, jnp.where(alive, b, 0.0)), (a, jnp.where(alive, b, 0.0))

    init = (jnp.zeros((num_steps, d), v.dtype), v, jnp.zeros_like(v), jnp.zeros((), v.dtype))
    (Q, _, _, _), (alpha, beta) = jax.lax.scan(step, init, jnp.arange(num_steps))
    return alpha, beta[:-1], Q


def _tridiagonal(alpha: Array, beta: Array) -> Array:
    return jnp.diag(alpha) + jnp.diag(beta, 1) + jnp.diag(beta, -1)


def ritz(alpha: Array, beta: Array) -> tuple[Array, Array, Array]:
    """Ritz values `(m,)`, quadrature weights (squared first components of T's eigenvectors,
    summing to 1) and T's eigenvectors `(m, m)`."""
    values, vectors = jnp.linalg.eigh(_tridiagonal(alpha, beta))
    return values, vectors[0] ** 2, vectors


def top_eigenpairs(
    matvec: Callable[[Array], Array], d: int, *, key: PRNGKeyArray, k: int, num_steps: int
) -> tuple[Array, Array]:
    """The `k` largest eigenpairs of a symmetric operator on R^d by Lanczos (`num_steps >= k`
    steps, clipped to d; exact up to rounding when `num_steps >= d`).

    **Returns:** eigenvalues `(k,)` descending and eigenvectors `(k, d)` (rows).
    """
    steps = min(max(num_steps, k), d)
    v0 = jax.random.normal(key, (d,))
    alpha, beta, Q = lanczos(matvec, v0, steps)
    values, _, vectors = ritz(alpha, beta)
    order = jnp.argsort(-values)[:k]
    return values[order], (Q.T @ vectors[:, order]).T
