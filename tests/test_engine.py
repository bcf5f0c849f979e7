"""The inference engine (lesson 06): sampling, KV-cache decoding equal to full forwards, batching, stopping, tool use."""
import pytest
import torch

from nanochat.engine import Engine, ToolCallTracker, decode_step, prefill, sample_next_token
from nanochat.gpt import GPT, GPTConfig
from nanochat.tokenizer import Tokenizer

TEXTS = ["The cat sat on the mat. The dog sat on the log.", "What is 6 times 7? It is 42.",
         "Hello! How are you today? I am fine, thank you."] * 10


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    "These models are tiny: one thread is faster (several spin-wait on each other, badly so on a shared machine)."
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train(TEXTS, vocab_size=300)


def random_model(vocab_size: int, seed: int = 0) -> GPT:
    "A tiny GPT whose every weight is jiggled, so that attention matters (fresh output projections are zero)."
    torch.manual_seed(seed)
    model = GPT(GPTConfig(sequence_len=128, vocab_size=vocab_size, n_layer=2, n_head=4, n_kv_head=2, n_embd=32))
    with torch.no_grad():
        for p in model.parameters(): p.add_(0.5 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def model(tok):
    return random_model(tok.vocab_size)


class ScriptedModel(GPT):
    "A real GPT underneath (the cache advances as usual) whose logits make generation position i pick script[i]."
    def __init__(self, script, prompt_len, vocab_size, end):
        super().__init__(GPTConfig(sequence_len=128, vocab_size=vocab_size, n_layer=1, n_head=1, n_kv_head=1, n_embd=16))
        self.script, self.prompt_len, self.end = script, prompt_len, end

    def forward(self, idx, targets=None, kv_cache=None, loss_reduction="mean"):
        start = 0 if kv_cache is None else kv_cache.pos
        super().forward(idx, kv_cache=kv_cache)
        logits = torch.zeros(*idx.shape, self.config.vocab_size)
        for t in range(idx.size(1)):
            i = start + t + 1 - self.prompt_len
            logits[:, t, self.script[i] if 0 <= i < len(self.script) else self.end] = 10.0
        return logits


def sp(tok, name): return tok.encode_special(f"<|{name}|>")


# --- sampling -------------------------------------------------------------------------------------------

def test_greedy_is_argmax_and_ignores_the_filters():
    logits = torch.randn(5, 50)
    for kw in [{}, {"top_k": 3}, {"top_p": 0.5}]:
        assert torch.equal(sample_next_token(logits, temperature=0, **kw), logits.argmax(-1))


def test_sampling_frequencies_follow_the_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    rng = torch.Generator().manual_seed(0)
    ids = sample_next_token(logits.expand(40_000, -1), rng, temperature=0.7)
    freq = torch.bincount(ids, minlength=4).float() / len(ids)
    assert torch.allclose(freq, (logits / 0.7).softmax(-1)[0], atol=0.01)


def test_top_k_and_top_p_keep_only_the_head():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0, -1.0]])  # order of likelihood: 1, 3, 2, 0, 4
    rng = torch.Generator().manual_seed(0)
    many = logits.expand(5_000, -1)
    assert set(sample_next_token(many, rng, top_k=2).tolist()) == {1, 3}
    assert set(sample_next_token(many, rng, top_k=1).tolist()) == {1}
    probs = logits.softmax(-1)[0]  # p1 = 0.64, p3 = 0.24: top-p 0.8 keeps exactly tokens 1 and 3
    assert set(sample_next_token(many, rng, top_p=0.8).tolist()) == {1, 3}
    assert set(sample_next_token(many, rng, top_p=0.5).tolist()) == {1} and probs[1] > 0.5


def test_bad_sampling_settings_are_refused():
    logits = torch.randn(1, 10)
    with pytest.raises(ValueError, match="temperature"): sample_next_token(logits, temperature=-0.1)
    with pytest.raises(ValueError, match="top_k"): sample_next_token(logits, top_k=0)
    with pytest.raises(ValueError, match="top_p"): sample_next_token(logits, top_p=0)


# --- KV cache, batching -----------------------------------------------------------------------------------

def test_the_context_matters_to_the_test_model(model):
    "Otherwise cached == uncached would hold trivially: the same last token after different contexts must differ."
    with torch.inference_mode():
        a, b = model(torch.tensor([[5, 6, 7, 9]]))[0, -1], model(torch.tensor([[1, 2, 3, 9]]))[0, -1]
    assert (a - b).abs().max() > 1e-2


