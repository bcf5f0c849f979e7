"""Lesson 07b: the chat evals. Letters read from the logits, GSM8K and HumanEval answers checked, ChatCORE, and
the same numbers from two processes as from one.

The scoring tests use stand-ins whose right answers are known: a byte-level tokenizer that renders chats and
tiny modules returning rigged logits."""
import json, os, socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nanochat.chat_scoring import (chat_conversation, chatcore, check_humaneval, evaluate_chat_task, extract_code, gsm8k_answer,
                                   gsm8k_correct, letter_ids)
from nanochat.eval import stderr
from nanochat.eval_tasks import olmo_docs, load_chat_task, render_mc, sample_indices


class ByteTokenizer:
    "Bytes are tokens 0-255; 256 is <|bos|>; then the chat specials."
    SPECIAL = ["<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>"]
    bos_token_id, vocab_size = 256, 256 + len(SPECIAL)

    def encode(self, text, prepend=None):
        if isinstance(text, list): return [self.encode(t, prepend) for t in text]
        return ([prepend] if prepend is not None else []) + list(text.encode("utf-8"))

    def decode(self, ids): return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
    def encode_special(self, name): return 256 + self.SPECIAL.index(name)

    def render_for_completion(self, messages):
        ids = [self.bos_token_id]
        for m in messages:
            ids += [self.encode_special("<|user_start|>")] + self.encode(m["content"]) + [self.encode_special("<|user_end|>")]
        return ids + [self.encode_special("<|assistant_start|>")]


class Bigram(nn.Module):
    "A fixed random bigram model: the same weights in every process (seeded), answers neither all right nor all wrong."
    def __init__(self, vocab_size, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(vocab_size, vocab_size, generator=g) * 3)

    def forward(self, idx, targets=None, loss_reduction="mean"):
        return self.table[idx]


TOK = ByteTokenizer()


def test_gsm8k_extractor_recovers_every_reference_answer():
    docs = olmo_docs("gsm8k", "gold_bpb_5shot")
    assert len(docs) == 1319
    for d in docs:
        assert gsm8k_answer(d["answer"]) == d["short_answer"].replace(",", ""), d["answer"]
    examples = load_chat_task("GSM8K")
    assert all(gsm8k_correct(e, e["answer"]) for e in examples)
    assert not any(gsm8k_correct(e, e["answer"].rsplit("####", 1)[0] + f"#### {int(float(gsm8k_answer(e['answer']))) + 1}") for e in examples)
    assert not gsm8k_correct(examples[0], "I do not know")


def test_gsm8k_answer_normalises_numbers():
    assert gsm8k_answer("so #### $1,250.50") == "1250.5"
    assert gsm8k_answer("#### 3.0\n") == "3" and gsm8k_answer("#### -7") == "-7"
    assert gsm8k_answer("#### 5\nand later #### 6") == "6"
    assert gsm8k_answer("no marker 42") is None


def test_humaneval_reference_solutions_all_pass_and_wrong_ones_fail():
    problems = load_chat_task("HumanEval")
    assert len(problems) == 164
    with ThreadPoolExecutor(4) as pool:
        passed = list(pool.map(lambda p: check_humaneval(p, p["canonical_solution"]), problems))
        assert [p["task_id"] for p, ok in zip(problems, passed) if not ok] == []
        wrong = list(pool.map(lambda p: check_humaneval(p, "    return None\n"), problems[:24]))
    assert not any(wrong)


def test_humaneval_accepts_a_whole_function_in_a_fence_and_times_out_loops():
    p = load_chat_task("HumanEval")[0]
    whole = "Here you go:\n```python\n" + p["prompt"] + p["canonical_solution"] + "```\nDone."
    assert extract_code(whole).startswith(p["prompt"][:20])
    assert check_humaneval(p, whole)
    assert not check_humaneval(p, "    while True:\n        pass\n", timeout=1.0)
    assert not check_humaneval(p, "    import os; os.system('true')\n    return True\n")


@pytest.mark.parametrize("exit_early", ["import sys; sys.exit(0)", "import os; os._exit(0)", "raise SystemExit(0)", "raise SystemExit"])
def test_humaneval_does_not_pay_a_completion_that_exits_before_the_tests(exit_early):
    "The classic reward hack: exit with status 0 before check() runs. Only a run that reaches its end passes."
    p = load_chat_task("HumanEval")[0]
    assert not check_humaneval(p, "    return None\n" + exit_early + "\n"), exit_early
    assert check_humaneval(p, p["canonical_solution"]), "the real solution still passes"


