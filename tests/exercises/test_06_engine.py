"Grades exercises/06_engine (or solutions/ with --grade solutions)."
import pytest
import torch


@pytest.fixture
def sampling(exercise): return exercise("06_engine/sampling.py")


@pytest.fixture
def kv(exercise): return exercise("06_engine/kv_cache.py")


@pytest.fixture
def tools(exercise): return exercise("06_engine/tool_calls.py")


# --- top-k sampling ---

def test_top_k_filter(sampling):
    out = sampling.top_k_filter(torch.tensor([[1.0, 3.0, 2.0, 0.0], [5.0, 5.0, 1.0, 2.0]]), 2)
    inf = float("-inf")
    want = torch.tensor([[inf, 3.0, 2.0, inf], [5.0, 5.0, inf, inf]])
    assert torch.equal(out, want), f"top-2 of [[1, 3, 2, 0], [5, 5, 1, 2]]: expected {want.tolist()}, got {out.tolist()}. Revisit top_k in lesson 06b: keep the k largest per row, -inf elsewhere"
    logits = torch.randn(3, 6)
    assert torch.equal(sampling.top_k_filter(logits, 6), logits) and torch.equal(sampling.top_k_filter(logits, 100), logits), (
        "k >= the vocabulary (6 or 100 of 6): expected the logits unchanged. Revisit top_k in lesson 06b")
    before = logits.clone(); sampling.top_k_filter(logits, 2)
    assert torch.equal(logits, before), "top_k_filter must not modify its input"
    with pytest.raises(ValueError):
        got = sampling.top_k_filter(logits, 0)
        pytest.fail(f"top_k_filter(logits, 0): expected ValueError (k must be at least 1), got {got}")


def test_sample_top_k_greedy(sampling):
    logits = torch.randn(4, 10)
    out = sampling.sample_top_k(logits, 3, temperature=0)
    assert out.shape == (4,) and torch.equal(out, logits.argmax(-1)), (f"temperature 0 is greedy: expected {logits.argmax(-1).tolist()}, got "
                                                                    f"{out.tolist()}. Revisit temperature in lesson 06b (0 = argmax, no draw)")


def test_sample_top_k_draws_only_from_the_top_k_with_the_right_frequencies(sampling):
    logits = torch.tensor([[0.0, 2.0, 1.0, -3.0, 1.5]])
    rng = torch.Generator().manual_seed(0)
    ids = sampling.sample_top_k(logits.expand(30_000, -1), 3, temperature=1.0, rng=rng)
    assert ids.dtype == torch.long, f"token ids are long integers, got {ids.dtype}"
    assert set(ids.tolist()) == {1, 2, 4}, f"top-3 of {logits.tolist()} is ids 1, 4, 2 and only those, but drew {sorted(set(ids.tolist()))}"
    freq = torch.bincount(ids, minlength=5).float() / len(ids)
    want = torch.tensor([2.0, 1.0, 1.5]).softmax(-1)
    assert torch.allclose(freq[[1, 2, 4]], want, atol=0.015), (f"ids 1, 2, 4 should be drawn with the softmax of their logits "
                                                              f"{[round(x, 3) for x in want.tolist()]}, got {[round(x, 3) for x in freq[[1, 2, 4]].tolist()]}")
    a = sampling.sample_top_k(logits.expand(50, -1), 3, rng=torch.Generator().manual_seed(5))
    b = sampling.sample_top_k(logits.expand(50, -1), 3, rng=torch.Generator().manual_seed(5))
    assert torch.equal(a, b), "the same generator seed must give the same samples"


