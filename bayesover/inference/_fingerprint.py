"""A fingerprint of Python objects that is the same in every process that builds them alike.

`repr` and pytree definitions of Equinox modules show static fields as they print, and a
function prints with its memory address (`<function tanh at 0x7f...>`), which differs in every
process: a checkpoint keyed by such a string could never be resumed by a new process. Here
every object is described by stable names instead:

- arrays (JAX or NumPy, PRNG keys as their key data): dtype, shape and the bytes;
- functions: module and qualified name; for Python functions also a digest of their byte code
  and constants and the description of their closure cells and defaults (so two lambdas, or
  two schedules built with other numbers, differ);
- `functools.partial`: the function, its arguments and keywords;
- dataclasses (Equinox modules), named tuples, dicts, lists, tuples: type name and fields;
- other objects: type name and their attributes (`vars`), or `repr` when it holds no address.

Written by hand because neither the standard library nor JAX/Equinox hash pytrees with static
callables by content.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_MAX_DEPTH = 64


def fingerprint(*parts: Any) -> str:
    """SHA-256 (hex) of the stable description of `parts`."""
    digest = hashlib.sha256()
    for part in parts:
        _update(digest, part, depth=0, seen=set())
        digest.update(b"|")
    return digest.hexdigest()


def _name(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or ""
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if qualname is None:
        qualname = type(obj).__qualname__
    return f"{module}.{qualname}"


def _update(digest: Any, obj: Any, *, depth: int, seen: set[int]) -> None:
    def put(text: str) -> None:
        digest.update(text.encode() + b";")

    def recurse(value: Any) -> None:
        _update(digest, value, depth=depth + 1, seen=seen)

    if depth > _MAX_DEPTH:
        put("<deep>")
        return
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        put(f"{type(obj).__name__}:{obj!r}")
        return
    if isinstance(obj, (jax.Array, np.ndarray, np.generic)):
        if isinstance(obj, jax.Array) and jnp.issubdtype(obj.dtype, jax.dtypes.prng_key):
            put(f"key<{jax.random.key_impl(obj)}>")
            obj = jax.random.key_data(obj)
        array = np.ascontiguousarray(np.asarray(obj))
        put(f"array:{array.dtype}{array.shape}")
        digest.update(array.tobytes())
        return
    if id(obj) in seen:  # a cycle: name it, do not follow it
        put(f"<cycle {type(obj).__qualname__}>")
        return
    seen = seen | {id(obj)}
    if isinstance(obj, type):
        put(f"type:{_name(obj)}")
    elif isinstance(obj, functools.partial):
        put("partial")
        recurse(obj.func)
        recurse(obj.args)
        recurse(dict(obj.keywords))
    elif isinstance(obj, types.MethodType):
        put(f"method:{_name(obj.__func__)}")
        recurse(obj.__self__)
    elif isinstance(obj, types.FunctionType):
        put(f"function:{_name(obj)}")
        _update_code(digest, obj.__code__)
        recurse(obj.__defaults__)
        recurse(obj.__kwdefaults__)
        recurse([cell.cell_contents for cell in obj.__closure__ or () if _filled(cell)])
    elif isinstance(obj, (types.BuiltinFunctionType, types.ModuleType)) or (
        callable(obj) and hasattr(obj, "__qualname__") and not dataclasses.is_dataclass(obj)
    ):
        # builtins, jitted/ufunc-like JAX functions (jnp.tanh), custom_jvp (jax.nn.relu), ...
        put(f"callable:{_name(obj)}")
    elif isinstance(obj, dict):
        put(f"dict:{type(obj).__qualname__}:{len(obj)}")
        for k in sorted(obj, key=repr):
            recurse(k)
            recurse(obj[k])
    elif isinstance(obj, tuple) and hasattr(obj, "_fields"):  # NamedTuple
        put(f"namedtuple:{_name(type(obj))}")
        for field in obj._fields:
            put(field)
            recurse(getattr(obj, field))
    elif isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        put(f"{type(obj).__name__}:{len(obj)}")
        for item in items:
            recurse(item)
    elif dataclasses.is_dataclass(obj):  # Equinox modules are dataclasses
        put(f"dataclass:{_name(type(obj))}")
        for field in dataclasses.fields(obj):
            put(field.name)
            recurse(getattr(obj, field.name, None))
    elif hasattr(obj, "__dict__"):
        put(f"object:{_name(type(obj))}")
        recurse(dict(vars(obj)))
    else:
        text = repr(obj)
        put(f"{_name(type(obj))}:{_ADDRESS.sub('', text)}")


def _update_code(digest: Any, code: types.CodeType) -> None:
    digest.update(code.co_code)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _update_code(digest, const)
        else:
            digest.update(repr(const).encode() + b";")
    digest.update(repr(code.co_names).encode())


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # an empty cell
        return False
    return True
