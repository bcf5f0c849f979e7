"""speedrun.ipynb, run headless by papermill as `make speedrun` does: the smoke preset reaches report.md; a
stage that fails stops the run with a clear error; the same run name again continues the run (finished
stages skipped, an interrupted one resumed from its checkpoint); `force` redoes stages; two "nodes" on
127.0.0.1 train like one; the Makefile prints the report it wrote."""
import json, os, re, shutil, socket, subprocess, sys
from pathlib import Path

import pytest

from nanochat.common import read_metrics, stage_command

REPO = Path(__file__).resolve().parents[1]


def papermill(tmp_path, *params):
    out = tmp_path / "speedrun-out.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(REPO / "speedrun.ipynb"), str(out), "--no-progress-bar", "--log-output", *params]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def stage_records(run_dir: Path) -> list[dict]:
    return [json.loads(l) for l in (run_dir / "stages.jsonl").read_text().splitlines()]


def test_smoke_speedrun_writes_the_report(smoke_run):
    report = smoke_run.run_dir / "report.md"
    text = report.read_text()
    assert "## Environment" in text and "## Time and cost" in text and "| total |" in text
    assert f"report card: {report}" in smoke_run.notebook.read_text()
    ran = [r["stage"] for r in stage_records(smoke_run.run_dir)]
    assert ran[:6] == ["preflight", "dataset", "tok_train", "tok_eval", "base_train", "base_eval"]
    assert all(r["returncode"] == 0 for r in stage_records(smoke_run.run_dir))


def test_a_failing_stage_stops_the_speedrun(tmp_path, base_dir):
    # asking for CUDA on a machine without a GPU makes the preflight stage exit non-zero
    result = papermill(tmp_path, "-p", "preset", "smoke", "-p", "run", "broken", "-p", "device_type", "cuda")
    assert result.returncode != 0
    assert "stage preflight failed with exit code 1" in result.stderr
    assert "torch sees no GPU" in result.stderr
    assert not (base_dir / "runs" / "broken" / "report.md").exists()


@pytest.fixture
def smoke_copy(smoke_run, base_dir):
    "A writable copy of the smoke pipeline's base directory, as this test's NANOCHAT_BASE_DIR."
    shutil.copytree(smoke_run.base_dir, base_dir, symlinks=True)
    return base_dir / "runs" / smoke_run.run


def test_the_same_run_name_continues_and_skips_finished_stages(tmp_path, smoke_copy):
    before = stage_records(smoke_copy)
    result = papermill(tmp_path, "-p", "preset", "smoke", "-p", "run", "smoke")
    assert result.returncode == 0, result.stderr[-4000:]
    assert stage_records(smoke_copy) == before  # nothing ran again
    for step in ("preflight", "dataset", "tok_train", "tok_eval", "base_train", "base_eval"):
        assert f"{step}: done earlier in run 'smoke', skipped" in result.stderr
    assert (smoke_copy / "report.md").exists() and not (smoke_copy / "archive").exists()


