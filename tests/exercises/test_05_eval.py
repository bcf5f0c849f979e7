"Grades exercises/05_eval (or solutions/ with --grade solutions): 05 scoring by hand, 05b comparing two models."
import math, random

import pytest
import torch
import torch.nn.functional as F

from nanochat.eval import centered as reference_centered, stderr
from nanochat.train import evaluate_bpb  # lesson 04d: the one bits-per-byte function


def check(got, expected, call: str, idea: str):
    assert got == expected, f"{call}: expected {expected!r}, got {got!r}. Revisit {idea}."


@pytest.fixture
def scoring(exercise):
    return exercise("05_eval/scoring.py")


BPB = "'1. Bits per byte' in lesson 05"


def test_bits_per_byte_of_a_uniform_model(scoring):
    targets = torch.randint(0, 256, (3, 20))
    losses = torch.full((3, 20), math.log(256))
    got = scoring.bits_per_byte(losses, targets, torch.ones(256, dtype=torch.long))
    assert got == pytest.approx(8.0), f"a loss of ln 256 nats on every 1-byte token is log2(256) = 8 bits per byte, got {got}. Revisit {BPB} (÷ ln 2)."


def test_bits_per_byte_skips_ignored_and_special_tokens_and_matches_the_lesson(scoring):
    torch.manual_seed(0)
    V = 50
    token_bytes = torch.randint(1, 6, (V,)); token_bytes[0] = 0
    targets = torch.randint(0, V, (4, 30)); targets[:, 0] = 0; targets[2, 5:] = -1
    logits = torch.randn(4, 30, V)
    losses = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1, reduction="none").view(4, 30)
    class Fixed(torch.nn.Module):  # the lesson's evaluate_bpb, fed the same losses
        def forward(self, idx, targets, loss_reduction="none"): return losses
    got, want = scoring.bits_per_byte(losses, targets, token_bytes), evaluate_bpb(Fixed(), [(targets, targets)], token_bytes)
    assert got == pytest.approx(want, rel=1e-9), (f"special token 0 (0 bytes) in every row and ignored targets (-1): evaluate_bpb gives "
                                                  f"{want:.6f}, you give {got:.6f}. Revisit {BPB}: neither the loss nor the bytes of a "
                                                  "0-byte or ignored target count")
    with pytest.raises(ValueError):
        scoring.bits_per_byte(losses, torch.zeros_like(targets), token_bytes)
        pytest.fail(f"every target special (0 bytes): there is nothing to divide by, so raise ValueError. Revisit {BPB}.")


def test_centered(scoring):
    for acc, base in [(0.625, 0.25), (0.5, 0.5), (1.0, 0.62), (0.1, 0.2), (0.3, 0.0)]:
        got, want = scoring.centered(acc, base), reference_centered(acc, base)
        assert got == pytest.approx(want), (f"centered({acc}, {base}): expected {want}, got {got}. Revisit 'Accuracy, centred' in lesson 05: "
                                            "the baseline maps to 0, perfect to 1")
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError):
            scoring.centered(0.5, bad)
            pytest.fail(f"centered(0.5, baseline={bad}) should raise ValueError: a baseline must be in [0, 1)")


MC = "'Where is the answer in the tokens?' in lesson 05"


def test_answer_start(scoring):
    for lists, want in [([[1, 2, 3], [1, 2, 4, 5]], 2), ([[7, 1], [8, 1], [7, 1]], 0), ([[5, 6, 9], [5, 6, 9, 9], [5, 6, 9, 1]], 3)]:
        check(scoring.answer_start(lists), want, f"answer_start({lists})", MC + " (the common prefix of all the lists)")


def test_pick_choice_uses_the_mean_loss_of_the_answer_tokens(scoring):
    V = 10
    context = [1, 2, 3]
    lists = [context + [4], context + [5, 6, 7], context + [8]]
    idea = "'Scoring one question' in lesson 05"
    logits = [torch.zeros(len(l), V) for l in lists]
    logits[1][2, 5] = logits[1][3, 6] = logits[1][4, 7] = 4.0  # candidate 1's answer is likely, token after token
    check(scoring.pick_choice(logits, lists), 1, "pick_choice where candidate 1's answer tokens are each likely", idea + ": the logits at t - 1 predict token t")
    # the mean, not the sum: a long answer is not penalised for its length
    logits = [torch.zeros(len(l), V) for l in lists]
    logits[1][2, 5] = logits[1][3, 6] = logits[1][4, 7] = 1.0
    logits[0][2, 4] = 0.9
    check(scoring.pick_choice(logits, lists), 1, "pick_choice with a 3-token answer slightly likelier per token than a 1-token one",
          idea + ": the mean loss, not the sum")
    # the logits at the last position predict nothing and must be ignored
    logits = [torch.zeros(len(l), V) for l in lists]
    logits[2][2, 8] = 3.0; logits[0][3, 0] = 50.0
    check(scoring.pick_choice(logits, lists), 2, "pick_choice with a huge logit at candidate 0's last position (it predicts nothing)",
          idea + ": the answer's tokens are read one position early")


