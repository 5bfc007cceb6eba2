"""Simulation-based calibration (Talts et al. 2018) of `bo.NUTS` on a small hierarchical model.

    mu ~ N(0, 1),  tau ~ HalfNormal(1),  z[j] ~ N(0, 1),  theta[j] = mu + tau z[j] (non-centred),
    y[j] ~ N(theta[j], sigma[j]),  j = 1..4,  sigma = (1, 1.5, 2, 0.8) known.

Each of `NUM_REPLICATIONS` replications draws (mu*, tau*, z*) from the prior, simulates y, samples
the posterior with `bo.sample(..., bo.NUTS())` (2 chains, thinned so that the kept draws are
roughly independent) and records the rank of mu*, tau*, theta*[1..4] among L = 199 posterior
draws (0..L). If NUTS samples the posterior exactly, every rank is uniform on {0, ..., L}: the
ranks, in 10 equal bins of 20, pass a chi-square test of uniformity with p > 0.001. As a
negative control (that the test has power), the same draws shrunk towards their mean to 70% of
their spread (too narrow a posterior) must fail it (p < 0.001) for every parameter.

Every replication has data of the same shapes, so `bo.sample`'s compiled programs are reused
(the first call compiles, the others run in well under a second each).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from scipy import stats

import bayesover as bo

SIGMA = np.array([1.0, 1.5, 2.0, 0.8], dtype=np.float32)
NUM_GROUPS = SIGMA.shape[0]
NUM_REPLICATIONS = 200
NUM_CHAINS = 2
NUM_WARMUP = 500
DRAWS_PER_CHAIN = 100
THINNING = 10
NUM_RANKED = NUM_CHAINS * DRAWS_PER_CHAIN - 1  # L = 199: ranks 0..199, 200 values
NUM_BINS = 10
P_MIN = 1e-3
NARROWING = 0.7  # negative control: draws shrunk to 70% of their spread must fail the test
SEED = 20180402  # Talts et al., arXiv:1804.06788


def model(*, y, sigma):
    """The non-centred hierarchical normal model with known noise sd `sigma`."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    tau = numpyro.sample("tau", dist.HalfNormal(1.0))
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([NUM_GROUPS]).to_event(1))
    theta = numpyro.deterministic("theta", mu + tau * z)
    numpyro.sample("y", dist.Normal(theta, sigma).to_event(1), obs=y)


def scalar_parameters(values) -> dict[str, np.ndarray]:
    """mu, tau, theta[1..J] from site arrays (any leading sample axes)."""
    out = {"mu": np.asarray(values["mu"]), "tau": np.asarray(values["tau"])}
    theta = np.asarray(values["theta"])
    for j in range(NUM_GROUPS):
        out[f"theta[{j + 1}]"] = theta[..., j]
    return out


def simulate(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(true parameters, data y) drawn from the prior predictive."""
    mu = rng.normal()
    tau = abs(rng.normal())
    z = rng.normal(size=NUM_GROUPS)
    theta = mu + tau * z
    y = (theta + SIGMA * rng.normal(size=NUM_GROUPS)).astype(np.float32)
    truth = scalar_parameters({"mu": mu, "tau": tau, "theta": theta})
    return truth, y


@pytest.mark.slow
def test_nuts_is_calibrated():
    rng = np.random.default_rng(SEED)
    names = list(scalar_parameters({"mu": 0.0, "tau": 0.0, "theta": np.zeros(NUM_GROUPS)}))
    ranks = {name: [] for name in names}
    narrowed_ranks = {name: [] for name in names}  # negative control: the test can fail
    divergences = 0
    seconds = []
    for r in range(NUM_REPLICATIONS):
        truth, y = simulate(rng)
        posterior = bo.Posterior.from_numpyro(model, y=y, sigma=SIGMA)
        start = time.perf_counter()
        ensemble = bo.sample(
            posterior,
            bo.NUTS(),
            key=jax.random.key(SEED + r),
            num_chains=NUM_CHAINS,
            num_warmup=NUM_WARMUP,
            num_draws=DRAWS_PER_CHAIN,
            thinning=THINNING,
            progress=False,
        )
        draws = scalar_parameters(jax.tree.map(np.asarray, ensemble.params))
        seconds.append(time.perf_counter() - start)
        divergences += int(jnp.sum(ensemble.stats["diverging"]))
        for name in names:
            kept = draws[name].reshape(-1)[:NUM_RANKED]
            assert np.all(np.isfinite(kept)), f"replication {r}: non-finite draws of {name}"
            ranks[name].append(int(np.sum(kept < truth[name])))
            narrowed = kept.mean() + NARROWING * (kept - kept.mean())
            narrowed_ranks[name].append(int(np.sum(narrowed < truth[name])))

    edges = np.linspace(0, NUM_RANKED + 1, NUM_BINS + 1)  # 10 bins of 20 rank values
    results = {}
    for name in names:
        counts, _ = np.histogram(ranks[name], bins=edges)
        narrowed_counts, _ = np.histogram(narrowed_ranks[name], bins=edges)
        results[name] = (
            counts,
            stats.chisquare(counts).pvalue,
            stats.chisquare(narrowed_counts).pvalue,
        )
    total_draws = NUM_REPLICATIONS * NUM_CHAINS * DRAWS_PER_CHAIN
    print(
        f"\nSBC: {NUM_REPLICATIONS} replications, first bo.sample {seconds[0]:.1f} s, the others "
        f"{np.mean(seconds[1:]):.2f} s on average; {divergences} divergent of {total_draws} draws"
    )
    for name, (counts, pvalue, narrowed_p) in results.items():
        print(
            f"  {name:9s} p = {pvalue:.3f}  bins {counts.tolist()}  "
            f"(draws narrowed x{NARROWING}: p = {narrowed_p:.1e})"
        )
    failed = {name: p for name, (_, p, _) in results.items() if not p > P_MIN}
    assert not failed, f"ranks not uniform (chi-square p <= {P_MIN}): {failed}"
    undetected = {name: p for name, (_, _, p) in results.items() if not p < P_MIN}
    assert not undetected, f"narrowed draws not detected (chi-square p >= {P_MIN}): {undetected}"
