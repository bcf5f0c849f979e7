# %% [markdown]
# # Exercise 08 — group advantages
# The lesson's advantage is reward minus the group mean. GRPO's paper also divides by the group's standard
# deviation; here you write both, for a batch of groups of *different* sizes given as one flat list of
# rewards and a list of group ids (how a distributed run sees them after gathering).

# %%
import torch


# %%
def group_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, scale: bool = False, eps: float = 1e-6) -> torch.Tensor:
    """rewards (N,) float, group_ids (N,) long (any ids, groups of any size). Return (N,): each reward minus the
    mean reward of its group; with scale=True, divided by (the group's population std + eps).
    A group of identical rewards gets 0 advantages either way.
    Hint: torch.unique(group_ids, return_inverse=True), then index_add_ / bincount for sums and counts.
    """
    _, inv = torch.unique(group_ids, return_inverse=True)
    n = torch.bincount(inv).float()
    mean = torch.zeros_like(n).index_add_(0, inv, rewards.float()) / n
    centred = rewards.float() - mean[inv]
    if not scale: return centred
    var = torch.zeros_like(n).index_add_(0, inv, centred ** 2) / n
    return centred / (var.sqrt()[inv] + eps)
