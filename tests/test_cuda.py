"""The CUDA paths: what only a GPU exercises (bf16 autocast, TF32 matmuls, the KV cache on the device, a
GPU checkpoint read back on the CPU, torch.compile, NCCL). bench/gpu_check.sh runs this file on a GPU
machine; without a GPU every test here is skipped (the CPU paths have their own tests)."""
import os, socket

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bench/gpu_check.sh runs these)")

from nanochat.gpt import GPT


def tiny(device, depth=2, vocab=512, seq=64):
    torch.manual_seed(0)
    model = GPT.from_depth(depth, vocab_size=vocab, sequence_len=seq)
    model.init_weights()
    return model.to(device)


def test_setup_dist_on_cuda_turns_tf32_matmuls_on():
    from nanochat.common import setup_dist
    torch.set_float32_matmul_precision("highest")
    rank, local_rank, world, device = setup_dist("cuda")
    assert device.type == "cuda" and torch.cuda.current_device() == local_rank
    assert torch.get_float32_matmul_precision() == "high", "float32 matmuls should use TF32 tensor cores on CUDA"


def test_bf16_autocast_loss_is_close_to_float32_on_cpu():
    from nanochat.train import autocast_for
    idx = torch.randint(0, 512, (4, 64), generator=torch.Generator().manual_seed(1))
    cpu_loss = tiny("cpu")(idx, targets=idx).item()
    gpu = tiny("cuda")
    with autocast_for("cuda", "bfloat16"):
        gpu_loss = gpu(idx.cuda(), targets=idx.cuda()).item()
    assert abs(gpu_loss - cpu_loss) < 0.05 * cpu_loss, (gpu_loss, cpu_loss)


def test_kv_cache_decoding_on_cuda_equals_recomputing():
    from nanochat.engine import decode_step, prefill, sample_next_token
    model = tiny("cuda").eval()
    prompt = torch.randint(0, 512, (2, 16), generator=torch.Generator().manual_seed(2)).tolist()
    outs = []
    for use_cache in (True, False):
        logits, cache = prefill(model, prompt, num_samples=1, max_tokens=12, use_cache=use_cache)
        seqs, got = (None if use_cache else [list(p) for p in prompt]), []
        for _ in range(12):
            fed = sample_next_token(logits, temperature=0).tolist()
            got.append(fed)
            logits = decode_step(model, fed, cache, seqs)
        outs.append(got)
    assert outs[0] == outs[1]


def test_a_checkpoint_saved_from_the_gpu_loads_on_the_cpu():
    from nanochat.checkpoint import load_checkpoint, save_checkpoint
    model = tiny("cuda")
    save_checkpoint("base_train", "cuda", 1, model, meta={"model_config": {}})
    state, _, meta = load_checkpoint("base_train", "cuda", device="cpu", load_optimizer=False)
    for name, tensor in model.state_dict().items():
        assert state[name].device.type == "cpu" and torch.equal(state[name], tensor.cpu()), name


def test_torch_compile_on_cuda_matches_eager():
    model = tiny("cuda")
    idx = torch.randint(0, 512, (4, 64), device="cuda", generator=torch.Generator("cuda").manual_seed(3))
    eager = model(idx, targets=idx).item()
    compiled = torch.compile(model)(idx, targets=idx).item()
    assert abs(compiled - eager) < 1e-3 * max(1.0, abs(eager)), (compiled, eager)


def test_nccl_all_reduce_in_a_one_rank_group():
    import torch.distributed as dist
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    store = dist.TCPStore("127.0.0.1", port, 1, is_master=True)
    dist.init_process_group("nccl", store=store, rank=0, world_size=1, device_id=torch.device("cuda", 0))
    try:
        x = torch.ones(4, device="cuda")
        dist.all_reduce(x)
        assert x.tolist() == [1.0] * 4 and dist.get_backend() == "nccl"
    finally:
        dist.destroy_process_group()
