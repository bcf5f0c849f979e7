# %% [markdown]
# # Exercise 00 — a bigram model of bytes, and its temperature
# Lesson 00 counted which byte follows which on the State of the Union addresses, measured the model in
# bits per byte and sampled from it. Build the three pieces yourself, and go one step further: a
# **temperature** that makes samples bolder or more cautious (lesson 06's engine has the same knob).
#
# 1. `count_bigrams(data)`: a (256, 256) float64 tensor, `counts[a, b]` = how often byte `b` follows byte `a`
#    in `data` (a `bytes` object).
# 2. `bits_per_byte(counts, data, k)`: the add-k smoothed model's average cost, in bits, of each byte of
#    `data` after the first: `P(b | a) = (counts[a, b] + k) / (counts[a].sum() + 256 k)`, cost `-log2 P`.
# 3. `sample(counts, start, n, temperature, seed)`: `n` bytes drawn one at a time after the last byte of
#    `start` (returned with `start` in front, as bytes). With temperature `T`, the next byte is drawn with
#    probability proportional to `P(b | a) ** (1 / T)` (no smoothing: only pairs seen in training); `T = 0`
#    means always the most likely byte (the lowest byte value wins a tie). A byte never seen as a
#    "previous byte" has no row: raise `ValueError` naming it.
#
# Grade with `make grade LESSON=00`.

# %%
import torch


# %%
def count_bigrams(data: bytes) -> torch.Tensor:
    """counts[a, b]: how often byte b follows byte a in `data`; shape (256, 256), dtype float64.

    Hint: turn the bytes into a long tensor x, then `torch.bincount(x[:-1] * 256 + x[1:], minlength=65536)`.
    """
    raise NotImplementedError("exercise 00: count the pairs with bincount, reshape to (256, 256)")


# %%
def bits_per_byte(counts: torch.Tensor, data: bytes, k: float = 0.1) -> float:
    """Mean -log2 P(byte | previous byte) over `data[1:]`, add-k smoothed. k = 0 may give inf (a pair never counted).

    Hint: index the table with the pairs of `data`: counts[x[:-1], x[1:]].
    """
    raise NotImplementedError("exercise 00: the smoothed probability of each pair, then the mean of -log2")


# %%
def sample(counts: torch.Tensor, start: bytes, n: int, temperature: float = 1.0, seed: int = 0) -> bytes:
    """`start` followed by n bytes drawn from the bigram model at `temperature` (0 = always the most likely byte).

    Hint: `torch.multinomial(weights, 1, generator=torch.Generator().manual_seed(seed))` draws from any
    non-negative weights; P ** (1 / T) is the same as exp(log P / T).
    """
    raise NotImplementedError("exercise 00: draw each next byte from its row, reshaped by the temperature")
