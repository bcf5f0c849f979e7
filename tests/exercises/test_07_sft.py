"Grades exercises/07_sft (or solutions/ with --grade solutions)."
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


@pytest.mark.parametrize("i", range(len(CONVERSATIONS)))
def test_render_with_mask_matches_the_tokenizer(exercise, tok, i):
    m = exercise("07_sft/render_mask.py")
    want = tok.render_conversation(CONVERSATIONS[i], max_tokens=None)
    got = m.render_with_mask(tok, CONVERSATIONS[i])
    assert got[0] == want[0], f"ids differ: expected {tok.decode(want[0])!r}, got {tok.decode(got[0])!r}"
    wrong = [t for t, (a, b) in enumerate(zip(got[1], want[1])) if a != b]
    assert got[1] == want[1], (f"mask differs at positions {wrong[:5]} (tokens {[tok.decode([want[0][t]]) for t in wrong[:5]]}): "
                               "1 on the assistant's text, python parts with their markers and <|assistant_end|>; 0 elsewhere")


def test_pad_and_mask_matches_the_lesson(exercise, tok):
    m = exercise("07_sft/pad_batch.py")
    pad = tok.encode_special("<|assistant_end|>")
    for max_len in (200, 12):
        rows = [tok.render_conversation(c, max_tokens=None) for c in CONVERSATIONS]
        x, y = m.pad_and_mask(rows, pad, max_len)
        wx, wy = pad_batch(tok, CONVERSATIONS, max_len)
        assert x.shape == wx.shape, f"max_len {max_len}: shape {tuple(x.shape)}, expected {tuple(wx.shape)}"
        assert torch.equal(x, wx), f"max_len {max_len}: inputs differ (ids[:-1], padded with pad_id)"
        assert torch.equal(y, wy), f"max_len {max_len}: targets differ (ids[1:], -1 where mask[t+1] is 0 and on padding)"


def test_length_sorted_batches_waste_less(exercise, tok):
    m = exercise("07_sft/pad_batch.py")
    convs = cd.identity_conversations()[::7] + [cd.problem_conversation(p) for p in cd.arithmetic_problems(40, seed=3)]
    lengths = [len(tok.render_conversation(c, None)[0]) - 1 for c in convs]
    batches = m.length_sorted_batches(lengths, 8)
    assert sorted(i for b in batches for i in b) == list(range(len(convs))), "every row exactly once"
    assert all(len(b) == 8 for b in batches[:-1]) and lengths[batches[0][0]] == max(lengths), "batches of 8, longest first"
    waste = 1 - sum(lengths) / sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert waste < padding_fraction(tok, convs, 8, 10_000), "sorting should pad less than batching in order"


def test_lora_starts_as_the_frozen_layer_and_trains_only_adapters(exercise):
    m = exercise("07_sft/lora.py")
    torch.manual_seed(0)
    base = nn.Linear(24, 40, bias=False)
    w = base.weight.detach().clone()
    layer = m.LoRALinear(base, rank=4, alpha=8.0)
    x = torch.randn(3, 5, 24)
    torch.testing.assert_close(layer(x), base(x), msg="with B = 0 the LoRA layer must equal the frozen one")
    trainable = [p for p in layer.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == 4 * (24 + 40), "only A (4×24) and B (40×4) train"
    layer(x).square().sum().backward()
    assert base.weight.grad is None, "the frozen weight got a gradient"
    assert all(p.grad is not None for p in trainable)
    assert torch.equal(base.weight, w)


def test_lora_merge_gives_the_same_outputs(exercise):
    m = exercise("07_sft/lora.py")
    torch.manual_seed(1)
    layer = m.LoRALinear(nn.Linear(16, 12, bias=False), rank=2, alpha=6.0)
    with torch.no_grad():
        for p in (layer.A, layer.B): p.normal_()
    x = torch.randn(7, 16)
    merged = layer.merged()
    assert isinstance(merged, nn.Linear) and merged.weight.shape == (12, 16)
    torch.testing.assert_close(merged(x), layer(x), atol=1e-5, rtol=1e-5, msg="merged = W + (alpha/rank)·B·A")
    assert not torch.allclose(merged(x), layer.base(x)), "the merge must include the update"