def test_humaneval_is_an_error_not_a_zero_when_the_sandbox_cannot_run(monkeypatch):
    import nanochat.sandbox as sandbox
    monkeypatch.setattr(sandbox, "run_python", lambda code, timeout: sandbox._unavailable("no bwrap on this machine"))
    with pytest.raises(RuntimeError, match="cannot be scored here: sandbox unavailable"):
        check_humaneval(load_chat_task("HumanEval")[0], "    return 1\n")


def test_chat_mc_reads_the_letter_logits():
    class Favourite(nn.Module):
        def __init__(self, token): super().__init__(); self.token = token
        def forward(self, idx, targets=None, loss_reduction="mean"):
            logits = torch.zeros(*idx.shape, TOK.vocab_size); logits[..., self.token] = 5.0; return logits
    arc = load_chat_task("ARC-Easy")
    chosen = [arc[i] for i in sample_indices(len(arc), 100)]
    for letter in "AB":
        r = evaluate_chat_task("ARC-Easy", arc, Favourite(ord(letter)), TOK, max_per_task=100, batch_size=7)
        assert r["accuracy"] == sum(e["gold"] == "AB".index(letter) for e in chosen) / 100
        assert r["stderr"] == pytest.approx(stderr(r["accuracy"], 100))
    assert "A. " in render_mc("q?", ["x", "y"]) and "B. y" in render_mc("q?", ["x", "y"])


def test_generated_answers_are_checked():
    gsm = load_chat_task("GSM8K")
    by_question = {e["question"]: e["answer"] for e in gsm}
    cheat = lambda conversations: [by_question[c[-1]["content"]] for c in conversations]
    assert evaluate_chat_task("GSM8K", gsm, generate=cheat, max_per_task=20)["accuracy"] == 1.0
    assert evaluate_chat_task("GSM8K", gsm, generate=lambda cs: ["#### nope"] * len(cs), max_per_task=20)["accuracy"] == 0.0
    he = load_chat_task("HumanEval")
    solutions = {p["prompt"]: p["canonical_solution"] for p in he}
    knows = lambda cs: [solutions[next(k for k in solutions if k in c[-1]["content"])] for c in cs]
    assert evaluate_chat_task("HumanEval", he, generate=knows, max_per_task=4)["accuracy"] == 1.0
    with pytest.raises(ValueError, match="generate"):
        evaluate_chat_task("GSM8K", gsm, max_per_task=2)


def test_chatcore_needs_all_five_tasks():
    sft = {"ARC-Easy": 0.3876, "ARC-Challenge": 0.2807, "MMLU": 0.3151, "GSM8K": 0.0455, "HumanEval": 0.0854}
    assert chatcore(sft) == pytest.approx(0.0884, abs=5e-4)  # nanochat's $100 run, SFT column
    assert chatcore({k: v for k, v in sft.items() if k != "MMLU"}) is None


def test_letters_must_be_single_tokens_and_the_question_asks_for_one():
    assert letter_ids(TOK, 4) == [ord(c) for c in "ABCD"]
    class Split(ByteTokenizer):
        def encode(self, text, prepend=None): return super().encode(text + text, prepend)
    with pytest.raises(ValueError, match="several tokens"):
        letter_ids(Split(), 4)
    ask = chat_conversation("MMLU", {"question": "2 + 2?", "choices": ["3", "4"], "gold": 1})
    assert ask == [{"role": "user", "content": render_mc("2 + 2?", ["3", "4"])}]
    assert "def f" in chat_conversation("HumanEval", {"prompt": "def f():\n"})[0]["content"]


# ---------------------------------------------------------------- two processes give the same numbers as one
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def _evaluate_all(out_path=None):
    model = Bigram(TOK.vocab_size)
    mc = evaluate_chat_task("ARC-Challenge", load_chat_task("ARC-Challenge"), model, TOK, max_per_task=24, batch_size=5)
    gsm = load_chat_task("GSM8K")
    key = {e["question"]: e["answer"] for e in gsm}
    half = lambda cs: [key[c[-1]["content"]] if len(c[-1]["content"]) % 2 else "no idea" for c in cs]  # right on odd lengths
    gen = evaluate_chat_task("GSM8K", gsm, generate=half, max_per_task=30, batch_size=4)
    result = {"arc": mc["accuracy"], "gsm8k": gen["accuracy"]}
    if out_path and torch.distributed.get_rank() == 0: Path(out_path).write_text(json.dumps(result))
    return result


def _worker(rank, world, port, out_path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        _evaluate_all(out_path)
    finally:
        torch.distributed.destroy_process_group()


def test_two_cpu_processes_give_the_same_chat_scores_as_one(tmp_path):
    one = _evaluate_all()
    assert 0 < one["arc"] < 1 and 0 < one["gsm8k"] < 1  # neither all right nor all wrong
    out = tmp_path / "two.json"
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    assert json.loads(out.read_text()) == one
