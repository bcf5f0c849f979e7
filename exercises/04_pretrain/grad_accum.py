# %% [markdown]
# # Exercise 04c — gradient accumulation
# An optimizer step should see the whole batch, but a device can only hold a slice of it at once. The
# trick: run forward and backward on each slice (*micro-batch*) in turn, letting `backward()` **add**
# into each parameter's `.grad`, and scale each micro-batch's loss so that the sum of their gradients
# equals the gradient of the loss of the whole batch.
#
# The model's loss for one micro-batch is the *mean* over its tokens (`model(x, targets=y)` returns a
# scalar). All micro-batches have the same size, so the mean over the whole batch is the mean of the K
# micro-batch losses: divide each by K before calling `backward()`.
#
# Then a step beyond lesson 04d, whose pretraining batches count every target. Fine-tuning (lesson 07)
# ignores targets (-1: the user's turns, padding), and then micro-batches count *different* numbers of
# tokens: the mean of K means weighs a token of a nearly empty micro-batch far more than one of a full one,
# and the gradient is no longer the whole batch's (Hugging Face's Trainer had this bug until late 2024). Accumulate
# instead the *sum* of each micro-batch's losses (`loss_reduction="sum"`), divided by the number of counted
# targets of the whole batch, known before the first backward.
#
# Grade with `make grade LESSON=04`.

# %%
import torch

# %%
def accumulate_gradients(model: torch.nn.Module, micro_batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Leave in every parameter's `.grad` the gradient of the mean loss over all `micro_batches`
    (a list of equally sized `(inputs, targets)` pairs), as if they had been one batch; return that mean loss.

    The caller has zeroed the gradients (they are None) beforehand; do not step an optimizer.
    Hint: `loss = model(x, targets=y)`; `(loss / K).backward()`; `loss.item()`.
    """
    raise NotImplementedError("exercise 04c: forward, scale by 1/K, backward, for every micro-batch")

# %%
def accumulate_gradients_by_tokens(model: torch.nn.Module, micro_batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Leave in every `.grad` the gradient of the mean loss over every target that is not -1 in all `micro_batches`
    (which may count different numbers of such targets), as if they had been one batch; return that mean loss.

    Raise ValueError when no target is counted. The caller has zeroed the gradients; do not step an optimizer.
    Hint: n = the number of targets != -1 over all micro-batches; `model(x, targets=y, loss_reduction="sum") / n`.
    """
    raise NotImplementedError("exercise 04c: count the targets first, then backward each micro-batch's summed loss / that count")
