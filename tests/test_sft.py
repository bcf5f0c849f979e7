"""Midtraining and SFT (lesson 07): fine-tuning starts from what base_train wrote (the smoke pipeline), two processes
equal one, SIGKILL then --resume gives the same losses, mismatched flags are refused, LoRA trains only its adapters and
its merged weights give the adapters' logits, and the smoke pipeline's SFT model behaves like an assistant."""
import json, os, shutil, signal, subprocess, sys, time

import pytest
import torch

from nanochat import chat_data as cd
from nanochat.checkpoint import CheckpointError, complete_steps, load_model, merge_lora, model_from_state, step_dir
from nanochat.common import read_metrics, stage_command
from nanochat.sft import (PackedBatches, PaddedBatches, finetune, finetune_step, lora_state,
                          model_and_optimizers)

# small, fast runs from the smoke pipeline's base model (d2, vocab 512, context 128)
FAST = dict(source="base", chitchat=False, multiple_choice=False, arithmetic=300, spelling=50, identity_copies=1,
            device_batch_size=2, warmdown_ratio=0.2, eval_every=5, device_type="cpu", dtype="float32")


@pytest.fixture
def chat_base(smoke_run, base_dir, monkeypatch):
    "A copy of the smoke pipeline's tokenizer and base checkpoints as this test's base dir; single-threaded torch."
    base_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(smoke_run.base_dir / "tokenizer", base_dir / "tokenizer")
    shutil.copytree(smoke_run.base_dir / "checkpoints" / "base_train", base_dir / "checkpoints" / "base_train")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads(); torch.set_num_threads(1)
    yield base_dir
    torch.set_num_threads(threads)


def flags(**kw) -> list[str]:
    out = []
    for k, v in kw.items():
        flag = "--" + k.replace("_", "-")
        out += [flag] if v is True else [f"--no-{flag[2:]}"] if v is False else [flag, str(v)]
    return out


def start(stage: str, nproc: int = 1, **kw) -> subprocess.Popen:
    cmd = stage_command(stage, flags(**kw), nproc) if nproc > 1 else [sys.executable, "-m", f"nanochat.{stage}", *flags(**kw)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def losses(run: str, stage: str) -> dict[int, float]:
    "step -> loss as metrics.jsonl finally has it (a resumed run's records win)."
    return {r["step"]: r["loss"] for r in read_metrics(run, stage) if "loss" in r}


def kill_when_logged(proc, run: str, stage: str, step: int, base_dir, timeout: float = 240):
    path, deadline = base_dir / "runs" / run / "metrics.jsonl", time.time() + timeout
    while time.time() < deadline:
        if path.exists() and any(json.loads(l).get("step", -1) >= step and json.loads(l)["stage"] == stage
                                 for l in path.read_text().splitlines() if l.strip()):
            os.kill(proc.pid, signal.SIGKILL); proc.communicate()
            assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
            return
        if proc.poll() is not None: pytest.fail(f"the run ended (exit {proc.returncode}) before step {step}:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.005)
    proc.kill(); pytest.fail(f"step {step} was not logged within {timeout} s")


@pytest.mark.parametrize("stage", ["chat_sft", "mid_train"])
def test_two_processes_equal_one(chat_base, stage):
    run = dict(FAST, num_iterations=6, save_every=-1, init_lr_frac=0.3)
    proc = start(stage, nproc=2, run_name="two", tag="two", grad_accum=1, **run)
    one = finetune(stage, run_name="one", tag="one", grad_accum=2, **run)
    out, _ = proc.communicate()
    assert proc.returncode == 0, out[-4000:]
    two = losses("two", stage)
    assert sorted(two) == list(range(6))
    for s in range(6):  # the same rows per step, the loss normalised over the whole step: equal up to float rounding
        assert two[s] == pytest.approx(one["losses"][s], rel=1e-4), (s, two[s], one["losses"][s])
    val = {r["step"]: r["val_loss"] for r in read_metrics("two", stage) if "val_loss" in r}
    assert val[6] == pytest.approx(one["val_losses"][6], rel=1e-4)
    meta = json.loads((step_dir(stage, "two", 6) / "meta.json").read_text())
    assert meta["world_size"] == 2 and meta["source"]["stage"] == "base_train"


@pytest.mark.parametrize("stage", ["chat_sft", "mid_train"])
def test_sigkill_then_resume_gives_the_same_losses(chat_base, stage):
    run = dict(FAST, num_iterations=16, save_every=4, init_lr_frac=0.3, grad_accum=1)
    reference = finetune(stage, run_name="ref", tag="ref", **run)
    proc = start(stage, run_name="killed", tag="k", **run)
    kill_when_logged(proc, "killed", stage, 10, chat_base)
    latest = complete_steps(stage, "k")[-1]
    assert 4 <= latest < 16
    again = finetune(stage, run_name="killed", tag="k", resume=True, **run)
    assert min(again["losses"]) == latest
    assert losses("killed", stage) == reference["losses"]     # bit for bit the uninterrupted run
    assert again["val_losses"][16] == reference["val_losses"][16]


def test_resume_with_other_flags_is_refused(chat_base):
    run = dict(FAST, num_iterations=2, eval_every=0, init_lr_frac=0.02)
    finetune("chat_sft", run_name="r", tag="r", **run)
    with pytest.raises(CheckpointError, match="--init-lr-frac: checkpoint 0.02, now 0.5"):
        finetune("chat_sft", run_name="r", tag="r", resume=True, **dict(run, init_lr_frac=0.5))
    with pytest.raises(CheckpointError, match="--arithmetic: checkpoint 300, now 301"):
        finetune("chat_sft", run_name="r", tag="r", resume=True, **dict(run, arithmetic=301))
    assert finetune("chat_sft", run_name="r", tag="r", resume=True, **dict(run, eval_every=1))["steps_run"] == 0


def test_bad_flags_are_one_line_errors(chat_base):
    for bad, said in [(["--device-batch-size", "0"], "--device-batch-size 0: must be at least 1"),
                      (["--data", "web"], "--data 'web': choose offline"),
                      (["--source", "nothing"], "no checkpoints")]:
        r = subprocess.run([sys.executable, "-m", "nanochat.chat_sft", *bad], capture_output=True, text=True)
        assert r.returncode == 2 and said in r.stderr and "Traceback" not in r.stderr, (bad, r.stderr[-800:])
    r = subprocess.run([sys.executable, "-m", "nanochat.mid_train", "--no-chitchat", "--lora-rank", "4"], capture_output=True, text=True)
    assert r.returncode == 2 and "unrecognized arguments: --lora-rank" in r.stderr


def test_lora_trains_only_the_adapters_and_merges_to_the_same_logits(chat_base):
    model, tok, opts, origin = model_and_optimizers("base", "", -1, "cpu", 4, 8.0, 3e-2, 0.02, 0.2, 0.004, 1.0)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if ".lora_" not in k}
    adapters0 = lora_state(model)
    mix = cd.Mixture([cd.Task("arith", cd.arithmetic_problems(40, seed=1), cd.problem_conversation)])
    batches = PaddedBatches(tok, mix, 4, 128)
    first = finetune_step(model, opts, batches)
    for _ in range(5): last = finetune_step(model, opts, batches)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items()), "a frozen weight changed"
    assert all(not torch.equal(after[k], v) for k, v in adapters0.items()), "an adapter did not train"
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == sum(v.numel() for v in adapters0.values())
    x = torch.tensor([tok.render_conversation(mix[0])[0]])
    base = {k.replace(".base.", "."): v for k, v in frozen.items()}
    merged = model_from_state(vars(model.config), merge_lora(base, lora_state(model), 8.0 / 4))
    with torch.no_grad():
        torch.testing.assert_close(merged(x), model(x), atol=1e-4, rtol=1e-4)
    assert origin["stage"] == "base_train" and last < first


