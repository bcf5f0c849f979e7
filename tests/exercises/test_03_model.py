"Grades exercises/03_model (or solutions/ with --grade solutions) against nanochat.gpt: 03a the parts by hand, 03b beyond the lesson."
import math

import pytest
import torch
import torch.nn.functional as F

from nanochat import gpt


@pytest.fixture
def parts(exercise):
    return exercise("03_model/parts.py")


def forbidden(*args, **kwargs):
    raise AssertionError("this exercise is to be done by hand, without the built-in")


# --- 1. RMSNorm -----------------------------------------------------------------------------------------

def test_rms_norm_example(parts, monkeypatch):
    monkeypatch.setattr(F, "rms_norm", forbidden)
    torch.testing.assert_close(parts.rms_norm(torch.tensor([3.0, 4.0])), torch.tensor([3.0, 4.0]) / math.sqrt(12.5),
                               msg=lambda m: f"rms_norm([3, 4]) should be [3, 4] / sqrt((9 + 16) / 2). {m}\nRevisit 'RMSNorm, without parameters' in lesson 03.")


def test_rms_norm_matches_the_model(parts):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16) * 3 + 1
    expected = gpt.norm(x)
    torch.testing.assert_close(parts.rms_norm(x), expected, atol=1e-5, rtol=1e-5, msg=lambda m: f"rms_norm differs from nanochat.gpt.norm: {m}\nRevisit 'RMSNorm' in lesson 03 (the mean over the last dimension).")
    torch.testing.assert_close(parts.rms_norm(x).pow(2).mean(-1), torch.ones(2, 5), atol=1e-4, rtol=1e-4, msg=lambda m: f"every output vector should have RMS 1: {m}\nRevisit 'RMSNorm, without parameters' in lesson 03.")
    torch.testing.assert_close(parts.rms_norm(5 * x), expected, atol=1e-5, rtol=1e-5, msg=lambda m: f"rms_norm(5 x) should equal rms_norm(x) (no learnable gain, scale-free): {m}\nRevisit 'RMSNorm, without parameters' in lesson 03.")


# --- 2. rotary ------------------------------------------------------------------------------------------

def test_apply_rotary_matches_the_model(parts):
    torch.manual_seed(0)
    cos, sin = gpt.rotary_cos_sin(7, 8)
    x = torch.randn(2, 7, 3, 8)
    out = parts.apply_rotary(x, cos, sin)
    assert out.shape == x.shape, f"apply_rotary must keep the shape {tuple(x.shape)}, got {tuple(out.shape)}. Revisit 'Rotary position embeddings' in lesson 03 (cat the two halves)."
    torch.testing.assert_close(out, gpt.apply_rotary(x, cos, sin), msg=lambda m: f"apply_rotary differs from nanochat.gpt.apply_rotary: {m}\nRevisit 'Rotary position embeddings' in lesson 03: element i pairs with element i + D/2.")


def test_apply_rotary_keeps_lengths_and_sees_relative_positions(parts):
    torch.manual_seed(1)
    cos, sin = gpt.rotary_cos_sin(40, 16)
    q, k = torch.randn(2, 1, 1, 1, 16)
    at = lambda x, m: parts.apply_rotary(x, cos[m:m + 1], sin[m:m + 1])
    torch.testing.assert_close(at(q, 0), q, msg=lambda m: f"position 0 is a rotation by angle 0, so nothing may change: {m}\nRevisit 'Rotary position embeddings' in lesson 03.")
    torch.testing.assert_close(at(q, 13).norm(), q.norm(), msg=lambda m: f"a rotation keeps the length of the vector: {m}\nRevisit 'Rotary position embeddings' in lesson 03.")
    torch.testing.assert_close((at(q, 12) * at(k, 5)).sum(), (at(q, 39) * at(k, 32)).sum(), msg=lambda m: f"q at 12 · k at 5 should equal q at 39 · k at 32 (same distance 7): {m}\nRevisit 'Rotary position embeddings' in lesson 03.")


