# %% [markdown]
# # Exercise 02c — rows that start at a document
# Lesson 02 packs documents end to end, so a row can start in the middle of one; its "Try it" counted
# what the other choice costs: start **every row with a `<|bos|>`**. Here you build that packer, then the
# better one later nanochat versions use, then the attention mask that keeps packed documents apart.
#
# 1. `bos_aligned_rows`: fill each row with whole documents while they fit; the first that does not fit
#    is cropped to fill the row, and the rest of it is lost. Count what is lost.
# 2. `best_fit_rows`: the same rows, but choose *which* document goes next from a window of upcoming
#    ones: the longest that still fits whole; only when none fits, crop the shortest. It loses fewer
#    tokens (the tests check by how much on a random mix).
# 3. `document_mask`: in a packed row, a token should attend only to earlier tokens *of its own
#    document* (lesson 03's causal mask, cut at every `<|bos|>`). Build that mask; the tests check that
#    attention with it on a packed row equals attention on each document alone.
#
# A document is a list of token ids without its `<|bos|>`; your functions put `bos_id` in front.
# Grade with `make grade LESSON=02`.

# %%
import torch

# %%
def bos_aligned_rows(docs: list[list[int]], bos_id: int, seq_len: int) -> tuple[list[list[int]], int]:
    """Rows of `seq_len + 1` tokens that each start with a document's `bos_id`, and the number of tokens lost.

    In order, each document (`[bos_id, *doc]`) goes into the current row whole if it fits; otherwise its
    first tokens fill the row exactly and the rest is lost; the next row starts with the next document.
    A last row that is not full is dropped (its tokens count as lost). So
    `(seq_len + 1) * len(rows) + lost == sum(len(d) + 1 for d in docs)`.

    Example: bos_aligned_rows([[1, 2], [3], [4, 5, 6, 7]], bos_id=0, seq_len=3)
             == ([[0, 1, 2, 0], [0, 4, 5, 6]], 2)      # the 3 and the 7 are lost
    Raise ValueError when seq_len < 1.
    """
    raise NotImplementedError("exercise 02c: keep the current row and the room left in it")

# %%
def best_fit_rows(docs: list[list[int]], bos_id: int, seq_len: int, window: int = 16) -> tuple[list[list[int]], int]:
    """Like bos_aligned_rows, but each row is filled from a window of up to `window` upcoming documents.

    While the row has room: top the window up from `docs` (in order); if the window is empty, stop (the
    unfinished row is dropped, its tokens lost); put in the longest document that fits whole (ties: the one
    that came first); if none fits, crop the *shortest* (ties: the first) to fill the row exactly, losing
    the rest of it. Documents leave the window when used. Returns (rows, lost).

    Example: best_fit_rows([[1, 2, 3, 4, 5], [6], [7, 8]], bos_id=0, seq_len=3)
             == ([[0, 7, 8, 0], [0, 1, 2, 3]], 3)
    Raise ValueError when seq_len < 1 or window < 1.
    """
    raise NotImplementedError("exercise 02c: a list for the window; max/min over the indices that qualify")

# %%
def document_mask(rows: torch.Tensor, bos_id: int) -> torch.Tensor:
    """(B, T) packed token ids → (B, T, T) bool mask: True where query i may attend key j, that is when j <= i
    and both tokens belong to the same document. A document runs from a `bos_id` up to the next one; tokens
    before a row's first `bos_id` (the end of a document begun in an earlier row) are a document too.

    Example: document_mask(torch.tensor([[5, 0, 6]]), bos_id=0)[0].int() ==
             [[1, 0, 0],
              [0, 1, 0],
              [0, 1, 1]]
    Hint: number the documents along each row with a cumulative sum.
    """
    raise NotImplementedError("exercise 02c: torch.cumsum, torch.tril, and a comparison that broadcasts")
