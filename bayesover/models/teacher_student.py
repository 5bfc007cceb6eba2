"""Teacher-student regression: the data come from a known network, so the truth is known.

The teacher is a small tanh MLP (2 -> 4 -> 1) whose weights are N(0, teacher_scale^2 / fan_in):
a small scale gives a simple, nearly linear truth, a large one a complex, wiggly truth. The
student is a wider MLP (2 -> width -> 1) with a fan-in Normal prior and the teacher's known
Gaussian noise. `teacher` is returned inside the problem's name-space: see `teacher(...)`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

import bayesover as bo

INPUT_DIM = 2


def teacher(seed: int = 0, *, teacher_scale: float = 1.0, hidden: int = 4) -> eqx.nn.MLP:
    """The fixed truth: an MLP with weights N(0, teacher_scale^2 / fan_in)."""
    net = eqx.nn.MLP(INPUT_DIM, 1, hidden, 1, activation=jnp.tanh, key=jax.random.key(1000 + seed))
    params, static = eqx.partition(net, eqx.is_inexact_array)
    keys = iter(jax.random.split(jax.random.key(2000 + seed), len(jax.tree.leaves(params))))
    infos = bo.priors.leaf_infos(params)
    leaves = [
        teacher_scale / jnp.sqrt(info.fan_in) * jax.random.normal(next(keys), info.shape)
        for info in infos
    ]
    return eqx.combine(jax.tree.unflatten(jax.tree.structure(params), leaves), static)


def build(
    seed: int = 0,
    *,
    width: int = 32,
    num_points: int = 200,
    noise_scale: float = 0.1,
    teacher_scale: float = 1.0,
) -> bo.Problem:
    """Student of `width` hidden units on `num_points` teacher draws (+ as many test points)."""
    truth = teacher(seed, teacher_scale=teacher_scale)
    data = bo.data.teacher_student(
        jax.random.key(seed),
        truth,
        2 * num_points,
        input_shape=(INPUT_DIM,),
        noise_scale=noise_scale,
    )
    train = data.take(jnp.arange(num_points))
    test = data.take(jnp.arange(num_points, 2 * num_points))
    student = eqx.nn.MLP(INPUT_DIM, 1, width, 1, activation=jnp.tanh, key=jax.random.key(seed + 1))
    model = bo.Model(student, bo.priors.FanInNormal(1.0), bo.likelihoods.Gaussian(noise_scale))
    return bo.Problem(bo.Posterior(model, train), test, f"teacher_student_w{width}")
