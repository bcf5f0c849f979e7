"""Lesson 08: advantages, the GRPO and DPO losses against hand-computed values, pass@k against the unbiased
estimator, a tiny model that learns from rewards (GRPO and DPO) on CPU, and 2 processes == 1 on the same groups."""
import copy, json, math, os, subprocess, sys
from itertools import combinations
from pathlib import Path

import pytest
import torch

from nanochat.engine import Engine
from nanochat.gpt import GPT, GPTConfig
from nanochat.rl import (Group, answer_reward, byte_tokenizer, digit_problems, dpo_loss, dpo_train, evaluate, group_advantages,
                         group_tensors, grpo_backward, grpo_train, pass_at_k, policy_gradient_loss, preference_pairs, warm_start)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_advantages_are_reward_minus_group_mean():
    A = group_advantages([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0]])
    assert torch.allclose(A, torch.tensor([[0.75, -0.25, -0.25, -0.25], [0.25, 0.25, -0.75, 0.25]])), A
    assert group_advantages([0.0, 0.0, 0.0]).abs().sum() == 0


def test_policy_gradient_loss_is_the_formula():
    logp = torch.tensor([[-0.2, -1.0, -3.0], [-2.0, -0.1, -0.7]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    A = torch.tensor([2.0, -1.0])
    by_hand = -(2.0 * (-0.2 - 1.0) + -1.0 * (-0.1 - 0.7)) / 4   # = 0.4
    assert math.isclose(policy_gradient_loss(logp, A, mask).item(), by_hand, rel_tol=1e-6)
    assert math.isclose(policy_gradient_loss(logp, A, mask, num_tokens=8).item(), by_hand / 2, rel_tol=1e-6)


def test_dpo_loss_is_the_formula():
    pw, pl, rw, rl = torch.tensor([-4.0, -1.0]), torch.tensor([-5.0, -2.0]), torch.tensor([-4.5, -1.5]), torch.tensor([-4.0, -2.5])
    beta = 0.3
    margins = [((-4.0 + 4.5) - (-5.0 + 4.0)), ((-1.0 + 1.5) - (-2.0 + 2.5))]   # 1.5, 0.0
    by_hand = sum(math.log(1 + math.exp(-beta * m)) for m in margins) / 2
    assert math.isclose(dpo_loss(pw, pl, rw, rl, beta).item(), by_hand, rel_tol=1e-6)


def test_pass_at_k_is_the_unbiased_estimator():
    for n, c, k in [(5, 2, 1), (5, 2, 2), (5, 2, 3), (6, 1, 4), (8, 0, 3), (8, 8, 8), (7, 3, 5)]:
        subsets = list(combinations([1] * c + [0] * (n - c), k))   # every k-subset of n samples with c right
        want = sum(any(s) for s in subsets) / len(subsets)
        assert math.isclose(pass_at_k(n, c, k), want, rel_tol=1e-12), (n, c, k)
    with pytest.raises(ValueError): pass_at_k(4, 5, 1)


def test_answer_reward_reads_the_final_answer():
    assert answer_reward("<|python_start|>3*4<|python_end|>12.\n#### 12", "12") == 1.0
    assert answer_reward("#### 12.50", "12.5") == 1.0
    assert answer_reward("#### 13", "12") == 0.0 and answer_reward("12", "12") == 0.0


def test_group_tensors_train_only_sampled_tokens():
    g = Group(prompt=[1, 2, 3], completions=[[4, 5, 6, 9], [7]], masks=[[1, 0, 1, 1], [1]], rewards=[1.0, 0.0])
    x, y = group_tensors(g, pad_id=0)
    assert x.tolist() == [[1, 2, 3, 4, 5, 6], [1, 2, 3, 0, 0, 0]]
    assert y.tolist() == [[-1, -1, 4, -1, 6, 9], [-1, -1, 7, -1, -1, -1]]


def test_preference_pairs_need_a_right_and_a_wrong_answer():
    gs = [Group([1], [[2]] * 3, [[1]] * 3, r) for r in ([1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])]
    assert [(gs.index(g), w, l) for g, w, l in preference_pairs(gs, max_pairs=2)] == [(0, 0, 1), (0, 2, 1)]


def toy(seed=0):
    tok = byte_tokenizer()
    torch.manual_seed(seed)
    m = GPT(GPTConfig(sequence_len=64, vocab_size=tok.vocab_size, n_layer=2, n_head=2, n_kv_head=2, n_embd=64))
    m.init_weights()
    problems = digit_problems(tok, 200, seed=0)
    return tok, warm_start(m, tok, problems, steps=60), problems, digit_problems(tok, 16, seed=1)


@pytest.mark.parametrize("algo", ["grpo", "dpo"])
def test_a_tiny_model_learns_from_rewards(algo):
    "From the warm start (right ~1 time in 10), 30 steps of GRPO or DPO make '#### 7' the likely answer."
    tok, model, problems, heldout = toy()
    before = evaluate(Engine(model, tok, tool=None), heldout)
    hist = (grpo_train if algo == "grpo" else dpo_train)(model, tok, problems, steps=30, seed=0, lr=3e-3)
    after = evaluate(Engine(model, tok, tool=None), heldout)
    first, last = sum(h["reward"] for h in hist[:5]) / 5, sum(h["reward"] for h in hist[-5:]) / 5
    assert before["reward"] < 0.2 and after["reward"] > before["reward"] + 0.3 and last > first + 0.3, \
        f"{algo}: held-out reward {before['reward']:.2f} -> {after['reward']:.2f}, training reward {first:.2f} -> {last:.2f}"


def test_grpo_backward_is_the_policy_gradient_of_the_loss():
    "grpo_backward's gradient = autograd of policy_gradient_loss over all groups' tokens together."
    tok, model, problems, _ = toy()
    g1 = Group([1, 2], [[3, 4], [5]], [[1, 1], [1]], [1.0, 0.0]); g2 = Group([6], [[7, 8, 9]] * 2, [[1, 0, 1]] * 2, [0.0, 1.0])
    grpo_backward(model, [g1, g2], pad_id=0)
    got = [p.grad.clone() for p in model.parameters()]; model.zero_grad()
    total = 0
    for g in (g1, g2):
        x, y = group_tensors(g, 0)
        total = total - (group_advantages(g.rewards)[:, None] * -model(x, targets=y, loss_reduction="none")).sum()
    (total / 7).backward()                          # 7 sampled tokens in all
    for a, p in zip(got, model.parameters()): assert torch.allclose(a, p.grad, atol=1e-6)


RANKS_SCRIPT = r'''
import os, sys, torch, torch.distributed as dist
import importlib.util
torch.set_num_threads(1)
spec = importlib.util.spec_from_file_location("test_rl", os.path.join(os.environ["REPO"], "tests", "test_rl.py"))
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); toy = mod.toy
from nanochat.engine import Engine
from nanochat.optim import AdamW
from nanochat.rl import grpo_backward, optimizer_step, sample_step
if "RANK" in os.environ: dist.init_process_group("gloo")
rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
tok, model, problems, _ = toy()
opt = AdamW(model.parameters(), lr=1e-2)
for step in range(2):
    groups = sample_step(Engine(model, tok, tool=None), problems, step, 8, 8, 12, seed=0, indices=range(rank, 8, world))
    grpo_backward(model, groups, tok.encode_special("<|assistant_end|>"))
    optimizer_step(model, [opt])
torch.save({k: v for k, v in model.state_dict().items()}, os.path.join(sys.argv[1], f"rank{rank}.pt"))
'''


def test_two_processes_take_the_same_step_as_one(tmp_path):
    script = tmp_path / "ranks.py"; script.write_text(RANKS_SCRIPT)
    env = {**os.environ, "REPO": str(REPO), "OMP_NUM_THREADS": "1"}
    for name, cmd in [("one", [sys.executable, str(script)]),
                      ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)])]:
        (tmp_path / name).mkdir()
        r = subprocess.run(cmd + [str(tmp_path / name)], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
    one = torch.load(tmp_path / "one" / "rank0.pt")
    start = toy()[1].state_dict()
    assert any(not torch.equal(one[k], start[k]) for k in one), "the update changed nothing: the test would be vacuous"
    for rank in (0, 1):
        two = torch.load(tmp_path / "two" / f"rank{rank}.pt")
        for k in one: assert torch.allclose(one[k], two[k], atol=1e-5), (rank, k, (one[k] - two[k]).abs().max())


# --- the chat_rl stage, on what the real smoke pipeline wrote -------------------------------------------------

def rl_flags(run, **kw):
    f = {**dict(run_name=run, num_steps=4, groups_per_step=4, num_samples=4, max_new_tokens=12, eval_problems=4, pass_k=4,
                num_problems=16, eval_every=0, save_every=2, device_type="cpu"), **kw}
    return [x for k, v in f.items() for x in ([f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)]))]


