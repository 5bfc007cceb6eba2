"""Tests for `bayesover.data`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesover.data import (
    DATASETS,
    NUM_CLASSES,
    Data,
    Standardizer,
    gap_function,
    gap_regression_1d,
    load,
    num_classes,
    teacher_student,
    two_moons,
)


class _Teacher(eqx.Module):
    """A fixed teacher g(x) = tanh(W x), cheaper to build than `eqx.nn.MLP`."""

    weight: jax.Array

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.tanh(self.weight @ x)


def _teacher(num_outputs: int, num_inputs: int) -> _Teacher:
    weight = np.random.default_rng(0).normal(size=(num_outputs, num_inputs))
    return _Teacher(jnp.asarray(weight, dtype=jnp.float32))


def _data(n: int = 10, d: int = 3, seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    return Data(rng.normal(size=(n, d)), rng.normal(size=(n,)))


# ---------------------------------------------------------------------------------------------
# Construction and validation
# ---------------------------------------------------------------------------------------------


def test_construction_dtypes_and_shapes():
    data = Data(np.ones((5, 2, 3), dtype=np.float64), np.arange(5))
    assert data.inputs.dtype == jnp.result_type(float)
    assert data.targets.dtype == jnp.int32
    assert data.num_points == len(data) == 5
    assert data.feature_shape == (2, 3)
    assert data.target_shape == ()
    assert Data([[1.0], [2.0]], [True, False]).targets.dtype == jnp.int32
    assert Data([[1.0], [2.0]], [0.5, 1.5]).targets.dtype == jnp.result_type(float)


def test_nan_in_inputs():
    x = np.ones((4, 2))
    x[1, 0] = np.nan
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"`inputs`.*NaN/inf.*2 of"):
        Data(x, np.ones(4))


def test_inf_in_targets():
    y = np.ones(4)
    y[3] = np.inf
    with pytest.raises(ValueError, match=r"`targets`.*NaN/inf.*1 of"):
        Data(np.ones((4, 2)), y)


def test_empty():
    with pytest.raises(ValueError, match="empty data set"):
        Data(np.ones((0, 2)), np.ones(0))


def test_length_mismatch():
    with pytest.raises(ValueError, match=r"`inputs` and `targets`.*same leading length"):
        Data(np.ones((4, 2)), np.ones(3))


def test_scalar_arrays_rejected():
    with pytest.raises(ValueError, match="`inputs` must be at least 1-D"):
        Data(1.0, np.ones(1))
    with pytest.raises(ValueError, match="`targets` must be at least 1-D"):
        Data(np.ones((1, 2)), 1.0)
    with pytest.raises(TypeError, match="`targets`"):
        Data(np.ones((2, 2)), np.array(["a", "b"]))


def test_construct_inside_jit():
    out = jax.jit(lambda x, y: Data(x, y).inputs.sum())(jnp.ones((3, 2)), jnp.ones(3))
    assert out == 6.0


# ---------------------------------------------------------------------------------------------
# take / split / standardize
# ---------------------------------------------------------------------------------------------


def test_take_eager_and_jit():
    data = _data()
    idx = jnp.array([4, 1, 1])
    sub = data.take(idx)
    assert isinstance(sub, Data) and len(sub) == 3
    np.testing.assert_array_equal(sub.inputs, data.inputs[idx])
    jitted = jax.jit(lambda d, i: d.take(i))(data, idx)
    np.testing.assert_array_equal(jitted.targets, data.targets[idx])


def test_split_disjoint_covering_reproducible():
    n = 20
    data = Data(np.arange(n, dtype=np.float32)[:, None], np.arange(n))
    train, test = data.split(0.25, seed=3)
    assert (len(train), len(test)) == (15, 5)
    tr, te = set(np.asarray(train.targets).tolist()), set(np.asarray(test.targets).tolist())
    assert tr.isdisjoint(te) and tr | te == set(range(n))
    train2, test2 = data.split(0.25, seed=3)
    np.testing.assert_array_equal(test.targets, test2.targets)
    _, test3 = data.split(0.25, seed=4)
    assert not np.array_equal(test.targets, test3.targets)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, 0.01])
def test_split_bad_fraction(fraction):
    with pytest.raises(ValueError, match="`test_fraction`"):
        _data(n=10).split(fraction)


def test_standardize_and_apply():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=5.0, scale=3.0, size=(40, 3))
    x[:, 2] = 7.0  # constant column: std floored to 1
    y = rng.normal(loc=-2.0, scale=4.0, size=40)
    train, test = Data(x, y).split(0.25, seed=0)
    z, scaler = train.standardize(inputs=True, targets=True)
    assert isinstance(scaler, Standardizer)
    zx, zy = np.asarray(z.inputs), np.asarray(z.targets)
    np.testing.assert_allclose(zx[:, :2].mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(zx[:, :2].std(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(zx[:, 2], 0.0)
    np.testing.assert_allclose(zy.mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(zy.std(), 1.0, atol=1e-5)
    # apply uses the *training* statistics
    zt = scaler.apply(test)
    tx, ty = np.asarray(train.inputs), np.asarray(train.targets)
    expected = (np.asarray(test.inputs)[:, :2] - tx[:, :2].mean(0)) / tx[:, :2].std(0)
    np.testing.assert_allclose(np.asarray(zt.inputs)[:, :2], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(zt.inputs)[:, 2], 0.0)
    np.testing.assert_allclose(
        np.asarray(scaler.inverse_targets(zt.targets)), np.asarray(test.targets), rtol=1e-5
    )
    np.testing.assert_allclose(float(scaler.target_scale), ty.std(), rtol=1e-5)


def test_standardize_inputs_only():
    data = _data()
    z, scaler = data.standardize()
    assert scaler.target_mean is None and scaler.target_scale == 1.0
    np.testing.assert_array_equal(z.targets, data.targets)
    np.testing.assert_array_equal(scaler.inverse_targets(data.targets), data.targets)
    with pytest.raises(TypeError, match="`targets=True`"):
        Data(np.ones((3, 1)), np.arange(3)).standardize(targets=True)


# ---------------------------------------------------------------------------------------------
# Minibatching
# ---------------------------------------------------------------------------------------------


def test_batch_indices_one_epoch():
    n, b = 23, 5
    idx = np.asarray(_data(n=n).batch_indices(jax.random.key(0), b))
    assert idx.shape == (n // b, b)
    assert np.issubdtype(idx.dtype, np.integer)
    flat = idx.ravel()
    assert len(set(flat.tolist())) == flat.size == n // b * b
    assert flat.min() >= 0 and flat.max() < n


def test_batch_indices_jit():
    data = _data(n=12)
    key = jax.random.key(1)
    eager = data.batch_indices(key, 4)
    jitted = jax.jit(Data.batch_indices, static_argnums=2)(data, key, 4)
    filtered = eqx.filter_jit(lambda d, k: d.batch_indices(k, 4))(data, key)
    np.testing.assert_array_equal(eager, jitted)
    np.testing.assert_array_equal(eager, filtered)


@pytest.mark.parametrize("batch_size", [0, 11])
def test_batch_indices_bad_batch_size(batch_size):
    data = _data(n=10)
    with pytest.raises(ValueError, match=r"`batch_size`.*N = 10"):
        data.batch_indices(jax.random.key(0), batch_size)
    with pytest.raises(ValueError, match="`batch_size`"):
        data.minibatches(jax.random.key(0), batch_size)


def test_minibatches_sizes_and_epochs():
    n, b = 10, 3
    data = Data(np.arange(n, dtype=np.float32)[:, None], np.arange(n))
    batches = list(data.minibatches(jax.random.key(0), b, num_epochs=2))
    assert len(batches) == 2 * (n // b)
    assert all(isinstance(m, Data) and m.inputs.shape == (b, 1) for m in batches)
    epochs = [np.concatenate([m.targets for m in batches[i * 3 : (i + 1) * 3]]) for i in range(2)]
    for e in epochs:
        assert len(set(e.tolist())) == n // b * b  # without replacement within an epoch
    assert not np.array_equal(epochs[0], epochs[1])  # fresh permutation each epoch
    # infinite by default
    it = data.minibatches(jax.random.key(0), b)
    assert len([next(it) for _ in range(7)]) == 7
    with pytest.raises(ValueError, match="`num_epochs`"):
        data.minibatches(jax.random.key(0), b, num_epochs=0)


# ---------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, n, d, k",
    [
        ("iris", 150, 4, 3),
        ("diabetes", 442, 10, None),
        ("breast_cancer", 569, 30, 2),
        ("digits", 1797, 64, 10),
        ("wine", 178, 13, 3),
    ],
)
def test_load(name, n, d, k):
    assert name in DATASETS
    data = load(name)
    assert data.inputs.shape == (n, d) and data.inputs.dtype == jnp.float32
    assert data.targets.shape == (n,)
    assert num_classes(name) == k
    if k is None:
        assert jnp.issubdtype(data.targets.dtype, jnp.floating)
    else:
        assert data.targets.dtype == jnp.int32 and NUM_CLASSES[name] == k
        assert set(np.unique(data.targets).tolist()) == set(range(k))


def test_load_unknown():
    with pytest.raises(ValueError, match=r"`name`.*iris"):
        load("mnist")
    with pytest.raises(ValueError, match="`name`"):
        num_classes("mnist")


# ---------------------------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------------------------


def test_gap_regression_1d():
    data = gap_regression_1d(jax.random.key(0), 50, noise_scale=0.05)
    assert data.inputs.shape == (50, 1) and data.targets.shape == (50,)
    x = np.asarray(data.inputs[:, 0])
    assert np.all((np.abs(x) >= 0.3) & (np.abs(x) <= 1.0))
    assert (x < 0).sum() == 25
    resid = np.asarray(data.targets) - np.asarray(gap_function(x))
    assert np.abs(resid).max() < 5 * 0.05
    with pytest.raises(ValueError, match="`noise_scale`"):
        gap_regression_1d(jax.random.key(0), noise_scale=-1.0)
    with pytest.raises(ValueError, match="`num_points`"):
        gap_regression_1d(jax.random.key(0), 0)


def test_two_moons():
    data = two_moons(jax.random.key(0), 31)
    assert data.inputs.shape == (31, 2)
    assert data.targets.shape == (31,) and data.targets.dtype == jnp.int32
    assert set(np.unique(data.targets).tolist()) == {0, 1}
    assert int(np.asarray(data.targets).sum()) == 31 - 31 // 2


def test_teacher_student_regression():
    teacher = _teacher(1, 3)
    noise = 0.01
    data = teacher_student(jax.random.key(1), teacher, 64, input_shape=(3,), noise_scale=noise)
    assert data.inputs.shape == (64, 3) and data.targets.shape == (64,)
    clean = np.tanh(np.asarray(data.inputs) @ np.asarray(teacher.weight).T)[:, 0]
    resid = np.asarray(data.targets) - clean
    assert np.abs(resid).max() < 5 * noise
    assert resid.std() == pytest.approx(noise, rel=0.3)


def test_teacher_student_classification():
    data = teacher_student(
        jax.random.key(1), _teacher(3, 4), 40, input_shape=4, task="classification"
    )
    assert data.inputs.shape == (40, 4) and data.targets.dtype == jnp.int32
    labels = np.asarray(data.targets)
    assert labels.shape == (40,) and labels.min() >= 0 and labels.max() < 3


def test_teacher_student_validation():
    teacher = _teacher(1, 2)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="`task`"):
        teacher_student(key, teacher, 5, input_shape=(2,), task="ranking")
    with pytest.raises(ValueError, match="`num_points`"):
        teacher_student(key, teacher, 0, input_shape=(2,))
    with pytest.raises(ValueError, match="`noise_scale`"):
        teacher_student(key, teacher, 5, input_shape=(2,), noise_scale=0.0)
    with pytest.raises(ValueError, match="`teacher`.*logits"):
        teacher_student(key, teacher, 5, input_shape=(2,), task="classification")
