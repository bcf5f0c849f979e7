"""Prefill and decode speed (lesson 06): the engine's prefill vs a naive one, cached vs uncached decoding, int8 vs float32.

    python bench/engine.py                      # CPU: d4 and d8, vocab 32,768, a 1,024-token prompt, batch 1 and 8
    python bench/engine.py --depths 4 --repeats 5 --threads 1
    python bench/engine.py --threads 1 --clock cpu  # CPU seconds instead of elapsed: a loaded machine's waits left out
    python bench/engine.py --device cuda        # on a GPU (bfloat16 weights; int8 is CPU-only and skipped)

Every figure is printed beside its baseline, measured in the same run: the variants take turns (interleaved,
`--repeats` times; decode runs even step by step, one step of each variant in turn) and each prints its median,
so load on a shared machine hits both sides alike. Read the ratios; absolute tokens/s move with the load (printed
at the start and the end).

- prefill: one prompt of `--prompt-len` random tokens for `batch` sample rows. The engine's `prefill`: one
  forward of the prompt in a batch of ONE asking for the last position's logits only, then its keys and values
  copied into the rows. The baseline, naive, runs the prompt once per row (a batch of `batch` copies) into a
  cache of that many rows and computes every position's logits, as a plain forward does. Tokens/s = prompt
  tokens / second (the distinct tokens: the rows share them).
- decode, cached vs uncached: `--new-tokens` greedy steps of one token per row through the KV cache, against
  `--uncached-tokens` steps that run the model over the whole sequence again (the lesson's slow way).
  Tokens/s = rows × steps / second.
- int8 vs float32: the same prefill and cached decode with `engine.quantize_int8(model)` (CPU only).
  Below it, one decode step split by `engine.decode_time_split` (torch.profiler): ms in the Linear layers'
  kernels, in attention over the cache, and in everything else (norms, rotary, softcap, the pick, Python), and
  the ceiling that leaves: the float32 step over its non-matmul part.
- quality: bits per byte of a trained model and its int8 copy on held-out text: the base checkpoint under
  $NANOCHAT_BASE_DIR if there is one (on its validation split), else a small model trained here for a few
  seconds on the chitchat conversations (on their held-out part).
"""
import argparse, itertools, os, statistics, time

import torch

from nanochat.engine import decode_step, decode_time_split, new_cache, prefill, quantize_int8, sample_next_token, weight_bytes
from nanochat.gpt import GPT, GPTConfig


def sync(device):
    if device.type == "cuda": torch.cuda.synchronize()


CLOCK = time.perf_counter  # --clock cpu: time.process_time, this process's CPU seconds (all its threads)


def timed(fn, device) -> float:
    sync(device); start = CLOCK(); fn(); sync(device)
    return CLOCK() - start


@torch.inference_mode()
def naive_prefill(model, prompt: list[int], rows: int, max_tokens: int):
    "The prompt once per row: a plain forward (every position's logits) of `rows` copies into a cache of `rows` rows."
    ids = torch.tensor([prompt] * rows, device=next(model.parameters()).device)
    cache = new_cache(model, rows, len(prompt) + max_tokens)
    return model(ids, kv_cache=cache)[:, -1], cache


def decode_tok_per_s(runs: dict, prompt: list[int], rows: int, device) -> dict:
    """Greedy decode after the prompt with every run {name: (model, use_cache, steps)} at once, one step of each in
    turn (so the machine's load hits them alike); rows × steps / seconds of each run's steps (prefill not timed)."""
    state = {}
    for name, (model, use_cache, steps) in runs.items():
        logits, cache = prefill(model, [prompt], num_samples=rows, max_tokens=steps, use_cache=use_cache)
        state[name] = dict(logits=logits, cache=cache, seqs=None if use_cache else [list(prompt) for _ in range(rows)], seconds=0.0)
    for i in range(max(steps for _, _, steps in runs.values())):
        for name, (model, _, steps) in runs.items():
            if i >= steps: continue
            s = state[name]
            fed = sample_next_token(s["logits"], temperature=0).tolist()
            s["seconds"] += timed(lambda: s.update(logits=decode_step(model, fed, s["cache"], s["seqs"])), device)
    return {name: rows * runs[name][2] / state[name]["seconds"] for name in runs}


