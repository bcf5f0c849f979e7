# %% [markdown]
# # Exercise 03b — beyond the lesson's model
# Three steps past lesson 03, each a choice other models make differently:
#
# 1. **Sliding-window attention** (Mistral; later nanochat versions on some layers): each query sees
#    only the last `window` positions, itself included, so attention's cost stops growing with the
#    context. Write it by hand, for every shape the lesson's `naive_attention` takes (grouped key/value
#    heads, fewer queries than keys).
# 2. **What the KV cache costs.** Lesson 03 says grouped-query attention shrinks the cache by
#    `n_head / n_kv_head`; compute the bytes, and see what a d20 chat with a long context would need.
# 3. **Tied embeddings** (GPT-2): the lm_head reuses the embedding table. How many parameters does that
#    save, and what share of a small model is it?
#
# Grade with `make grade LESSON=03`.

# %%
import math

import torch

# %%
def sliding_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """Causal attention in which the query at position p sees only the keys at positions p - window + 1 … p.

    Shapes as in lesson 03's naive_attention: q (B, H, Tq, D), k and v (B, Hkv, Tk, D), H a multiple of Hkv
    (key/value head j serves query heads j·H/Hkv …); the queries are the *last* Tq positions, Tq <= Tk.
    window >= Tk is ordinary causal attention; window == 1 returns each position's own value.
    Raise ValueError when window < 1. Do it by hand (scores, a mask, softmax), no SDPA.
    """
    raise NotImplementedError("exercise 03b: lesson 03's naive_attention with a second condition in the mask")

# %%
def kv_cache_bytes(config, batch_size: int, seq_len: int, bytes_per_value: int = 2) -> int:
    """Bytes that a KV cache for `config` (a GPTConfig) takes for `batch_size` sequences of `seq_len` positions,
    storing `bytes_per_value` bytes per number (2 for bfloat16). Keys and values, every layer.

    It must equal the size of nanochat.gpt.KVCache's two tensors.
    """
    raise NotImplementedError("exercise 03b: multiply the dimensions of the cache's tensors")

# %%
def tied_param_count(config) -> int:
    """The number of parameters of nanochat's GPT for `config` if its lm_head were tied to the token embedding
    (the same V × d matrix used twice, counted once). Lesson 03's count_params is the untied count.
    """
    raise NotImplementedError("exercise 03b: lesson 03's formula, one table fewer")