def test_an_interrupted_training_stage_resumes_from_its_checkpoint(tmp_path, smoke_copy):
    # what a crash after step 10's checkpoint leaves: the log, checkpoint 10, no step-20 checkpoint, no section, no record
    (smoke_copy / "report" / "base_train.md").unlink()
    records = [r for r in stage_records(smoke_copy) if r["stage"] not in ("base_train", "base_eval")]
    (smoke_copy / "stages.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    ckpts = smoke_copy.parents[1] / "checkpoints" / "base_train" / "d2"
    shutil.rmtree(ckpts / "step_000020")
    assert (ckpts / "step_000010").is_dir()
    result = papermill(tmp_path, "-p", "preset", "smoke", "-p", "run", "smoke", "-p", "stages", "base_train,base_eval")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "base_train: interrupted earlier in run 'smoke'; resuming from step 10" in result.stderr
    assert "resumed d2 from step 10" in result.stderr
    assert [r["stage"] for r in stage_records(smoke_copy)][-2:] == ["base_train", "base_eval"]
    assert (ckpts / "step_000020").is_dir() and (smoke_copy / "report" / "base_train.md").exists()


def test_force_redoes_the_named_stage_only(tmp_path, smoke_copy):
    result = papermill(tmp_path, "-p", "preset", "smoke", "-p", "run", "smoke", "-p", "force", "tok_eval")
    assert result.returncode == 0, result.stderr[-4000:]
    steps = [r["stage"] for r in stage_records(smoke_copy)]
    assert steps.count("tok_eval") == 2 and steps.count("base_train") == 1


def test_force_all_starts_afresh_and_archives_the_first(tmp_path, base_dir):
    for force in ("", "all"):
        assert papermill(tmp_path, "-p", "preset", "smoke", "-p", "run", "twice", "-p", "stages", "preflight",
                         "-p", "force", force).returncode == 0
    run_dir = base_dir / "runs" / "twice"
    archived = list((run_dir / "archive").glob("*/report.md"))
    assert len(archived) == 1
    assert len(stage_records(run_dir)) == 1  # only this run's stages


def test_an_unknown_stage_is_named(tmp_path):
    result = papermill(tmp_path, "-p", "preset", "smoke", "-p", "run", "typo", "-p", "stages", "preflight,base_trian")
    assert result.returncode != 0 and "unknown stages ['base_trian']" in result.stderr


def test_make_speedrun_prints_the_directory_it_writes():
    "RUN is computed once: the papermill line and the 'report card:' line name the same run."
    out = subprocess.run(["make", "-n", "speedrun"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "NANOCHAT_BASE_DIR": "/tmp/x"}).stdout
    written = re.search(r"papermill speedrun.ipynb \"(/tmp/x/runs/[^/\"]+)/speedrun.ipynb\".*?-p run (\S+)", out, re.S)
    printed = re.search(r"report card: (\S+)/report.md", out)
    assert written and printed, out
    assert written.group(1) == printed.group(1) == f"/tmp/x/runs/{written.group(2)}"
    override = subprocess.run(["make", "-n", "speedrun", "RUN=mine"], cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "NANOCHAT_BASE_DIR": "/tmp/x"}).stdout
    assert "-p run mine" in override and "report card: /tmp/x/runs/mine/report.md" in override


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def test_two_nodes_on_localhost_train_like_one(smoke_copy):
    "base_train on 2 'nodes' (1 gloo process each, c10d rendezvous on 127.0.0.1) = 1 process accumulating 2 passes."
    args = ["--depth", 1, "--max-seq-len", 32, "--device-batch-size", 4, "--total-batch-size", 256, "--num-iterations", 6,
            "--eval-every", 3, "--eval-tokens", 512, "--sample-every", 0, "--save-every", -1, "--no-compile", "--device-type", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = [subprocess.Popen(stage_command("base_train", ["--run-name", "nodes", "--tag", "nodes", *args], 1, nnodes=2, node_rank=r,
                                            rdzv_endpoint=endpoint, rdzv_id="two-nodes"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) for r in (0, 1)]
    one = subprocess.run(stage_command("base_train", ["--run-name", "one", "--tag", "one", *args], 1), capture_output=True, text=True, env=env)
    outs = [n.communicate(timeout=600)[0] for n in nodes]
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    assert [n.returncode for n in nodes] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    losses = lambda run: {r["step"]: r["loss"] for r in read_metrics(run, "base_train") if "loss" in r}
    two, single = losses("nodes"), losses("one")
    assert sorted(two) == sorted(single) == list(range(6))
    for s in range(6):
        assert two[s] == pytest.approx(single[s], rel=1e-4), (s, two[s], single[s])
    meta = json.loads(next((smoke_copy.parents[1] / "checkpoints" / "base_train" / "nodes").glob("step_*/meta.json")).read_text())
    assert meta["world_size"] == 2


def test_the_smoke_report_renders_as_clean_html(smoke_run, tmp_path):
    "report.md through a CommonMark renderer with tables: every table whole, no stray emphasis, every image there."
    from markdown_it import MarkdownIt
    from nanochat.report import assemble_report
    shutil.copytree(smoke_run.run_dir, tmp_path / "run")
    os.environ["NANOCHAT_BASE_DIR"] = str(tmp_path / "base")  # (the autouse fixture restores it after the test)
    text = (smoke_run.run_dir / "report.md").read_text()
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<em>" not in html and "<strong>" not in html, "markdown emphasis from a name or path with underscores"
    assert html.count("<table>") == sum(1 for block in text.split("\n\n") if block.startswith("| ") or block.startswith("| |"))
    images = re.findall(r'<img src="([^"]+)"', html)
    assert images and all((smoke_run.run_dir / src).exists() for src in images)
    assert "—</td>" in html and "--device-type <" not in html
    page = smoke_run.run_dir.parent.parent / "report.html"  # beside the run, for a person (or a browser) to look at
    page.write_text(f"<meta charset='utf-8'><base href='runs/{smoke_run.run}/'><style>body{{font-family:sans-serif;max-width:60em}}"
                    f"table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px}}</style>{html}")