# --- 3. attention ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_head,n_kv_head", [(4, 4), (4, 2), (4, 1)], ids=["MHA", "GQA", "MQA"])
def test_causal_attention_matches_the_model(parts, monkeypatch, n_head, n_kv_head):
    torch.manual_seed(0)
    q = torch.randn(2, n_head, 6, 8)
    k, v = torch.randn(2, 2, n_kv_head, 6, 8)
    expected = gpt.attention(q, k, v)
    monkeypatch.setattr(F, "scaled_dot_product_attention", forbidden)
    torch.testing.assert_close(parts.causal_attention(q, k, v), expected, atol=1e-5, rtol=1e-5, msg=lambda m: f"causal_attention differs from nanochat.gpt.attention ({n_head} query heads, {n_kv_head} kv heads): {m}\nRevisit 'Attention, the reference way' in lesson 03 (repeat_interleave for the groups, the 1/sqrt(D) scale).")


def test_causal_attention_never_looks_ahead(parts):
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 1, 2, 6, 8)
    v2 = v.clone(); v2[:, :, 4] += 10  # change the value at position 4
    a, b = parts.causal_attention(q, k, v), parts.causal_attention(q, k, v2)
    torch.testing.assert_close(a[:, :, :4], b[:, :, :4], msg=lambda m: f"changing the value at position 4 changed outputs before it: the mask lets queries see the future. {m}\nRevisit 'Attention, the reference way' in lesson 03 (the causal mask).")
    assert not torch.allclose(a[:, :, 4:], b[:, :, 4:]), "changing the value at position 4 changed nothing from position 4 on: expected a change. Revisit 'Attention, the reference way' in lesson 03: each query sees its own position (tril keeps the diagonal)."


@pytest.mark.parametrize("Tq", [1, 3])
def test_causal_attention_with_fewer_queries_than_keys(parts, Tq):
    "Decoding with a KV cache: the queries are the last Tq positions."
    torch.manual_seed(0)
    q = torch.randn(1, 4, 7, 8)
    k, v = torch.randn(2, 1, 2, 7, 8)
    full = gpt.naive_attention(q, k, v)
    torch.testing.assert_close(parts.causal_attention(q[:, :, -Tq:], k, v), full[:, :, -Tq:], atol=1e-5, rtol=1e-5, msg=lambda m: f"with {Tq} queries and 7 keys the queries are the last positions: {m}\nRevisit tril(diagonal=Tk - Tq) in lesson 03.")


# --- 4. MLP ---------------------------------------------------------------------------------------------

def test_relu2_mlp_matches_the_model(parts):
    torch.manual_seed(0)
    config = gpt.GPTConfig(sequence_len=8, vocab_size=10, n_layer=1, n_head=2, n_kv_head=2, n_embd=16)
    mlp = gpt.MLP(config)
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(parts.relu2_mlp(x, mlp.c_fc.weight, mlp.c_proj.weight), mlp(x), atol=1e-5, rtol=1e-5, msg=lambda m: f"relu2_mlp differs from nanochat.gpt.MLP: {m}\nRevisit 'The MLP: ReLU²' (nn.Linear computes x @ W.T).")


def test_relu2_mlp_squares_the_relu(parts):
    w_fc = torch.tensor([[1.0], [-1.0]])  # d = 1, two hidden units: +x and -x
    w_proj = torch.tensor([[1.0, 1.0]])
    x = torch.tensor([[3.0], [-2.0]])
    torch.testing.assert_close(parts.relu2_mlp(x, w_fc, w_proj), torch.tensor([[9.0], [4.0]]), msg=lambda m: f"with hidden units +x and -x the output is relu(x)² + relu(-x)² = x²: {m}\nRevisit 'The MLP: ReLU²' in lesson 03.")


# --- 03b: beyond the lesson -------------------------------------------------------------------------------

@pytest.fixture
def beyond(exercise):
    return exercise("03_model/beyond.py")


