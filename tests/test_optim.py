"""The optimizers of lesson 04 (nanochat/optim.py): AdamW, Muon (one process and several), schedules."""
import json, os, subprocess, sys, textwrap

import pytest
import torch
from torch import nn

from nanochat.optim import AdamW, Muon, apply_schedules, lr_multiplier, muon_momentum, newton_schulz, setup_optimizers


@pytest.mark.parametrize("shape", [(32, 96), (96, 32), (5, 48, 16)])
def test_newton_schulz_output_is_nearly_orthogonal(shape):
    torch.manual_seed(0)
    G = torch.randn(shape) * torch.logspace(-1, 1, shape[-1])  # uneven column scales
    O = newton_schulz(G)
    assert O.shape == G.shape and O.dtype == G.dtype
    s = torch.linalg.svdvals(O)
    assert s.min() > 0.6 and s.max() < 1.25, (s.min(), s.max())  # the quintic settles in ~[0.68, 1.14]
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    polar = U @ Vh                                  # the exact orthogonal factor
    cosine = (O * polar).sum((-2, -1)) / (O.norm(dim=(-2, -1)) * polar.norm(dim=(-2, -1)))
    assert (cosine > 0.95).all(), cosine


def test_newton_schulz_is_scale_invariant():
    G = torch.randn(16, 40)
    torch.testing.assert_close(newton_schulz(G), newton_schulz(1000 * G), atol=1e-5, rtol=1e-4)


def _reference_muon_step(W, G, buf, lr, mu, nesterov=True):
    "An independent Muon step: momentum, Nesterov, Newton–Schulz written out, shape scaling."
    buf = mu * buf + (1 - mu) * G
    M = mu * buf + (1 - mu) * G if nesterov else buf
    X = M.T if M.shape[0] > M.shape[1] else M
    X = X / (X.norm() + 1e-7)
    for _ in range(5):
        A = X @ X.T
        X = 3.4445 * X - 4.7750 * A @ X + 2.0315 * A @ A @ X
    X = X.T if M.shape[0] > M.shape[1] else X
    return W - lr * X * max(1, W.shape[0] / W.shape[1]) ** 0.5, buf


