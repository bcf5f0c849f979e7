"""Throughput of an SFT step against a pretraining step of the same model, and how much of an SFT batch is padding.

    python bench/sft.py                 # CPU: d4, context 512, 8 rows per step, float32
    python bench/sft.py --device cuda   # one GPU: d20, context 2048, 32 rows per step, bf16

Both steps use a freshly initialised model of the same shape and the same optimizers (lesson 04's Muon + AdamW);
the pretraining step reads packed rows of random token ids (the cost does not depend on the values), the SFT step
padded conversations from lesson 07's offline mixture (tokenized with a tokenizer trained here on them). Tokens/s
counts every position the model computes, and separately only the trained (assistant) tokens. The padding
fraction is measured over many batches, in mixture order and sorted by length. Read ratios: these machines are
shared and noisy.
"""
import argparse, statistics, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--steps", type=int, default=8)
    args = p.parse_args()
    from nanochat import chat_data as cd
    from nanochat.gpt import GPT, config_from_depth
    from nanochat.optim import setup_optimizers
    from nanochat.sft import PaddedBatches, finetune_step, padding_fraction
    from nanochat.tokenizer import Tokenizer
    from nanochat.train import autocast_for
    cuda = args.device == "cuda"
    depth, seq, rows = (20, 2048, 32) if cuda else (4, 512, 8)
    autocast = autocast_for(args.device, "bfloat16" if cuda else "float32")
    tasks = cd.chat_tasks(arithmetic=1000, spelling=200, chitchat=False)
    mixture = cd.Mixture(tasks, seed=0)
    texts = [m["content"] if isinstance(m["content"], str) else "".join(x["text"] for x in m["content"])
             for k in range(0, len(mixture), 3) for m in mixture[k]]
    tok = Tokenizer.train(texts, vocab_size=4096)
    torch.manual_seed(0)
    with torch.device(args.device): model = GPT(config_from_depth(depth, vocab_size=tok.vocab_size, sequence_len=seq))
    opts = setup_optimizers(model)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def timed(step):
        for _ in range(2): step()  # warm-up
        times = []
        for _ in range(args.steps):
            sync(); t0 = time.perf_counter(); step(); sync(); times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def pretrain_step():
        x = torch.randint(0, tok.vocab_size, (rows, seq + 1), device=args.device)
        with autocast: loss = model(x[:, :-1], targets=x[:, 1:])
        loss.backward()
        for o in opts: o.step()
        model.zero_grad(set_to_none=True)

    batches = PaddedBatches(tok, mixture, rows, seq, device=args.device)
    shapes = []
    orig = batches.next_step
    def recording():
        micro, count = orig(); shapes.append((micro[0][0].numel(), count)); return micro, count
    batches.next_step = recording
    t_pre = timed(pretrain_step)
    t_sft = timed(lambda: finetune_step(model, opts, batches, 1, autocast))
    positions = statistics.mean(n for n, _ in shapes); trained = statistics.mean(c for _, c in shapes)
    print(f"device {args.device}, d{depth}, context {seq}, {rows} rows per step, {args.steps} timed steps (median); load: {open('/proc/loadavg').read().split()[0]}")
    print(f"pretraining step: {rows * seq / t_pre:>10,.0f} tok/s ({t_pre * 1e3:.1f} ms for {rows * seq:,} positions)")
    print(f"SFT step:         {positions / t_sft:>10,.0f} tok/s ({t_sft * 1e3:.1f} ms for {positions:,.0f} positions, of which "
          f"{trained:,.0f} trained = {trained / t_sft:,.0f} trained tok/s)")
    print(f"ratio SFT / pretraining positions per second: {positions / t_sft / (rows * seq / t_pre):.2f}")
    sample = [mixture[k] for k in range(min(len(mixture), 2000))]
    plain, sort = padding_fraction(tok, sample, rows, seq), padding_fraction(tok, sample, rows, seq, sort=True)
    print(f"padding per batch of {rows}: {plain:.1%} in mixture order, {sort:.1%} sorted by length ({len(sample)} conversations)")


if __name__ == "__main__":
    main()