def test_cached_generation_equals_uncached_token_for_token(model, tok):
    prompts = [tok.encode("The cat sat", prepend=tok.bos_token_id), tok.encode("Hello! How are you", prepend=tok.bos_token_id)]
    cached, _ = Engine(model, tok).generate_batch(prompts, num_samples=2, max_tokens=40, temperature=0)
    uncached, _ = Engine(model, tok, use_cache=False).generate_batch(prompts, num_samples=2, max_tokens=40, temperature=0)
    assert cached == uncached
    assert len(cached[0]) > 1 and cached[0] == cached[1]  # greedy: both samples of a prompt agree


def test_prefill_logits_and_cache_match_a_full_forward(model):
    prompts = [[1, 2, 3, 4, 5], [9, 8, 7, 6, 5]]
    logits, cache = prefill(model, prompts, num_samples=3, max_tokens=4)
    with torch.inference_mode(): full = model(torch.tensor(prompts))[:, -1]
    assert torch.allclose(logits, full.repeat_interleave(3, dim=0), atol=1e-5)
    assert (cache.batch_size, cache.pos) == (6, 5)


def test_batched_equals_one_by_one(model, tok):
    engine = Engine(model, tok)
    prompts = [[tok.bos_token_id, 10, 11], [tok.bos_token_id, 12], [tok.bos_token_id, 20, 21], [tok.bos_token_id] + list(range(30, 40))]
    batched, _ = engine.generate_batch(prompts, num_samples=2, max_tokens=25, temperature=0)
    alone = [engine.generate_batch(p, max_tokens=25, temperature=0)[0][0] for p in prompts]
    assert batched[0::2] == alone and batched[1::2] == alone


def test_samples_share_one_prefill(model, tok):
    calls = []
    hook = model.register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape)))
    try:
        Engine(model, tok).generate_batch([tok.bos_token_id, 5, 6, 7], num_samples=4, max_tokens=3, temperature=1.0)
    finally:
        hook.remove()
    assert calls == [(1, 4), (4, 1), (4, 1)]  # the prompt once, then one token per sample row per step


def test_prefill_of_eight_samples_is_one_forward_of_one_row(model):
    "num_samples=8: the model runs once, on a batch of ONE (not 8 copies), and every row starts from the same logits."
    calls = []
    hook = model.register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape)))
    prompt = list(range(1, 40))
    try:
        logits, cache = prefill(model, [prompt], num_samples=8, max_tokens=16)
    finally:
        hook.remove()
    assert calls == [(1, len(prompt))]
    with torch.inference_mode(): full = model(torch.tensor([prompt]))[:, -1]
    assert logits.shape == (8, model.config.vocab_size) and all(torch.equal(logits[0], r) for r in logits)
    assert torch.allclose(logits[0], full[0], atol=1e-5)
    assert (cache.batch_size, cache.pos, cache.seq_len) == (8, len(prompt), len(prompt) + 16)
    assert all(torch.equal(cache.k[:, 0, :, :cache.pos], cache.k[:, r, :, :cache.pos]) for r in range(8))


def test_prefill_asks_for_the_last_logits_only_when_the_model_can(tok):
    "A forward that takes last_only gets last_only=True from prefill (and the uncached path); one that does not, nothing."
    class LastOnly(GPT):
        def forward(self, idx, targets=None, kv_cache=None, loss_reduction="mean", last_only=False):
            self.asked.append(last_only)
            logits = GPT.forward(self, idx, targets, kv_cache, loss_reduction)
            return logits[:, -1:] if last_only else logits
    reference = random_model(tok.vocab_size)
    model = LastOnly(reference.config); model.load_state_dict(reference.state_dict()); model.eval(); model.asked = []
    prompt = [tok.bos_token_id, 5, 6, 7]
    logits, cache = prefill(model, [prompt], num_samples=3, max_tokens=2)
    uncached, _ = prefill(model, [prompt], num_samples=3, use_cache=False)
    assert model.asked == [True, True]
    assert torch.allclose(logits, prefill(reference, [prompt], num_samples=3, max_tokens=2)[0], atol=1e-6)
    assert torch.allclose(uncached, logits, atol=1e-5)


def test_prefill_of_one_sample_writes_straight_into_the_decode_cache(model):
    "num_samples=1 needs no copy: the prompt's keys and values go into the cache that decoding then extends."
    logits, cache = prefill(model, [[1, 2, 3], [4, 5, 6]], num_samples=1, max_tokens=5)
    assert (cache.batch_size, cache.pos, cache.seq_len) == (2, 3, 8)
    with torch.inference_mode(): full = model(torch.tensor([[1, 2, 3, 7], [4, 5, 6, 7]]))[:, -1]
    assert torch.allclose(decode_step(model, [7, 7], cache), full, atol=1e-5)