def test_temperature_sharpens(sampling):
    logits = torch.tensor([[0.0, 1.0]])
    rng = torch.Generator().manual_seed(0)
    cold = sampling.sample_top_k(logits.expand(20_000, -1), 2, temperature=0.25, rng=rng).float().mean()
    hot = sampling.sample_top_k(logits.expand(20_000, -1), 2, temperature=4.0, rng=rng).float().mean()
    assert abs(cold - torch.sigmoid(torch.tensor(4.0))) < 0.015, (f"temperature 0.25 divides the logits by 0.25: P(id 1) = "
                                                                   f"sigmoid(4) = 0.982, got {cold:.3f}")
    assert abs(hot - torch.sigmoid(torch.tensor(0.25))) < 0.015, f"temperature 4: P(id 1) = sigmoid(0.25) = 0.562, got {hot:.3f}"


# --- the KV cache ---

def test_kv_cache_appends_and_returns_everything_so_far(kv):
    cache = kv.SimpleKVCache(2, 3, 10, 4)
    k1, v1 = torch.randn(2, 3, 6, 4), torch.randn(2, 3, 6, 4)
    k, v = cache.append(k1, v1)
    assert cache.pos == 6, f"after appending 6 positions pos should be 6, got {cache.pos}"
    assert torch.equal(k, k1) and torch.equal(v, v1), "append returns every key and value so far: here exactly the 6 appended"
    k2, v2 = torch.randn(2, 3, 1, 4), torch.randn(2, 3, 1, 4)
    k, v = cache.append(k2, v2)
    assert cache.pos == 7 and k.shape == (2, 3, 7, 4), f"after 6 + 1 positions: pos 7 and keys (2, 3, 7, 4), got {cache.pos} and {tuple(k.shape)}"
    assert torch.equal(k, torch.cat([k1, k2], dim=2)) and torch.equal(v, torch.cat([v1, v2], dim=2)), \
        "the returned keys/values are the old ones followed by the new, along the time axis (dim 2)"


def test_kv_cache_gives_the_same_attention_as_recomputing(kv):
    "Attention of the last query over the cache equals attention over freshly computed keys and values."
    torch.manual_seed(0)
    keys, values, q = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8), torch.randn(1, 2, 1, 8)
    cache = kv.SimpleKVCache(1, 2, 8, 8)
    for t in range(5): k, v = cache.append(keys[:, :, t:t + 1], values[:, :, t:t + 1])
    att = torch.nn.functional.scaled_dot_product_attention
    assert torch.allclose(att(q, k, v), att(q, keys, values)), "attention over the cache must equal attention over all 5 keys and values"


def test_kv_cache_refuses_to_overflow(kv):
    cache = kv.SimpleKVCache(1, 1, 4, 2)
    cache.append(torch.ones(1, 1, 3, 2), torch.ones(1, 1, 3, 2))
    with pytest.raises(ValueError, match="full"):
        cache.append(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2))
        pytest.fail("3 of 4 positions filled, 2 more: expected a ValueError saying the cache is full")
    assert cache.pos == 3, f"a refused append changes nothing: pos should stay 3, got {cache.pos}"
    with pytest.raises(ValueError):  # keys and values of different lengths
        cache.append(torch.ones(1, 1, 1, 2), torch.ones(1, 1, 2, 2))
        pytest.fail("1 key and 2 values: expected ValueError (keys and values must cover the same positions)")


# --- the tool-call state machine ---

SPECIAL = {"python_start": 100, "python_end": 101, "output_start": 102, "output_end": 103, "assistant_end": 104}
encode = lambda s: [ord(c) for c in s]
decode = lambda ids: "".join(chr(i) for i in ids)


def scripted(script):
    "A stand-in model: the i-th call returns script[i] (whatever the context)."
    calls = []
    def next_token(tokens):
        calls.append(list(tokens))
        return script[len(calls) - 1]
    return next_token, calls


def test_tool_output_is_forced_with_mask_zero(tools):
    script = encode("x=") + [100] + encode("6*7") + [101] + encode("ok") + [104]
    next_token, calls = scripted(script)
    tool = lambda expr: str(eval(expr))
    tokens, mask = tools.generate_with_tools(next_token, [1, 2], tool, encode, decode, SPECIAL, max_tokens=50)
    want = encode("x=") + [100] + encode("6*7") + [101, 102] + encode("42") + [103] + encode("ok") + [104]
    assert tokens == want, (f"after <|python_end|> the engine forces <|output_start|>, the tool's result and <|output_end|>: "
                            f"expected {want}, got {tokens}")
    assert mask == [1] * 7 + [0] * 4 + [1] * 3, f"mask 1 for the model's tokens, 0 for the 4 forced ones; got {mask}"
    assert calls[-1] == [1, 2] + want[:-1], "the model must see the forced tokens in its context"


