"""Model files: a Python file exposing `build(seed=0, **options) -> bo.Problem`.

`models/` ships ready ones (`regression_mlp`, `classifier_mlp`, `linear_gaussian`,
`teacher_student`, and the posteriordb models under `models/posteriordb/`); any file with the
same builder works. The format is described in docs/model-files.md.

The options of a model are the parameters of its `build` after the seed; `load_problem` checks
the options it is given against them (`inspect.signature`) before calling `build`, so a
misspelt option is an `OptionError` naming the accepted ones, not a `TypeError` from inside.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from bayesover.model._problem import Problem

DEFAULT_MODEL = "regression_mlp"


class OptionError(TypeError):
    """Options that a model's `build` does not take.

    **Attributes:** `unknown` (the options given that `build` does not take, sorted) and
    `accepted` (the options it takes, in the order of its signature).
    """

    def __init__(self, message: str, unknown: Sequence[str], accepted: Sequence[str]):
        super().__init__(message)
        self.unknown = tuple(unknown)
        self.accepted = tuple(accepted)


def build_options(build: Callable[..., Any]) -> tuple[tuple[str, ...], bool]:
    """The options `build(seed, **options)` names, and whether it takes any other (`**kwargs`).

    The first positional parameter is the seed, not an option. A builder whose signature
    cannot be read is taken to accept anything (it then checks its options itself).
    """
    try:
        parameters = list(inspect.signature(build).parameters.values())
    except (TypeError, ValueError):
        return (), True
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if parameters and parameters[0].kind in positional:
        parameters = parameters[1:]  # the seed
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = tuple(p.name for p in parameters if p.kind in named)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    return accepted, takes_any


def check_options(build: Callable[..., Any], options: Mapping[str, Any], where: str) -> None:
    """Raise `OptionError` if `build` (of model file `where`) does not take every option."""
    accepted, takes_any = build_options(build)
    unknown = sorted(set(options) - set(accepted))
    if unknown and not takes_any:
        raise OptionError(
            f"`build` in {where!r} takes no option {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(accepted) if accepted else 'no options'}.",
            unknown,
            accepted,
        )


def models_dir() -> Path:
    """The `models/` folder next to the package (source checkout) or in the working directory."""
    for candidate in (Path(__file__).resolve().parents[2] / "models", Path.cwd() / "models"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("no `models/` folder next to the bayesover package or in the cwd.")


def resolve_model_path(model: str | Path) -> Path:
    """A path to a model file, or a name in `models/` (`regression_mlp`, `posteriordb/arK`)."""
    path = Path(model)
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"model file {str(path)!r} does not exist.")
        return path
    candidate = models_dir() / f"{model}.py"
    if not candidate.is_file():
        names = sorted(
            str(p.relative_to(models_dir()).with_suffix("")) for p in models_dir().rglob("*.py")
        )
        raise FileNotFoundError(
            f"`model` {str(model)!r} is neither a file nor a name in models/ ({', '.join(names)})."
        )
    return candidate


def load_module(path: str | Path) -> ModuleType:
    """Import a Python file by path (it may import `bayesover`, not its own siblings)."""
    path = Path(path)
    name = f"bayesover_model_{path.stem}_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"model file {str(path)!r} cannot be imported as Python.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        del sys.modules[name]
        raise ValueError(f"model file {str(path)!r} is not valid Python: {error}") from error
    return module


def load_problem(model: str | Path = DEFAULT_MODEL, *, seed: int = 0, **options: Any) -> Problem:
    """Build the `bo.Problem` of a model file or a name in `models/`: `build(seed, **options)`.

    Options that `build` does not take raise `OptionError` (a `TypeError`) before it is called.
    """
    path = resolve_model_path(model)
    module = load_module(path)
    build = getattr(module, "build", None)
    if not callable(build):
        raise ValueError(
            f"model file {str(path)!r} defines no `build(seed=0, **options)` function."
        )
    check_options(build, options, str(path))
    problem = build(seed, **options)
    if not isinstance(problem, Problem):
        raise TypeError(
            f"`build` in {str(path)!r} returned {type(problem).__name__}; expected a bo.Problem."
        )
    return problem
