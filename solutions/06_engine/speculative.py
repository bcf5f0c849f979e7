# %% [markdown]
# # Exercise 06d — speculative sampling: faster, and the same distribution
# A step beyond lesson 06b's engine. Each new token costs one forward pass of the big model, and on a GPU
# that pass is limited by reading the weights, not by arithmetic: checking 4 tokens costs about as much as
# making 1. **Speculative sampling** (Leviathan et al., 2022, https://arxiv.org/abs/2211.17192; Chen et al.,
# 2023, https://arxiv.org/abs/2302.01318) lets a small *draft* model propose tokens that the big model
# then checks in one pass. The trick that makes it exact: with the big model's next-token distribution `p` and the draft's `q`,
#
# 1. draw the draft token `d ~ q`;
# 2. accept it with probability `min(1, p[d] / q[d])`;
# 3. if it is rejected, draw instead from the *residual* `max(0, p − q)`, normalised.
#
# The token that comes out is distributed exactly as `p`: as if the big model had sampled alone. The
# draft only decides how often the cheap path is taken: a draft token is accepted with probability
# `Σ_x min(p[x], q[x])`. Write the three pieces; the tests check the residual exactly, the acceptance rate
# against the formula, and 10,000 draws against `p`. Grade with `make grade LESSON=06`.

# %%
import torch

# %%
def acceptance_probability(p: torch.Tensor, q: torch.Tensor) -> float:
    """The chance that a draft token d ~ q is accepted: sum over x of min(p[x], q[x]). p and q are (V,) distributions.

    Example: acceptance_probability(tensor([0.5, 0.5]), tensor([1.0, 0.0])) == 0.5
    """
    return torch.minimum(p, q).sum().item()

# %%
def residual_distribution(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """max(0, p − q), normalised to sum to 1: where a rejected draft's replacement is drawn from.
    When p == q nothing is ever rejected and the residual is all zero: return p then.

    Example: residual_distribution(tensor([0.5, 0.5]), tensor([1.0, 0.0])) == tensor([0.0, 1.0])
    """
    r = (p - q).clamp(min=0)
    return p.clone() if r.sum() <= 0 else r / r.sum()

# %%
def speculative_sample(p: torch.Tensor, q: torch.Tensor, rng: torch.Generator) -> tuple[int, bool]:
    """One token by steps 1-3 above: (the token, whether the draft was accepted). Draw every random number from `rng`
    (torch.multinomial(..., generator=rng), torch.rand(..., generator=rng)).
    """
    d = int(torch.multinomial(q, 1, generator=rng))
    if torch.rand((), generator=rng).item() < (p[d] / q[d]).item(): return d, True
    return int(torch.multinomial(residual_distribution(p, q), 1, generator=rng)), False
