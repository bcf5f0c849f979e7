# %% [markdown]
# # Exercise 08 — the DPO loss from logits
# The lesson's DPO loss takes sequence log-probabilities. Here you compute them from the policy's and the
# reference's logits with a mask, and add *conservative* DPO's label smoothing ε (Mitchell 2023): with
# probability ε the preference label is wrong, so the loss is (1-ε)·(-log σ(βm)) + ε·(-log σ(-βm)).

# %%
import torch
import torch.nn.functional as F


# %%
def sequence_logprob(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) sum over t of log softmax(logits[b, t])[targets[b, t]] where mask[b, t] is 1. Targets under mask 0 may be -1."""
    raise NotImplementedError("exercise 08: log_softmax, gather (clamp the targets), mask, sum over time")


def dpo_loss(policy_logits_w, policy_logits_l, ref_logits_w, ref_logits_l, targets_w, targets_l, mask_w, mask_l,
             beta: float = 0.1, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean over pairs of (1-ε)(-log σ(β m)) + ε(-log σ(-β m)), m = (π_w - ref_w) - (π_l - ref_l), sequence log-probs
    from sequence_logprob. The reference must get no gradient (detach it)."""
    raise NotImplementedError("exercise 08: four sequence log-probs, the margin, logsigmoid with smoothing")
