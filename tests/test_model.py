"""The model of lesson 03 (nanochat/gpt.py): causality, attention against the naive reference, the KV
cache against a full forward pass, parameter counts, initialisation, the loss, bad configs, and that a
tiny model can learn."""
import math

import pytest
import torch
import torch.nn.functional as F

import nanochat.gpt as gpt
from nanochat.gpt import GPT, GPTConfig, KVCache, attention, config_from_depth, count_params, naive_attention


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    "These tensors are tiny: with two threads, synchronising them costs more than the work (30x slower on a busy 2-core machine)."
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_config(n_head=4, n_kv_head=2, **kw):
    return GPTConfig(**{**dict(sequence_len=16, vocab_size=97, n_layer=2, n_head=n_head, n_kv_head=n_kv_head, n_embd=64), **kw})


def trained_like(config, seed=0):
    "A model whose blocks are not the identity (the zero-initialised projections get random weights)."
    torch.manual_seed(seed)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters(): p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def new_cache(config, batch_size, seq_len=None):
    return KVCache(batch_size, config.n_kv_head, seq_len or config.sequence_len, config.head_dim, config.n_layer)


# --- attention -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_head,n_kv_head", [(4, 4), (4, 2), (4, 1), (6, 3)], ids=["MHA", "GQA", "MQA", "GQA-6/3"])
@pytest.mark.parametrize("Tq", [9, 1, 4])
def test_sdpa_matches_naive_attention(n_head, n_kv_head, Tq):
    torch.manual_seed(0)
    q = torch.randn(2, n_head, Tq, 16)
    k, v = torch.randn(2, 2, n_kv_head, 9, 16)
    torch.testing.assert_close(attention(q, k, v), naive_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_naive_attention_is_causal_and_normalised():
    torch.manual_seed(0)
    q, k = torch.randn(2, 1, 2, 5, 8)
    v = torch.eye(5)[None, None]  # value j is the one-hot vector e_j: the output row is the attention weights
    weights = naive_attention(q, k, v)[0, 0]
    assert torch.all(weights.triu(diagonal=1) == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(5))


@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_model_with_naive_attention_gives_the_same_logits(n_kv_head, monkeypatch):
    model = trained_like(small_config(n_kv_head=n_kv_head))
    idx = torch.randint(0, 97, (2, 12))
    with torch.no_grad():
        fast = model(idx)
        monkeypatch.setattr(gpt, "attention", naive_attention)
        slow = model(idx)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


# --- causality and rotary --------------------------------------------------------------------------------

@pytest.mark.parametrize("t", [0, 5, 11])
def test_changing_token_t_never_changes_earlier_logits(t):
    model = trained_like(small_config())
    idx = torch.randint(0, 97, (3, 12))
    changed = idx.clone(); changed[:, t] = (idx[:, t] + 1) % 97
    with torch.no_grad():
        a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :t], b[:, :t], atol=1e-6, rtol=0)
    assert not torch.allclose(a[:, t], b[:, t])  # ... and it does change position t itself


def test_rotary_depends_only_on_relative_position():
    cos, sin = gpt.rotary_cos_sin(64, 32)
    torch.manual_seed(0)
    q, k = torch.randn(2, 1, 1, 1, 32)
    at = lambda x, m: gpt.apply_rotary(x, cos[m:m + 1], sin[m:m + 1])
    score = lambda m, n: (at(q, m) * at(k, n)).sum()
    torch.testing.assert_close(score(10, 3), score(50, 43))
    torch.testing.assert_close(at(q, 37).norm(), q.norm())
    assert not torch.allclose(score(10, 3), score(10, 4))


def test_model_is_not_permutation_invariant():
    "Without positions, attention would treat the prefix as a bag of tokens; rotary must make order matter."
    model = trained_like(small_config())
    idx = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        assert not torch.allclose(model(idx)[0, -1], model(torch.tensor([[4, 2, 3, 1, 5]]))[0, -1])


