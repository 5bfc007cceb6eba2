"""Model files: a Python file exposing `build(seed=0, **options) -> bo.Problem`.

`models/` ships ready ones (`regression_mlp`, `classifier_mlp`, `linear_gaussian`,
`teacher_student`, and the posteriordb models under `models/posteriordb/`); any file with the
same builder works.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from bayesover.problem import Problem

DEFAULT_MODEL = "regression_mlp"


def models_dir() -> Path:
    """The `models/` folder next to the package (source checkout) or in the working directory."""
    for candidate in (Path(__file__).resolve().parents[1] / "models", Path.cwd() / "models"):
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
    """Build the `bo.Problem` of a model file or a name in `models/`."""
    path = resolve_model_path(model)
    module = load_module(path)
    build = getattr(module, "build", None)
    if not callable(build):
        raise ValueError(
            f"model file {str(path)!r} defines no `build(seed=0, **options)` function."
        )
    problem = build(seed, **options)
    if not isinstance(problem, Problem):
        raise TypeError(
            f"`build` in {str(path)!r} returned {type(problem).__name__}; expected a bo.Problem."
        )
    return problem
