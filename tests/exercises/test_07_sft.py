"""Grades exercises/07_sft (or solutions/ with --grade solutions): 07a render a conversation with its mask, and
parse it back; 07b pad and mask an SFT batch, and batches under a token budget; 07c a LoRA layer, and the best
rank-r update of a full fine-tune's change."""
import pytest
import torch
import torch.nn as nn

from nanochat import chat_data as cd
from nanochat.sft import pad_batch, padding_fraction
from nanochat.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tok():
    texts = [m["content"] if isinstance(m["content"], str) else "".join(p["text"] for p in m["content"])
             for c in cd.identity_conversations()[:80] + [cd.problem_conversation(p) for p in cd.arithmetic_problems(120)] for m in c]
    return Tokenizer.train(texts, vocab_size=350)


CONVERSATIONS = [
    [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "I'm nanochat."}],
    [{"role": "system", "content": "Answer with the tool."}, {"role": "user", "content": "What is 17 * 3?"},
     {"role": "assistant", "content": [cd.tool_call("17*3"), cd.tool_output("51"), cd.text("\n#### 51")]}],
    [{"role": "user", "content": "type <|assistant_end|> and <|python_start|>"}, {"role": "assistant", "content": "no"},
     {"role": "user", "content": "ok, 2+2?"}, {"role": "assistant", "content": [cd.text("It is "), cd.tool_call("2+2"), cd.tool_output("4")]}],
]
RENDER = "'Rendering a conversation' in lesson 01 and the loss mask in lesson 07"


@pytest.mark.parametrize("i", range(len(CONVERSATIONS)))
def test_render_with_mask_matches_the_tokenizer(exercise, tok, i):
    m = exercise("07_sft/render_mask.py")
    want = tok.render_conversation(CONVERSATIONS[i], max_tokens=None)
    got = m.render_with_mask(tok, CONVERSATIONS[i])
    assert got[0] == want[0], f"ids differ: expected {tok.decode(want[0])!r}, got {tok.decode(got[0])!r}. Revisit {RENDER}."
    wrong = [t for t, (a, b) in enumerate(zip(got[1], want[1])) if a != b]
    assert got[1] == want[1], (f"mask differs at positions {wrong[:5]} (tokens {[tok.decode([want[0][t]]) for t in wrong[:5]]}): "
                               f"1 on the assistant's text, python parts with their markers and <|assistant_end|>; 0 elsewhere. Revisit {RENDER}.")


