"""W(eps) where tempering's read-out runs thin: annealing from pi_beta into the level set.

Tempering reads W(eps) = Z(beta) E_{pi_beta}[e^(beta K) 1{K <= eps}] off the stage whose K
distribution straddles eps. If the prior's density of states of K is locally ~ k^(a - 1)
(a = d/2 for a quadratic K with d stiff directions), the level set's K lies within eps / a
of eps while pi_beta's spreads over eps / sqrt(a), and the read-out's importance weights keep
an ESS of at most about sqrt(4 / (pi d)) N whatever the stage (0.025 N at d = 2,000,
0.008 N at d = 20,000: the points tempering flags there). For such an eps we anneal instead,
from the stage's particles, along

    pi_t(theta) ~ w(theta) exp(-beta [K + t S]),    S = kappa (K - eps)_+ - min(K, eps),

t: 0 -> 1. At t = 0 it is pi_beta; at t = 1 it is the prior w on {K <= eps} and
w e^(-(1 + kappa) beta (K - eps)) outside: the inside potential beta (1 - t) K fades to the
flat prior while the outside one steepens into a wall. The potential is continuous and linear
in t, so this is tempered SMC with prior w e^(-beta K) and log-likelihood -beta S, run by the
same pilot and replay as tempering (`_weight_tempering`), and

    W(eps) = Z(beta) Z_S(1) P_{pi_1}(K <= eps),

each factor estimated by its SMC run. With kappa = 4 about 80% of pi_1 lies inside when
beta ~ a / eps, so the last factor is a plain fraction. Written here: BlackJAX has no
level-set SMC.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import scipy.special as sc
from jax.tree_util import Partial

from bayesover.lens._particles import FLOOR

WALL = 4.0  # kappa: the outside potential at t = 1 is (1 + kappa) beta (K - eps)


def _potential(k_fn, eps, z):
    K = k_fn(z)
    return WALL * jnp.maximum(K - eps, 0.0) - jnp.minimum(K, eps)


def _start_log_density(log_prior, k_fn, beta, z):
    return jnp.maximum(log_prior(z) - beta * k_fn(z), FLOOR)


def _log_likelihood(potential, beta, z):
    return jnp.maximum(-beta * potential(z), FLOOR)


def shell_functions(k_fn, log_prior, eps, beta):
    """(S, log w - beta K, -beta S) on raveled positions, as the pilot and replay take them
    (`Partial`s, so that one compiled pilot and replay serve every eps and beta)."""
    potential = Partial(_potential, k_fn, eps)
    return (
        potential,
        Partial(_start_log_density, log_prior, k_fn, beta),
        Partial(_log_likelihood, potential, beta),
    )


def shell_read_out(S, K_last, acceptance, lams, beta, eps, min_ess, min_acceptance):
    """log Z_S(1) + log P_{pi_1}(K <= eps) of one replayed run (host, float64).

    `S (rows, N)`: the potential of each row's particles (row 0 the starts, row j >= 1 after
    stage j's moves, at t_{j-1}); `K_last (N,)`: K of the last row; `lams`: the t reached by
    each stage. Returns `log_weight`, `ess` (of the last reweighting, counting only the
    particles inside) and `reason` ('' if reliable)."""
    m = lams.size
    S = S[: m + 1].astype(np.float64)
    t = beta * np.concatenate([[0.0, 0.0], lams])
    n = S.shape[1]
    log_z = sum(sc.logsumexp(-(t[j + 1] - t[j]) * S[j]) - math.log(n) for j in range(1, m))
    log_v = np.where(K_last <= eps, -(t[m + 1] - t[m]) * S[m], -np.inf)
    lse, lse2 = sc.logsumexp(log_v), sc.logsumexp(2 * log_v)
    ess = float(np.exp(2 * lse - lse2)) if np.isfinite(lse) else 0.0
    accepted = np.nan_to_num(acceptance[1 : m + 1], nan=1.0)
    reason = ""
    if lams[-1] < 1.0:
        reason = f"the annealing into the level set stopped at t = {lams[-1]:.3g} (max_stages)"
    elif accepted.size and accepted.min() < min_acceptance:
        reason = (
            f"HMC acceptance fell below {min_acceptance:.0%} in the annealing into the level set"
        )
    elif ess < min_ess:
        reason = f"the annealing into the level set ended with ESS {ess:.1f} (< {min_ess:g})"
    return {"log_weight": log_z + lse - math.log(n), "ess": ess, "reason": reason}