def test_failed_tool_injects_nothing_and_stray_tokens_do_nothing(tools):
    seen = []
    def tool(expr): seen.append(expr); return None
    script = [101] + encode("a") + [100] + encode("1/0") + [100] + encode("2+2") + [101, 104]
    next_token, _ = scripted(script)
    tokens, mask = tools.generate_with_tools(next_token, [0], tool, encode, decode, SPECIAL, max_tokens=50)
    assert tokens == script and all(mask), f"a failed tool forces nothing: the tokens are the model's own ({script}), got {tokens}, mask {mask}"
    assert seen == ["2+2"], "a stray python_end is ignored and a second python_start restarts the expression"


def test_max_tokens_cuts_forced_output(tools):
    script = [100] + encode("9") + [101] + [0] * 10
    next_token, _ = scripted(script)
    tokens, mask = tools.generate_with_tools(next_token, [0], lambda e: "123456", encode, decode, SPECIAL, max_tokens=6)
    want = [100, ord("9"), 101, 102, ord("1"), ord("2")]
    assert tokens == want and mask == [1, 1, 1, 0, 0, 0], (f"max_tokens=6 counts forced tokens too: expected {want} with mask "
                                                           f"[1, 1, 1, 0, 0, 0], got {tokens} with {mask}")


# --- 06d: speculative sampling ---

@pytest.fixture
def spec(exercise): return exercise("06_engine/speculative.py")


SPEC = "the exercise's three steps: d ~ q, accept with min(1, p[d]/q[d]), else draw from max(0, p - q) normalised"
P = torch.tensor([0.05, 0.40, 0.25, 0.20, 0.10])
Q = torch.tensor([0.30, 0.30, 0.10, 0.25, 0.05])  # a draft that likes token 0 too much


def test_acceptance_and_residual_exactly(spec):
    got = spec.acceptance_probability(P, Q)
    assert got == pytest.approx(0.70), f"sum of min(p, q) = 0.05 + 0.30 + 0.10 + 0.20 + 0.05 = 0.70, got {got}. Revisit {SPEC}."
    got = spec.residual_distribution(P, Q)
    want = torch.tensor([0.0, 0.10, 0.15, 0.0, 0.05]) / 0.30
    assert torch.allclose(got, want, atol=1e-6), f"residual of p, q: expected {want.tolist()}, got {got.tolist()}. Revisit {SPEC}."
    same = spec.residual_distribution(P, P.clone())
    assert torch.allclose(same, P), f"p == q: nothing is rejected, expected p back ({P.tolist()}), got {same.tolist()}. Revisit the docstring."


def test_speculative_samples_follow_the_big_models_distribution(spec):
    rng, n = torch.Generator().manual_seed(0), 10_000
    draws = [spec.speculative_sample(P, Q, rng) for _ in range(n)]
    freq = torch.bincount(torch.tensor([t for t, _ in draws]), minlength=5).double() / n
    accepted = sum(a for _, a in draws) / n
    tolerance = 4 * (P * (1 - P) / n).sqrt()  # 4 standard errors of each frequency
    assert ((freq - P).abs() <= tolerance).all(), (f"over {n:,} draws the tokens should follow p = {P.tolist()}, got frequencies "
                                                   f"{[round(f, 3) for f in freq.tolist()]} (q = {Q.tolist()}). Revisit {SPEC}.")
    assert accepted == pytest.approx(0.70, abs=0.02), f"drafts should be accepted 70% of the time (sum of min(p, q)), got {accepted:.1%}. Revisit {SPEC}."
