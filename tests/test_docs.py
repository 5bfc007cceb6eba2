"""The documentation's code runs, and its architecture page and API reference cover the package."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


# Pages whose blocks sample for close to a minute: in the slow suite (CI runs it too), so the
# default run stays under 10 minutes on 2 cores.
SLOW_PAGES = {"ensembles.md", "samplers-hmc.md"}


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(name, marks=pytest.mark.slow) if name in SLOW_PAGES else name
        for name in sorted(p.name for p in DOCS.glob("*.md") if "```python" in p.read_text())
    ],
)
def test_python_blocks_of_a_page_run_in_order(page):
    text = (DOCS / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, f"{page} has no python code"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, f"{page}", "exec"), namespace)


ROOT = DOCS.parent
_MODULE_FILE = re.compile(r"\bbayesover/[\w/]+\.py\b")


def test_architecture_page_names_every_module_file_and_only_files_that_exist():
    named = set(_MODULE_FILE.findall((DOCS / "architecture.md").read_text()))
    files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "bayesover").rglob("*.py")}
    assert sorted(files - named) == [], "module files missing from docs/architecture.md"
    assert sorted(named - files) == [], "docs/architecture.md names files that do not exist"


def _resolve(identifier: str):
    import bayesover

    obj = bayesover
    for part in identifier.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def test_api_reference_documents_every_public_name():
    """Every name of `bayesover.__all__`, `bo.lens` and `bo.samplers` has a `::: path` entry on
    an API page, or belongs to a namespace module rendered whole there (`::: bayesover.priors`)."""
    import types

    import bayesover as bo

    directives = [
        d
        for page in sorted((DOCS / "api").glob("*.md"))
        for d in re.findall(r"^::: (\S+)$", page.read_text(), flags=re.M)
    ]
    shown = {id(_resolve(d)) for d in directives}
    for d in directives:
        module = _resolve(d)
        if isinstance(module, types.ModuleType):
            exported = getattr(module, "__all__", ())
            shown |= {
                id(v)
                for k, v in vars(module).items()
                if k in exported or getattr(v, "__module__", None) == module.__name__
            }
    required = {f"bo.{k}": getattr(bo, k) for k in bo.__all__}
    for name in ("lens", "samplers"):
        namespace = getattr(bo, name)
        required |= {f"bo.{name}.{k}": v for k, v in vars(namespace).items() if k[0] != "_"}
    missing = sorted(name for name, value in required.items() if id(value) not in shown)
    assert missing == [], "public names missing from docs/api/*.md"