def folded(messages):
    "The conversation as rendered: a system message folded into the first user turn."
    if messages[0]["role"] != "system": return messages
    return [{"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}] + messages[2:]


PARSE = "the exercise's step beyond: only special tokens mark structure; the text between them is decoded"


@pytest.mark.parametrize("i", range(len(CONVERSATIONS)))
def test_parse_conversation_inverts_the_render(exercise, tok, i):
    m = exercise("07_sft/render_mask.py")
    ids, _ = tok.render_conversation(CONVERSATIONS[i], max_tokens=None)
    got, want = m.parse_conversation(tok, ids), folded(CONVERSATIONS[i])
    assert got == want, f"parse_conversation(render(conversation {i})): expected {want}, got {got}. Revisit {PARSE}."


def test_parse_conversation_refuses_what_is_not_a_conversation(exercise, tok):
    m = exercise("07_sft/render_mask.py")
    ids, _ = tok.render_conversation(CONVERSATIONS[2], max_tokens=None)
    sp = tok.encode_special
    broken = {"no <|bos|> in front": ids[1:], "the last <|assistant_end|> cut off": ids[:-1],
              "cut inside a tool call": ids[:ids.index(sp("<|python_end|>"))],
              "a <|python_end|> inside a user turn": [sp("<|bos|>"), sp("<|user_start|>"), sp("<|python_end|>"), sp("<|user_end|>")]}
    for what, bad in broken.items():
        with pytest.raises(ValueError):
            got = m.parse_conversation(tok, bad)
            pytest.fail(f"{what}: expected ValueError, got {got}. Revisit {PARSE}: every message and tool part must be closed by its own end token")


PAD = "'SFT: one conversation per row, loss on the assistant only' in lesson 07"


def test_pad_and_mask_matches_the_lesson(exercise, tok):
    m = exercise("07_sft/pad_batch.py")
    pad = tok.encode_special("<|assistant_end|>")
    for max_len in (200, 12):
        rows = [tok.render_conversation(c, max_tokens=None) for c in CONVERSATIONS]
        x, y = m.pad_and_mask(rows, pad, max_len)
        wx, wy = pad_batch(tok, CONVERSATIONS, max_len)
        assert x.shape == wx.shape, f"max_len {max_len}: expected shape {tuple(wx.shape)}, got {tuple(x.shape)}. Revisit {PAD} (cut to max_len + 1 first)."
        assert torch.equal(x, wx), f"max_len {max_len}: expected inputs {wx.tolist()}, got {x.tolist()}. Revisit {PAD}: ids[:-1], padded with pad_id."
        assert torch.equal(y, wy), (f"max_len {max_len}: expected targets {wy.tolist()}, got {y.tolist()}. Revisit {PAD}: ids[1:], "
                                    "-1 where mask[t+1] is 0 and on padding.")


BUDGET = "the exercise's step beyond: sort longest first; a row joins the batch while len(batch) × its first row's length fits"


def test_token_budget_batches_example_and_a_row_too_long(exercise):
    m = exercise("07_sft/pad_batch.py")
    got = m.token_budget_batches([3, 9, 4, 2, 2], 10)
    assert got == [[1], [2, 0], [3, 4]], f"token_budget_batches([3, 9, 4, 2, 2], 10): expected [[1], [2, 0], [3, 4]], got {got}. Revisit {BUDGET}."
    with pytest.raises(ValueError):
        got = m.token_budget_batches([3, 11, 2], 10)
        pytest.fail(f"a row of 11 tokens cannot fit a budget of 10: expected ValueError, got {got}")


def test_token_budget_batches_keep_the_budget_and_take_fewer_steps(exercise, tok):
    m = exercise("07_sft/pad_batch.py")
    convs = cd.identity_conversations()[::7] + [cd.problem_conversation(p) for p in cd.arithmetic_problems(40, seed=3)]
    lengths = [len(tok.render_conversation(c, None)[0]) - 1 for c in convs]
    budget = 8 * max(lengths)  # room for 8 of the longest rows
    batches = m.token_budget_batches(lengths, budget)
    rows = sorted(i for b in batches for i in b)
    assert rows == list(range(len(convs))), f"every one of the {len(convs)} rows exactly once: got rows {rows}. Revisit {BUDGET}."
    sizes = [len(b) * max(lengths[i] for i in b) for b in batches]
    assert max(sizes) <= budget, f"a batch's padded size may not pass the budget {budget}: got sizes {sizes}. Revisit {BUDGET}."
    fixed = -(-len(lengths) // 8)  # batches of 8 rows: the most a fixed batch size can take under this budget
    assert len(batches) < fixed, (f"under a budget of 8 of the longest rows, fixed batches of 8 take {fixed} steps; short rows should come "
                                  f"many to a batch, so fewer steps: got {len(batches)}. Revisit {BUDGET}.")
    waste = 1 - sum(lengths) / sum(sizes)
    in_order = padding_fraction(tok, convs, 8, 10_000)
    assert waste < in_order, f"sorted by length, padding should be below batching in order ({in_order:.0%}): got {waste:.0%}. Revisit {BUDGET}."


LORA = "'LoRA: train two thin matrices, freeze the rest' in lesson 07"


def test_lora_starts_as_the_frozen_layer_and_trains_only_adapters(exercise):
    m = exercise("07_sft/lora.py")
    torch.manual_seed(0)
    base = nn.Linear(24, 40, bias=False)
    w = base.weight.detach().clone()
    layer = m.LoRALinear(base, rank=4, alpha=8.0)
    x = torch.randn(3, 5, 24)
    torch.testing.assert_close(layer(x), base(x), msg=lambda e: f"with B = 0 the LoRA layer must equal the frozen one: {e}\nRevisit {LORA}.")
    trainable = [p for p in layer.parameters() if p.requires_grad]
    n = sum(p.numel() for p in trainable)
    assert n == 4 * (24 + 40), f"only A (4×24) and B (40×4) train: expected {4 * (24 + 40)} trainable numbers, got {n}. Revisit {LORA} (freeze base.weight)."
    layer(x).square().sum().backward()
    assert base.weight.grad is None, f"the frozen weight got a gradient: expected none. Revisit {LORA} (requires_grad_(False))."
    missing = [tuple(p.shape) for p in trainable if p.grad is None]
    assert not missing, f"every adapter should get a gradient: those of shapes {missing} got none. Revisit {LORA}: forward must use A and B."
    assert torch.equal(base.weight, w), f"the frozen weight changed: expected it untouched. Revisit {LORA}."


def test_lora_merge_gives_the_same_outputs(exercise):
    m = exercise("07_sft/lora.py")
    torch.manual_seed(1)
    layer = m.LoRALinear(nn.Linear(16, 12, bias=False), rank=2, alpha=6.0)
    with torch.no_grad():
        for p in (layer.A, layer.B): p.normal_()
    x = torch.randn(7, 16)
    merged = layer.merged()
    assert isinstance(merged, nn.Linear) and merged.weight.shape == (12, 16), (f"expected an nn.Linear with a (12, 16) weight, got "
                                                                               f"{type(merged).__name__} {tuple(getattr(merged, 'weight', torch.empty(0)).shape)}")
    torch.testing.assert_close(merged(x), layer(x), atol=1e-5, rtol=1e-5, msg=lambda e: f"merged = W + (alpha/rank)·B·A: {e}\nRevisit {LORA}.")
    assert not torch.allclose(merged(x), layer.base(x)), f"the merged layer computes what the frozen one does: the merge must include the update. Revisit {LORA}."


BEST = "the exercise's step beyond: the truncated SVD (Eckart–Young), its singular values split between B and A"


def low_rank_change(out=24, inp=40, rank=3, noise=0.02, seed=0):
    "A change that is rank `rank` plus a little noise, as fine-tuning changes nearly are."
    g = torch.Generator().manual_seed(seed)
    return torch.randn(out, rank, generator=g) @ torch.randn(rank, inp, generator=g) + noise * torch.randn(out, inp, generator=g)


@pytest.mark.parametrize("rank,alpha", [(1, 1.0), (3, 6.0), (8, 16.0)])
def test_best_lora_is_the_truncated_svd(exercise, rank, alpha):
    m = exercise("07_sft/lora.py")
    delta = low_rank_change()
    A, B = m.best_lora(delta, rank, alpha)
    assert A.shape == (rank, 40) and B.shape == (24, rank), f"expected A {(rank, 40)} and B {(24, rank)}, got {tuple(A.shape)} and {tuple(B.shape)}"
    U, S, Vh = torch.linalg.svd(delta, full_matrices=False)
    want = U[:, :rank] @ torch.diag(S[:rank]) @ Vh[:rank]
    torch.testing.assert_close((alpha / rank) * B @ A, want, atol=1e-4, rtol=1e-4,
                               msg=lambda e: f"rank {rank}, alpha {alpha}: (alpha/rank)·B·A should be the rank-{rank} truncated SVD of delta: {e}\nRevisit {BEST}.")
    left_out = (delta - (alpha / rank) * B @ A).square().sum().item()
    assert left_out == pytest.approx(S[rank:].square().sum().item(), rel=1e-3, abs=1e-5), (
        f"what rank {rank} leaves out should be the sum of the dropped σ², {S[rank:].square().sum().item():.5f}; got {left_out:.5f}. Revisit {BEST}.")


def test_best_lora_beats_other_rank_r_updates_and_fits_the_layer(exercise):
    m = exercise("07_sft/lora.py")
    torch.manual_seed(2)
    delta = low_rank_change(rank=3)
    A, B = m.best_lora(delta, 3, 6.0)
    best = (delta - 2.0 * B @ A).norm().item()
    for trial in range(20):  # a random A with its least-squares B: the best any rank-3 update with those rows can do
        A_r = torch.randn(3, 40)
        B_r = delta @ torch.linalg.pinv(A_r)
        other = (delta - B_r @ A_r).norm().item()
        assert best <= other + 1e-4, f"trial {trial}: a random rank-3 update left {other:.4f} of delta, best_lora {best:.4f}: it is not the best. Revisit {BEST}."
    share = 1 - best ** 2 / delta.norm().item() ** 2
    assert share > 0.99, f"a change of rank 3 plus noise: rank 3 should capture over 99% of its squared norm, got {share:.2%}. Revisit {BEST}."
    base = nn.Linear(40, 24, bias=False)
    layer = m.LoRALinear(base, rank=3, alpha=6.0)
    with torch.no_grad(): layer.A.copy_(A); layer.B.copy_(B)
    x = torch.randn(5, 40)
    torch.testing.assert_close(layer(x), x @ (base.weight + 2.0 * B @ A).T, atol=1e-4, rtol=1e-4,
                               msg=lambda e: f"best_lora's A and B loaded into your LoRALinear should add (alpha/rank)·B·A to W: {e}\nRevisit {LORA}.")
    for bad in (0, 25):
        with pytest.raises(ValueError):
            m.best_lora(delta, bad, 1.0)
            pytest.fail(f"best_lora(delta 24×40, rank={bad}) should raise ValueError: the rank must be in [1, 24]")
