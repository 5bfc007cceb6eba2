"""The demo's SG-MCMC mixes: cyclical pSGLD passes the function-space diagnostics (issue 14).

The demo's configuration (`bayesover.cli._main.DEMO_PLAN["psgld"]`: preconditioned SGLD, 4
chains, batches of 128, cycles of 50 steps peaking at 0.02/N, 400 draws, one per cycle) on the
bundled default model, with the demo's key and with two other keys. Its function values f at the
probe inputs and its log-likelihood must have rank R-hat < 1.01 and bulk ESS > 400 (the thresholds
`bo.diagnose` uses for 4 chains), and no chain may stop (cyclical plain SGLD at its mixing step
overflows about one chain in 20). SG-MCMC is biased (no Metropolis step, minibatch noise): the
slow test bounds that bias against the demo's NUTS run.
"""

import jax
import numpy as np
import pytest

from bayesover.cli._main import DEMO_PLAN, _run, _tree, demo_run_args, main
from bayesover.cli.builders import load_problem
from bayesover.diagnostics._verdict import diagnose


def _demo_run(problem, name: str):
    """One run of the demo's plan entry `name`, with the key the demo gives it."""
    index = list(DEMO_PLAN).index(name)
    key = jax.random.fold_in(jax.random.key(0), index)
    ensemble = _run(problem, name, demo_run_args(name), key)
    return ensemble, _tree(problem, ensemble, name)


@pytest.fixture(scope="module")
def problem():
    return load_problem("regression_mlp", seed=0)


@pytest.fixture(scope="module")
def sgld(problem):
    return _demo_run(problem, "psgld")


def _function_space(tree):
    table = diagnose(tree).table
    names = [n for n in table.index if str(n).startswith("f[")] + ["log_lik"]
    return table.loc[names]


def test_demo_psgld_is_cyclical_and_keeps_one_draw_per_cycle(sgld):
    ensemble, _ = sgld
    steps = np.asarray(ensemble.stats["step_size"])  # the step of each kept draw
    peak = 0.02 / 354  # _CYCLICAL_PEAK["psgld"] / N
    assert ensemble.config["sampler_name"] == "pSGLD"
    assert ensemble.config["thinning"] == DEMO_PLAN["psgld"]["cycle_length"] == 50
    # every kept draw is a cycle's last step: the smallest of the cosine, eps/2 (cos(0.98 pi) + 1)
    np.testing.assert_allclose(steps, peak / 2 * (np.cos(np.pi * 0.98) + 1), rtol=1e-4)


def test_demo_psgld_passes_its_function_space_diagnostics(sgld):
    ensemble, tree = sgld
    assert bool(np.all(ensemble.chain_ok()))
    table = _function_space(tree)
    assert len(table) == 11  # f at the 10 probe inputs and the log-likelihood
    assert (table["r_hat"] < 1.01).all(), table["r_hat"]
    assert (table["ess_bulk"] > 400).all(), table["ess_bulk"]
    assert (table["verdict"] == "ok").all()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [104, 116])
def test_cyclical_psgld_mixes_on_keys_where_cyclical_sgld_stopped_a_chain(problem, seed):
    """Keys on which cyclical SGLD (peak 0.3/N) lost one chain of 4 (104) and two of 16 (116)."""
    args = demo_run_args("psgld", chains=16 if seed == 116 else 4)
    ensemble = _run(problem, "psgld", args, jax.random.key(seed))
    assert bool(np.all(ensemble.chain_ok()))
    table = _function_space(_tree(problem, ensemble, "psgld"))
    assert (table["r_hat"] < 1.01).all() and (table["ess_bulk"] > 400).all(), table


@pytest.mark.slow
def test_demo_psgld_bias_against_the_demo_nuts_is_small(problem, sgld):
    """Measured: |mean difference| <= 0.24 NUTS posterior sd for f (0.65 for the log-likelihood,
    which the minibatch noise lowers), sd ratio 0.93-1.06."""
    nuts = _function_space(_demo_run(problem, "nuts")[1])
    table = _function_space(sgld[1])
    assert (nuts["r_hat"] < 1.01).all()
    shift = np.abs(table["mean"] - nuts["mean"]) / nuts["sd"]
    assert (shift[:-1] < 0.35).all() and shift["log_lik"] < 0.9, shift
    ratio = table["sd"] / nuts["sd"]
    assert ((ratio > 0.9) & (ratio < 1.1)).all(), ratio


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sampler", "sgld", "--warmup", "150"], "--warmup 150 must be a multiple of"),
        (["--sampler", "sgld", "--thinning", "50"], "--thinning 50 must be a multiple of"),
        (["--sampler", "nuts"], "--cycle-length is a schedule of SG-MCMC"),
    ],
)
def test_cycle_length_that_does_not_fit_is_refused_before_any_work(
    tmp_path, capsys, extra, message
):
    out = tmp_path / "run"
    args = ["sample", "regression_mlp", "--cycle-length", "100", "--out", str(out), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()
