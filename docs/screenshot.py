"""Screenshots of a real report for docs/reading-a-report.md.

    python docs/screenshot.py               # NUTS on regression_mlp, then its report
    python docs/screenshot.py report.html   # an existing report (e.g. the demo's)

Writes docs/img/report.png (the top: summary, configuration, verdict) and
docs/img/report-convergence.png (the convergence and prediction plots), with the headless
Chromium setup of tests/test_report_browser.py.
"""

import shutil
import sys
import tempfile
from pathlib import Path

IMG = Path(__file__).resolve().parent / "img"
WIDTH = 1100
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


def nuts_report(path: Path) -> Path:
    """NUTS, 4 chains of 300 draws, on the bundled diabetes regression; its report."""
    import jax

    import bayesover as bo

    problem = bo.builders.load_problem("regression_mlp")
    ensemble = bo.sample(
        problem.posterior,
        bo.NUTS(),
        key=jax.random.key(0),
        num_chains=4,
        num_warmup=300,
        num_draws=300,
        progress=False,
    )
    tree = bo.to_datatree(ensemble, problem.posterior, test=problem.test, name="NUTS")
    return bo.report({"NUTS": tree}, path, title="NUTS on regression_mlp")


def screenshots(report: Path) -> None:
    from playwright.sync_api import sync_playwright

    IMG.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        page.goto(report.resolve().as_uri(), wait_until="load")
        top = page.locator("h3", has_text="Convergence").first.bounding_box()
        page.screenshot(
            path=IMG / "report.png",
            full_page=True,
            clip={"x": 0, "y": 0, "width": WIDTH, "height": min(top["y"], 2600)},
        )
        start = top["y"] - 10
        end = page.locator("h3", has_text="Predictive metrics").first.bounding_box()["y"]
        page.screenshot(
            path=IMG / "report-convergence.png",
            full_page=True,
            clip={"x": 0, "y": start, "width": WIDTH, "height": end - start},
        )
        browser.close()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        screenshots(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            screenshots(nuts_report(Path(folder) / "report.html"))
    print(f"wrote {IMG / 'report.png'} and {IMG / 'report-convergence.png'}")
