"Grades exercises/04_pretrain (or solutions/ with --grade solutions)."
import pytest
import torch

from nanochat.gpt import GPT, config_from_depth
from nanochat.optim import lr_multiplier as reference_lr, muon_momentum as reference_momentum, newton_schulz as reference_ns


@pytest.fixture
def ns(exercise): return exercise("04_pretrain/newton_schulz.py")


@pytest.fixture
def schedule(exercise): return exercise("04_pretrain/schedule.py")


@pytest.fixture
def accum(exercise): return exercise("04_pretrain/grad_accum.py")


@pytest.mark.parametrize("shape", [(16, 48), (48, 16), (32, 32)])
def test_newton_schulz_matches_the_reference(ns, shape):
    torch.manual_seed(0)
    G = torch.randn(shape)
    out = ns.newton_schulz(G)
    assert out.shape == G.shape and out.dtype == G.dtype, (f"expected a {tuple(G.shape)} {G.dtype} result, got {tuple(out.shape)} "
                                                           f"{out.dtype}: a tall matrix is transposed for the iteration and back at the end")
    torch.testing.assert_close(out, reference_ns(G), atol=1e-4, rtol=1e-4,
                               msg=lambda m: f"{shape}: not lesson 04's Newton–Schulz (scale by the Frobenius norm first, then "
                                             f"X <- aX + b(XXᵀ)X + c(XXᵀ)²X five times with NS_COEFFS)\n{m}")


def test_newton_schulz_output_is_nearly_orthogonal(ns):
    torch.manual_seed(1)
    G = torch.randn(24, 64) * torch.logspace(-1, 1, 64)
    s = torch.linalg.svdvals(ns.newton_schulz(G))
    assert s.min() > 0.6 and s.max() < 1.25, (f"after 5 steps the singular values should sit in about [0.7, 1.2], got "
                                               f"{s.min():.3f} … {s.max():.3f}")
    s1 = torch.linalg.svdvals(ns.newton_schulz(G, steps=1))   # one step is not enough
    assert s1.min() < 0.6, f"with steps=1 the small singular values should still be small (got min {s1.min():.3f}): is `steps` used?"


def test_lr_schedule(schedule):
    got = [schedule.lr_multiplier(s, 10) for s in (0, 7, 8, 9)]
    assert got == pytest.approx([1.0, 1.0, 1.0, 0.5]), (f"10 steps, warmdown over the last 20%: steps 0, 7, 8, 9 should give "
                                                        f"1, 1, 1, 0.5, got {got}")
    got = schedule.lr_multiplier(0, 100, warmup_ratio=0.1)
    assert got == pytest.approx(0.1), f"warm-up over 10 of 100 steps: step 0 runs at (0 + 1) / 10 = 0.1 of the rate, got {got}"
    for kw in (dict(), dict(warmup_ratio=0.05, final_lr_frac=0.1), dict(warmdown_ratio=0.5, final_lr_frac=0.3)):
        got = [schedule.lr_multiplier(s, 200, **kw) for s in range(200)]
        want = [reference_lr(s, 200, **kw) for s in range(200)]
        wrong = [s for s in range(200) if abs(got[s] - want[s]) > 1e-6]
        assert not wrong, f"{kw or 'defaults'}: first wrong step {wrong[0]}: expected {want[wrong[0]]:.4f}, got {got[wrong[0]]:.4f}" if wrong else ""


def test_muon_momentum(schedule):
    steps = [0, 1, 150, 299, 300, 5000]
    got, want = [schedule.muon_momentum(s) for s in steps], [reference_momentum(s) for s in steps]
    assert got == pytest.approx(want), f"steps {steps}: expected {want} (0.85 rising to 0.95 over 300 steps), got {got}"
    got = schedule.muon_momentum(50, warmup_steps=100, start=0.5, end=0.9)
    assert got == pytest.approx(0.7), f"half way from 0.5 to 0.9 is 0.7, got {got}: are warmup_steps, start and end used?"


def test_gradient_accumulation_equals_one_big_batch(accum):
    torch.manual_seed(0)
    model = GPT(config_from_depth(1, vocab_size=64, sequence_len=16, head_dim=16))
    with torch.no_grad():  # move the zero-initialised projections, so every weight receives a gradient
        for p in model.parameters(): p.add_(0.01 * torch.randn_like(p))
    x = torch.randint(0, 64, (8, 17))
    inputs, targets = x[:, :-1], x[:, 1:]
    full = model(inputs, targets=targets)
    full.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    loss = accum.accumulate_gradients(model, [(inputs[i:i + 2], targets[i:i + 2]) for i in range(0, 8, 2)])
    assert isinstance(loss, float), f"return the mean loss as a Python float (loss.item()), got {type(loss).__name__}"
    assert loss == pytest.approx(full.item(), rel=1e-5), (f"the mean over the 4 micro-batches should equal the big batch's loss "
                                                          f"{full.item():.5f}, got {loss:.5f}")
    for n, p in model.named_parameters():
        assert p.grad is not None, f"{n} got no gradient: call backward on every micro-batch"
        torch.testing.assert_close(p.grad, want[n], atol=1e-6, rtol=1e-4, msg=lambda m: f"{n}: the accumulated gradient differs from one "
                                   f"big batch's — divide each micro-batch's loss by their number before backward\n{m}")


BY_TOKENS = "the exercise's step beyond: sum each micro-batch's losses and divide by the counted targets of the whole batch"


def test_accumulation_with_ignored_targets_equals_one_big_batch(accum):
    torch.manual_seed(0)
    model = GPT(config_from_depth(1, vocab_size=64, sequence_len=16, head_dim=16))
    with torch.no_grad():
        for p in model.parameters(): p.add_(0.01 * torch.randn_like(p))
    x = torch.randint(0, 64, (8, 17))
    inputs, targets = x[:, :-1], x[:, 1:].clone()
    targets[0, 2:] = -1; targets[1, :] = -1; targets[2, 8:] = -1  # the first micro-batch counts 2 targets, the second 24, the rest 32
    micro = [(inputs[i:i + 2], targets[i:i + 2]) for i in range(0, 8, 2)]
    full = model(inputs, targets=targets)
    full.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    for xm, ym in micro: (model(xm, targets=ym) / len(micro)).backward()  # the mean of means: not the same gradient here
    naive = model.lm_head.weight.grad.clone()
    assert not torch.allclose(naive, want["lm_head.weight"], atol=1e-5), "test set-up: the mean of the micro-batch means should differ here"
    model.zero_grad(set_to_none=True)
    loss = accum.accumulate_gradients_by_tokens(model, micro)
    assert isinstance(loss, float) and loss == pytest.approx(full.item(), rel=1e-5), (
        f"the mean over the 90 counted targets should be the big batch's loss {full.item():.5f}, got {loss!r}. Revisit {BY_TOKENS}")
    for n, p in model.named_parameters():
        assert p.grad is not None, f"{n} got no gradient: call backward on every micro-batch. Revisit {BY_TOKENS}"
        torch.testing.assert_close(p.grad, want[n], atol=1e-6, rtol=1e-4, msg=lambda m: f"{n}: the accumulated gradient differs from one big "
                                   f"batch's (dividing each micro-batch's mean by their number weighs each target of the 2-target micro-batch "
                                   f"90 / 8 = 11 times too much). Revisit {BY_TOKENS}\n{m}")
    with pytest.raises(ValueError):
        got = accum.accumulate_gradients_by_tokens(model, [(inputs[:2], torch.full_like(targets[:2], -1))])
        pytest.fail(f"every target -1: expected ValueError (nothing to average), got {got!r}")
