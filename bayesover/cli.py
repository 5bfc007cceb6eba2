"""The `bayesover` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

from bayesover.builders import DEFAULT_MODEL, load_problem
from bayesover.optimize import map_estimate
from bayesover.posterior import Posterior


def _demo(args: argparse.Namespace) -> int:
    problem = load_problem(args.model, seed=args.seed)
    posterior = problem.posterior
    assert isinstance(posterior, Posterior)
    print(
        f"model {problem.name}: {posterior.model.num_params} weights, "
        f"{posterior.num_data} training points, "
        f"{problem.test.num_points if problem.test else 0} test"
    )
    start = time.perf_counter()
    result = map_estimate(
        posterior,
        key=jax.random.key(args.seed),
        optimizer=optax.adam(args.learning_rate),
        num_steps=args.steps,
    )
    elapsed = time.perf_counter() - start
    position = result.position
    print(f"MAP by optax.adam: {args.steps} steps in {elapsed:.1f} s")
    print(f"  log density at MAP (train): {float(posterior.logdensity(position)):.3f}")
    if problem.test is not None:
        loglik = posterior.pointwise_loglikelihood(position, problem.test)
        print(f"  test NLL (mean -log p(y|x, MAP)): {float(-jnp.mean(loglik)):.4f}")
        outputs = jax.vmap(posterior.module(position))(problem.test.inputs)  # type: ignore
        if jnp.issubdtype(problem.test.targets.dtype, jnp.integer):
            accuracy = jnp.mean(jnp.argmax(outputs, -1) == problem.test.targets)
            print(f"  test accuracy: {float(accuracy):.4f}")
        else:
            rmse = jnp.sqrt(
                jnp.mean((outputs.reshape(problem.test.targets.shape) - problem.test.targets) ** 2)
            )
            print(f"  test RMSE (standardised targets): {float(rmse):.4f}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayesover", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="fit the bundled default model and print its metrics")
    demo.add_argument("--model", default=DEFAULT_MODEL, help="model file or name in models/")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--steps", type=_positive_int, default=2000, help="MAP optimiser steps")
    demo.add_argument("--learning-rate", type=_positive_float, default=1e-2)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"bayesover {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
