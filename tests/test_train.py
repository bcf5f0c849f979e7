"""Lesson 04's training loop (nanochat/train.py) and the base_train stage, on CPU with tiny models:
gradient accumulation, two processes against one, SIGKILL then --resume (mid-run and mid-save), corrupt
checkpoints, mismatched flags, and val bpb falling on the default corpus.

One corpus build and one 512-token tokenizer serve the whole session; every test links them into its own
$NANOCHAT_BASE_DIR. Training runs single-threaded (OMP_NUM_THREADS=1) so that runs are bit-reproducible
and not slowed down by busy cores."""
import json, os, shutil, signal, subprocess, sys, time

import pytest
import torch

from nanochat.checkpoint import MARKER, CheckpointError, complete_steps, step_dir
from nanochat.common import read_metrics, stage_command
from nanochat.data import TokenLoader, build_corpus, iter_documents
from nanochat.gpt import GPT, config_from_depth
from nanochat.optim import setup_optimizers
from nanochat.plots import curves
from nanochat.tokenizer import Tokenizer
from nanochat.train import Batches, pretrain, train_step

# The run the exactness tests share: 40 steps of a 1-layer model, 256 tokens per step in 2 passes of 4 × 32.
TINY = dict(depth=1, max_seq_len=32, device_batch_size=4, total_batch_size=256, num_iterations=40, eval_every=10,
            eval_tokens=512, sample_every=0, save_every=10, compile=False)


def flags(**kw) -> list[str]:
    "Keyword arguments as base_train command-line flags."
    out = []
    for k, v in kw.items():
        flag = "--" + k.replace("_", "-")
        out += [flag] if v is True else [f"--no-{flag[2:]}"] if v is False else [flag, str(v)]
    return out


@pytest.fixture(scope="session")
def corpus_and_tokenizer(tmp_path_factory):
    "The embedded corpus, built once, and a 512-token tokenizer trained on ~300 KB of it."
    root = tmp_path_factory.mktemp("train-data")
    build_corpus(data_dir=root / "base_data", cache_dir=root / "cache")
    def texts(limit=300_000):
        total = 0
        for doc in iter_documents("train", root / "base_data"):
            yield doc[:limit - total]; total += len(doc)
            if total >= limit: return
    Tokenizer.train(texts(), vocab_size=512).save(root / "tokenizer")
    return root


@pytest.fixture
def data(base_dir, corpus_and_tokenizer, monkeypatch):
    "This test's base dir with the session's corpus and tokenizer, and single-threaded torch."
    base_dir.mkdir(parents=True, exist_ok=True)
    (base_dir / "base_data").symlink_to(corpus_and_tokenizer / "base_data")
    shutil.copytree(corpus_and_tokenizer / "tokenizer", base_dir / "tokenizer")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield base_dir
    torch.set_num_threads(threads)


def logged_losses(run: str) -> dict[int, float]:
    "step -> train loss as the run's metrics.jsonl finally has it (a resumed run's records win)."
    c = curves(read_metrics(run, "base_train"))["train"]
    return dict(zip(c["step"], c["loss"]))