def test_sampling_is_reproducible_and_rows_differ(model, tok):
    engine, prompt = Engine(model, tok), [tok.bos_token_id, 5, 6]
    a, _ = engine.generate_batch(prompt, num_samples=4, max_tokens=20, temperature=1.0, seed=3)
    b, _ = engine.generate_batch(prompt, num_samples=4, max_tokens=20, temperature=1.0, seed=3)
    c, _ = engine.generate_batch(prompt, num_samples=4, max_tokens=20, temperature=1.0, seed=4)
    assert a == b and a != c and len({tuple(r) for r in a}) > 1


def test_bad_prompts_get_clear_errors(model, tok):
    engine = Engine(model, tok)
    with pytest.raises(ValueError, match="at least one token"): next(engine.generate([]))
    with pytest.raises(ValueError, match="token ids"): next(engine.generate([tok.vocab_size]))
    with pytest.raises(ValueError, match="positions"): next(engine.generate([1, 2], max_tokens=10**6))
    with pytest.raises(ValueError, match="max_tokens"): next(engine.generate([1, 2], max_tokens=0))


# --- stopping and tools -----------------------------------------------------------------------------------

@pytest.mark.parametrize("stop", ["assistant_end", "bos"])
def test_generation_stops_at_a_stop_token(tok, stop):
    script = tok.encode("Hi there") + [sp(tok, stop)] + tok.encode(" never shown")
    engine = Engine(ScriptedModel(script, 3, tok.vocab_size, sp(tok, "assistant_end")), tok)
    steps = list(engine.generate([tok.bos_token_id, 5, 6], max_tokens=50, temperature=0))
    assert [col[0] for col, _ in steps] == tok.encode("Hi there") + [sp(tok, stop)]


def test_stopped_rows_yield_none_while_others_go_on(tok):
    "Two prompts whose scripts end at different steps: the shorter row yields None afterwards."
    end = sp(tok, "assistant_end")
    model = ScriptedModel([7, 8, end, 9, 9, 9, end], 2, tok.vocab_size, end)
    steps = list(Engine(model, tok).generate([[1, 2], [3, 4]], max_tokens=10, temperature=0))
    assert [c[0] for c, _ in steps] == [7, 8, end] and len(steps) == 3  # same script: both rows end together
    completions, _ = Engine(model, tok).generate_batch([[1, 2], [3, 4, 5]], max_tokens=10, temperature=0)
    assert completions == [[7, 8, end], [8, end]]  # the longer prompt starts one script position later


def test_tool_output_is_forced_into_the_stream(tok):
    call = [sp(tok, "python_start")] + tok.encode("6*7") + [sp(tok, "python_end")]
    output = [sp(tok, "output_start")] + tok.encode("42") + [sp(tok, "output_end")]
    after = tok.encode(" so 42.") + [sp(tok, "assistant_end")]
    script = call + [tok.bos_token_id] * len(output) + after  # placeholders (a stop token!) the engine must overwrite
    prompt = tok.render_for_completion([{"role": "user", "content": "6 times 7?"}])
    engine = Engine(ScriptedModel(script, len(prompt), tok.vocab_size, sp(tok, "assistant_end")), tok)
    (completion,), (mask,) = engine.generate_batch(prompt, max_tokens=60, temperature=0)
    assert completion == call + output + after
    assert mask == [1] * len(call) + [0] * len(output) + [1] * len(after)
    uncached = Engine(engine.model, tok, use_cache=False).generate_batch(prompt, max_tokens=60, temperature=0)
    assert uncached == ([completion], [mask])


def test_a_failing_tool_call_injects_nothing(tok):
    call = [sp(tok, "python_start")] + tok.encode("1/0") + [sp(tok, "python_end")]
    after = tok.encode(" hmm") + [sp(tok, "assistant_end")]
    engine = Engine(ScriptedModel(call + after, 2, tok.vocab_size, sp(tok, "assistant_end")), tok)
    (completion,), (mask,) = engine.generate_batch([tok.bos_token_id, 5], max_tokens=40, temperature=0)
    assert completion == call + after and all(mask)


def test_tool_calls_use_the_given_tool(tok):
    seen = []
    def tool(expr): seen.append(expr); return "X"
    call = [sp(tok, "python_start")] + tok.encode("anything goes") + [sp(tok, "python_end")]
    engine = Engine(ScriptedModel(call + [0] * 3, 2, tok.vocab_size, sp(tok, "assistant_end")), tok, tool=tool)
    (completion,), _ = engine.generate_batch([tok.bos_token_id, 5], max_tokens=40, temperature=0)
    assert seen == ["anything goes"]
    assert completion[len(call):len(call) + 3] == [sp(tok, "output_start")] + tok.encode("X") + [sp(tok, "output_end")]


