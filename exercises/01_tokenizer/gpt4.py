# %% [markdown]
# # Exercise 01b — GPT-4's tokenizer with your own encoder
# The end of the ladder: encode text *exactly* as GPT-4 does (OpenAI's `cl100k_base`, 100,256 BPE
# tokens), with an encoder you write, from nothing but the table tiktoken ships. That table is
# `mergeable_ranks`: the bytes of every token and its rank (lesson 01, "tiktoken for inference").
# Your encoder from exercise 01a works on *merges*, `(left id, right id) → new id`; GPT-4 never
# published those, but they can be read back out of the ranks (minbpe does the same):
#
# 1. `bpe_split(ranks, token, max_rank)`: merge the bytes of one token the way tiktoken does (join the
#    adjacent pair whose joined bytes have the lowest rank, again and again), using only ranks below
#    `max_rank`. A token of rank r, split with `max_rank=r`, stops at the **two** earlier tokens it was
#    made from.
# 2. `recover_merges(ranks)`: do that for every token of two bytes or more.
# 3. `encode_with_merges(text, pattern, ranks, merges)`: split with GPT-4's pattern, turn each byte into
#    its token id (in cl100k, byte `b` is not id `b`: it is `ranks[bytes([b])]`), then replay the merges
#    as in exercise 01a: always the pair that was merged first (lowest new id).
#
# The tests check your ids against `tiktoken.get_encoding("cl100k_base")` on text neither of you has
# seen: a speech, Python source, German, Japanese and emoji. Grade with `make grade LESSON=01`.

# %%
import regex

# %%
def bpe_split(ranks: dict[bytes, int], token: bytes, max_rank: int | None = None) -> list[bytes]:
    """The pieces tiktoken's merging leaves of `token` when it may use only ranks below `max_rank` (None: all).

    Start from single bytes; while some adjacent pair's joined bytes have a rank (< max_rank), join the pair
    with the lowest such rank (the leftmost if it occurs twice).
    Example, with ranks {b"a": 0, b"b": 1, b"c": 2, b"ab": 3, b"abc": 4}:
        bpe_split(ranks, b"abc") == [b"abc"];  bpe_split(ranks, b"abc", max_rank=4) == [b"ab", b"c"]
    """
    raise NotImplementedError("exercise 01b: a loop that joins the best pair until none is allowed")

# %%
def recover_merges(ranks: dict[bytes, int]) -> dict[tuple[int, int], int]:
    """For every token of two bytes or more: (rank of its left piece, rank of its right piece) → its rank,
    the pieces being bpe_split(ranks, token, max_rank=its rank).

    Example, same ranks as above: recover_merges(ranks) == {(0, 1): 3, (3, 2): 4}
    Raise ValueError if a token does not split into exactly two pieces.
    """
    raise NotImplementedError("exercise 01b: bpe_split every multi-byte token")

# %%
def encode_with_merges(text: str, pattern: str, ranks: dict[bytes, int], merges: dict[tuple[int, int], int]) -> list[int]:
    """Text → token ids: split with `pattern` (use the `regex` module), each chunk's UTF-8 bytes → ids via
    ranks[bytes([b])], then repeatedly merge the adjacent pair with the lowest merge id, until no pair of
    the chunk is in `merges`.

    With cl100k: encode_with_merges("hello world", enc._pat_str, enc._mergeable_ranks, merges) == [15339, 1917]
    """
    raise NotImplementedError("exercise 01b: your encode from 01a, with a byte → id table in front")
