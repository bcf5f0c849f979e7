"Grades exercises/05_eval (or solutions/ with --grade solutions)."
import math

import pytest
import torch
import torch.nn.functional as F

from nanochat.eval import centered as reference_centered
from nanochat.train import evaluate_bpb  # lesson 04d: the one bits-per-byte function


@pytest.fixture
def scoring(exercise):
    return exercise("05_eval/scoring.py")


def test_bits_per_byte_of_a_uniform_model(scoring):
    targets = torch.randint(0, 256, (3, 20))
    losses = torch.full((3, 20), math.log(256))
    assert scoring.bits_per_byte(losses, targets, torch.ones(256, dtype=torch.long)) == pytest.approx(8.0)


def test_bits_per_byte_skips_ignored_and_special_tokens_and_matches_the_lesson(scoring):
    torch.manual_seed(0)
    V = 50
    token_bytes = torch.randint(1, 6, (V,)); token_bytes[0] = 0
    targets = torch.randint(0, V, (4, 30)); targets[:, 0] = 0; targets[2, 5:] = -1
    logits = torch.randn(4, 30, V)
    losses = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1, reduction="none").view(4, 30)
    class Fixed(torch.nn.Module):  # the lesson's evaluate_bpb, fed the same losses
        def forward(self, idx, targets, loss_reduction="none"): return losses
    assert scoring.bits_per_byte(losses, targets, token_bytes) == pytest.approx(evaluate_bpb(Fixed(), [(targets, targets)], token_bytes), rel=1e-9)
    with pytest.raises(ValueError):
        scoring.bits_per_byte(losses, torch.zeros_like(targets), token_bytes)


def test_centered(scoring):
    for acc, base in [(0.625, 0.25), (0.5, 0.5), (1.0, 0.62), (0.1, 0.2), (0.3, 0.0)]:
        assert scoring.centered(acc, base) == pytest.approx(reference_centered(acc, base))
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError):
            scoring.centered(0.5, bad)


def test_answer_start(scoring):
    assert scoring.answer_start([[1, 2, 3], [1, 2, 4, 5]]) == 2
    assert scoring.answer_start([[7, 1], [8, 1], [7, 1]]) == 0
    assert scoring.answer_start([[5, 6, 9], [5, 6, 9, 9], [5, 6, 9, 1]]) == 3


def test_pick_choice_uses_the_mean_loss_of_the_answer_tokens(scoring):
    V = 10
    context = [1, 2, 3]
    lists = [context + [4], context + [5, 6, 7], context + [8]]
    logits = [torch.zeros(len(l), V) for l in lists]
    logits[1][2, 5] = logits[1][3, 6] = logits[1][4, 7] = 4.0  # candidate 1's answer is likely, token after token
    assert scoring.pick_choice(logits, lists) == 1
    # the mean, not the sum: a long answer is not penalised for its length
    logits = [torch.zeros(len(l), V) for l in lists]
    logits[1][2, 5] = logits[1][3, 6] = logits[1][4, 7] = 1.0
    logits[0][2, 4] = 0.9
    assert scoring.pick_choice(logits, lists) == 1
    # the logits at the last position predict nothing and must be ignored
    logits = [torch.zeros(len(l), V) for l in lists]
    logits[2][2, 8] = 3.0; logits[0][3, 0] = 50.0
    assert scoring.pick_choice(logits, lists) == 2