@pytest.mark.parametrize("shape", [(8, 24), (24, 8)])
def test_muon_three_steps_match_the_hand_computed_ones(shape):
    torch.manual_seed(1)
    W = torch.randn(shape)
    p = nn.Parameter(W.clone())
    opt = Muon([p], lr=0.05, momentum=0.9)
    buf = torch.zeros(shape)
    for _ in range(3):
        G = torch.randn(shape)
        p.grad = G.clone()
        opt.step()
        W, buf = _reference_muon_step(W, G, buf, 0.05, 0.9)
        torch.testing.assert_close(p.data, W, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(opt.state[p]["momentum_buffer"], buf)
        torch.testing.assert_close(p.grad, G)  # the gradient itself is left alone


def test_muon_groups_by_shape_and_rejects_vectors():
    ps = [nn.Parameter(torch.zeros(s)) for s in [(4, 4), (4, 8), (4, 4)]]
    opt = Muon(ps)
    assert [len(g["params"]) for g in opt.param_groups] == [2, 1]
    with pytest.raises(ValueError, match="2-D"):
        Muon([nn.Parameter(torch.zeros(4))])


def test_adamw_matches_torch():
    torch.manual_seed(0)
    a = nn.Linear(5, 7)
    b = nn.Linear(5, 7)
    b.load_state_dict(a.state_dict())
    ours = AdamW(a.parameters(), lr=0.02, betas=(0.8, 0.95), eps=1e-10, weight_decay=0.1)
    ref = torch.optim.AdamW(b.parameters(), lr=0.02, betas=(0.8, 0.95), eps=1e-10, weight_decay=0.1)
    for _ in range(6):
        x = torch.randn(4, 5)
        for m, o in ((a, ours), (b, ref)):
            m(x).pow(2).sum().backward(); o.step(); o.zero_grad()
    torch.testing.assert_close(a.weight, b.weight, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(a.bias, b.bias, atol=1e-6, rtol=1e-5)


class _Toy(nn.Module):
    def __init__(self, d=32, vocab=50):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(wte=nn.Embedding(vocab, d), h=nn.ModuleList([nn.Linear(d, d, bias=False)])))
        self.lm_head = nn.Linear(d, vocab, bias=False)


def test_setup_optimizers_lrs_and_schedule():
    adamw, muon = setup_optimizers(_Toy(d=192))
    scale = (192 / 768) ** -0.5
    assert [g["lr"] for g in adamw.param_groups] == pytest.approx([0.004 * scale, 0.2 * scale])
    assert muon.param_groups[0]["lr"] == 0.02
    assert apply_schedules([adamw, muon], step=95, num_iterations=100) == pytest.approx(0.25)
    assert muon.param_groups[0]["lr"] == pytest.approx(0.005) and muon.param_groups[0]["momentum"] == pytest.approx(0.85 + 0.1 * 95 / 300)
    apply_schedules([adamw, muon], step=0, num_iterations=100)
    assert muon.param_groups[0]["momentum"] == pytest.approx(0.85) and adamw.param_groups[1]["lr"] == pytest.approx(0.2 * scale)


def test_lr_schedule_shape():
    n = 50
    lrs = [lr_multiplier(s, n, warmup_ratio=0.1, warmdown_ratio=0.2, final_lr_frac=0.1) for s in range(n)]
    assert lrs[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert all(x == 1.0 for x in lrs[5:41])
    assert all(a > b for a, b in zip(lrs[40:], lrs[41:])) and lrs[-1] == pytest.approx(0.1 + 0.9 * 0.1)
    assert muon_momentum(0) == 0.85 and muon_momentum(150) == pytest.approx(0.9) and muon_momentum(10_000) == 0.95


DIST_SCRIPT = textwrap.dedent("""
    import json, os, sys, torch, torch.distributed as dist
    from torch import nn
    from nanochat.optim import AdamW, Muon
    if "RANK" in os.environ: dist.init_process_group("gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    torch.manual_seed(0)
    shapes = [(8, 8), (8, 8), (8, 8), (16, 8), (8, 16)]   # 3 of one shape: the second process owns 1, pads 1
    mats = [nn.Parameter(torch.randn(s)) for s in shapes]
    emb = nn.Parameter(torch.randn(10, 8))
    muon, adamw = Muon(mats, lr=0.05), AdamW([emb], lr=0.01)
    for step in range(3):
        gen = torch.Generator().manual_seed(step)
        per_rank = [[torch.randn(p.shape, generator=gen) for p in mats + [emb]] for _ in range(2)]
        for i, p in enumerate(mats + [emb]):  # two processes: own gradient; one process: their average
            p.grad = per_rank[rank][i].clone() if world == 2 else (per_rank[0][i] + per_rank[1][i]) / 2
        muon.step(); adamw.step()
    # each process writes its own file: two ~10 KB lines printed to one shared pipe can interleave
    with open(os.path.join(sys.argv[1], f"result{rank}.json"), "w") as f:
        json.dump([p.detach().flatten().tolist() for p in mats + [emb]], f)
""")


def test_muon_and_adamw_on_two_processes_match_one(tmp_path):
    script = tmp_path / "dist_optim.py"
    script.write_text(DIST_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    def results(cmd, name):
        out_dir = tmp_path / name
        out_dir.mkdir()
        out = subprocess.run(cmd + [str(out_dir)], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr[-3000:]
        return [json.loads(p.read_text()) for p in sorted(out_dir.glob("result*.json"))]
    (single,) = results([sys.executable, str(script)], "one")
    both = results([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)], "two")
    assert len(both) == 2 and both[0] == both[1]  # every process ends with bit-identical weights
    for got, want in zip(both[0], single):
        torch.testing.assert_close(torch.tensor(got), torch.tensor(want), atol=1e-6, rtol=1e-5)
