"""The posteriordb models of `models/posteriordb/` against the reference data (no MCMC).

For each of the eleven reference posteriors: the model's sites match the reference parameter
names; its log density at reference draws is finite (float32 and float64) and equals an
independent numpy transcription of MODELS.md (float64); deterministic sites reproduce the
reported transformed parameters; `build()` gives a `bo.Problem` whose unconstrained round trip
returns the reference draw. The data are read from ../shared/validation/posteriordb.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer import init_to_sample
from numpyro.infer.util import constrain_fn, log_density, potential_energy, unconstrain_fn

from bayesover.cli.builders import load_module

MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "posteriordb"
validation = load_module(MODEL_DIR / "_reference.py")  # the posteriordb loader

# posterior -> (model file stem, build options)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "eight_schools-eight_schools_noncentered": ("eight_schools_noncentered", {}),
    "sblri-blr": ("blr", {"dataset": "sblri"}),
    "sblrc-blr": ("blr", {"dataset": "sblrc"}),
    "kidiq-kidscore_momiq": ("kidiq", {}),
    "mesquite-logmesquite": ("logmesquite", {}),
    "arK-arK": ("arK", {}),
    "garch-garch11": ("garch11", {}),
    "gp_pois_regr-gp_pois_regr": ("gp_pois_regr", {}),
    "low_dim_gauss_mix-low_dim_gauss_mix": ("low_dim_gauss_mix", {}),
    "diamonds-diamonds": ("diamonds", {}),
    "nes2000-nes": ("nes", {}),
}
# latent sites that the reference does not report (it reports their transforms instead)
UNREPORTED = {
    "eight_schools-eight_schools_noncentered": {"theta_trans"},
    "gp_pois_regr-gp_pois_regr": {"f_tilde"},
}
NEEDS_X64 = {"gp_pois_regr-gp_pois_regr"}  # float32 Cholesky of its kernel matrix fails
N_DRAWS = 3  # reference draws checked per posterior (chain 1, draws 1..3)


@functools.cache
def load_model_file(stem: str) -> ModuleType:
    """Import `models/posteriordb/STEM.py` by path (as the command line does)."""
    return load_module(MODEL_DIR / f"{stem}.py")


@functools.cache
def case(name: str) -> tuple[ModuleType, dict[str, Any], dict[str, np.ndarray]]:
    """(model module, model keyword data, reference draws) of a posterior."""
    module = load_model_file(CASES[name][0])
    return module, module.model_kwargs(validation.load_data(name)), validation.reference_draws(name)


def reference_sites(draws: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """Draw i of chain 1 as site arrays (`beta[1..5]` -> `beta` of shape (5,))."""
    return validation.unflatten_draws({k: v[0, i] for k, v in draws.items()}, sample_ndim=0)


def latent_params(module: ModuleType, sites: dict[str, np.ndarray], data: dict) -> dict:
    """The model's latent sites for a reference draw (inverting transformed parameters)."""
    convert = getattr(module, "latent_from_reference", None)
    return dict(sites) if convert is None else convert(sites, **data)


# ---------------------------------------------------------------------------------------------
# _reference.py (the posteriordb loader)


@pytest.mark.reference_data("posteriordb")
def test_posteriors_are_the_stored_ones():
    root = validation.posteriordb_root()
    stored = {p.stem for p in (root / "posteriors").glob("*.json")}
    assert set(validation.POSTERIORS) == stored == set(CASES)
    assert len(validation.POSTERIORS) == 11


@pytest.mark.reference_data("posteriordb")
def test_root_from_environment(monkeypatch, tmp_path):
    root = validation.posteriordb_root()
    monkeypatch.setenv(validation.ENV_VAR, str(root))
    assert validation.posteriordb_root() == root
    monkeypatch.setenv(validation.ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=validation.ENV_VAR):
        validation.posteriordb_root()


@pytest.mark.reference_data("posteriordb")
def test_load_data_arrays():
    data = validation.load_data("sblri-blr")
    assert data["N"] == 100 and data["D"] == 5
    assert isinstance(data["X"], np.ndarray) and data["X"].shape == (100, 5)
    assert data["y"].shape == (100,)
    assert validation.load_data("eight_schools-eight_schools_noncentered")["J"] == 8


