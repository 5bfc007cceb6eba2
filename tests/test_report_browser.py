"""`bo.report` in a real browser: Debian's headless Chromium, driven by Playwright, opens the
file offline with no console error, asks for nothing outside the file, and decodes every image.

Skipped when Playwright or a `chromium` executable is missing, unless
`BAYESOVER_REQUIRE_BROWSER=1` (as `.ci/run` sets), which turns the skip into a failure.
"""

import io
import os
import shutil
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from PIL import Image

import bayesover as bo

# No Playwright-downloaded browser: the system's chromium, with everything that phones home off.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(reason: str):
    if os.environ.get("BAYESOVER_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (BAYESOVER_REQUIRE_BROWSER=1 requires the browser test)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium, or a skip saying what is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the browser test needs the `playwright` package (pip install -e '.[dev]')")
    executable = shutil.which("chromium")
    if executable is None:
        _unavailable("the browser test needs `chromium` on PATH (apt-get install chromium)")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as error:
            _unavailable(f"{executable} does not start under Playwright: {error}")
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    """A two-run report of a 1-D regression: SGLD with a synthetic lens group, and a deep
    ensemble (comparison, trace/rank/ESS, bands, lens plots)."""
    data = bo.data.gap_regression_1d(jax.random.key(1), 40)
    net = eqx.nn.MLP(1, 1, 16, 1, activation=jnp.tanh, key=jax.random.key(0))
    model = bo.Model(net, bo.priors.Normal(1.0), bo.likelihoods.Gaussian(scale=0.1))
    posterior = bo.Posterior(model, data)
    sgld = bo.sample(
        posterior,
        bo.SGLD(step_size=1e-5, batch_size=20),
        key=jax.random.key(0),
        num_chains=2,
        num_warmup=50,
        num_draws=50,
        progress=False,
    )
    members = bo.deep_ensemble(posterior, 4, None, 200, key=jax.random.key(0))
    sgld_tree = bo.to_datatree(sgld, posterior)
    sgld_tree["lens"] = xr.DataTree(
        xr.Dataset(
            {
                "regret": ("n", [1.0, 2.0, 2.5]),
                "regret_stderr": ("n", [0.1, 0.2, 0.1]),
                "neg_log_weight": ("eps", [8.0, 4.0, 1.0]),
            },
            coords={"n": [10, 20, 40], "eps": [0.01, 0.1, 1.0]},
        )
    )
    trees = {"SGLD": sgld_tree, "deep ensemble": bo.to_datatree(members, posterior)}
    return bo.report(trees, tmp_path_factory.mktemp("report") / "report.html")


def test_report_renders_offline_in_headless_chromium(browser, report_file, tmp_path):
    text = report_file.read_text()
    embedded = text.count("data:image/png;base64,")
    assert embedded == 7  # SGLD: trace, rank, ESS, bands, 2 lens; deep ensemble: bands
    errors, requests = [], []
    start = time.perf_counter()
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("request", lambda request: requests.append(request.url))
    page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url}"))
    page.goto(report_file.as_uri(), wait_until="load")
    widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
    complete = page.evaluate("Array.from(document.images).every(i => i.complete)")
    title = page.title()
    screenshot = tmp_path / "report.png"
    page.screenshot(path=screenshot, full_page=True)
    page.close()
    seconds = time.perf_counter() - start
    assert errors == []
    assert title == "bayesover diagnostics report"
    assert complete and len(widths) == embedded and all(w > 0 for w in widths), widths
    outside = [u for u in requests if not u.startswith(("file:", "data:"))]
    assert outside == [], f"the report fetched {outside}"
    png = screenshot.read_bytes()
    assert len(png) > 50_000
    image = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    assert image.shape[1] == 1200 and image.shape[0] > 3000  # the full page, not the viewport
    assert np.ptp(image) > 0
    print(f"chromium: loaded and captured the report in {seconds:.2f} s")
