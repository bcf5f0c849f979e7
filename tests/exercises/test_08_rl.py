"""Grades exercises/08_rl (or solutions/ with --grade solutions): each exercise goes past lesson 08 — advantages for groups of
any size with GRPO's std scaling, the policy-gradient loss from logits normalised per token or per sequence, pass@k as a
product that stays in [0, 1], and the DPO loss from logits with conservative label smoothing."""
import math
from itertools import combinations

import pytest
import torch
import torch.nn.functional as F


@pytest.fixture
def adv(exercise): return exercise("08_rl/advantages.py")


@pytest.fixture
def pg(exercise): return exercise("08_rl/pg_loss.py")


@pytest.fixture
def pk(exercise): return exercise("08_rl/pass_at_k.py")


@pytest.fixture
def dpo(exercise): return exercise("08_rl/dpo.py")


# --- group advantages ---
ADV = "the exercise's groups by id: per-group sums and counts (index_add_ / bincount), then lesson 08's reward minus the group mean"

def test_advantages_of_groups_of_different_sizes(adv):
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    ids = torch.tensor([5, 5, 5, 2, 2, 9, 9])
    got = adv.group_advantages(r, ids)
    want = torch.tensor([2 / 3, -1 / 3, -1 / 3, 0.0, 0.0, 0.0, 0.0])
    assert torch.allclose(got, want, atol=1e-6), f"expected reward minus its own group's mean {want.tolist()}, got {got.tolist()}. Revisit {ADV}."


def test_scaled_advantages_divide_by_the_group_std(adv):
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 3.0, 3.0])
    ids = torch.tensor([0, 0, 0, 0, 1, 1])
    got = adv.group_advantages(r, ids, scale=True)
    std = math.sqrt(0.75 * 0.25)      # population std of [1, 0, 0, 0]
    want = torch.tensor([0.75 / (std + 1e-6), -0.25 / (std + 1e-6), -0.25 / (std + 1e-6), -0.25 / (std + 1e-6), 0.0, 0.0])
    assert torch.allclose(got, want, atol=1e-4), f"expected {want.tolist()} (identical rewards -> 0), got {got.tolist()}. Revisit {ADV}, divided by the population std + eps."


# --- the policy-gradient loss ---
PG = "'The policy-gradient loss, normalised per token' in lesson 08, with logp gathered from log_softmax at the clamped targets"

def _case():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 6, requires_grad=True)
    targets = torch.tensor([[1, 2, -1, -1], [0, 5, 5, 3], [-1, -1, -1, -1]])
    mask = (targets >= 0).float()
    return logits, targets, torch.tensor([1.0, -0.5, 2.0]), mask


def test_pg_loss_per_token(pg):
    logits, targets, A, mask = _case()
    logp = F.log_softmax(logits, -1)
    want = -(A[0] * (logp[0, 0, 1] + logp[0, 1, 2]) + A[1] * (logp[1, 0, 0] + logp[1, 1, 5] + logp[1, 2, 5] + logp[1, 3, 3])) / 6
    got = pg.pg_loss(logits, targets, A, mask)
    assert torch.allclose(got, want, atol=1e-6), f"per-token loss: expected {want.item():.6f}, got {float(got):.6f}. Revisit {PG}: divide by the masked tokens of the whole batch."
    got.backward()
    assert logits.grad[2].abs().sum() == 0, f"a row with no sampled tokens must get no gradient, got {logits.grad[2].abs().sum():.3g} in total. Revisit {PG}: multiply by the mask."


def test_pg_loss_per_sequence(pg):
    logits, targets, A, mask = _case()
    logp = F.log_softmax(logits, -1)
    row0 = A[0] * (logp[0, 0, 1] + logp[0, 1, 2]) / 2
    row1 = A[1] * (logp[1, 0, 0] + logp[1, 1, 5] + logp[1, 2, 5] + logp[1, 3, 3]) / 4
    want = -(row0 + row1) / 2          # the empty row is left out
    got = pg.pg_loss(logits, targets, A, mask, per_token=False)
    assert torch.allclose(got, want, atol=1e-6), f"per-sequence loss: expected {want.item():.6f}, got {float(got):.6f}. Revisit {PG}: each row's mean over its own tokens, then the mean over rows that have any."


# --- pass@k ---
PASS = "'pass@k, with the unbiased estimator' in lesson 08, as the exercise's product of (1 - k/i) for i in n-c+1 … n"

