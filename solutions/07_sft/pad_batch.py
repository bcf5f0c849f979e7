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
# Then a step beyond the lesson: padding wastes compute. `length_sorted_batches` groups row indices into
# batches of `batch_size` after sorting by length (longest first), so that rows in a batch are alike.
#
# Target: the same tensors as `nanochat.sft.pad_batch`, and less padding than batching in order. Grade with
# `make grade LESSON=07`.

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
def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Row indices grouped into batches of `batch_size` (the last may be smaller), longest rows first.

    Hint: `sorted(range(len(lengths)), key=...)`, then slice.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
