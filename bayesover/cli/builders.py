"""Model files: a Python file exposing `build(seed=0, **options) -> bo.Problem`.

The package ships ready ones in `bayesover/models/` (`regression_mlp`, `classifier_mlp`,
`linear_gaussian`, `teacher_student`); a name is looked up there first, then as
`./models/NAME.py` in the working directory (the repository's `models/posteriordb/arK`, or a
user's own folder). Any file with the same builder works. The format is described in
docs/model-files.md.

A model file is imported by path as a module of a package made of its folder, so it may import
the files beside it relatively (`from ._reference import load_data`), and those siblings are
imported once per folder.

The options of a model are the parameters of its `build` after the seed; `load_problem` checks
the options it is given against them (`inspect.signature`) before calling `build`, so a
misspelt option is an `OptionError` naming the accepted ones, not a `TypeError` from inside.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import bayesover.models as _bundled

if TYPE_CHECKING:
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


def package_models_dir() -> Path:
    """The folder of the model files that ship with the package (`bayesover/models/`)."""
    return Path(_bundled.__file__).resolve().parent


def models_dir() -> Path:
    """The `models/` folder in the working directory (raises `FileNotFoundError` if absent)."""
    candidate = Path.cwd() / "models"
    if not candidate.is_dir():
        raise FileNotFoundError(f"no `models/` folder in the working directory {Path.cwd()}.")
    return candidate


def _model_names(folder: Path) -> list[str]:
    files = folder.rglob("*.py") if folder.is_dir() else ()
    return sorted(
        str(p.relative_to(folder).with_suffix("")) for p in files if not p.name.startswith("_")
    )


def resolve_model_path(model: str | Path) -> Path:
    """A path to a model file, or a name: first in `bayesover/models/` (`regression_mlp`), then
    in `./models/` of the working directory (`posteriordb/arK` from the repository root)."""
    path = Path(model)
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"model file {str(path)!r} does not exist.")
        return path
    folders = (package_models_dir(), Path.cwd() / "models")
    for folder in folders:
        candidate = folder / f"{model}.py"
        if candidate.is_file():
            return candidate
    names = sorted({name for folder in folders for name in _model_names(folder)})
    raise FileNotFoundError(
        f"`model` {str(model)!r} is neither a file nor a name in bayesover/models/ (bundled) or "
        f"./models/ ({', '.join(names)})."
    )


def _folder_package(folder: Path) -> str:
    """The name of a package whose `__path__` is `folder` (made once per folder).

    The name is a digest of the folder's path, the same in every process, so names derived
    from it (a checkpoint's fingerprint of a NumPyro model function) are too.
    """
    name = f"bayesover_models_{hashlib.sha256(str(folder).encode()).hexdigest()[:16]}"
    if name not in sys.modules:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
    return name


def load_module(path: str | Path) -> ModuleType:
    """Import a Python file by path, anew on every call.

    The file becomes a module of a package made of its folder: it may import `bayesover` and
    installed packages absolutely, and the files beside it relatively (`from . import _x`,
    imported once per folder). Its folder is not put on `sys.path`.
    """
    path = Path(path).resolve()
    package = _folder_package(path.parent)
    name = f"{package}.{path.stem}"
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
    """Build the `bo.Problem` of a model file or a name (`resolve_model_path`):
    `build(seed, **options)`.

    Options that `build` does not take raise `OptionError` (a `TypeError`) before it is called.
    """
    # Imported here: `bayesover.model` imports JAX, and the command line's `--help` and argument
    # errors, which import this module, answer before JAX is imported.
    from bayesover.model._problem import Problem

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
