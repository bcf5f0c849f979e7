"Grades exercises/00_bigram (or solutions/ with --grade solutions): lesson 00's bigram model, and its temperature."
import math

import pytest
import torch

from nanochat.data import sotu_documents


@pytest.fixture
def bigram(exercise):
    return exercise("00_bigram/bigram.py")


@pytest.fixture(scope="module")
def speeches():
    docs = list(sotu_documents())
    return "\n".join(t for _, t in docs[:40]).encode(), "\n".join(t for _, t in docs[-4:]).encode()


def test_count_bigrams(bigram):
    counts = bigram.count_bigrams(b"abab")
    assert counts.shape == (256, 256) and counts.dtype == torch.float64, f"expected a (256, 256) float64 tensor, got {counts.shape} {counts.dtype}"
    assert counts[ord("a"), ord("b")] == 2 and counts[ord("b"), ord("a")] == 1, \
        "in b'abab', 'b' follows 'a' twice and 'a' follows 'b' once: counts[previous, next]"
    assert counts.sum() == 3, f"a text of 4 bytes has 3 pairs, your table holds {counts.sum():.0f}"


def test_count_bigrams_on_real_text(bigram, speeches):
    train, _ = speeches
    counts = bigram.count_bigrams(train)
    assert counts.sum() == len(train) - 1, (f"{len(train):,} bytes hold {len(train) - 1:,} pairs of neighbours, got {int(counts.sum()):,} counted. "
                                            "Revisit 'Counting' in lesson 00: one count per (previous, next) pair")
    assert counts[ord("q")].argmax() == ord("u"), "after 'q' comes 'u' in English: check rows are the previous byte"


def test_bits_per_byte_knows_its_bounds(bigram, speeches):
    nothing = torch.zeros(256, 256, dtype=torch.float64)
    assert bigram.bits_per_byte(nothing, b"any text at all", k=1.0) == pytest.approx(8.0), \
        "with no counts every byte has probability 1/256: exactly 8 bits each"
    counts = bigram.count_bigrams(b"ab" * 1000)
    assert bigram.bits_per_byte(counts, b"abababab", k=1e-6) < 0.01, "a text the model has seen a thousand times costs almost nothing"
    assert math.isinf(bigram.bits_per_byte(counts, b"abc", k=0.0)), "k = 0 and a pair never counted ('bc'): probability 0, infinite bits"


def test_bits_per_byte_matches_the_formula(bigram, speeches):
    train, held = speeches
    counts = bigram.count_bigrams(train)
    x = torch.tensor(list(held))
    for k in (1.0, 0.1):
        want = -((counts[x[:-1], x[1:]] + k) / (counts[x[:-1]].sum(1) + 256 * k)).log2().mean().item()
        got = bigram.bits_per_byte(counts, held, k=k)
        assert got == pytest.approx(want, rel=1e-9), f"k={k}: expected {want:.4f} bits per byte on held-out speeches, got {got:.4f}"
    assert 3 < want < 4, "lesson 00 found about 3.4 bits per byte for the bigram model"


def test_temperature_zero_is_always_the_most_likely_byte(bigram, speeches):
    counts = bigram.count_bigrams(speeches[0])
    out = bigram.sample(counts, b"Th", 12, temperature=0.0)
    want = list(b"Th")
    for _ in range(12): want.append(int(counts[want[-1]].argmax()))
    assert out == bytes(want), f"at temperature 0 each byte is its row's argmax: expected {bytes(want)!r}, got {out!r}"
    tie = bigram.count_bigrams(b"xaxb")
    assert bigram.sample(tie, b"x", 1, temperature=0.0) == b"xa", "a tie goes to the lowest byte value ('a' < 'b')"


def test_temperature_reshapes_the_distribution(bigram):
    counts = torch.zeros(256, 256, dtype=torch.float64)
    counts[ord("a"), ord("a")], counts[ord("a"), ord("b")], counts[ord("a"), ord("c")] = 6, 3, 1
    p = torch.tensor([6.0, 3.0, 1.0]) / 10
    for temperature in (1.0, 0.5, 2.0):
        draws = [bigram.sample(counts, b"a", 1, temperature=temperature, seed=s)[-1] for s in range(3000)]
        freq = torch.tensor([draws.count(ord(c)) for c in "abc"], dtype=torch.float64) / len(draws)
        want = p ** (1 / temperature); want = want / want.sum()
        assert torch.allclose(freq, want.double(), atol=0.035), (f"temperature {temperature}: expected frequencies "
                                                                  f"{[round(v, 3) for v in want.tolist()]} for a, b, c, got {[round(v, 3) for v in freq.tolist()]}")
        assert len(set(draws)) == 3 and set(draws) <= {ord("a"), ord("b"), ord("c")}, "only pairs seen in training are ever drawn"


def test_sample_is_reproducible_and_checks_its_input(bigram, speeches):
    counts = bigram.count_bigrams(speeches[0])
    one, two = (bigram.sample(counts, b"The ", 50, temperature=1.0, seed=7) for _ in range(2))
    assert one == two and one.startswith(b"The ") and len(one) == 54, "the same seed gives the same sample, start included"
    with pytest.raises(ValueError, match="never"):
        got = bigram.sample(bigram.count_bigrams(b"ab"), b"b", 1)
        pytest.fail(f"nothing ever followed b'b' in b'ab': expected a ValueError saying so ('never'), got {got!r}")
    with pytest.raises(ValueError):
        got = bigram.sample(counts, b"a", 1, temperature=-1.0)
        pytest.fail(f"temperature -1: expected ValueError (a temperature must be positive), got {got!r}")
