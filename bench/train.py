"""The pretraining step, ours against a plain loop of the same model, in one run, and its MFU.

    python bench/train.py                      # CPU: the cpu preset's step (d4, seq 512, batch 8, vocab 8,192, float32)
    python bench/train.py --device cuda        # one GPU: d20, seq 2048, device batch 32, bf16

Three loops train three copies of the same model on the same batches (real text, the embedded corpus and a
tokenizer of the preset's vocabulary, made in $NANOCHAT_BASE_DIR if missing), step by step in turn so each
sees the same machine load: a plain loop (eager, `torch.optim.AdamW` for every parameter), our step eager
(Muon + AdamW with foreach maths) and our step compiled (what `pretrain` runs). Each line prints the ratio to
the plain loop, and the MFU against the one peak the training log also uses (`nanochat.train.peak_flops`:
on a CPU the best of large float32 matmuls measured once, on a GPU the datasheet bf16 figure). It also prints
the compile time and after how many steps compiling pays back.
"""
import argparse, os, statistics, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def ensure_data(vocab_size: int, chars: int):
    "The embedded corpus and a tokenizer of `vocab_size` in $NANOCHAT_BASE_DIR (built only if missing)."
    from nanochat.data import build_corpus, iter_documents
    from nanochat.tokenizer import Tokenizer
    build_corpus()
    try:
        if Tokenizer.load().vocab_size == vocab_size: return
    except FileNotFoundError:
        pass
    def texts():
        total = 0
        for doc in iter_documents("train"):
            yield doc[:chars - total]; total += len(doc)
            if total >= chars: return
    t0 = time.time()
    Tokenizer.train(texts(), vocab_size=vocab_size).save()
    print(f"trained a {vocab_size:,}-token tokenizer on {chars:,} characters in {time.time() - t0:.0f} s")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--depth", type=int, default=None, help="default: the preset's (4 on cpu, 20 on cuda)")
    p.add_argument("--steps", type=int, default=None, help="timed steps of each loop; default: 5 on cpu, 8 on cuda")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps of each loop first (compilation, caches)")
    p.add_argument("--vocab-size", type=int, default=None, help="default: the preset's (8,192 cpu, 65,536 cuda)")
    p.add_argument("--device-batch-size", type=int, default=None)
    p.add_argument("--max-seq-len", type=int, default=None)
    args = p.parse_args()
    os.environ.setdefault("NANOCHAT_BASE_DIR", tempfile.mkdtemp(prefix="bench-train-"))
    import torch
    from nanochat.common import PRESETS
    from nanochat.gpt import GPT, config_from_depth
    from nanochat.optim import setup_optimizers
    from nanochat.tokenizer import get_tokenizer
    from nanochat.train import Batches, autocast_for, memory_mb, peak_flops, train_step
    preset = PRESETS["cpu" if args.device == "cpu" else "d20"]
    depth, seq = args.depth or preset["depth"], args.max_seq_len or preset["max_seq_len"]
    batch, vocab = args.device_batch_size or preset["device_batch_size"], args.vocab_size or preset["vocab_size"]
    steps = args.steps or (5 if args.device == "cpu" else 8)
    dtype = preset["dtype"]
    peak, method = peak_flops(args.device)   # the same figure (and method) the training log divides by
    ensure_data(vocab, 20_000_000 if vocab > 10_000 else 5_000_000)
    tokenizer, device = get_tokenizer(), torch.device(args.device)
    autocast = autocast_for(device, dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def fresh():
        torch.manual_seed(0)
        with device: return GPT(config_from_depth(depth, vocab_size=vocab, sequence_len=seq))
    plain = fresh()
    plain_opt = [torch.optim.AdamW(plain.parameters(), lr=1e-3, betas=(0.8, 0.95), eps=1e-10, weight_decay=0.0)]
    eager = fresh(); eager_opt = setup_optimizers(eager)
    ours = fresh(); ours_opt = setup_optimizers(ours)
    compiled = torch.compile(ours)
    loops = {"plain (eager, torch AdamW for all)": (plain, plain, plain_opt),
             "ours eager (Muon + AdamW, foreach)": (eager, eager, eager_opt),
             "ours compiled (the step pretrain runs)": (ours, compiled, ours_opt)}
    data = {name: Batches(tokenizer, batch, seq, device=device) for name in loops}  # the same batches for each
    times = {name: [] for name in loops}
    for i in range(args.warmup + steps):  # interleaved: every loop sees the same machine load, step by step
        for name, (model, forward, opts) in loops.items():
            sync(); t0 = time.perf_counter()
            train_step(forward, opts, data[name], 1, autocast).item()
            sync(); times[name].append(time.perf_counter() - t0)
    flops_tok, tokens = ours.estimate_flops(), batch * seq
    print(f"\n== bench/train.py: {args.device}, depth {depth}, vocab {vocab:,}, seq {seq}, batch {batch} "
          f"({tokens:,} tokens/step), {dtype}; {steps} steps timed after {args.warmup} warm-up, loops interleaved")
    print(f"peak {peak / 1e9:,.1f} GFLOP/s ({method})" if peak else f"peak unknown ({method})")
    base = statistics.median(times["plain (eager, torch AdamW for all)"][args.warmup:])
    for name, ts in times.items():
        t = statistics.median(ts[args.warmup:])
        mfu = f"MFU {flops_tok * tokens / t / peak:.1%}" if peak else "MFU n/a"
        print(f"{name:40s} step {t:.3f} s  {tokens / t:8,.0f} tok/s  {mfu}  ×{base / t:.2f} vs plain")
    t_eager, t_comp = (statistics.median(times[k][args.warmup:]) for k in list(loops)[1:])
    compile_s = times["ours compiled (the step pretrain runs)"][0] - t_comp
    saved = t_eager - t_comp
    print(f"torch.compile: first step {times['ours compiled (the step pretrain runs)'][0]:.1f} s (≈ {compile_s:.1f} s compiling); "
          f"saves {saved:.3f} s/step → pays back after " + (f"{compile_s / saved:.0f} steps" if saved > 0 else "never"))
    print(f"peak memory {memory_mb(device):,.0f} MiB")


if __name__ == "__main__":
    main()
