# %% [markdown]
# # Exercise 04c — gradient accumulation (solution)

# %%
import torch

# %%
def accumulate_gradients(model: torch.nn.Module, micro_batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    "Accumulate into .grad the gradient of the mean loss over `micro_batches`; return that mean loss."
    total = 0.0
    for x, y in micro_batches:
        loss = model(x, targets=y)
        (loss / len(micro_batches)).backward()
        total += loss.item()
    return total / len(micro_batches)

# %%
def accumulate_gradients_by_tokens(model: torch.nn.Module, micro_batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Leave in every `.grad` the gradient of the mean loss over every target that is not -1 in all `micro_batches`
    (which may count different numbers of such targets), as if they had been one batch; return that mean loss.

    Raise ValueError when no target is counted. The caller has zeroed the gradients; do not step an optimizer.
    Hint: n = the number of targets != -1 over all micro-batches; `model(x, targets=y, loss_reduction="sum") / n`.
    """
    n = sum(int((y != -1).sum()) for _, y in micro_batches)
    if n == 0: raise ValueError("every target is -1: there is no loss to average")
    total = 0.0
    for x, y in micro_batches:
        loss = model(x, targets=y, loss_reduction="sum")
        (loss / n).backward()
        total += loss.item()
    return total / n
