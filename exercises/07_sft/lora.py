# %% [markdown]
# # Exercise 07c — a LoRA linear layer
# LoRA (Hu et al., 2021, https://arxiv.org/abs/2106.09685) freezes a linear layer's weight `W` (out × in)
# and learns a low-rank change: `y = x Wᵀ + (alpha / rank) · x Aᵀ Bᵀ`, with `A` of shape (rank, in) and `B`
# of shape (out, rank).
#
# - `A` starts random (normal, std `1/sqrt(in)`), `B` starts at **zero**: before training the layer computes
#   exactly what the frozen one does;
# - only `A` and `B` are trainable (`requires_grad`); the wrapped layer's weight is frozen;
# - `merged()` returns a plain `nn.Linear` whose weight is `W + (alpha / rank) · B A` — the same outputs as
#   the LoRA layer, with no extra cost at inference.
#
# Then a step beyond the lesson: how much can rank r hold? Given the change `ΔW` a *full* fine-tune made to
# a layer, the best rank-r update is its truncated singular value decomposition (Eckart–Young): keep the r
# largest singular values, `ΔW ≈ U_r S_r V_rᵀ`. `best_lora` writes that as LoRA's `A` and `B` (for a given
# scale alpha/rank), and what it leaves out, ‖ΔW − scale·B A‖², is exactly the sum of the dropped σ².
# If fine-tuning changes are nearly low-rank, as Hu et al. argue, a small r captures most of them.
#
# Target: the tests check outputs, gradients, parameter counts, the merge, and that `best_lora` beats every
# other rank-r update they try. Grade with `make grade LESSON=07`.

# %%
import math
import torch
import torch.nn as nn

# %%
class LoRALinear(nn.Module):
    "A frozen nn.Linear (bias-free) plus a trainable low-rank update."
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        """Keep `base` (frozen), create parameters `self.A` (rank × in) and `self.B` (out × rank), store the scale alpha/rank.

        Hint: `nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))`.
        """
        super().__init__()
        raise NotImplementedError("exercise 07c: freeze base.weight, make A (random) and B (zeros)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("exercise 07c: base(x) + scale * x @ A.T @ B.T")

    def merged(self) -> nn.Linear:
        "A plain bias-free nn.Linear with weight W + scale · B @ A."
        raise NotImplementedError("exercise 07c: copy W, add scale * B @ A")

# %%
def best_lora(delta: torch.Tensor, rank: int, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B), A (rank × in) and B (out × rank), such that (alpha / rank) · B @ A is the best rank-`rank`
    approximation of `delta` (out × in) in the Frobenius norm.

    Raise ValueError unless 1 <= rank <= min(delta.shape).
    Hint: U, S, Vh = torch.linalg.svd(delta, full_matrices=False); split S between B and A, and divide by the scale.
    """
    raise NotImplementedError("exercise 07c: the truncated SVD, shared out between A and B")