# --- 05b: comparing two models -------------------------------------------------------------------------------

@pytest.fixture
def compare(exercise):
    return exercise("05_eval/compare.py")


PAIRED = "the exercise's step 1: the standard error of the mean of the per-question differences"


def test_paired_difference_example_and_bad_input(compare):
    got = compare.paired_difference([True, True, False, True], [True, False, False, True])
    assert isinstance(got, tuple) and len(got) == 2, f"return (difference, standard error), got {got!r}"
    assert got == pytest.approx((0.25, math.sqrt((0.25 - 0.25 ** 2) / 4))), (f"d = [0, 1, 0, 0]: expected (0.25, sqrt((0.25 - 0.0625) / 4) "
                                                                            f"= 0.2165), got {got}. Revisit {PAIRED} (population variance)")
    for a, b in [([], []), ([True], [True, False])]:
        with pytest.raises(ValueError):
            compare.paired_difference(a, b)
            pytest.fail(f"paired_difference({a}, {b}) should raise ValueError: the models must be scored on the same questions")


def test_against_an_always_wrong_model_it_is_the_lessons_stderr(compare):
    rng = random.Random(0)
    a = [rng.random() < 0.7 for _ in range(200)]
    got, want = compare.paired_difference(a, [False] * 200), (sum(a) / 200, stderr(sum(a) / 200, 200))
    assert got == pytest.approx(want), (f"against a model that is always wrong the difference is A's accuracy and its error lesson 05's "
                                        f"stderr: expected {want}, got {got}. Revisit {PAIRED}")


def test_pairing_shrinks_the_error_when_the_models_agree(compare):
    rng = random.Random(1)
    easy = [rng.random() < 0.6 for _ in range(500)]                   # questions both models get right
    a = [e or rng.random() < 0.10 for e in easy]                      # A also gets some of the rest
    b = [e or rng.random() < 0.02 for e in easy]
    diff, se = compare.paired_difference(a, b)
    pa, pb = sum(a) / 500, sum(b) / 500
    unpaired = math.sqrt(stderr(pa, 500) ** 2 + stderr(pb, 500) ** 2)
    assert diff == pytest.approx(pa - pb), f"the difference should be accuracy A − accuracy B = {pa - pb:.4f}, got {diff:.4f}"
    assert se < unpaired / 2, (f"two models that agree on most of 500 questions: the paired error should be well under half the unpaired "
                               f"{unpaired:.4f}, got {se:.4f}. Revisit {PAIRED}: the questions both get right (or wrong) give d = 0")
    assert diff > 2 * se, f"A is better by {diff:.3f} with a paired error of {se:.4f}: that is more than 2 errors, a real difference"


def test_questions_needed(compare):
    def ok(n, p, m): return stderr(p, n) <= m * (1 + 1e-9) and (n == 1 or stderr(p, n - 1) > m * (1 - 1e-9))
    for p, m in [(0.5, 0.05), (0.5, 0.016), (0.3, 0.01), (0.9, 0.02), (0.62, 0.03), (1.0, 0.01), (0.0, 0.2), (0.5, 0.6)]:
        n = compare.questions_needed(p, m)
        assert isinstance(n, int) and ok(n, p, m), (f"questions_needed({p}, {m}): stderr(p, n) <= {m} first holds at "
                                                    f"n = {max(1, math.ceil(p * (1 - p) / m ** 2))}, got {n!r}. Revisit the exercise's "
                                                    "step 2: n >= p(1 - p) / margin², the smallest whole n, at least 1")
    for bad in [(0.5, 0.0), (1.2, 0.1), (-0.1, 0.1)]:
        with pytest.raises(ValueError):
            compare.questions_needed(*bad)
            pytest.fail(f"questions_needed{bad} should raise ValueError (accuracy in [0, 1], margin > 0)")