def medians(variants: dict, repeats: int) -> dict:
    "Run each variant (a function returning seconds) `repeats` times, taking turns; the median seconds of each."
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items(): times[name].append(fn())
    return {name: statistics.median(t) for name, t in times.items()}


def row(depth, batch, phase, name, tok_s, base_name, base_tok_s):
    print(f"d{depth:<3d} {batch:5d}  {phase:8s} {name:22s} {tok_s:10.1f}   {base_name:26s} {base_tok_s:10.1f} {tok_s / base_tok_s:7.2f}×", flush=True)


def bench_depth(args, depth: int, device):
    torch.manual_seed(depth)
    model = GPT.from_depth(depth, vocab_size=args.vocab_size, sequence_len=args.prompt_len + args.new_tokens).to(device).eval()
    if device.type == "cuda": model = model.to(torch.bfloat16)
    qmodel = quantize_int8(model) if device.type == "cpu" else None
    mem = f"weights {weight_bytes(model) / 1e6:.1f} MB {next(model.parameters()).dtype}".replace("torch.", "")
    if qmodel is not None: mem += f", {weight_bytes(qmodel) / 1e6:.1f} MB int8"
    print(f"\nd{depth}: {model.num_params() / 1e6:.1f}M parameters ({mem}); prompt {args.prompt_len}, "
          f"{args.new_tokens} cached / {args.uncached_tokens} uncached decode steps, median of {args.repeats}")
    prompt = torch.randint(0, args.vocab_size, (args.prompt_len,)).tolist()
    T, n, u = args.prompt_len, args.new_tokens, args.uncached_tokens
    for m in filter(None, (model, qmodel)):  # warm-up: first calls allocate and pick kernels
        prefill(m, [prompt[:64]], num_samples=2, max_tokens=4); decode_tok_per_s({"w": (m, True, 2)}, prompt[:64], 2, device)
    for batch in args.batches:
        pre = {"ours": lambda: timed(lambda: prefill(model, [prompt], batch, n), device),
               "naive": lambda: timed(lambda: naive_prefill(model, prompt, batch, n), device)}
        runs = {"cached": (model, True, n), "uncached": (model, False, u)}
        if qmodel is not None:
            pre["int8"] = lambda: timed(lambda: prefill(qmodel, [prompt], batch, n), device)
            runs["int8"] = (qmodel, True, n)
        p = medians(pre, args.repeats)
        speeds = [decode_tok_per_s(runs, prompt, batch, device) for _ in range(args.repeats)]
        d = {name: statistics.median(s[name] for s in speeds) for name in runs}
        row(depth, batch, "prefill", "engine (1 row, last)", T / p["ours"], f"naive ({batch} rows, all logits)", T / p["naive"])
        if qmodel is not None: row(depth, batch, "prefill", "int8", T / p["int8"], "float32", T / p["ours"])
        row(depth, batch, "decode", "cached", d["cached"], "uncached", d["uncached"])
        if qmodel is not None:
            row(depth, batch, "decode", "int8 (cached)", d["int8"], "float32 (cached)", d["cached"])
            split = {name: decode_time_split(m, prompt, batch) for name, m in (("float32", model), ("int8", qmodel))}
            f = split["float32"]
            print(f"{'':12s}one decode step, ms: " + " | ".join(f"{name} " + " + ".join(f"{part} {ms:.2f}" for part, ms in s.items())
                  for name, s in split.items()) + f"; with free matmuls at most {sum(f.values()) / (f['attention'] + f['everything else']):.2f}× float32's")


