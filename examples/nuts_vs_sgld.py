"""NUTS vs SGLD on a 1-D regression with a gap.

The data (`bo.data.gap_regression_1d`) cover x in [-1, -0.3] and [0.3, 1] and nothing in
between. A Bayesian network should be sure of itself near the data and unsure in the gap. We
fit one small tanh MLP (1 -> 32 -> 32 -> 1, noise scale learned) twice:

- full-batch NUTS (BlackJAX, window adaptation), the reference;
- SGLD with a cyclical step size (Zhang et al. 2020) on minibatches, one draw per cycle
  (`thinning = cycle_length`), several chains to cover several modes;

then plot both posterior predictives side by side (mean +- 2 sd of y, i.e. noise included)
and print each one's negative log predictive density (NLL) per test point, on held-out points
from the data's distribution and on points in the gap.

Run from the repository root (two to three minutes on a 2-core CPU):

    .venv/bin/python examples/nuts_vs_sgld.py --out runs/nuts_vs_sgld.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

import bayesover as bo

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NOISE = 0.1  # the data's noise standard deviation


def prior(path, leaf):
    """A wide N(0, 5^2) on the input layer, so that its tanh units can bend on the scale of the
    data's wiggles (a fan-in prior there, N(0, 1) on x in [-1, 1], makes almost linear units
    and the posterior explains the wiggles as noise); fan-in scaled N(0, 1/fan_in) after."""
    if path.startswith("layers[0]"):
        return bo.priors.Normal(5.0)
    return bo.priors.FanInNormal(1.0)


def make_problem(seed: int, num_train: int):
    key_train, key_test, key_gap, key_noise, key_net = jax.random.split(jax.random.key(seed), 5)
    train = bo.data.gap_regression_1d(key_train, num_train, noise_scale=NOISE)
    test = bo.data.gap_regression_1d(key_test, 500, noise_scale=NOISE)
    # points inside the gap, where there are no training data
    x_gap = jax.random.uniform(key_gap, (200, 1), minval=-0.3, maxval=0.3)
    y_gap = bo.data.gap_function(x_gap[:, 0]) + NOISE * jax.random.normal(key_noise, (200,))
    gap = bo.Data(x_gap, y_gap)
    net = eqx.nn.MLP(1, 1, 32, 2, activation=jnp.tanh, key=key_net)
    model = bo.Model(net, prior, bo.likelihoods.Gaussian(scale=None))
    return bo.Posterior(model, train), test, gap


def run_nuts(posterior, seed, quick):
    return bo.sample(
        posterior,
        bo.NUTS(max_tree_depth=4 if quick else 8),
        key=jax.random.key(seed),
        num_chains=2,
        num_warmup=20 if quick else 400,
        num_draws=20 if quick else 400,
        init="map",
        map_steps=500 if quick else 2000,
        progress=False,
    )


def run_sgld(posterior, seed, quick):
    cycle = 100 if quick else 1000
    schedule = bo.schedules.cyclical(1e-4, cycle_length=cycle)
    return bo.sample(
        posterior,
        bo.SGLD(step_size=1e-4, batch_size=16, schedule=schedule),
        key=jax.random.key(seed),
        num_chains=4,
        num_warmup=5 * cycle,  # whole cycles, so every kept draw ends a cycle
        num_draws=10 if quick else 100,  # one draw per cycle
        thinning=cycle,
        init="prior",
        progress=False,
    )


def nll(ensemble, data):
    """Mean negative log predictive density per point, of the mixture over all draws."""
    return float(-jnp.mean(ensemble.predict(data.inputs).log_prob(data.targets)))


def band(ensemble, grid):
    predictive = ensemble.predict(grid[:, None])
    mean = np.asarray(predictive.mean)
    sd = np.sqrt(np.asarray(predictive.variance))
    return mean, sd


def plot(path, posterior, results, grid):
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.2), sharey=True)
    x, y = np.asarray(posterior.data.inputs[:, 0]), np.asarray(posterior.data.targets)
    truth = np.asarray(bo.data.gap_function(grid))
    for ax, (title, ensemble, scores) in zip(axes, results, strict=True):
        mean, sd = band(ensemble, jnp.asarray(grid))
        ax.axvspan(-0.3, 0.3, color="0.93", lw=0, label="gap (no data)")
        ax.fill_between(
            grid,
            mean - 2 * sd,
            mean + 2 * sd,
            color="C0",
            alpha=0.3,
            label="mean ± 2 sd (noise included)",
        )
        ax.plot(grid, mean, color="C0", lw=2, label="predictive mean")
        ax.plot(grid, truth, color="k", ls="--", lw=1, label="true f(x)")
        ax.scatter(x, y, s=10, color="C3", zorder=3, label="training data")
        ax.set_title(f"{title}\nNLL test {scores[0]:.3f}, gap {scores[1]:.3f}")
        ax.set_xlabel("x")
        ax.set_xlim(grid[0], grid[-1])
        ax.set_ylim(-2.5, 2.5)
    axes[0].set_ylabel("y")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description="NUTS vs SGLD on a 1-D regression with a gap.")
    parser.add_argument("--out", type=Path, default=Path("runs/nuts_vs_sgld.png"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-train", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="tiny runs (a smoke test)")
    args = parser.parse_args(argv)

    posterior, test, gap = make_problem(args.seed, args.num_train)
    print(f"network: {posterior.model.num_params} weights, {posterior.num_data} training points")

    results = []
    for name, run in (("NUTS", run_nuts), ("SGLD, cyclical step size", run_sgld)):
        start = time.perf_counter()
        ensemble = run(posterior, args.seed + 1, args.quick)
        seconds = time.perf_counter() - start
        if not bool(np.all(np.asarray(ensemble.chain_ok()))):
            ensemble = ensemble.healthy()
        scores = (nll(ensemble, test), nll(ensemble, gap))
        extra = ""
        if "diverging" in ensemble.stats:
            extra = (
                f", {int(np.sum(ensemble.stats['diverging']))} divergences, mean tree depth "
                f"{float(np.mean(ensemble.stats['tree_depth'])):.1f}"
            )
        print(
            f"{name}: {ensemble.num_chains} chains x {ensemble.num_draws} draws in "
            f"{seconds:.0f} s{extra}; test NLL {scores[0]:.3f}, gap NLL {scores[1]:.3f}"
        )
        results.append((name, ensemble, scores))

    plot(args.out, posterior, results, np.linspace(-1.5, 1.5, 301))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