@pytest.fixture
def rl_base(smoke_base, tmp_path, monkeypatch):
    "A copy of the smoke pipeline's base dir (chat_rl writes checkpoints) and the most trained model in it other than rl."
    import shutil
    from nanochat.checkpoint import available_models
    base = tmp_path / "base"
    shutil.copytree(smoke_base, base, ignore=shutil.ignore_patterns("chat_rl"))
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(base))
    return base, [m for m in available_models() if m != "rl"][0]


def run_rl(args, nproc=1, env=None):
    from nanochat.common import stage_command
    cmd = stage_command("chat_rl", args, nproc) if nproc > 1 else [sys.executable, "-m", "nanochat.chat_rl", *args]
    return subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, capture_output=True, text=True, timeout=600)


def final_records(run):
    "step -> the last training record of that step (a resumed run's records win)."
    from nanochat.common import read_metrics
    return {r["step"]: {k: v for k, v in r.items() if k not in ("time", "sample_s", "update_s", "tok_per_s")}
            for r in read_metrics(run, "chat_rl") if "reward" in r}


def weights(tag, step):
    from nanochat.checkpoint import load_checkpoint
    return load_checkpoint("chat_rl", tag, step, load_optimizer=False)[0]


def test_chat_rl_logs_saves_and_resumes_exactly_after_sigkill(rl_base):
    base, source = rl_base
    from nanochat.checkpoint import find_tag
    tag = find_tag(source)
    r = run_rl(rl_flags("full", source=source, tag="full"))
    assert r.returncode == 0, r.stderr[-3000:]
    full = final_records("full")
    assert sorted(full) == [0, 1, 2, 3] and {"reward", "pass@1", "pass@4", "length", "tokens", "level"} <= set(full[0])
    assert (base / "runs" / "full" / "report" / "chat_rl.md").exists()
    killed = run_rl(rl_flags("cut", source=source, tag="cut"), env={"NANOCHAT_KILL_DURING_SAVE": "4"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    r = run_rl(rl_flags("cut", source=source, tag="cut", resume=True))
    assert r.returncode == 0 and "resumed chat_rl/cut from step 2" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    assert final_records("cut") == full
    a, b = weights("full", 4), weights("cut", 4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert tag   # the source had a tag; chat_rl's default tag is the source's


def test_chat_rl_two_processes_equal_one(rl_base):
    _, source = rl_base
    one = run_rl(rl_flags("one", source=source, tag="one", num_steps=2, save_every=0))
    two = run_rl(rl_flags("two", source=source, tag="two", num_steps=2, save_every=0), nproc=2)
    assert one.returncode == 0 and two.returncode == 0, one.stderr[-2000:] + two.stderr[-2000:]
    a, b = final_records("one"), final_records("two")
    assert a.keys() == b.keys() == {0, 1}
    for s in a:
        for k in a[s]:
            same = a[s][k] == b[s][k] if isinstance(a[s][k], str) else a[s][k] == pytest.approx(b[s][k], rel=1e-5, abs=1e-6)
            assert same, (s, k, a[s][k], b[s][k])
    wa, wb = weights("one", 2), weights("two", 2)
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def test_chat_rl_refuses_bad_flags_in_one_line():
    r = run_rl(["--pass-k", "9", "--num-samples", "8"])
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: --pass-k 9:"), r.stderr


def test_no_rl_training_problem_matches_a_gsm8k_test_problem():
    "Every curriculum level's training pool, masked (names, numbers), shares no text with GSM8K test."
    from nanochat.chat_data import arithmetic_problems, contamination
    from nanochat.chat_rl import CURRICULUM
    questions = [p.question for steps, size, families in CURRICULUM
                 for p in arithmetic_problems(200, "train", steps=steps, size=size, families=families, seed=42)]
    assert len(questions) == 200 * len(CURRICULUM)
    assert contamination(questions) == []


def test_chat_rl_trains_on_gsm8k_train_downloaded_from_a_local_server(rl_base, tmp_path):
    "--data gsm8k: GSM8K *train* through lesson 07's download (here from 127.0.0.1), a held-out slice of it, never the test split."
    import functools, http.server, threading, urllib.parse
    import pyarrow as pa, pyarrow.parquet as pq
    from nanochat.chat_data import DOWNLOADS
    from nanochat.chat_rl import gsm8k_problems
    from nanochat.tokenizer import get_tokenizer
    base, source = rl_base
    rel = urllib.parse.unquote(DOWNLOADS["gsm8k_train"][0])
    (tmp_path / "www" / rel).parent.mkdir(parents=True)
    rows = [{"question": f"What is {a} plus {b}?", "answer": f"{a}+{b}=<<{a}+{b}={a + b}>>{a + b}\n#### {a + b:,}"}
            for a in range(30, 40) for b in (1000, 1001)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "www" / rel)
    asked = []
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
        def do_GET(self): asked.append(urllib.parse.unquote(self.path)); super().do_GET()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path / "www")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"NANOCHAT_CHAT_DATA_URL": f"http://127.0.0.1:{server.server_port}"}
    try:
        r = run_rl(rl_flags("gsm", source=source, tag="gsm", data="gsm8k", num_steps=2, save_every=0, num_problems=12,
                            eval_problems=4), env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        assert asked == ["/" + rel], f"expected one GET of GSM8K train, got {asked}"
        recs = final_records("gsm")
        assert sorted(recs) == [0, 1] and {x["level"] for x in recs.values()} == {0}, recs   # no curriculum on GSM8K
        assert "GSM8K train" in (base / "runs" / "gsm" / "report" / "chat_rl.md").read_text()
        too_many = run_rl(rl_flags("gsm2", source=source, tag="gsm2", data="gsm8k", num_problems=17, eval_problems=4), env=env)
        assert too_many.returncode == 2 and too_many.stderr.strip().splitlines()[-1].startswith(
            "error: --num-problems 17: GSM8K train has 20 problems"), too_many.stderr[-2000:]
        assert len(asked) == 1, "the verified file is downloaded once and reused"
    finally:
        server.shutdown()
    tok = get_tokenizer()
    train, heldout = gsm8k_problems(tok, 12, 4, seed=42)
    assert (len(train), len(heldout)) == (12, 4) and not {tok.decode(p) for p, _ in train} & {tok.decode(p) for p, _ in heldout}
    assert gsm8k_problems(tok, 12, 4, seed=42) == (train, heldout) and gsm8k_problems(tok, 12, 4, seed=1)[0] != train
    want = {f"What is {a} plus {b}?": str(a + b) for a in range(30, 40) for b in (1000, 1001)}   # '1,030' read as 1030
    assert all(want[next(q for q in want if q in tok.decode(p))] == ans for p, ans in train + heldout)
    r = run_rl(["--data", "gsm8k-test"])
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: --data 'gsm8k-test':"), r.stderr