def trained_small_model():
    "(model, val batches, token_bytes, label): a small model trained here on chitchat, scored on its held-out part."
    from nanochat.data import chat_split, chitchat_texts
    from nanochat.tokenizer import Tokenizer
    chats = list(chitchat_texts().items())[:300]
    train, val = [[t for k, t in chats if chat_split(k) == part] for part in ("pretrain", "heldout")]
    tok = Tokenizer.train(train, vocab_size=512)
    stream = lambda docs: torch.tensor([i for d in docs for i in tok.encode(d, prepend=tok.bos_token_id)])
    train_ids, val_ids, T = stream(train), stream(val), 64
    torch.manual_seed(0)
    model = GPT(GPTConfig(sequence_len=T, vocab_size=tok.vocab_size, n_layer=2, n_head=1, n_kv_head=1, n_embd=128))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0)
    for _ in range(300):
        ix = torch.randint(0, len(train_ids) - T - 1, (8,)).tolist()
        loss = model(torch.stack([train_ids[i:i + T] for i in ix]), torch.stack([train_ids[i + 1:i + T + 1] for i in ix]))
        opt.zero_grad(); loss.backward(); opt.step()
    batches = [(val_ids[i:i + T][None], val_ids[i + 1:i + T + 1][None]) for i in range(0, len(val_ids) - T - 1, T)]
    return model.eval(), batches, tok.token_bytes(), f"a d2 model (n_embd 128) trained here 300 steps on chitchat, {len(batches) * T:,} held-out tokens"


def quality(args):
    "bpb float32 vs int8 on held-out text, same run."
    from nanochat.train import evaluate_bpb  # lesson 04d
    try:
        from nanochat.eval import load_source
        from nanochat.train import BpbSample
        model, tok, meta = load_source("base")
        sample = BpbSample(tok, "val", args.bpb_tokens, model.config.sequence_len)
        batches, token_bytes = list(sample.batches(4)), tok.token_bytes()
        label = (f"the base checkpoint (d{model.config.n_layer}, step {meta.get('step')}) on the validation split, "
                 f"{sample.tokens:,} tokens (lesson 04d's BpbSample)")
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"(no base checkpoint under $NANOCHAT_BASE_DIR to score: {str(e).splitlines()[0][:120]})")
        model, batches, token_bytes, label = trained_small_model()
    model = model.float().cpu().eval()
    f, q = evaluate_bpb(model, batches, token_bytes), evaluate_bpb(quantize_int8(model), batches, token_bytes)
    print(f"\nquality, {label}:\n  bpb float32 {f:.4f}, int8 {q:.4f} ({q / f - 1:+.2%})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--depths", default="4,8", help="comma-separated model depths")
    parser.add_argument("--vocab-size", type=int, default=32_768)
    parser.add_argument("--prompt-len", type=int, default=1024, help="prompt tokens (random ids)")
    parser.add_argument("--batches", default="1,8", help="comma-separated sample rows per prompt")
    parser.add_argument("--new-tokens", type=int, default=64, help="decode steps timed with the cache")
    parser.add_argument("--uncached-tokens", type=int, default=2, help="decode steps timed without the cache (each is a full forward)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of every measurement (the median is printed)")
    parser.add_argument("--bpb-tokens", type=int, default=65_536, help="validation tokens for the quality check (checkpoint path)")
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"], help="wall: seconds elapsed; cpu: this "
                        "process's CPU seconds, which other jobs on a shared machine barely move (CPU only; with --threads 1 "
                        "it is the work done, without the time spent waiting for a core)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default. On a busy machine "
                        "1 can be faster: small decode ops spin-wait on each other across threads")
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    if args.threads: torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.clock == "cpu":
        if device.type != "cpu": parser.error("--clock cpu times CPU work: a GPU's is not counted, use --clock wall")
        global CLOCK
        CLOCK = time.process_time
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"vocab {args.vocab_size:,}, {name}, torch {torch.__version__}, {args.clock} clock, load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'':4s} {'batch':>5s}  {'phase':8s} {'variant':22s} {'tok/s':>10s}   {'baseline':26s} {'tok/s':>10s} {'ratio':>8s}")
    for depth in (int(d) for d in args.depths.split(",")): bench_depth(args, depth, device)
    if device.type == "cpu": quality(args)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)")


if __name__ == "__main__":
    main()
