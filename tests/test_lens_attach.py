"""`bo.lens.attach`: lens results become the `lens` group the report reads."""

import arviz as az
import numpy as np
import pytest

import bayesover as bo


def _regret(values):
    n = np.arange(1, len(values) + 1)
    return bo.lens.RegretResult(
        n=n,
        regret=np.asarray(values, float),
        regret_stderr=np.full(len(values), 0.1),
        log_evidence=None,
        truth_loglik=-n.astype(float),
        code_length_nats=n.astype(float),
        reference="truth",
    )


def test_attach_adds_and_replaces_lens_variables():
    tree = az.from_dict({"posterior": {"a": np.zeros((2, 5))}})
    with_lens = bo.lens.attach(tree, _regret([0.5, 0.8, 1.0]))
    assert "lens" not in tree.children  # the input is not modified
    np.testing.assert_array_equal(with_lens["lens"]["regret"].values, [0.5, 0.8, 1.0])
    again = bo.lens.attach(with_lens, _regret([0.4, 0.6]))
    np.testing.assert_array_equal(again["lens"]["regret"].values, [0.4, 0.6])
    assert {"posterior", "lens"} <= set(again.children)


def test_attach_rejects_bad_input():
    tree = az.from_dict({"posterior": {"a": np.zeros((2, 5))}})
    with pytest.raises(TypeError, match="`tree`"):
        bo.lens.attach({"posterior": 1}, _regret([1.0]))
    with pytest.raises(ValueError, match="`results`"):
        bo.lens.attach(tree)
    with pytest.raises(TypeError, match=r"`results\[0\]`"):
        bo.lens.attach(tree, 3.0)
