# %% [markdown]
# # Exercise 03b — beyond the lesson's model (solution)

# %%
import math

import torch

# %%
def sliding_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    "Causal attention where the query at position p sees only keys p - window + 1 … p; queries are the last Tq positions."
    if window < 1: raise ValueError(f"window must be at least 1, not {window}")
    Tq, Tk = q.size(2), k.size(2)
    group = q.size(1) // k.size(1)
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    pos_q = torch.arange(Tk - Tq, Tk)[:, None]
    pos_k = torch.arange(Tk)[None, :]
    allowed = (pos_k <= pos_q) & (pos_k > pos_q - window)
    return scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v

# %%
def kv_cache_bytes(config, batch_size: int, seq_len: int, bytes_per_value: int = 2) -> int:
    "Bytes of a KV cache for `config`: keys and values, every layer, kv head, position and head dimension."
    return 2 * config.n_layer * batch_size * config.n_kv_head * seq_len * config.head_dim * bytes_per_value

# %%
def tied_param_count(config) -> int:
    "Parameters of the model when lm_head shares the embedding's table (one V × d matrix instead of two)."
    d, d_kv = config.n_embd, config.n_kv_head * config.head_dim
    return config.vocab_size * d + config.n_layer * (2 * d * d + 2 * d * d_kv + 8 * d * d)
