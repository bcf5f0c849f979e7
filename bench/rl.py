"""Where an RL step's time goes (lesson 08): sampling the groups vs the policy-gradient update, and sampled
tokens/s with the KV cache vs without, measured in the same run.

    python bench/rl.py                       # CPU preset sizes: d4 (width 256), 8 questions x 8 samples, 64 new tokens
    python bench/rl.py --source sft          # the SFT checkpoint in $NANOCHAT_BASE_DIR instead of a random d4
    python bench/rl.py --threads 1 --groups 4

Without --source the model is a random d4 over a byte vocabulary (265 ids, so the tokenizer fits without
training one): it rarely stops early, so every row runs to --max-new-tokens, the worst case for sampling.
The problems are lesson 07's one-step arithmetic (the curriculum's first level). For the update, every
group's rewards are set to half right, so every group is backpropagated (a random model earns none). Ratios are the numbers to
read: these machines are shared, absolute times are noisy.
"""
import argparse, time

import torch

from nanochat.chat_rl import level_problems
from nanochat.engine import Engine
from nanochat.gpt import GPT, config_from_depth
from nanochat.optim import setup_optimizers
from nanochat.rl import byte_tokenizer, grpo_backward, optimizer_step, sample_step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="", help="a model name/stage with a checkpoint; empty = a random d4")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--groups", type=int, default=8, help="questions per step")
    ap.add_argument("--samples", type=int, default=8, help="samples per question")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    args = ap.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    if args.source:
        from nanochat.checkpoint import load_model
        model, tok, _ = load_model(args.source)
        what = f"{args.source} checkpoint"
    else:
        tok = byte_tokenizer()
        torch.manual_seed(0)
        model = GPT(config_from_depth(args.depth, vocab_size=tok.vocab_size, sequence_len=512, head_dim=64))
        model.init_weights()
        what = f"random d{args.depth} (byte vocab)"
    problems = level_problems(tok, 0, args.groups, seed=0)
    optimizers = setup_optimizers(model, 0.001, 0.01, 0.0002)
    pad = tok.encode_special("<|assistant_end|>")
    print(f"{what}, {model.num_params():,} parameters, {args.groups} questions x {args.samples} samples, "
          f"<= {args.max_new_tokens} new tokens, {torch.get_num_threads()} threads")
    rows = {}
    for cache in (True, False):
        engine = Engine(model, tok, use_cache=cache)
        model.eval()
        t0 = time.perf_counter()
        groups = sample_step(engine, problems, 0, args.groups, args.samples, args.max_new_tokens, seed=0)
        t1 = time.perf_counter()
        tokens = sum(len(c) for g in groups for c in g.completions)
        rows[cache] = (t1 - t0, tokens)
        if cache:   # the update, once, on the groups sampled with the cache
            for g in groups: g.rewards = [float(i % 2) for i in range(len(g.rewards))]  # half right: every group has a gradient
            model.train()
            u0 = time.perf_counter()
            grpo_backward(model, groups, pad)
            optimizer_step(model, optimizers)
            update = time.perf_counter() - u0
    (s_c, n_c), (s_n, n_n) = rows[True], rows[False]
    step = s_c + update
    print(f"sampling (KV cache): {s_c:7.2f} s  {n_c / s_c:8.0f} tok/s   {100 * s_c / step:5.1f}% of the step")
    print(f"update (fwd+bwd+opt): {update:6.2f} s  {n_c / update:8.0f} tok/s   {100 * update / step:5.1f}% of the step")
    print(f"sampling, no cache:  {s_n:7.2f} s  {n_n / s_n:8.0f} tok/s")
    print(f"KV cache speed-up of sampling: {(n_c / s_c) / (n_n / s_n):.2f}x (tokens/s, same groups and seeds)")


if __name__ == "__main__":
    main()