# --- KV cache ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_kv_cache_decoding_equals_full_forward(n_kv_head):
    config = small_config(n_kv_head=n_kv_head)
    model = trained_like(config)
    idx = torch.randint(0, 97, (3, 14))
    cache = new_cache(config, 3)
    with torch.no_grad():
        full = model(idx)
        steps = [model(idx[:, :6], kv_cache=cache)]  # prefill
        steps += [model(idx[:, t:t + 1], kv_cache=cache) for t in range(6, 10)]  # one token at a time
        steps += [model(idx[:, 10:], kv_cache=cache)]  # several new tokens after a cached prefix
    assert cache.pos == 14
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_last_only_gives_the_last_positions_logits_and_fills_the_cache_alike():
    config = small_config(n_kv_head=2)
    model = trained_like(config)
    idx = torch.randint(0, 97, (3, 9))
    a, b = new_cache(config, 3), new_cache(config, 3)
    with torch.no_grad():
        last = model(idx, kv_cache=a, last_only=True)
        full = model(idx, kv_cache=b)
        assert last.shape == (3, 1, 97)
        torch.testing.assert_close(last, full[:, -1:], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.k[:, :, :, :9], b.k[:, :, :, :9]); assert a.pos == b.pos == 9
        with pytest.raises(ValueError, match="last_only"): model(idx, idx, last_only=True)


def test_one_prefill_serves_several_samples():
    config = small_config()
    model = trained_like(config)
    prompt = torch.randint(0, 97, (1, 7))
    continuations = torch.randint(0, 97, (4, 3))
    one, many = new_cache(config, 1), new_cache(config, 4)
    with torch.no_grad():
        model(prompt, kv_cache=one)
        many.prefill(one)
        assert many.pos == 7
        decoded = [model(continuations[:, t:t + 1], kv_cache=many) for t in range(3)]
        full = model(torch.cat([prompt.expand(4, -1), continuations], dim=1))
    torch.testing.assert_close(torch.cat(decoded, dim=1), full[:, 7:], atol=1e-5, rtol=1e-5)


def test_prefill_copies_each_prompt_into_consecutive_rows():
    config = small_config()
    model = trained_like(config)
    prompts = torch.randint(0, 97, (2, 5))
    nxt = torch.randint(0, 97, (6, 1))
    two, six = new_cache(config, 2), new_cache(config, 6)
    with torch.no_grad():
        model(prompts, kv_cache=two)
        six.prefill(two)
        decoded = model(nxt, kv_cache=six)
        full = model(torch.cat([prompts.repeat_interleave(3, dim=0), nxt], dim=1))
    torch.testing.assert_close(decoded[:, 0], full[:, -1], atol=1e-5, rtol=1e-5)


def test_kv_cache_reset_and_dtype():
    config = small_config()
    model = trained_like(config)
    idx = torch.randint(0, 97, (1, 5))
    cache = KVCache(1, config.n_kv_head, 8, config.head_dim, config.n_layer, dtype=torch.float64)
    with torch.no_grad():
        first = model(idx, kv_cache=cache)
        cache.reset()
        assert cache.pos == 0
        torch.testing.assert_close(model(idx, kv_cache=cache), first)


def test_kv_cache_errors():
    config = small_config()
    model = trained_like(config)
    with torch.no_grad():
        with pytest.raises(ValueError, match="KV cache full"):
            model(torch.zeros(1, 9, dtype=torch.long), kv_cache=new_cache(config, 1, seq_len=8))
        with pytest.raises(ValueError, match="batch 2"):
            model(torch.zeros(3, 4, dtype=torch.long), kv_cache=new_cache(config, 2))
    with pytest.raises(ValueError, match="cannot prefill"):
        new_cache(config, 4).prefill(new_cache(config, 3))
    with pytest.raises(ValueError, match="cannot prefill"):
        new_cache(config, 4).prefill(KVCache(1, 1, 16, config.head_dim, config.n_layer))


