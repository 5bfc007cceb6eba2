r"""Standardisation: per-feature affine scaling $z = (v - \mu) / \sigma$ fitted on training data."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from bayesover._checks import ArgumentTypeError
from bayesover.data._container import Data, _unchecked_data

_STD_FLOOR = 1e-12


class Standardizer(eqx.Module):
    r"""Affine scaling fitted on training data: $z = (v - \mu) / \sigma$ per feature.

    Fields are `None` for the parts (inputs or targets) that are left unscaled.
    """

    input_mean: Array | None
    input_std: Array | None
    target_mean: Array | None
    target_std: Array | None

    @property
    def target_scale(self) -> Array | float:
        r"""The target scale $\sigma_y$ (or `1.0` if targets are not standardized).

        A predictive standard deviation $s$ on the standardized scale is $\sigma_y s$ on the
        original scale.
        """
        return 1.0 if self.target_std is None else self.target_std

    def apply(self, data: Data) -> Data:
        """Standardize `data` with the fitted statistics (e.g. test data with training stats).

        **Arguments:**

        - `data`: a `Data` with the same feature (and target) shape as the fitted data.

        **Returns:**

        The standardized `Data`.
        """
        if not isinstance(data, Data):
            raise ArgumentTypeError(f"`data` must be a `Data`, got {type(data).__name__}.")
        x, y = data.inputs, data.targets
        if self.input_mean is not None and self.input_std is not None:
            if data.feature_shape != tuple(self.input_mean.shape):
                raise ValueError(
                    f"`data` has feature shape {data.feature_shape}, but the standardizer was "
                    f"fitted on feature shape {tuple(self.input_mean.shape)}."
                )
            x = (x - self.input_mean) / self.input_std
        if self.target_mean is not None and self.target_std is not None:
            if data.target_shape != tuple(self.target_mean.shape):
                raise ValueError(
                    f"`data` has target shape {data.target_shape}, but the standardizer was "
                    f"fitted on target shape {tuple(self.target_mean.shape)}."
                )
            if not jnp.issubdtype(y.dtype, jnp.floating):
                raise TypeError(f"`data` has class-label targets (dtype {y.dtype}).")
            y = (y - self.target_mean) / self.target_std
        return _unchecked_data(x, y)

    def inverse_targets(self, y: ArrayLike) -> Array:
        r"""Map standardized targets back: $v = \sigma_y z + \mu_y$ (identity if unscaled).

        **Arguments:**

        - `y`: targets (or predictive means) on the standardized scale, shape
            `(..., *target_shape)`.

        **Returns:**

        The array on the original scale.
        """
        y = jnp.asarray(y)
        if self.target_mean is None or self.target_std is None:
            return y
        return y * self.target_std + self.target_mean

    def inverse_inputs(self, x: ArrayLike) -> Array:
        r"""Map standardized inputs back: $v = \sigma_x z + \mu_x$ (identity if unscaled).

        **Arguments:**

        - `x`: inputs on the standardized scale, shape `(..., *feature_shape)`.

        **Returns:**

        The array on the original scale.
        """
        x = jnp.asarray(x)
        if self.input_mean is None or self.input_std is None:
            return x
        return x * self.input_std + self.input_mean


def fit_standardizer(data: Data, *, inputs: bool, targets: bool) -> Standardizer:
    """The `Standardizer` of `data`'s inputs and/or targets (the parts not chosen stay unscaled)."""
    # `_mean_std` is jitted: one compilation per shape instead of one per primitive.
    in_mean, in_std = _mean_std(data.inputs) if inputs else (None, None)
    out_mean, out_std = _mean_std(data.targets) if targets else (None, None)
    return Standardizer(in_mean, in_std, out_mean, out_std)


@jax.jit
def _mean_std(x: Array) -> tuple[Array, Array]:
    # Constant columns get mean = that constant (exactly) and std = 1, so they map to exactly 0;
    # rounding would otherwise leave a tiny nonzero std there.
    constant = jnp.all(x == x[0], axis=0)
    mean = jnp.where(constant, x[0], jnp.mean(x, axis=0))
    std = jnp.std(x, axis=0)
    return mean, jnp.where(constant | (std < _STD_FLOOR), jnp.ones_like(std), std)
