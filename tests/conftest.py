"""Shared fixtures: fixed keys, small problems built once per module."""

import sys
from pathlib import Path

import jax
import pytest

from bayesover.builders import load_module

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture
def key():
    return jax.random.key(0)


def model_file(name: str):
    """Import a file of `models/` by name (e.g. "linear_gaussian")."""
    return load_module(ROOT / "models" / f"{name}.py")