def test_decoding_runs_past_the_training_length_but_not_past_the_rotary_cache():
    config = small_config(sequence_len=4)
    model = trained_like(config)
    assert model.rotary_seq_len == 4 * gpt.ROTARY_FACTOR
    with torch.no_grad():
        assert model(torch.zeros(1, model.rotary_seq_len, dtype=torch.long)).shape == (1, model.rotary_seq_len, 97)
        with pytest.raises(ValueError, match="rotary cache"):
            model(torch.zeros(1, model.rotary_seq_len + 1, dtype=torch.long))
        cache = new_cache(config, 1, seq_len=100)
        model(torch.zeros(1, model.rotary_seq_len, dtype=torch.long), kv_cache=cache)
        with pytest.raises(ValueError, match="rotary cache"):
            model(torch.zeros(1, 1, dtype=torch.long), kv_cache=cache)


# --- shapes, counts, FLOPs --------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("kv", [None, 1])
def test_parameter_count_formula(depth, kv):
    config = config_from_depth(depth, vocab_size=300, sequence_len=32, n_kv_head=kv)
    assert GPT(config).num_params() == count_params(config)


def test_from_depth_shapes():
    assert config_from_depth(2).n_embd == 128 and config_from_depth(2).n_head == 1
    assert (config_from_depth(4).n_embd, config_from_depth(4).n_head) == (256, 2)
    assert config_from_depth(3).n_embd == 256  # odd depths round up to whole 128-wide heads
    assert config_from_depth(4, head_dim=64).n_head == 4
    for depth, width, heads in [(20, 1280, 10), (26, 1664, 13), (32, 2048, 16)]:
        c = config_from_depth(depth)
        assert (c.n_layer, c.n_embd, c.n_head, c.n_kv_head, c.head_dim) == (depth, width, heads, heads, 128)


def test_d20_on_the_meta_device():
    with torch.device("meta"):
        model = GPT.from_depth(20, 65536, 2048)
    c = model.config
    assert (c.n_embd, c.n_head, c.n_kv_head, c.sequence_len, c.vocab_size) == (1280, 10, 10, 2048, 65536)
    assert model.num_params() == count_params(c) == 560_988_160  # "≈561M"
    assert model.estimate_flops() == 6 * (560_988_160 - 65536 * 1280) + 12 * 20 * 1280 * 2048
    assert isinstance(model.transformer.wte, torch.nn.Embedding) and isinstance(model.lm_head, torch.nn.Linear)
    assert len(model.transformer.h) == 20
    assert model.transformer.wte.weight is not model.lm_head.weight  # untied


def test_no_biases_and_no_norm_parameters():
    model = GPT(small_config())
    assert all(p.ndim == 2 for p in model.parameters())
    names = {n for n, _ in model.named_parameters()}
    assert "transformer.wte.weight" in names and "lm_head.weight" in names
    assert all(n.startswith("transformer.h.") for n in names - {"transformer.wte.weight", "lm_head.weight"})


def test_rotary_tables_are_not_saved_but_rebuilt_by_init_weights():
    config = small_config()
    model = GPT(config)
    assert not {"cos", "sin"} & set(model.state_dict())
    with torch.device("meta"):
        empty = GPT(config)
    empty.to_empty(device="cpu")
    empty.init_weights()
    empty.load_state_dict(model.state_dict())
    idx = torch.randint(0, 97, (2, 10))
    with torch.no_grad():
        torch.testing.assert_close(empty(idx), model(idx))


# --- initialisation, loss, precision ------------------------------------------------------------------------

def test_initialisation():
    config = small_config()
    model = GPT(config)
    for block in model.transformer.h:
        assert torch.all(block.attn.c_proj.weight == 0) and torch.all(block.mlp.c_proj.weight == 0)
    assert model.lm_head.weight.std() < 0.01
    assert 0.9 < model.transformer.wte.weight.std() < 1.1
    c_q = model.transformer.h[0].attn.c_q.weight
    assert abs(c_q.std().item() - 1 / math.sqrt(config.n_embd)) < 0.2 / math.sqrt(config.n_embd)
    idx = torch.randint(0, 97, (4, 16))
    with torch.no_grad():
        assert abs(model(idx, idx).item() - math.log(97)) < 0.02  # knows nothing: the loss of a uniform guess