def test_lora_stage_saves_adapters_under_its_own_tag_and_load_model_merges_them(chat_base):
    metrics = finetune("chat_sft", run_name="lora", lora_rank=4, lora_lr=3e-2, num_iterations=4, save_every=-1, **FAST)
    tag = metrics["tag"]
    assert tag.endswith("-lora4")
    path = step_dir("chat_sft", tag, 4)
    state = torch.load(path / "model.pt", weights_only=True)
    assert state and all(".lora_A" in k or ".lora_B" in k for k in state), "a LoRA checkpoint holds only the adapters"
    meta = json.loads((path / "meta.json").read_text())
    assert meta["lora"]["base"]["stage"] == "base_train" and meta["lora"]["rank"] == 4
    merged, tok, _ = load_model("sft", tag=tag)
    base, _, _ = load_model("base")
    expected = merge_lora(base.state_dict(), state, meta["lora"]["alpha"] / meta["lora"]["rank"])
    for k, v in merged.state_dict().items(): torch.testing.assert_close(v, expected[k])
    assert any(not torch.equal(merged.state_dict()[k], base.state_dict()[k]) for k in expected)


# --- behaviour of the smoke pipeline's SFT model ----------------------------------------------------------------

def test_sft_model_answers_identity_and_calls_the_calculator(smoke_base):
    "The smoke speedrun's SFT model (pretrained, midtrained, SFT'd on CPU) on held-out phrasings, greedy, through the engine."
    from nanochat.engine import Engine
    torch.set_num_threads(1)
    model, tok, _ = load_model("sft")
    engine = Engine(model, tok)
    def generate(questions):
        prompts = [tok.render_for_completion([{"role": "user", "content": q}]) for q in questions]
        return engine.generate_batch(prompts, max_tokens=40, temperature=0.0, seed=0)[0]
    questions = cd.identity_questions("heldout")
    named = [cd.MODEL_NAME in tok.decode(ids) for ids in generate(questions)]
    assert sum(named) / len(named) >= 0.8, f"named itself in {sum(named)}/{len(named)} held-out identity questions"
    problems = cd.arithmetic_problems(40, "heldout", steps=1, seed=0)
    python_start = tok.encode_special("<|python_start|>")
    calls = [python_start in ids for ids in generate([p.question for p in problems])]
    assert sum(calls) / len(calls) >= 0.7, f"called the calculator in {sum(calls)}/{len(calls)} held-out one-step problems"


def test_chat_eval_logs_the_behaviour_eval_of_the_model_it_loaded(smoke_base, smoke_run):
    "The smoke speedrun's chat_eval of sft logged identity / calculator_calls / arithmetic_right, as behaviour_eval measures them."
    import json
    from nanochat.sft import behaviour_eval
    torch.set_num_threads(1)
    records = [json.loads(l) for l in (smoke_run.run_dir / "metrics.jsonl").read_text().splitlines() if l.strip()]
    logged = [r for r in records if r["stage"] == "chat_eval" and r.get("source") == "sft"]
    assert logged, "the smoke speedrun logged no chat_eval record for sft"
    model, tok, _ = load_model("sft")
    measured = behaviour_eval(model, tok)
    for key in ("identity", "calculator_calls", "arithmetic_right"):
        assert 0.0 <= logged[-1][key] <= 1.0
        assert abs(logged[-1][key] - measured[key]) <= 0.05, f"{key}: chat_eval logged {logged[-1][key]}, behaviour_eval gives {measured[key]}"
    assert "Behaviour on held-out phrasings" in (smoke_run.run_dir / "report" / "chat_eval_sft.md").read_text()