def by_brute_force(q, k, v, window):
    "Each query's softmax over its allowed keys, one query at a time."
    Tq, Tk, group = q.size(2), k.size(2), q.size(1) // k.size(1)
    out = torch.zeros_like(q)
    for h in range(q.size(1)):
        for i in range(Tq):
            p = Tk - Tq + i
            keys = list(range(max(0, p - window + 1), p + 1))
            w = (q[:, h, i:i + 1] @ k[:, h // group, keys].transpose(-2, -1) / math.sqrt(q.size(-1))).softmax(-1)
            out[:, h, i] = (w @ v[:, h // group, keys])[:, 0]
    return out


@pytest.mark.parametrize("n_head,n_kv_head,Tq,window", [(4, 4, 8, 3), (4, 2, 8, 1), (4, 1, 3, 4), (2, 2, 1, 2)])
def test_sliding_window_attention(beyond, n_head, n_kv_head, Tq, window):
    torch.manual_seed(0)
    q = torch.randn(2, n_head, Tq, 8)
    k, v = torch.randn(2, 2, n_kv_head, 8, 8)
    torch.testing.assert_close(beyond.sliding_window_attention(q, k, v, window), by_brute_force(q, k, v, window), atol=1e-5, rtol=1e-5,
                               msg=lambda m: f"{n_head} query heads, {n_kv_head} kv heads, {Tq} queries, 8 keys, window {window}: {m}\n"
                                             "Query i sits at position Tk - Tq + i and sees keys p - window + 1 … p.")


def test_a_wide_window_is_causal_attention(beyond):
    torch.manual_seed(1)
    q = torch.randn(1, 4, 6, 8)
    k, v = torch.randn(2, 1, 2, 6, 8)
    torch.testing.assert_close(beyond.sliding_window_attention(q, k, v, 6), gpt.naive_attention(q, k, v), atol=1e-5, rtol=1e-5,
                               msg=lambda m: f"window = Tk should be lesson 03's causal attention: {m}\nRevisit the exercise's step 1 (window >= Tk adds no condition).")
    torch.testing.assert_close(beyond.sliding_window_attention(q, k, v, 1), v.repeat_interleave(2, dim=1), atol=1e-5, rtol=1e-5,
                               msg=lambda m: f"window = 1: each query sees only its own position, so it returns that value: {m}\nRevisit the exercise's step 1 (p - window + 1 … p).")
    with pytest.raises(ValueError):
        beyond.sliding_window_attention(q, k, v, 0)
        pytest.fail("window=0 should raise ValueError")


@pytest.mark.parametrize("n_kv_head", [10, 2, 1])
def test_kv_cache_bytes_is_the_caches_size(beyond, n_kv_head):
    config = gpt.config_from_depth(20, n_kv_head=n_kv_head)
    cache = gpt.KVCache(3, config.n_kv_head, 2048, config.head_dim, config.n_layer, device="meta", dtype=torch.bfloat16)
    actual = 2 * cache.k.numel() * cache.k.element_size()
    got = beyond.kv_cache_bytes(config, 3, 2048, bytes_per_value=2)
    assert got == actual, (f"d20 with {n_kv_head} kv heads, batch 3, 2048 positions, bfloat16: nanochat.gpt.KVCache holds {actual:,} bytes, "
                           f"you computed {got:,}. Revisit 'Decoding with a KV cache' in lesson 03: (layers, batch, kv heads, positions, head_dim), twice.")


def test_grouped_query_attention_shrinks_the_cache(beyond):
    mha, gqa = gpt.config_from_depth(20), gpt.config_from_depth(20, n_kv_head=2)
    ratio = beyond.kv_cache_bytes(mha, 1, 2048) / beyond.kv_cache_bytes(gqa, 1, 2048)
    assert ratio == 5, f"10 query heads sharing 2 kv heads should make the cache 10 / 2 = 5 times smaller, got {ratio:g} times. Revisit 'Decoding with a KV cache' in lesson 03: the cache holds n_kv_head heads."


@pytest.mark.parametrize("depth,vocab", [(2, 512), (4, 8192), (8, 65536)])
def test_tied_param_count(beyond, depth, vocab):
    config = gpt.config_from_depth(depth, vocab, 64)
    with torch.device("meta"):
        model = gpt.GPT(config)
    model.lm_head.weight = model.transformer.wte.weight  # tie them
    actual = sum(p.numel() for p in model.parameters())  # a shared tensor is listed once
    got = beyond.tied_param_count(config)
    assert got == actual, (f"d{depth}, vocab {vocab}: the tied model has {actual:,} parameters, you computed {got:,} "
                           f"(untied: {gpt.count_params(config):,}). Revisit 'Counting parameters' in lesson 03.")
