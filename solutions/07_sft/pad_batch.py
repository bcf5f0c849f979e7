# %% [markdown]
# # Exercise 07b — pad and mask a batch for SFT
# SFT puts one conversation per row. Given rendered rows `(ids, mask)` (as `render_conversation` returns
# them), build the model's inputs and targets:
#
# - cut each row to at most `max_len + 1` tokens (inputs and targets are then at most `max_len` long);
# - inputs `x[i, t] = ids[t]` and targets `y[i, t] = ids[t + 1]` for t < len(ids) - 1 — but `y` is **-1**
#   wherever the target token is not the assistant's (`mask[t + 1] == 0`);
# - rows are padded to the longest row of the batch: inputs with `pad_id`, targets with -1 (ignored by the loss).
#
# Then a step beyond the lesson. Lesson 07 sorts conversations by length so a batch's rows are alike and
# pad little. But a batch of a *fixed* number of rows must be small enough for the longest rows, so batches
# of short rows leave most of the memory unused. `token_budget_batches` fixes the padded size instead:
# rows sorted by length (longest first), each batch takes rows while `rows × its longest row` stays within
# `max_tokens`. Short rows then come many to a batch, long rows few (dynamic batching, as fairseq's
# `--max-tokens` does).
#
# Target: the same tensors as `nanochat.sft.pad_batch`; batches that keep to the budget, take every row
# once, and need fewer steps than fixed-size batches under the same budget. Grade with `make grade LESSON=07`.

# %%
import torch

# %%
def pad_and_mask(rows: list[tuple[list[int], list[int]]], pad_id: int, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y), both long tensors of shape (len(rows), width), width = the longest row's len(ids) - 1 after the cut.

    Hint: `torch.full((B, W), pad_id)` and `torch.full((B, W), -1)`, then fill each row.
    """
    rows = [(ids[:max_len + 1], mask[:max_len + 1]) for ids, mask in rows]
    width = max(len(ids) for ids, _ in rows) - 1
    x = torch.full((len(rows), width), pad_id, dtype=torch.long)
    y = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, (ids, mask) in enumerate(rows):
        n = len(ids) - 1
        x[i, :n] = torch.tensor(ids[:-1], dtype=torch.long)
        y[i, :n] = torch.tensor([t if m else -1 for t, m in zip(ids[1:], mask[1:])], dtype=torch.long)
    return x, y

# %%
def token_budget_batches(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Row indices in batches whose padded size, len(batch) × the batch's longest length, is at most `max_tokens`.

    Sort the indices by length, longest first (ties: the lower index first), then fill batches in that order:
    a row joins the current batch if the batch's padded size stays within `max_tokens`, else it starts the next.
    Raise ValueError (naming the row) when a row alone is longer than `max_tokens`.
    Example: token_budget_batches([3, 9, 4, 2, 2], 10) == [[1], [2, 0], [3, 4]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches = []
    for i in order:
        if lengths[i] > max_tokens: raise ValueError(f"row {i} has {lengths[i]} tokens, more than max_tokens={max_tokens}")
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= max_tokens: batches[-1].append(i)
        else: batches.append([i])
    return batches