def start_stage(run: str, nproc: int = 1, env: dict | None = None, **kw) -> subprocess.Popen:
    cmd = stage_command("base_train", flags(run_name=run, **kw), nproc) if nproc > 1 else \
        [sys.executable, "-m", "nanochat.base_train", *flags(run_name=run, **kw)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate()
    assert proc.returncode == 0, out[-4000:]
    return out


# --- gradient accumulation ----------------------------------------------------------------------------------

class GradRecorder:
    "An 'optimizer' that only copies the accumulated gradients when stepped."
    def __init__(self, model): self.model, self.grads = model, {}
    def step(self): self.grads = {n: p.grad.clone() for n, p in self.model.named_parameters()}


def rel(a, b) -> float: return ((a - b).norm() / b.norm().clamp(min=1e-30)).item()


def test_grad_accumulation_gives_the_same_update(data):
    "4 micro-steps of 2 sequences = 1 step of 8: the same mean loss, gradients and Muon + AdamW updates."
    from nanochat.tokenizer import get_tokenizer
    tok = get_tokenizer()
    x, y = next(TokenLoader(tok, 8, 32))
    torch.manual_seed(0)
    a = GPT(config_from_depth(2, vocab_size=tok.vocab_size, sequence_len=32, head_dim=32))
    b = GPT(config_from_depth(2, vocab_size=tok.vocab_size, sequence_len=32, head_dim=32))
    b.load_state_dict(a.state_dict())
    ra, rb = GradRecorder(a), GradRecorder(b)
    oa, ob = [ra, *setup_optimizers(a)], [rb, *setup_optimizers(b)]
    for _ in range(3):  # several steps, so momentum and Adam's moments are compared too
        before_a = {n: p.detach().clone() for n, p in a.named_parameters()}
        before_b = {n: p.detach().clone() for n, p in b.named_parameters()}
        la = train_step(a, oa, iter([(x, y)]), grad_accum=1)
        lb = train_step(b, ob, iter([(x[i:i + 2], y[i:i + 2]) for i in range(0, 8, 2)]), grad_accum=4)
        torch.testing.assert_close(la, lb, atol=1e-6, rtol=1e-6)
        for (n, p), q in zip(a.named_parameters(), b.parameters()):
            if ra.grads[n].norm() > 0: assert rel(rb.grads[n], ra.grads[n]) < 1e-4, n
            else: assert rb.grads[n].norm() == 0, n  # no gradient reaches c_q … c_fc while c_proj is still zero
            update_a, update_b = p.detach() - before_a[n], q.detach() - before_b[n]
            if update_a.norm() > 0: assert rel(update_b, update_a) < 1e-4, n
    assert a.transformer.h[0].mlp.c_proj.weight.abs().sum() > 0  # the zero-initialised projections did move


def test_batches_do_not_depend_on_the_number_of_processes(data):
    "1 process × 2 passes reads exactly the tokens 2 processes × 1 pass read; a saved state resumes the pending batch."
    from nanochat.tokenizer import get_tokenizer
    tok = get_tokenizer()
    one = Batches(tok, 2, 16, accum=2)
    two = [Batches(tok, 2, 16, rank=r, world_size=2) for r in (0, 1)]
    for _ in range(4):
        for r in (0, 1): assert torch.equal(next(one)[1], next(two[r])[1])
    next(one); one.prefetch()
    state = json.loads(json.dumps(one.state_dict()))  # it goes into meta.json
    want = [next(one) for _ in range(3)]
    other = Batches(tok, 2, 16, accum=2)
    other.load_state_dict(state)
    for w in want: assert torch.equal(next(other)[0], w[0])


# --- exact resume ---------------------------------------------------------------------------------------------

@pytest.fixture
def reference(data):
    "The uninterrupted TINY run, in this process: its losses and val bpb per step."
    result = pretrain(run_name="reference", **TINY)
    assert complete_steps("base_train", "d1") == [30, 40]  # keep_last=2 pruned 10 and 20
    shutil.rmtree(data / "checkpoints")
    return result


def kill_when_logged(proc: subprocess.Popen, run: str, step: int, base_dir, timeout: float = 240):
    "SIGKILL `proc` as soon as its metrics show `step`; fails if it finished first."
    path, deadline = base_dir / "runs" / run / "metrics.jsonl", time.time() + timeout
    while time.time() < deadline:
        if path.exists() and any(json.loads(l).get("step", -1) >= step for l in path.read_text().splitlines() if l.strip()):
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
            return
        if proc.poll() is not None: pytest.fail(f"the run ended (exit {proc.returncode}) before step {step}:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.005)
    proc.kill(); pytest.fail(f"step {step} was not logged within {timeout} s")


def test_sigkill_mid_run_then_resume_gives_the_same_losses(reference, data):
    proc = start_stage("killed", **TINY)
    kill_when_logged(proc, "killed", 15, data)         # after the checkpoint of step 10, before 40
    latest = complete_steps("base_train", "d1")[-1]
    assert 10 <= latest < 40
    logged = max(logged_losses("killed"))
    again = pretrain(run_name="killed", **TINY, resume=True)
    assert min(again["losses"]) == latest and logged >= 15   # it repeated the steps after its last checkpoint
    assert logged_losses("killed") == reference["losses"]      # every step: bit for bit the uninterrupted run
    assert again["val_bpbs"][40] == reference["val_bpbs"][40]


def test_sigkill_during_a_save_then_resume(reference, data):
    proc = start_stage("killed-saving", env={"NANOCHAT_KILL_DURING_SAVE": "20"}, **TINY)
    out, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, out[-3000:]
    ckpts = data / "checkpoints" / "base_train" / "d1"
    assert complete_steps("base_train", "d1") == [10]             # step 20 never became a checkpoint ...
    assert (ckpts / ".step_000020.tmp" / "model.pt").exists()      # ... though its files were written
    assert not (ckpts / ".step_000020.tmp" / MARKER).exists()
    again = pretrain(run_name="killed-saving", **TINY, resume=True)
    assert min(again["losses"]) == 10
    assert logged_losses("killed-saving") == reference["losses"]
    assert not (ckpts / ".step_000020.tmp").exists()               # the leftover was cleared by the next save


def test_corrupt_latest_checkpoint_resumes_from_the_previous(reference, data):
    partial = dict(TINY, num_iterations=40)
    pretrain(run_name="corrupt", **partial)                     # checkpoints 30 and 40 kept
    weights = step_dir("base_train", "d1", 40) / "model.pt"
    weights.write_bytes(weights.read_bytes()[:1000])            # a truncated file in the latest
    with pytest.warns(UserWarning, match="step 40.*truncated"):
        again = pretrain(run_name="corrupt", **partial, resume=True)
    assert min(again["losses"]) == 30                            # resumed from step 30 ...
    assert {s: again["losses"][s] for s in range(30, 40)} == {s: reference["losses"][s] for s in range(30, 40)}
    assert complete_steps("base_train", "d1") == [30, 40]        # ... and rewrote step 40


def test_resume_with_other_flags_is_refused(data):
    pretrain(run_name="r", **dict(TINY, num_iterations=2, eval_every=0, save_every=-1))
    with pytest.raises(CheckpointError, match="--depth: checkpoint 1, now 2|--max-seq-len") as e:
        pretrain(run_name="r", **dict(TINY, num_iterations=2, eval_every=0, max_seq_len=64), tag="d1", resume=True)
    assert "--max-seq-len: checkpoint 32, now 64" in str(e.value)
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        pretrain(run_name="r", **dict(TINY, depth=2), resume=True)
    # observing flags may change
    again = pretrain(run_name="r", **dict(TINY, num_iterations=2, eval_every=1, save_every=-1), resume=True)
    assert again["steps_run"] == 0


def test_fresh_run_moves_old_checkpoints_aside(data):
    run = dict(TINY, num_iterations=2, eval_every=0, save_every=-1)
    pretrain(run_name="a", **run)
    pretrain(run_name="b", **run)
    archived = list((data / "checkpoints" / "base_train" / "archive").iterdir())
    assert len(archived) == 1 and (archived[0] / "step_000002" / MARKER).exists()
    assert complete_steps("base_train", "d1") == [2]


# --- several processes -----------------------------------------------------------------------------------------

def test_two_processes_follow_one_process(data):
    "2 gloo processes × 1 pass = 1 process × 2 accumulated passes: the same tokens per step, the same losses."
    run = dict(TINY, num_iterations=12, eval_every=6, save_every=-1, eval_tokens=1024)
    proc = start_stage("two", nproc=2, tag="two", **run)   # both run at once: separate checkpoint tags
    one = pretrain(run_name="one", tag="one", **run)
    finish(proc)
    two = logged_losses("two")
    assert sorted(two) == list(range(12))
    for s in range(12):  # the same tokens per step (see Batches): equal up to float rounding
        assert two[s] == pytest.approx(one["losses"][s], rel=1e-4), (s, two[s], one["losses"][s])
    assert one["losses"][11] < one["losses"][0] - 0.5
    bpb = {r["step"]: r["val_bpb"] for r in read_metrics("two", "base_train") if "val_bpb" in r}
    assert bpb[0] == pytest.approx(one["val_bpbs"][0], rel=1e-6) and bpb[12] == pytest.approx(one["val_bpbs"][12], rel=1e-4)
    path = step_dir("base_train", "two", 12)
    assert {p.name for p in path.iterdir()} >= {"optim_1_rank0.pt", "optim_1_rank1.pt", "optim_0.pt", "model.pt"}
    meta = json.loads((path / "meta.json").read_text())
    assert meta["world_size"] == 2 and [s["loaders"][0]["rank"] for s in meta["loader_state"]] == [0, 1] and len(meta["rng"]) == 2
    assert "processes | 2" in (data / "runs" / "two" / "report" / "base_train.md").read_text()


# --- learning -------------------------------------------------------------------------------------------------

def test_val_bpb_falls_on_the_default_corpus(data):
    """The cpu preset scaled down to test size (depth 2 instead of 4, 512-token vocabulary instead of 8,192,
    64-token sequences, 1,024 tokens per step): 60 steps take val bpb well below its start."""
    result = pretrain(run_name="learn", depth=2, max_seq_len=64, device_batch_size=8, total_batch_size=1024,
                      num_iterations=60, eval_every=60, eval_tokens=8192, sample_every=60, save_every=0, compile=False)
    assert result["final_val_bpb"] < 0.75 * result["initial_val_bpb"], result["val_bpbs"]
    assert result["losses"][59] < result["losses"][0] - 1.5
    records = read_metrics("learn", "base_train")
    step = next(r for r in records if "loss" in r)
    assert {"loss", "lr", "lrm", "tok_per_s", "mfu", "memory_mb", "step_time", "eta_s"} <= set(step)
    assert step["mfu"] > 0 and step["tok_per_s"] > 0
    samples = [r["samples"] for r in records if "samples" in r]
    assert len(samples) == 2 and samples[-1][0].startswith("The capital of France is")
    run_dir = data / "runs" / "learn"
    assert (run_dir / "base_train_loss.html").exists() and not (run_dir / "base_train_loss.png").exists()  # the report draws the PNG
    section = (run_dir / "report" / "base_train.md").read_text()
    assert "## Base model training" in section and "final_val_bpb" in section and "tokens_per_param" in section


# --- the validation sample (lesson 04d's BpbSample) ---------------------------------------------------------

def test_bpb_sample_is_fixed_spread_over_every_source_and_split_between_processes(data, corpus_and_tokenizer):
    "The cpu preset's sample (32,768 tokens in windows of 512): every source of the corpus, each about in its share of the text."
    from nanochat.data import CORPUS_SOURCES, corpus_documents, split_documents
    from nanochat.tokenizer import get_tokenizer
    from nanochat.train import BpbSample
    tok = get_tokenizer()
    source_of = {text: source for source, _, text in split_documents(corpus_documents(corpus_and_tokenizer / "cache"))[1]}
    for seed in (0, 1, 1234):
        s = BpbSample(tok, "val", 32_768, 512, seed=seed)
        assert s.rows.shape == (64, 513) and s.tokens == 32_768
        chars = {src: sum(len(t) for t in s.documents if source_of[t] == src) / sum(map(len, s.documents)) for src in CORPUS_SOURCES}
        hits = {src: sum(source_of[s.documents[d]] == src for d, _ in s.windows) / 64 for src in CORPUS_SOURCES}
        assert all(hits[src] > 0 for src in CORPUS_SOURCES), (seed, hits)  # every source is in the sample
        assert all(abs(hits[src] - chars[src]) < 0.05 for src in CORPUS_SOURCES), (seed, hits, chars)
    one = BpbSample(tok, "val", 32_768, 512)
    assert torch.equal(BpbSample(tok, "val", 32_768, 512).rows, one.rows)  # fixed: the same windows every time
    halves = [BpbSample(tok, "val", 32_768, 512, rank=r, world_size=2) for r in (0, 1)]
    assert torch.equal(torch.stack([halves[j % 2].rows[j // 2] for j in range(64)]), one.rows)
    x, y = list(one.batches(48))[-1]
    assert x.shape == y.shape == (48, 512) and (y[16:] == -1).all() and (y[:16] >= 0).all()  # the last batch padded, ignored


class CountingTokenizer:
    "A tokenizer that counts the characters it was asked to encode."
    def __init__(self, tok): self.tok, self.chars = tok, 0
    def __getattr__(self, name): return getattr(self.tok, name)
    def encode(self, text, *args, **kw):
        self.chars += len(text) if isinstance(text, str) else sum(map(len, text))
        return self.tok.encode(text, *args, **kw)


def _sample_bpb(rank: int, world: int) -> dict:
    from nanochat.tokenizer import get_tokenizer
    from nanochat.train import BpbSample, evaluate_bpb
    torch.set_num_threads(1)
    tok = CountingTokenizer(get_tokenizer())
    sample = BpbSample(tok, "val", 8192, 64, rank, world)
    torch.manual_seed(0)
    model = GPT(config_from_depth(1, vocab_size=tok.vocab_size, sequence_len=64))
    return dict(bpb=evaluate_bpb(model, sample.batches(4), tok.token_bytes()), windows=len(sample.rows), chars=tok.chars)


def _sample_worker(rank: int, world: int, port: int, out_dir: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = _sample_bpb(rank, world)
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f: json.dump(result, f)  # a file per rank: no shared pipe
    finally:
        torch.distributed.destroy_process_group()


def test_each_process_tokenizes_only_its_windows_and_two_give_the_bpb_of_one(data, tmp_path):
    import socket
    one = _sample_bpb(0, 1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    torch.multiprocessing.spawn(_sample_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    two = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [t["windows"] for t in two] == [one["windows"] // 2] * 2
    assert all(t["chars"] < 0.6 * one["chars"] for t in two), (one["chars"], [t["chars"] for t in two])  # about half each
    assert two[0]["bpb"] == two[1]["bpb"] == pytest.approx(one["bpb"], rel=1e-6)


def test_base_eval_reads_the_training_logs_validation_sample(data):
    "For one checkpoint, base_eval's val bpb is the training log's final val bpb: the same windows, the same function."
    from nanochat.base_eval import main
    result = pretrain(run_name="same", **dict(TINY, num_iterations=10, eval_every=5, save_every=-1, eval_tokens=1024))
    logged = [r["val_bpb"] for r in read_metrics("same", "base_train") if "val_bpb" in r]
    assert logged[-1] == result["final_val_bpb"] and len(logged) == 3
    metrics = main(run_name="same", core_labels="copa", max_per_task=1, core_data="packaged", num_samples=0, device_batch_size=3)
    assert metrics["val_bpb"] == pytest.approx(result["final_val_bpb"], rel=1e-6)
    assert "| bpb tokens per split | 1,024 |" in (data / "runs" / "same" / "report" / "base_eval.md").read_text()
    assert metrics["train_bpb"] < result["initial_val_bpb"]  # the train split, sampled alike: the model has learned it
