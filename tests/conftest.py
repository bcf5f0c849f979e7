"""Shared pytest set-up: every test gets its own NANOCHAT_BASE_DIR, and exercises are graded from the
folder chosen by --grade (or $NANOCHAT_GRADE): `exercises` (your work, the default) or `solutions`."""
import importlib.util, os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption("--grade", choices=["exercises", "solutions"], default=os.environ.get("NANOCHAT_GRADE", "exercises"),
                     help="which folder the exercise tests grade (default: $NANOCHAT_GRADE or exercises)")


@pytest.fixture(autouse=True)
def base_dir(tmp_path, monkeypatch):
    "Each test writes its data, checkpoints and runs to a temporary base directory."
    path = tmp_path / "nanochat-base"
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(path))
    return path


@pytest.fixture
def exercise(request):
    "exercise('00_bigram/bigram.py') imports that file from the graded folder (exercises/ or solutions/)."
    root = REPO / request.config.getoption("--grade")
    def load(relpath: str):
        path = root / relpath
        spec = importlib.util.spec_from_file_location(f"graded_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The real smoke pipeline, run once per test session: `speedrun.ipynb` under papermill with the smoke preset,
    into a base directory of its own. Every consumer (evals, engine, CLI, API, later stages) tests what the real
    producers wrote. Returns base_dir, run, run_dir and the executed notebook's path."""
    import subprocess, sys, types
    # For local iteration only (CI never sets it): NANOCHAT_TEST_SMOKE=/some/dir reuses the smoke run kept there,
    # making it the first time. Stale if you changed a producer since: delete the folder to start afresh.
    keep = os.environ.get("NANOCHAT_TEST_SMOKE")
    root = Path(keep) if keep else tmp_path_factory.mktemp("smoke")
    base, run = root / "nanochat-base", "smoke"
    out = root / "speedrun-out.ipynb"
    if keep and (base / "runs" / run / "report.md").exists() and out.exists():
        return types.SimpleNamespace(base_dir=base, run=run, run_dir=base / "runs" / run, notebook=out,
                                     result=subprocess.CompletedProcess([], 0, "", ""))
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(base)}
    cmd = [sys.executable, "-m", "papermill", str(REPO / "speedrun.ipynb"), str(out), "--no-progress-bar",
           "-p", "preset", "smoke", "-p", "run", run]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"the smoke speedrun failed (exit {result.returncode}):\n{result.stderr[-6000:]}", pytrace=False)
    return types.SimpleNamespace(base_dir=base, run=run, run_dir=base / "runs" / run, notebook=out, result=result)


@pytest.fixture
def smoke_base(smoke_run, monkeypatch):
    "Point NANOCHAT_BASE_DIR at the smoke pipeline's base directory for one test (read it; copy it before writing)."
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(smoke_run.base_dir))
    return smoke_run.base_dir


def pytest_collection_modifyitems(config, items):
    """`make test` runs the suite on two cores with pytest-xdist (`-n 2 --dist loadgroup`). A test goes to the same
    worker as every other test sharing one of its costly fixtures, so each is built once: all consumers of the smoke
    pipeline together, and a module's tests together when they share a module- or session-scoped fixture of that
    module. Every other test (each notebook, say) is scheduled on its own. Without xdist the marks do nothing."""
    for item in items:
        ours = [d for defs in item._fixtureinfo.name2fixturedefs.values() for d in defs
                if d.scope != "function" and d.baseid.startswith("tests")]  # pytest's own (tmp_path_factory…) don't count
        if any(d.argname == "smoke_run" for d in ours):
            item.add_marker(pytest.mark.xdist_group("smoke_run"))
        elif ours:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