def test_loss_ignores_minus_one_and_reduces_as_asked():
    model = trained_like(small_config())
    idx = torch.randint(0, 97, (2, 10))
    targets = torch.randint(0, 97, (2, 10))
    masked = targets.clone(); masked[0, :4] = -1; masked[1, 7:] = -1
    with torch.no_grad():
        logits = model(idx)
        per_token = model(idx, targets, loss_reduction="none")
        assert per_token.shape == (2, 10)
        expected = F.cross_entropy(logits.view(-1, 97), targets.view(-1), reduction="none").view(2, 10)
        torch.testing.assert_close(per_token, expected)
        keep = masked != -1
        torch.testing.assert_close(model(idx, masked), expected[keep].mean())
        torch.testing.assert_close(model(idx, masked, loss_reduction="sum"), expected[keep].sum())
        assert torch.all(model(idx, masked, loss_reduction="none")[~keep] == 0)


def test_logits_are_float32_and_soft_capped():
    model = trained_like(small_config())
    with torch.no_grad():
        model.lm_head.weight.mul_(1000)  # huge raw logits
        logits = model(torch.randint(0, 97, (1, 6)))
    assert logits.dtype == torch.float32
    assert logits.abs().max() <= gpt.SOFTCAP and logits.abs().max() > 0.9 * gpt.SOFTCAP


def test_bfloat16_autocast_returns_float32_logits_close_to_float32():
    model = trained_like(small_config())
    idx = torch.randint(0, 97, (2, 10))
    with torch.no_grad():
        reference = model(idx)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(idx)
            loss = model(idx, idx)
    assert logits.dtype == torch.float32 and loss.dtype == torch.float32
    torch.testing.assert_close(logits, reference, atol=0.05, rtol=0.05)


def test_residual_stream_is_bfloat16_under_autocast_only():
    "As nanochat: the embedding output is cast to the autocast dtype, so every block's input and output are bf16."
    model = trained_like(small_config())
    idx = torch.randint(0, 97, (2, 10))
    seen = []
    hooks = [b.register_forward_hook(lambda mod, inp, out: seen.append((inp[0].dtype, out.dtype))) for b in model.transformer.h]
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16): model(idx)
        assert set(seen) == {(torch.bfloat16, torch.bfloat16)}, seen
        seen.clear(); model(idx)
        assert set(seen) == {(torch.float32, torch.float32)}, seen
    for h in hooks: h.remove()


def test_bad_configs_fail_clearly():
    with pytest.raises(ValueError, match="not divisible by n_head"):
        GPTConfig(n_embd=100, n_head=3, n_kv_head=1)
    with pytest.raises(ValueError, match="not a multiple of n_kv_head"):
        GPTConfig(n_head=10, n_kv_head=3)
    with pytest.raises(ValueError, match="must be even"):
        GPTConfig(n_embd=30, n_head=10, n_kv_head=5)
    with pytest.raises(ValueError, match="positive integer"):
        GPTConfig(vocab_size=0)
    with pytest.raises(ValueError, match="positive integer"):
        config_from_depth(0)
    with pytest.raises(ValueError, match="not a multiple of n_kv_head"):
        config_from_depth(20, n_kv_head=3)
    with pytest.raises(ValueError, match=r"\(batch, time\)"):
        GPT(small_config())(torch.zeros(5, dtype=torch.long))


# --- it learns, and it traces --------------------------------------------------------------------------------

def test_a_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    model = GPT(small_config())
    x = torch.randint(0, 97, (4, 16))
    y = x.roll(-1, dims=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(150):
        loss = model(x, y)
        opt.zero_grad(); loss.backward(); opt.step()
    assert loss.item() < 0.05


def test_every_parameter_gets_a_gradient_after_one_step():
    "The zero-initialised projections must not freeze the layers behind them."
    torch.manual_seed(0)
    model = GPT(small_config())
    x = torch.randint(0, 97, (2, 8))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad(); model(x, x.roll(-1, 1)).backward(); opt.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_training_forward_is_one_graph_for_torch_compile():
    model = GPT(small_config())
    x = torch.randint(0, 97, (2, 8))
    explanation = torch._dynamo.explain(model)(x, x)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