def test_tracker_state_machine(tok):
    t = ToolCallTracker(1, 2, lambda ids: ",".join(map(str, ids)))
    assert [t.feed(x) for x in [5, 2, 1, 7, 8, 2, 9]] == [None, None, None, None, None, "7,8", None]  # a stray end does nothing
    assert [t.feed(x) for x in [1, 3, 1, 4, 2]] == [None, None, None, None, "4"]  # a second start restarts the call


def test_serving_runs_under_bf16_autocast_on_cuda_only():
    from nanochat.engine import serving_autocast
    on_gpu = serving_autocast("cuda")   # constructing it needs no GPU; entering it would
    assert isinstance(on_gpu, torch.autocast) and on_gpu.device == "cuda" and on_gpu.fast_dtype == torch.bfloat16
    with serving_autocast("cpu"):
        assert not torch.is_autocast_enabled("cpu") and (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


# --- int8 -------------------------------------------------------------------------------------------------

def trained_model(tok, steps: int = 60) -> GPT:
    "A tiny GPT trained for a moment on TEXTS: random logits would make a quality check meaningless."
    torch.manual_seed(0)
    model = GPT(GPTConfig(sequence_len=64, vocab_size=tok.vocab_size, n_layer=2, n_head=2, n_kv_head=2, n_embd=64))
    ids = torch.tensor([i for t in TEXTS for i in tok.encode(t, prepend=tok.bos_token_id)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        ix = torch.randint(0, len(ids) - 33, (8,)).tolist()
        loss = model(torch.stack([ids[i:i + 32] for i in ix]), torch.stack([ids[i + 1:i + 33] for i in ix]))
        opt.zero_grad(); loss.backward(); opt.step()
    return model.eval()


def test_int8_logits_greedy_text_and_bpb_stay_close_to_float32(tok):
    from nanochat.engine import quantize_int8
    from nanochat.train import evaluate_bpb  # lesson 04d
    model = trained_model(tok)
    qmodel = quantize_int8(model)
    assert type(qmodel.lm_head) is not torch.nn.Linear and type(model.lm_head) is torch.nn.Linear  # a copy: the original stays float
    ids = torch.tensor([tok.encode(TEXTS[1], prepend=tok.bos_token_id)])
    with torch.inference_mode(): full, quant = model(ids), qmodel(ids)
    assert (quant - full).norm() / full.norm() < 0.05
    prompt = tok.encode("The cat", prepend=tok.bos_token_id)
    f, _ = Engine(model, tok).generate_batch(prompt, max_tokens=20, temperature=0)
    q, _ = Engine(qmodel, tok).generate_batch(prompt, max_tokens=20, temperature=0)
    assert sum(a == b for a, b in zip(f[0], q[0])) >= 16, (tok.decode(f[0]), tok.decode(q[0]))
    x = torch.tensor([i for t in TEXTS[-3:] for i in tok.encode(t, prepend=tok.bos_token_id)])
    batches = [(x[None, :-1], x[None, 1:])]
    a, b = evaluate_bpb(model, batches, tok.token_bytes()), evaluate_bpb(qmodel, batches, tok.token_bytes())
    assert abs(b / a - 1) < 0.03, (a, b)


def test_int8_decodes_through_the_kv_cache_and_shrinks_the_weights(tok):
    "Prefill + decode with the cache give the int8 model's own full-forward logits; the Linear weights take a byte each."
    from nanochat.engine import decode_step, quantize_int8, weight_bytes
    model = trained_model(tok, steps=5)
    qmodel = quantize_int8(model)
    prompt = tok.encode("Hello! How", prepend=tok.bos_token_id)
    logits, cache = prefill(qmodel, [prompt], num_samples=2, max_tokens=8)
    seq = list(prompt)
    with torch.inference_mode():
        for _ in range(8):
            full = qmodel(torch.tensor([seq]))[:, -1]
            assert (logits[0] - full[0]).norm() / full.norm() < 0.03 and torch.equal(logits[0], logits[1])
            seq.append(int(logits[0].argmax()))
            logits = decode_step(qmodel, [seq[-1]] * 2, cache)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    saved = weight_bytes(model) - weight_bytes(qmodel)
    assert weight_bytes(model) == 4 * model.num_params()
    assert 0.9 * 3 * linear < saved < 3 * linear  # 4 bytes → 1 per Linear weight, less the per-channel scales


def test_int8_refuses_what_it_cannot_run(tok):
    from nanochat.engine import quantize_int8
    model = trained_model(tok, steps=0)
    with pytest.raises(ValueError, match="float32"): quantize_int8(model.to(torch.bfloat16))
    with pytest.raises(ValueError, match="runs on the CPU"): quantize_int8(model.to("meta"))
