"""The notebooks in analysis/: stored without outputs, thin (their first code cell is the
parameters, they import only the public analysis API), and each runs top to bottom, in a
kernel of this environment's Python, on real run directories made here."""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

from tests.helpers.runs import REPO, Run, run_scenario

pytestmark = pytest.mark.integration

ANALYSIS = REPO / "analysis"
NOTEBOOKS = {
    "latency.ipynb": ("RUN_DIR",),
    "errors-5xx-503.ipynb": ("RUN_DIR",),
    "compare-runs.ipynb": ("BASE_RUN", "CANDIDATE_RUN"),
}

# Two short open-model runs: the candidate is slower and its ESIA URL sheds for a while.
RUN = """
name: NAME
seed: 6
accounts: {count: 1000}
mix: {esia: 1, lkfl: 1}
load:
  model: open
  stages: [{duration_s: 4, rate: 15}]
  max_in_flight: 100
think_time: {dist: fixed, ms: 10}
flows:
  lkfl: {wrong_password_share: 0.1}
retry: {policy: retry_after, max_attempts: 2, base_ms: 10, cap_ms: 50}
request_timeout_s: 2  # Locust's stop timeout follows it: the run ends soon after its stage
abort: null
slos: ["p99(*) < 2s"]
mock:
  behaviour:
    latency:
      default: {dist: fixed, ms: LATENCY_MS}
    faults: FAULTS
"""
SHEDDING = """
      - {name: shed, kind: status, status: 503, retry_after_s: 0, endpoints: [mobile.esia_url],
         fraction: 0.5, start_s: 1.5, duration_s: 1.5}"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    scenarios = {
        "base": RUN.replace("NAME", "nb-base").replace("LATENCY_MS", "5").replace("FAULTS", "[]"),
        "candidate": RUN.replace("NAME", "nb-candidate")
        .replace("LATENCY_MS", "15")
        .replace("FAULTS", SHEDDING),
    }
    root = tmp_path_factory.mktemp("notebook-runs")

    def make(name: str) -> Run:
        return run_scenario(root / name, scenarios[name], load_s=4)

    with ThreadPoolExecutor(2) as pool:
        done = dict(zip(scenarios, pool.map(make, scenarios), strict=True))
    result = {}
    for name, run in done.items():
        assert run.code == 0, run.describe()
        assert run.run_dir is not None
        result[name] = run.run_dir
    return result


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernel spec of its own running this interpreter, so no kernel installed elsewhere
    (user or system Jupyter paths) is picked up."""
    directory = tmp_path_factory.mktemp("kernels") / "python3"
    directory.mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "authload tests",
        "language": "python",
    }
    (directory / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return KernelSpecManager(kernel_dirs=[str(directory.parent)])


def _read(name: str) -> nbformat.NotebookNode:
    notebook: nbformat.NotebookNode = nbformat.read(  # type: ignore[no-untyped-call]
        ANALYSIS / name, as_version=4
    )
    return notebook


def _execute(name: str, kernels: KernelSpecManager, env: dict[str, str]) -> nbformat.NotebookNode:
    notebook = _read(name)
    manager = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=kernels)
    client = NotebookClient(
        notebook,
        km=manager,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(ANALYSIS)}},
    )
    # a kernel manager passed in is left running unless told otherwise
    client.execute(cleanup_kc=True, env={**os.environ, **env})
    return notebook


def _outputs(notebook: nbformat.NotebookNode) -> list[dict[str, object]]:
    return [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]


def _check_ran(notebook: nbformat.NotebookNode) -> None:
    outputs = _outputs(notebook)
    assert not [o for o in outputs if o["output_type"] == "error"]
    warnings = [
        o["text"] for o in outputs if o.get("name") == "stderr" and "Warning" in str(o["text"])
    ]
    assert not warnings, warnings
    images = [o for o in outputs if "image/png" in o.get("data", {})]  # type: ignore[operator]
    tables = [o for o in outputs if "text/html" in o.get("data", {})]  # type: ignore[operator]
    assert images and tables, "the notebook shows plots and tables"


def test_the_notebooks_are_stored_without_outputs() -> None:
    assert sorted(p.name for p in ANALYSIS.glob("*.ipynb")) == sorted(NOTEBOOKS)
    for name in NOTEBOOKS:
        notebook = _read(name)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], name
                assert cell.execution_count is None, name
        assert "widgets" not in notebook.metadata, name


def test_the_notebooks_are_thin() -> None:
    for name, parameters in NOTEBOOKS.items():
        notebook = _read(name)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        first = code[0]
        assert "parameters" in first.metadata.get("tags", []), name
        assigned = {
            target.id
            for node in ast.parse(first.source).body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        assert assigned == set(parameters), name
        for parameter in parameters:
            assert f'os.environ.get("AUTHLOAD_{parameter}", ' in first.source, name
        source = "\n".join(cell.source for cell in code)
        for module, names in re.findall(r"^from (authload\S*) import (.+)$", source, re.M):
            assert module.startswith("authload.analysis."), (name, module)
            assert not [n for n in names.split(", ") if n.startswith("_")], (name, names)
        assert not re.search(r"^import authload", source, re.M), name
        assert not re.search(r"\bprint\(", source), name


def test_latency_notebook_runs(runs: dict[str, Path], kernels: KernelSpecManager) -> None:
    notebook = _execute("latency.ipynb", kernels, {"AUTHLOAD_RUN_DIR": str(runs["candidate"])})
    _check_ran(notebook)
    text = json.dumps(_outputs(notebook))
    assert "nb-candidate" in text
    assert "intended_p99" in text, "an open-model run: latency from the intended start"


def test_errors_notebook_runs(runs: dict[str, Path], kernels: KernelSpecManager) -> None:
    notebook = _execute(
        "errors-5xx-503.ipynb", kernels, {"AUTHLOAD_RUN_DIR": str(runs["candidate"])}
    )
    _check_ran(notebook)
    assert "shed_503" in json.dumps(_outputs(notebook))


def test_compare_notebook_runs(runs: dict[str, Path], kernels: KernelSpecManager) -> None:
    env = {"AUTHLOAD_BASE_RUN": str(runs["base"]), "AUTHLOAD_CANDIDATE_RUN": str(runs["candidate"])}
    notebook = _execute("compare-runs.ipynb", kernels, env)
    _check_ran(notebook)
    text = json.dumps(_outputs(notebook))
    assert "nb-base" in text and "nb-candidate" in text
    assert "regression" in text, "the candidate is three times slower"
