"""The `bayesover` command line: demo, sample, diagnose, report.

    bayesover demo                         NUTS, pSGLD and a deep ensemble on the default model
    bayesover sample MODEL --sampler nuts  one run of a model file, written to --out DIR
                                           (--name NAME adds it to DIR beside the others)
    bayesover diagnose DIR                 the verdict table of every run in DIR
    bayesover report DIR                   DIR/report.html, one self-contained page

A run directory holds one ArviZ DataTree per run (`NAME.nc`, netCDF) and `report.html`. Output
directories are built under a temporary name and renamed into place, so an interrupted command
leaves nothing half-written, and an existing directory is replaced only with `--overwrite`;
`sample --name NAME` instead writes one file, DIR/NAME.nc, and leaves the rest of DIR alone.
MODEL is the name of a bundled model (bayesover/models/: regression_mlp, ...), a name in
./models/ (posteriordb/arK), or any Python file with `build(seed, **options) -> bo.Problem`
(docs/model-files.md); `--option KEY=VALUE` passes options to it.

`--help` and every argument error answer before JAX is imported: the checks of the arguments
and of `--out` and `--checkpoint` run first, the heavy imports inside the commands after them.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_SG_MCMC = ("sgld", "sghmc", "psgld")
_ENSEMBLES = ("ensemble", "langevin-ensemble")  # MAP members (then MCLMC): no checkpoint
_SAMPLERS = ("nuts", "hmc", "mclmc", "adjusted-mclmc", *_SG_MCMC, *_ENSEMBLES)
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class CommandError(Exception):
    """A user error: printed as one line on stderr, exit status 2."""


# -- argument types -------------------------------------------------------------------------------
# argparse types parse text and answer before JAX is imported, so they do not use
# `bayesover._checks` (which imports JAX); `bo.sample` checks the values again when it runs.
def _int_at_least(minimum: int, expected: str) -> Callable[[str], int]:
    """An argparse type: the text as an int >= `minimum`, else "expected {expected}"."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "an integer >= 0")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _option(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` -> (KEY, VALUE as a Python literal, else the string itself)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE with KEY a Python name (e.g. width=32), got {text!r}"
        )
    try:
        return key, ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return key, value  # not a literal: the string (dataset=digits)


def _run_name(text: str) -> str:
    if text.endswith(".nc") or not _RUN_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected a file name without .nc (letters, digits, '_', '-', '.'), got {text!r}"
        )
    if text == "report":
        raise argparse.ArgumentTypeError("'report' is taken by DIR/report.html")
    return text


