# %% [markdown]
# # Exercise 08 — the policy-gradient loss with masks
# From logits instead of log-probabilities: compute each target token's log-probability yourself, keep
# only the sampled tokens (mask), and normalise either per token (the lesson's choice) or per sequence
# (GRPO's paper: the mean over each answer's tokens, then the mean over answers).

# %%
import torch
import torch.nn.functional as F


# %%
def pg_loss(logits: torch.Tensor, targets: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
            per_token: bool = True) -> torch.Tensor:
    """logits (B, T, V), targets (B, T) long, advantages (B,), mask (B, T) 0/1.
    logp[b, t] = log softmax(logits[b, t])[targets[b, t]].
    per_token=True:  -Σ_bt A_b · logp_bt · mask_bt / Σ mask
    per_token=False: -mean_b ( Σ_t A_b · logp_bt · mask_bt / Σ_t mask_bt ), over rows with at least one masked-in token.
    Targets where mask is 0 may be any value, even -1: never index with them unmasked.
    Hint: targets.clamp(min=0) before gather; F.log_softmax(logits, -1).gather(-1, t[..., None]).
    """
    raise NotImplementedError("exercise 08: log_softmax, gather the targets, weight by A and the mask, normalise")