def test_pass_at_k_matches_enumeration(pk):
    for n, c, k in [(5, 2, 1), (5, 2, 3), (7, 3, 5), (6, 0, 2), (4, 4, 4), (9, 1, 8)]:
        subsets = list(combinations([1] * c + [0] * (n - c), k))
        want = sum(any(s) for s in subsets) / len(subsets)
        got = pk.pass_at_k(n, c, k)
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), f"pass@{k} with n={n}, c={c}: expected {want} (counted over every k-subset), got {got}. Revisit {PASS}."


def test_pass_at_k_large_n_and_bad_input(pk):
    got = pk.pass_at_k(2000, 3, 100)
    want = 1 - math.comb(1997, 100) / math.comb(2000, 100)
    assert math.isclose(got, want, rel_tol=1e-9), f"pass@100 with n=2000, c=3: expected {want}, got {got}. Revisit {PASS}."
    for bad in [(3, 4, 1), (3, 1, 0), (3, 1, 4)]:
        with pytest.raises(ValueError):
            got = pk.pass_at_k(*bad)
            pytest.fail(f"pass_at_k{bad}: expected ValueError (0 <= c <= n, 1 <= k <= n), got {got}")
    got = pk.mean_pass_at_k([(4, 1), (4, 0), (4, 4)], 2)
    assert math.isclose(got, (0.5 + 0 + 1) / 3), f"mean pass@2 over (4, 1), (4, 0), (4, 4): expected (0.5 + 0 + 1) / 3 = 0.5, got {got}. Revisit {PASS}."
    with pytest.raises(ValueError):
        got = pk.mean_pass_at_k([], 1)
        pytest.fail(f"mean_pass_at_k([], 1): expected ValueError (no problems to average), got {got}")


# --- DPO ---
DPO = "'DPO beside it' in lesson 08, and the exercise's sequence log-probabilities and label smoothing"

def test_sequence_logprob(dpo):
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[4, -1, 2], [0, 1, 1]])
    mask = torch.tensor([[1, 0, 1], [0, 1, 1]])
    lp = F.log_softmax(logits, -1)
    want = torch.stack([lp[0, 0, 4] + lp[0, 2, 2], lp[1, 1, 1] + lp[1, 2, 1]])
    got = dpo.sequence_logprob(logits, targets, mask)
    assert torch.allclose(got, want, atol=1e-6), f"expected {want.tolist()} (log-probs of the masked-in targets, summed per row), got {got.tolist()}. Revisit {DPO}."


def test_dpo_loss_with_label_smoothing_and_no_reference_gradient(dpo):
    torch.manual_seed(2)
    pw, pl = torch.randn(3, 4, 7, requires_grad=True), torch.randn(3, 4, 7, requires_grad=True)
    rw, rl = torch.randn(3, 4, 7, requires_grad=True), torch.randn(3, 4, 7, requires_grad=True)
    tw, tl = torch.randint(0, 7, (3, 4)), torch.randint(0, 7, (3, 4))
    mw, ml = torch.ones(3, 4), torch.tensor([[1, 1, 0, 0]] * 3)
    s = lambda lg, t, m: (F.log_softmax(lg, -1).gather(-1, t[..., None]).squeeze(-1) * m).sum(-1)
    m = (s(pw, tw, mw) - s(rw, tw, mw)) - (s(pl, tl, ml) - s(rl, tl, ml))
    for eps in (0.0, 0.2):
        want = ((1 - eps) * -F.logsigmoid(0.3 * m) + eps * -F.logsigmoid(-0.3 * m)).mean()
        got = dpo.dpo_loss(pw, pl, rw, rl, tw, tl, mw, ml, beta=0.3, label_smoothing=eps)
        assert torch.allclose(got, want, atol=1e-6), f"ε={eps}: expected {want.item():.6f}, got {float(got):.6f}. Revisit {DPO}: (1-ε)(-log σ(βm)) + ε(-log σ(-βm))."
    got.backward()
    assert rw.grad is None and rl.grad is None, f"the reference model must get no gradient, got one for {[n for n, t in (('ref_w', rw), ('ref_l', rl)) if t.grad is not None]}. Revisit {DPO}: detach its log-probs."
    assert pw.grad is not None and pw.grad.abs().sum() > 0, f"the policy's logits must get a gradient, got {pw.grad if pw.grad is None else pw.grad.abs().sum()}. Revisit {DPO}."