def _options(pairs: Sequence[tuple[str, Any]] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, value in pairs or ():
        if key in options:
            raise CommandError(f"--option {key} is given twice")
        if key == "seed":
            raise CommandError("--option seed: the seed is set with --seed")
        options[key] = value
    return options


# -- output directories ---------------------------------------------------------------------------
def _check_writable(target: Path, argument: str) -> None:
    """Fail now if `target` (a file or folder, with any missing parent folders) cannot be made."""
    from bayesover._atomic import check_writable_directory

    missing = target
    while not missing.parent.exists() and missing.parent != missing:
        missing = missing.parent
    if not missing.parent.is_dir():
        raise CommandError(
            f"{argument} {str(target)!r}: {str(missing.parent)!r} is not a directory"
        )
    try:
        check_writable_directory(missing, argument)
    except OSError as error:
        raise CommandError(error.strerror or str(error)) from None


def _check_out(out: Path, name: str | None, overwrite: bool, *, can_name: bool = True) -> Path:
    """Check `--out` before any work; return the file (--name) or folder that will be written."""
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {str(out)!r} exists and is not a directory")
    if name is not None:
        target = out / f"{name}.nc"
        if target.exists() and not overwrite:
            raise CommandError(
                f"run {name!r} exists in {str(out)!r}; pass --overwrite to replace that run, "
                "or choose another --name"
            )
        if target.exists() and not target.is_file():
            raise CommandError(f"{str(target)!r} exists and is not a file")
        _check_writable(target, "--out")
        return target
    if not out.name:
        raise CommandError(
            f"--out {str(out)!r} names no new folder; give one (runs/x), or pass --name NAME "
            f"to add a run to {str(out)!r}"
        )
    if out.exists() and any(out.iterdir()) and not overwrite:
        hint = ", or --name NAME to add a run to it" if can_name else ""
        raise CommandError(
            f"output directory {str(out)!r} exists and is not empty; pass --overwrite to "
            f"replace it{hint}"
        )
    _check_writable(out, "--out")  # the new folder is built beside it, then renamed
    return out


def _check_checkpoint(path: str | None, out: Path, name: str | None) -> Path | None:
    if path is None:
        return None
    checkpoint = Path(path)
    if checkpoint.exists() and not checkpoint.is_file():
        raise CommandError(f"--checkpoint {str(checkpoint)!r} exists and is not a file")
    if name is None and checkpoint.resolve().is_relative_to(out.resolve()):
        raise CommandError(
            f"--checkpoint {str(checkpoint)!r} is inside --out {str(out)!r}, which is replaced "
            "as a whole; put it elsewhere, or pass --name NAME (then --out is kept)"
        )
    _check_writable(checkpoint, "--checkpoint")
    return checkpoint


def _new_run_dir(out: Path, overwrite: bool, *, can_name: bool = True) -> Path:
    """A fresh temporary directory beside `out`, to be renamed into place by `_commit`."""
    _check_out(out, None, overwrite, can_name=can_name)  # again: it may have changed meanwhile
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def _commit(tmp: Path, out: Path) -> None:
    """Move the finished `tmp` to `out`; an old `out` is moved aside first, then removed."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def _load_runs(directory: Path) -> dict[str, Any]:
    from bayesover.diagnostics._datatree import load_datatree

    if not directory.is_dir():
        raise CommandError(f"run directory {str(directory)!r} does not exist")
    files = sorted(directory.glob("*.nc"))
    if not files:
        raise CommandError(f"run directory {str(directory)!r} holds no .nc DataTree files")
    runs = {}
    for path in files:
        try:
            runs[path.stem] = load_datatree(path)
        except (ValueError, OSError) as error:
            raise CommandError(str(error)) from None
    return runs


# -- samplers -------------------------------------------------------------------------------------
# SG-MCMC step sizes, as multiples of 1/N. Measured on the default model (regression_mlp, N = 354,
# 4 chains, docs/samplers-sgmcmc.md): a constant 0.05/N keeps the function-space sd within 9% of
# NUTS's but mixes slowly (R-hat up to 1.09 in 7,000 steps). Cycles of 100 steps peaking at
# 0.3/N mix SGLD (R-hat <= 1.007) but its large early steps overflow about one chain in 20 (the
# learned noise scale's gradient grows as N / sigma^2); pSGLD's preconditioner scales that
# direction down, and cycles peaking at 0.02/N mixed in every run (R-hat <= 1.009, no chain
# stopped in 108). SGHMC's peak is its constant default (not tuned).
_CONSTANT_STEP = 0.05
_CYCLICAL_PEAK = {"sgld": 0.3, "psgld": 0.02, "sghmc": _CONSTANT_STEP}
_DEFAULT_THINNING = 10
# Adjusted MCLMC's tuner starts from this step on networks: from BlackJAX's 0.2 sqrt(d) its first
# pass grows the trajectories to thousands of steps (981-weight MLP, 2 chains: 100 warm-up steps
# took 27.7 s against 0.4 s from 0.1; bo.AdjustedMCLMC's docstring).
_ADJUSTED_MCLMC_NETWORK_STEP = 0.1


def _thinning(args: argparse.Namespace, sampler: str) -> int:
    """`--thinning`; by default one draw per cycle with `--cycle-length`, else 10 for SG-MCMC
    and unadjusted MCLMC (one short step per draw; Langevin ensembles too), 1 for NUTS, HMC and
    adjusted MCLMC."""
    cycle, thinning = getattr(args, "cycle_length", None), getattr(args, "thinning", None)
    if thinning is not None:
        return thinning
    if cycle is not None:
        return cycle
    return _DEFAULT_THINNING if sampler in (*_SG_MCMC, "mclmc", "langevin-ensemble") else 1


def _check_cycle(args: argparse.Namespace) -> None:
    """With `--cycle-length L`, draws are kept at cycle ends: the warm-up and `--thinning` must
    be whole numbers of cycles (Zhang et al. 2020 keep the small-step end of each cycle)."""
    cycle = getattr(args, "cycle_length", None)
    if cycle is None:
        return
    if args.sampler not in _SG_MCMC:
        raise CommandError(
            f"--cycle-length is a schedule of SG-MCMC, not of --sampler {args.sampler}"
        )
    if args.warmup % cycle:
        raise CommandError(
            f"--warmup {args.warmup} must be a multiple of --cycle-length {cycle}, so that every "
            "kept draw ends a cycle"
        )
    if _thinning(args, args.sampler) % cycle:
        raise CommandError(
            f"--thinning {args.thinning} must be a multiple of --cycle-length {cycle}, so that "
            "every kept draw ends a cycle"
        )


def _run(problem, sampler: str, args: argparse.Namespace, key, checkpoint=None) -> Any:
    """One run of `sampler` on `problem.posterior`, as a `bo.Ensemble`."""
    import optax

    import bayesover as bo

    posterior = problem.posterior
    progress = not args.quiet
    network = isinstance(posterior, bo.Posterior)
    if sampler in _ENSEMBLES:
        if checkpoint is not None:
            raise CommandError(_no_checkpoint(sampler))
        if not network:
            raise CommandError(f"--sampler {sampler} needs a network model, not a NumPyro one")
        then: dict[str, Any] = {}
        if sampler == "langevin-ensemble":  # Sommer et al. (2025): modes, then short MCLMC
            then = dict(
                then_sample=bo.MCLMC(step_size=args.step_size),
                num_warmup=args.warmup,
                num_draws=args.draws,
                thinning=_thinning(args, sampler),
            )
        return bo.deep_ensemble(
            posterior,
            args.chains,
            optax.adam(args.learning_rate),
            args.map_steps,
            key=key,
            batch_size=min(args.batch_size, posterior.num_data),
            progress=progress,
            **then,
        )
    algorithm: Any
    if sampler == "nuts":
        algorithm = bo.NUTS(max_tree_depth=args.max_tree_depth)
    elif sampler == "hmc":
        algorithm = bo.HMC()
    elif sampler == "mclmc":
        algorithm = bo.MCLMC(step_size=args.step_size)
    elif sampler == "adjusted-mclmc":
        step = args.step_size
        if step is None and network:
            step = _ADJUSTED_MCLMC_NETWORK_STEP
        algorithm = bo.AdjustedMCLMC(step_size=step)
    else:
        if not network:
            raise CommandError(f"--sampler {sampler} needs a network model (minibatches)")
        n = posterior.num_data
        batch = min(args.batch_size, n)
        cls = {"sgld": bo.SGLD, "sghmc": bo.SGHMC, "psgld": bo.pSGLD}[sampler]
        cycle = getattr(args, "cycle_length", None)
        if cycle is None:  # a constant step
            step_size = args.step_size if args.step_size is not None else _CONSTANT_STEP / n
            algorithm = cls(step_size=step_size, batch_size=batch)
        else:  # cyclical: large steps explore, the cycle's small last steps are kept
            peak = _CYCLICAL_PEAK[sampler] / n
            step_size = args.step_size if args.step_size is not None else peak
            schedule = bo.schedules.cyclical(step_size, cycle)
            algorithm = cls(step_size=step_size, batch_size=batch, schedule=schedule)
    init = "map" if network else "prior"
    return bo.sample(
        posterior,
        algorithm,
        key=key,
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_draws=args.draws,
        thinning=_thinning(args, sampler),
        init=init,
        progress=progress,
        checkpoint=checkpoint,
    )


def _tree(problem, ensemble, name: str):
    import bayesover as bo

    test = problem.test if isinstance(problem.posterior, bo.Posterior) else None
    return bo.to_datatree(ensemble, problem.posterior, test=test, name=name)


def _metrics_line(tree) -> str:
    if "predictive_metrics" not in tree.children:
        return ""
    dataset = tree["predictive_metrics"].to_dataset()
    values = [f"{k} {float(v):.4f}" for k, v in dataset.data_vars.items() if v.ndim == 0]
    return ", ".join(values)


def _say(args: argparse.Namespace, text: str = "") -> None:
    if not args.quiet:
        print(text, flush=True)


# -- commands -------------------------------------------------------------------------------------
def _no_checkpoint(sampler: str) -> str:
    return (
        f"--checkpoint is not supported with --sampler {sampler}: a deep ensemble trains its "
        "members in one go and writes no checkpoint; leave --checkpoint out"
    )


def _sample(args: argparse.Namespace) -> int:
    # every check of the arguments first: no JAX, no model built, nothing written yet
    out = Path(args.out)
    options = _options(args.option)
    if args.checkpoint is not None and args.sampler in _ENSEMBLES:
        raise CommandError(_no_checkpoint(args.sampler))
    _check_cycle(args)
    target = _check_out(out, args.name, args.overwrite)
    checkpoint = _check_checkpoint(args.checkpoint, out, args.name)

    import jax

    from bayesover.diagnostics._datatree import save_datatree

    problem = _load(args.model, args.seed, options)
    name = args.name or args.sampler
    key = jax.random.key(args.seed)
    start = time.perf_counter()
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
    if args.name is not None:  # one new file in DIR; the other runs and the report stay
        ensemble = _run(problem, args.sampler, args, key, checkpoint)
        tree = _tree(problem, ensemble, name)
        out.mkdir(parents=True, exist_ok=True)
        save_datatree(tree, target, overwrite=args.overwrite)
        elapsed = time.perf_counter() - start
        where = f"{target} (`bayesover report {out}` covers every run in {out}/)"
    else:
        tmp = _new_run_dir(out, args.overwrite)
        try:
            ensemble = _run(problem, args.sampler, args, key, checkpoint)
            tree = _tree(problem, ensemble, name)
            save_datatree(tree, tmp / f"{name}.nc")
            elapsed = time.perf_counter() - start
            _commit(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        where = f"{out}/"
    _say(args, f"{args.sampler} on {problem.name}: {elapsed:.1f} s, written to {where}")
    _print_diagnostics(args, {name: tree})
    return 0


def _load(model: str, seed: int, options: dict[str, Any] | None = None):
    from bayesover.cli.builders import OptionError, load_problem

    try:
        return load_problem(model, seed=seed, **(options or {}))
    except FileNotFoundError as error:
        raise CommandError(str(error)) from None
    except CommandError:
        raise
    except OptionError as error:
        accepted = ", ".join(error.accepted) if error.accepted else "no options"
        raise CommandError(
            f"--option {', '.join(error.unknown)}: not an option of model {model!r}; its "
            f"build() accepts {accepted}"
        ) from None
    except (ValueError, TypeError) as error:
        raise CommandError(f"model {model!r} could not be built: {error}") from None
    except Exception as error:  # a broken model file: its own error, in one line
        raise CommandError(
            f"model {model!r} failed to build: {type(error).__name__}: {error}"
        ) from None


def _print_diagnostics(args: argparse.Namespace, runs: dict[str, Any]) -> None:
    from bayesover.diagnostics._verdict import diagnose

    for name, tree in runs.items():
        result = diagnose(tree)
        print(f"\n== {name}: verdict {result.verdict} ==")
        print(result)
        metrics = _metrics_line(tree)
        if metrics:
            print(f"test metrics: {metrics}")


def _diagnose(args: argparse.Namespace) -> int:
    _print_diagnostics(args, _load_runs(Path(args.directory)))
    return 0


def _report(args: argparse.Namespace) -> int:
    from bayesover.diagnostics._report import report

    directory = Path(args.directory)
    runs = _load_runs(directory)
    path = Path(args.out) if args.out else directory / "report.html"
    report(runs, path, title=f"bayesover report: {directory.name}")
    _say(args, f"report written to {path}")
    return 0


# The demo's runs, by name (the name is the sampler). Its SG-MCMC mixes: preconditioned SGLD with
# cyclical steps, one draw per 50-step cycle (see _CYCLICAL_PEAK; tests/test_demo_sgld.py checks
# its function-space diagnostics). Batches of 128 rather than 32 halve the minibatch noise's bias
# of the log-likelihood (measured with SGLD: -370.8 vs -372.9 nats, NUTS -368.7 +- 4.8).
DEMO_PLAN: dict[str, dict[str, Any]] = {
    "nuts": dict(chains=4, warmup=300, draws=300),
    "psgld": dict(chains=4, warmup=1000, draws=400, thinning=50, cycle_length=50, batch_size=128),
    "ensemble": dict(chains=8),
}
DEMO_QUICK_PLAN: dict[str, dict[str, Any]] = {  # a smoke run: every step, a fraction of the work
    "nuts": dict(chains=2, warmup=30, draws=30),
    "psgld": dict(chains=2, warmup=100, draws=30, thinning=10, cycle_length=10),
    "ensemble": dict(chains=2, map_steps=100),
}


def demo_run_args(name: str, *, quick: bool = False, **overrides: Any) -> argparse.Namespace:
    """The arguments of the demo's run `name` ("nuts", "psgld", "ensemble"): the demo's defaults
    with its plan's settings (and `overrides`) on top, for `_run`."""
    plan = DEMO_QUICK_PLAN if quick else DEMO_PLAN
    defaults = vars(build_parser().parse_args(["demo", "--quiet"]))
    return argparse.Namespace(**{**defaults, **plan[name], **overrides})


def _demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    options = _options(args.option)
    _check_out(out, None, args.overwrite, can_name=False)  # before any work

    import jax

    from bayesover.diagnostics._datatree import save_datatree
    from bayesover.diagnostics._report import report

    problem = _load(args.model, args.seed, options)
    posterior = problem.posterior
    _say(
        args,
        f"model {problem.name}: {getattr(posterior.model, 'num_params', '?')} weights, "
        f"{posterior.num_data} training points, "
        f"{problem.test.num_points if problem.test else 0} test",
    )
    tmp = _new_run_dir(out, args.overwrite, can_name=False)
    runs: dict[str, Any] = {}
    timings: dict[str, float] = {}
    plan = list((DEMO_QUICK_PLAN if args.quick else DEMO_PLAN).items())
    try:
        for index, (name, settings) in enumerate(plan):
            run_args = argparse.Namespace(**{**vars(args), **settings})
            _say(args, f"[{index + 1}/{len(plan)}] {name}: {_describe(name, run_args)}")
            start = time.perf_counter()
            ensemble = _run(problem, name, run_args, jax.random.fold_in(jax.random.key(0), index))
            runs[name] = _tree(problem, ensemble, name)
            timings[name] = time.perf_counter() - start
            save_datatree(runs[name], tmp / f"{name}.nc")
        report(runs, tmp / "report.html", title=f"bayesover demo: {problem.name}")
        (tmp / "timings.json").write_text(json.dumps(timings, indent=1))
        _commit(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _print_diagnostics(args, runs)
    print("\nmethod    seconds  test metrics")
    for name, tree in runs.items():
        print(f"{name:9s} {timings[name]:7.1f}  {_metrics_line(tree)}")
    print(f"\nwritten: {out}/ ({', '.join(sorted(p.name for p in out.iterdir()))})")
    return 0


def _describe(name: str, args: argparse.Namespace) -> str:
    if name == "ensemble":
        return f"{args.chains} MAP members, {args.map_steps} Adam steps each"
    thinning = _thinning(args, name)
    cycle = getattr(args, "cycle_length", None)
    schedule = f", cyclical steps (cycles of {cycle})" if cycle is not None else ""
    every = f", thinning {thinning}" if thinning > 1 else ""
    return f"{args.chains} chains, {args.warmup} warm-up + {args.draws} draws{every}{schedule}"


# -- the parser -----------------------------------------------------------------------------------
def _add_run_options(parser: argparse.ArgumentParser, *, demo: bool) -> None:
    if not demo:
        parser.add_argument("--sampler", required=True, choices=_SAMPLERS, help="the algorithm")
        parser.add_argument("--chains", type=_positive_int, default=4, help="chains (members)")
        parser.add_argument("--draws", type=_positive_int, default=500, help="kept draws/chain")
        parser.add_argument("--warmup", type=_non_negative_int, default=500, help="warm-up steps")
        parser.add_argument(
            "--thinning",
            type=_positive_int,
            default=None,
            help="keep every THINNING-th step (default 1 for nuts, hmc, adjusted-mclmc; 10 for "
            "mclmc, langevin-ensemble and SG-MCMC; with --cycle-length: one draw per cycle)",
        )
        parser.add_argument(
            "--cycle-length",
            type=_positive_int,
            default=None,
            metavar="L",
            help="SG-MCMC: a cyclical step size (Zhang et al. 2020), cycles of L steps peaking "
            "at --step-size (default 0.3/N), one draw kept at the end of each cycle",
        )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data split and sampler")
    parser.add_argument(
        "--step-size",
        type=_positive_float,
        default=None,
        help="SG-MCMC step size (default 0.05/N), with --cycle-length its peak; mclmc and "
        "adjusted-mclmc: the step their tuner starts from",
    )
    parser.add_argument("--batch-size", type=_positive_int, default=32, help="minibatch size")
    parser.add_argument("--max-tree-depth", type=_positive_int, default=10, help="NUTS depth")
    parser.add_argument("--map-steps", type=_positive_int, default=2000, help="ensemble steps")
    parser.add_argument("--learning-rate", type=_positive_float, default=1e-2, help="Adam rate")
    parser.add_argument(
        "--option",
        type=_option,
        action="append",
        metavar="KEY=VALUE",
        help="an option of the model's build() (repeatable); VALUE is read as a Python literal "
        "(32, 0.5, True, [1, 2]), else kept as a string",
    )
    if demo:
        parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    else:
        parser.add_argument(
            "--name",
            type=_run_name,
            default=None,
            help="write DIR/NAME.nc and keep the rest of DIR (its other runs and report); "
            "without it DIR must be new or empty and holds DIR/SAMPLER.nc",
        )
        parser.add_argument(
            "--checkpoint",
            metavar="PATH",
            default=None,
            help="save the sampler state to PATH as it goes; the same command run again resumes "
            "from it (not for the ensembles)",
        )
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="replace an existing --out (with --name: only DIR/NAME.nc)",
        )
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def build_parser() -> argparse.ArgumentParser:
    from bayesover.cli.builders import DEFAULT_MODEL

    parser = argparse.ArgumentParser(
        prog="bayesover",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="NUTS, cyclical pSGLD and a deep ensemble on the bundled default model",
        description="Run NUTS, a cyclical preconditioned SGLD (pSGLD) and a deep ensemble on the "
        "bundled default model (a small "
        "regression BNN on offline data), write runs/demo/ (DataTrees and report.html) and "
        "print the verdict tables and test metrics.",
    )
    demo.add_argument(
        "--model", default=DEFAULT_MODEL, help="model file, bundled model or name in ./models/"
    )
    demo.add_argument("--out", default="runs/demo", help="output directory (runs/demo)")
    demo.add_argument("--quick", action="store_true", help="a fast smoke run (tiny numbers)")
    _add_run_options(demo, demo=True)
    demo.set_defaults(run=_demo)

    sample = commands.add_parser(
        "sample",
        help="sample one model file and write its DataTree",
        description="Sample MODEL (a bundled model such as regression_mlp, a name in ./models/, "
        "or any Python file with "
        "`build(seed=0, **options) -> bo.Problem`, see docs/model-files.md) and write "
        "DIR/SAMPLER.nc, or DIR/NAME.nc with --name.",
    )
    sample.add_argument(
        "model", metavar="MODEL", help="model file, bundled model or name in ./models/"
    )
    sample.add_argument(
        "--out", required=True, metavar="DIR", help="output directory (new or empty, or --name)"
    )
    _add_run_options(sample, demo=False)
    sample.set_defaults(run=_sample)

    diagnose = commands.add_parser(
        "diagnose",
        help="print the verdict table of every run in DIR",
        description="Print R-hat, ESS, MCSE, divergences, E-BFMI, tree depth and LOO Pareto k "
        "with a verdict per line, for every DIR/*.nc.",
    )
    diagnose.add_argument("directory", metavar="DIR", help="a run directory")
    diagnose.add_argument("--quiet", action="store_true", help="(no effect; for symmetry)")
    diagnose.set_defaults(run=_diagnose)

    report = commands.add_parser(
        "report",
        help="write DIR/report.html from the runs in DIR",
        description="Write one self-contained HTML report of every DIR/*.nc.",
    )
    report.add_argument("directory", metavar="DIR", help="a run directory")
    report.add_argument("--out", default=None, help="report path (default DIR/report.html)")
    report.add_argument("--quiet", action="store_true", help="no output")
    report.set_defaults(run=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except (CommandError, ValueError, TypeError, OSError) as error:
        print(f"bayesover {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bayesover {args.command}: interrupted; nothing was half-written", file=sys.stderr)
        return 130