@pytest.mark.reference_data("posteriordb")
@pytest.mark.parametrize("name", validation.POSTERIORS)
def test_reference_draws_and_summary(name):
    draws = validation.reference_draws(name)
    summary = validation.reference_summary(name)
    assert list(draws) == list(summary)
    for key, value in draws.items():
        assert value.shape == (10, 1000)
        s = summary[key]
        assert set(s) == {
            "mean",
            "mean_mcse",
            "mean_squared",
            "mean_squared_mcse",
            "sd",
            "draws_sd",
        }
        np.testing.assert_allclose(value.mean(), s["mean"], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(s["draws_sd"], value.std(ddof=1))
        np.testing.assert_allclose(s["sd"], s["draws_sd"], rtol=0.05)
        assert 0 < s["mean_mcse"] < s["draws_sd"]
    flat = validation.flatten_draws(validation.unflatten_draws(draws))
    assert list(flat) == list(draws)
    for key in draws:
        np.testing.assert_array_equal(flat[key], draws[key])


def test_flatten_draws_names_and_order():
    samples = {"mu": np.zeros((2, 3)), "a": np.arange(2 * 3 * 2 * 3).reshape(2, 3, 2, 3)}
    flat = validation.flatten_draws(samples)
    assert list(flat) == ["mu", "a[1,1]", "a[2,1]", "a[1,2]", "a[2,2]", "a[1,3]", "a[2,3]"]
    np.testing.assert_array_equal(flat["a[2,3]"], samples["a"][:, :, 1, 2])
    assert flat["mu"].shape == (2, 3)
    back = validation.unflatten_draws(flat)
    np.testing.assert_array_equal(back["a"], samples["a"])
    one = validation.flatten_draws({"beta": np.array([1.0, 2.0])}, sample_ndim=0)
    assert list(one) == ["beta[1]", "beta[2]"] and one["beta[2]"] == 2.0
    with pytest.raises(ValueError):
        validation.unflatten_draws({"b[1]": np.zeros(2), "b[3]": np.zeros(2)}, sample_ndim=1)


# ---------------------------------------------------------------------------------------------
# the models


@pytest.mark.reference_data("posteriordb")
@pytest.mark.parametrize("name", validation.POSTERIORS)
def test_site_names_cover_reference(name):
    """Traced abstractly (no compilation), with NumPyro's prior-draw initialisation, so every
    site must be sampleable (or an `ImproperUniform`)."""
    module, data, draws = case(name)
    assert name in module.POSTERIOR_NAMES

    def posterior_sites():
        seeded = handlers.substitute(handlers.seed(module.model, 0), substitute_fn=init_to_sample)
        trace = handlers.trace(seeded).get_trace(**data)
        return {
            k: site["value"]
            for k, site in trace.items()
            if (site["type"] == "sample" and not site["is_observed"])
            or site["type"] == "deterministic"
        }

    sites = {k: np.zeros(v.shape) for k, v in jax.eval_shape(posterior_sites).items()}
    names = set(validation.flatten_draws(sites, sample_ndim=0))
    unreported = {k: v for k, v in sites.items() if k in UNREPORTED.get(name, set())}
    extra = set(validation.flatten_draws(unreported, sample_ndim=0))
    assert names - extra == set(draws)
    assert not extra & set(draws)


def batched_log_density(module: ModuleType, data: dict, sites: dict) -> tuple[Any, dict]:
    """Jitted log p(theta, y) and deterministic sites at a batch of reference draws."""

    def one(draw):
        value, trace = log_density(module.model, (), data, latent_params(module, draw, data))
        return value, {k: s["value"] for k, s in trace.items() if s["type"] == "deterministic"}

    return jax.jit(jax.vmap(one))(sites)


def first_draws(draws: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Draws 1..N_DRAWS of chain 1 as site arrays with a leading batch axis."""
    return validation.unflatten_draws({k: v[0, :N_DRAWS] for k, v in draws.items()}, sample_ndim=1)


@pytest.mark.reference_data("posteriordb")
@pytest.mark.parametrize("name", sorted(set(validation.POSTERIORS) - NEEDS_X64))
def test_log_density_finite_float32(name):
    module, data, draws = case(name)
    values, _ = batched_log_density(module, data, first_draws(draws))
    assert values.shape == (N_DRAWS,) and np.all(np.isfinite(values)), values


@pytest.mark.reference_data("posteriordb")
@pytest.mark.parametrize("name", validation.POSTERIORS)
def test_log_density_matches_numpy(name):
    """float64: log p(theta, y) at reference draws equals the numpy transcription of MODELS.md
    (all constants included), hence so do log-density differences between draws; the
    deterministic sites (transformed parameters) reproduce the reference values."""
    module, data, draws = case(name)
    sites = first_draws(draws)
    with jax.enable_x64(True):
        values, deterministic = batched_log_density(module, data, sites)
    raw = validation.load_data(name)
    expected = [NUMPY_LOG_DENSITY[name](reference_sites(draws, i), raw) for i in range(N_DRAWS)]
    assert np.all(np.isfinite(values))
    np.testing.assert_allclose(values, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.diff(values), np.diff(expected), rtol=1e-7, atol=1e-8)
    assert set(deterministic) <= set(sites)
    for key, value in deterministic.items():
        np.testing.assert_allclose(value, sites[key], rtol=1e-9, atol=1e-9)


def garch_log_jacobian(p: dict) -> float:
    """log|d(alpha0, alpha1, beta1)/du| of Stan's transforms (log, logit, (1 - alpha1) logit)."""
    a0, a1, b1 = (float(p[k]) for k in ("alpha0", "alpha1", "beta1"))
    return math.log(a0) + math.log(a1 * (1 - a1)) + math.log(b1 * (1 - a1 - b1) / (1 - a1))


@pytest.mark.reference_data("posteriordb")
def test_garch_dependent_support_jacobian():
    """beta1 in (0, 1 - alpha1) round-trips through the unconstrained space, and the
    potential carries Stan's log-Jacobian."""
    name = "garch-garch11"
    module, data, draws = case(name)
    sites = reference_sites(draws, 0)
    with jax.enable_x64(True):
        position = unconstrain_fn(module.model, (), data, sites)
        back = constrain_fn(module.model, (), data, position)
        potential = jax.jit(functools.partial(potential_energy, module.model, (), data))
        log_density_u = -potential(position)
    for key in sites:
        np.testing.assert_allclose(back[key], sites[key], rtol=1e-10)
    expected = NUMPY_LOG_DENSITY[name](sites, validation.load_data(name))
    np.testing.assert_allclose(log_density_u, expected + garch_log_jacobian(sites), rtol=1e-10)


@pytest.mark.parametrize("stem", sorted({stem for stem, _ in CASES.values()}))
def test_build_rejects_unknown_options(stem):
    with pytest.raises(TypeError, match="unexpected options"):
        load_model_file(stem).build(not_an_option=1)


def test_blr_datasets():
    module = load_model_file("blr")
    assert [module.posterior_name(d) for d in ("sblri", "sblrc")] == list(module.POSTERIOR_NAMES)
    with pytest.raises(ValueError, match="sblri"):
        module.build(dataset="sblrx")


def test_gp_build_requires_x64():
    module = load_model_file("gp_pois_regr")
    with jax.enable_x64(False), pytest.raises(RuntimeError, match="jax_enable_x64"):
        module.build()


# build() initialises NumPyro (~4 s per model, cold): one model is checked here, the one with
# a dependent support; the other models share the same `build` code path
LOG_JACOBIAN = {"garch-garch11": garch_log_jacobian}


@pytest.mark.reference_data("posteriordb")
@pytest.mark.parametrize("name", sorted(LOG_JACOBIAN))
def test_build_problem(name):
    """`build()` returns the named problem; at the unconstrained image of a reference draw its
    log density is the numpy one plus the log-Jacobian, and `constrain` returns the draw."""
    module, data, draws = case(name)
    sites = reference_sites(draws, 0)
    with jax.enable_x64(True):
        problem = module.build(**CASES[name][1])
        position = unconstrain_fn(module.model, (), data, latent_params(module, sites, data))
        log_density_u = problem.posterior.logdensity(position)
        constrained = problem.posterior.constrain(position)
    assert problem.name == name and problem.test is None
    expected = NUMPY_LOG_DENSITY[name](sites, validation.load_data(name)) + LOG_JACOBIAN[name](
        sites
    )
    np.testing.assert_allclose(log_density_u, expected, rtol=1e-10)
    for key, value in sites.items():
        np.testing.assert_allclose(constrained[key], value, rtol=1e-8, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# numpy transcriptions of MODELS.md (float64, full normalising constants)

LOG_2PI = math.log(2 * math.pi)


def normal_lpdf(x, loc, scale) -> float:
    z = (np.asarray(x, float) - loc) / scale
    return float(np.sum(-0.5 * z**2 - np.log(scale) - 0.5 * LOG_2PI))


def half_normal_lpdf(x, scale) -> float:
    return normal_lpdf(x, 0.0, scale) + np.size(x) * math.log(2)


def half_cauchy_lpdf(x, scale) -> float:
    x = np.asarray(x, float)
    return float(np.sum(math.log(2 / (math.pi * scale)) - np.log1p((x / scale) ** 2)))


def student_t_lpdf(x, df, loc, scale) -> float:
    z = (np.asarray(x, float) - loc) / scale
    const = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return float(np.sum(const - math.log(scale) - (df + 1) / 2 * np.log1p(z**2 / df)))


def _eight_schools(p, d) -> float:
    theta_trans = (p["theta"] - p["mu"]) / p["tau"]
    return (
        normal_lpdf(theta_trans, 0, 1)
        + normal_lpdf(p["mu"], 0, 5)
        + half_cauchy_lpdf(p["tau"], 5)
        + normal_lpdf(d["y"], p["theta"], d["sigma"])
    )


def _blr(p, d) -> float:
    return (
        normal_lpdf(p["beta"], 0, 10)
        + half_normal_lpdf(p["sigma"], 10)
        + normal_lpdf(d["y"], d["X"] @ p["beta"], p["sigma"])
    )


def _kidiq(p, d) -> float:
    mean = p["beta"][0] + p["beta"][1] * d["mom_iq"]
    return half_cauchy_lpdf(p["sigma"], 2.5) + normal_lpdf(d["kid_score"], mean, p["sigma"])


def _logmesquite(p, d) -> float:
    b = p["beta"]
    mean = b[0] + b[6] * d["group"]
    for j, key in enumerate(("diam1", "diam2", "canopy_height", "total_height", "density")):
        mean = mean + b[j + 1] * np.log(d[key])
    return normal_lpdf(np.log(d["weight"]), mean, p["sigma"])


def _ark(p, d) -> float:
    y, k_order = d["y"], d["K"]
    total = normal_lpdf(p["alpha"], 0, 10) + normal_lpdf(p["beta"], 0, 10)
    total += half_cauchy_lpdf(p["sigma"], 2.5)
    for t in range(k_order, len(y)):
        mean = p["alpha"] + sum(p["beta"][k] * y[t - k - 1] for k in range(k_order))
        total += normal_lpdf(y[t], mean, p["sigma"])
    return total


def _garch(p, d) -> float:
    y, mu = d["y"], p["mu"]
    s = [d["sigma1"]]
    for t in range(1, len(y)):
        s.append(
            math.sqrt(p["alpha0"] + p["alpha1"] * (y[t - 1] - mu) ** 2 + p["beta1"] * s[-1] ** 2)
        )
    return normal_lpdf(y, mu, np.array(s))


def _gp_pois(p, d) -> float:
    x, k, f = np.asarray(d["x"], float), d["k"], p["f"]
    cov = p["alpha"] ** 2 * np.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * p["rho"] ** 2))
    f_tilde = np.linalg.solve(np.linalg.cholesky(cov + 1e-10 * np.eye(len(x))), f)
    gamma = 25 * math.log(4) - math.lgamma(25) + 24 * math.log(p["rho"]) - 4 * p["rho"]
    log_fact = np.array([math.lgamma(v + 1) for v in k])
    poisson = float(np.sum(k * f - np.exp(f) - log_fact))
    return gamma + half_normal_lpdf(p["alpha"], 2) + normal_lpdf(f_tilde, 0, 1) + poisson


def _gauss_mix(p, d) -> float:
    mu, sigma, theta, y = p["mu"], p["sigma"], p["theta"], d["y"]
    assert mu[0] < mu[1]
    log_beta = (
        math.log(theta) * 4 + math.log(1 - theta) * 4 - (2 * math.lgamma(5) - math.lgamma(10))
    )

    def comp(j):
        return -0.5 * ((y - mu[j]) / sigma[j]) ** 2 - math.log(sigma[j]) - 0.5 * LOG_2PI

    mix = np.logaddexp(math.log(theta) + comp(0), math.log(1 - theta) + comp(1))
    return normal_lpdf(mu, 0, 2) + half_normal_lpdf(sigma, 2) + log_beta + float(mix.sum())


def _diamonds(p, d) -> float:
    xc = d["X"][:, 1:] - d["X"][:, 1:].mean(axis=0)
    return (
        normal_lpdf(p["b"], 0, 1)
        + student_t_lpdf(p["Intercept"], 3, 8, 10)
        + student_t_lpdf(p["sigma"], 3, 0, 10)
        + math.log(2)
        + normal_lpdf(d["Y"], p["Intercept"] + xc @ p["b"], p["sigma"])
    )


def _nes(p, d) -> float:
    b, age = p["beta"], d["age_discrete"]
    mean = (
        b[0]
        + b[1] * d["real_ideo"]
        + b[2] * d["race_adj"]
        + b[3] * (age == 2)
        + b[4] * (age == 3)
        + b[5] * (age == 4)
        + b[6] * d["educ1"]
        + b[7] * d["gender"]
        + b[8] * d["income"]
    )
    return normal_lpdf(d["partyid7"], mean, p["sigma"])


NUMPY_LOG_DENSITY = {
    "eight_schools-eight_schools_noncentered": _eight_schools,
    "sblri-blr": _blr,
    "sblrc-blr": _blr,
    "kidiq-kidscore_momiq": _kidiq,
    "mesquite-logmesquite": _logmesquite,
    "arK-arK": _ark,
    "garch-garch11": _garch,
    "gp_pois_regr-gp_pois_regr": _gp_pois,
    "low_dim_gauss_mix-low_dim_gauss_mix": _gauss_mix,
    "diamonds-diamonds": _diamonds,
    "nes2000-nes": _nes,
}
