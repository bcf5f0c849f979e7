"""Training throughput of the GPT (lesson 03): forward + backward tokens/s, and MFU.

    python bench/model.py                    # CPU: depths 2, 4, 8 at seq 512, vocab 8,192 and 32,768, float32
    python bench/model.py --device cuda      # GPU: depths 12, 20 at seq 2048, vocab 65,536, bfloat16 autocast
    python bench/model.py --device cuda --compile --batch-size 32

One training step = forward with targets, backward (no optimizer: that is lesson 04's cost). Model FLOPs
per token come from `GPT.estimate_flops()` (6 per matmul weight + the attention term), so
achieved FLOP/s = estimate_flops × tokens/s. MFU divides that by a peak:
- on CPU, the machine's own, `nanochat.train.peak_flops("cpu")`: the best of large float32 matmuls
  (2048², 4096²) measured once at the start ("CPU MFU"), the figure the training log uses too;
- on a GPU, its datasheet bf16 dense peak (H100/H200 SXM 989 TFLOP/s, H100 PCIe 756, A100 312), or
  --peak-tflops.
These machines are shared: absolute numbers are noisy, the MFU column (a ratio within one run) less so.
"""
import argparse, math, time

import torch

from nanochat.gpt import GPT, count_params

GPU_PEAK_BF16 = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12}  # dense, no sparsity


def sync(device):
    if device.type == "cuda": torch.cuda.synchronize()


def matmul_flops(device, dtype, n: int, reps: int) -> float:
    "Best FLOP/s of an n×n @ n×n matmul in `dtype` over `reps` runs."
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b; sync(device)  # warm-up
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter(); a @ b; sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def train_tok_per_s(model, forward, batch_size: int, seq_len: int, steps: int, warmup: int, autocast_dtype) -> float:
    "Tokens/s of forward (`model` or its compiled version) + backward on random tokens: best of `steps` after `warmup`."
    device = model.get_device()
    x = torch.randint(0, model.config.vocab_size, (batch_size, seq_len), device=device)
    y = torch.randint(0, model.config.vocab_size, (batch_size, seq_len), device=device)
    def one():
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = forward(x, y)
        loss.backward()
        for p in model.parameters(): p.grad = None
    for _ in range(warmup): one()
    sync(device)
    best = math.inf
    for _ in range(steps):
        start = time.perf_counter(); one(); sync(device)
        best = min(best, time.perf_counter() - start)
    return batch_size * seq_len / best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--depths", default=None, help="comma-separated depths (default 2,4,8 on CPU, 12,20 on GPU)")
    parser.add_argument("--vocabs", default=None, help="comma-separated vocabulary sizes (default 8192,32768 on CPU, 65536 on GPU)")
    parser.add_argument("--seq-len", type=int, default=None, help="tokens per row (default 512 on CPU, 2048 on GPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per step (default 1 on CPU, 16 on GPU)")
    parser.add_argument("--dtype", default=None, help="float32, or bfloat16 for autocast (default float32 on CPU, bfloat16 on GPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (slow to start; meant for GPUs)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per model (default 2 on CPU, 10 on GPU)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="GPU peak in TFLOP/s if the name is not in the table")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if gpu and not torch.cuda.is_available(): raise SystemExit("--device cuda: torch sees no GPU")
    if args.threads: torch.set_num_threads(args.threads)
    depths = [int(d) for d in (args.depths or ("12,20" if gpu else "2,4,8")).split(",")]
    vocabs = [int(v) for v in (args.vocabs or ("65536" if gpu else "8192,32768")).split(",")]
    seq_len, batch_size = args.seq_len or (2048 if gpu else 512), args.batch_size or (16 if gpu else 1)
    dtype_name = args.dtype or ("bfloat16" if gpu else "float32")
    if dtype_name not in ("float32", "bfloat16"): raise SystemExit(f"--dtype must be float32 or bfloat16, got {dtype_name}")
    autocast_dtype = torch.bfloat16 if dtype_name == "bfloat16" else None
    steps = args.steps or (10 if gpu else 2)
    warmup = (2 if gpu else 1) + (2 if args.compile else 0)  # compiling happens in the first calls

    if gpu:
        name = torch.cuda.get_device_name(device)
        peak = args.peak_tflops * 1e12 if args.peak_tflops else next((v for k, v in GPU_PEAK_BF16.items() if k in name), None)
        if peak is None: raise SystemExit(f"no bf16 peak known for {name!r}: pass --peak-tflops")
        peak_label = f"{name}, datasheet bf16 dense peak {peak / 1e12:.0f} TFLOP/s"
        measured = matmul_flops(device, torch.bfloat16, 8192, 10)
        print(f"device: {name}; an 8192² bf16 matmul runs at {measured / 1e12:.0f} TFLOP/s ({measured / peak:.0%} of the peak)")
    else:
        from nanochat.train import peak_flops  # the one CPU peak the training log and bench/train.py also use
        peak, method = peak_flops(device)
        peak_label = f"{peak / 1e9:.1f} GFLOP/s ({method})"
    print(f"MFU is against {peak_label}")
    print(f"seq {seq_len}, batch {batch_size}, {dtype_name}{', compiled' if args.compile else ''}; best of {steps} steps after {warmup} warm-up")
    print("numbers are noisy on shared machines: compare MFU within one run, not absolute tokens/s across runs\n")

    print("| depth | width | vocab | params | in embedding + lm_head | lm_head share of FLOPs | tokens/s | GFLOP/s | MFU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for depth in depths:
        for vocab in vocabs:
            torch.manual_seed(0)
            model = GPT.from_depth(depth, vocab, seq_len).to(device)
            forward = torch.compile(model) if args.compile else model
            c, n = model.config, count_params(model.config)
            flops = model.estimate_flops()
            tok_s = train_tok_per_s(model, forward, batch_size, seq_len, steps, warmup, autocast_dtype)
            achieved = flops * tok_s
            print(f"| d{depth} | {c.n_embd} | {vocab:,} | {n / 1e6:.1f}M | {2 * vocab * c.n_embd / n:.0%} | "
                  f"{6 * vocab * c.n_embd / flops:.0%} | {tok_s:,.0f} | {achieved / 1e9:,.1f} | {achieved / peak:.1%} |", flush=True)
            del model
            if gpu: torch.cuda.empty_cache()
    if not gpu:  # the peak again, to see how much the machine's speed moved during the run
        again = matmul_flops(device, torch.float32, 2048, 5)
        print(f"\nthe matmul peak measured again at the end: {again / 1e9:.1f} GFLOP/s ({again / peak:.0%} of the first measurement)")


if __name__ == "__main__":
    main()
