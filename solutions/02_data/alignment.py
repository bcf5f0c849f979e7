# %% [markdown]
# # Exercise 02c — rows that start at a document (solution)

# %%
import torch

# %%
def bos_aligned_rows(docs: list[list[int]], bos_id: int, seq_len: int) -> tuple[list[list[int]], int]:
    "Rows of seq_len + 1 tokens, each starting with a <|bos|>: whole documents while they fit, the next one cropped."
    if seq_len < 1: raise ValueError(f"seq_len must be at least 1, not {seq_len}")
    rows, row, lost = [], [], 0
    for doc in docs:
        ids, room = [bos_id, *doc], seq_len + 1 - len(row)
        row += ids[:room]; lost += max(0, len(ids) - room)
        if len(row) == seq_len + 1: rows.append(row); row = []
    return rows, lost + len(row)

# %%
def best_fit_rows(docs: list[list[int]], bos_id: int, seq_len: int, window: int = 16) -> tuple[list[list[int]], int]:
    "Rows filled from a window of upcoming documents: the longest that fits whole, else the shortest cropped."
    if seq_len < 1 or window < 1: raise ValueError(f"seq_len and window must be at least 1, not {seq_len}, {window}")
    upcoming, pending, rows, lost = iter(docs), [], [], 0
    while True:
        row = []
        while len(row) < seq_len + 1:
            while len(pending) < window and (doc := next(upcoming, None)) is not None: pending.append([bos_id, *doc])
            if not pending: return rows, lost + len(row)
            room = seq_len + 1 - len(row)
            fits = [i for i, ids in enumerate(pending) if len(ids) <= room]
            if fits:
                row += pending.pop(max(fits, key=lambda i: (len(pending[i]), -i)))
            else:
                ids = pending.pop(min(range(len(pending)), key=lambda i: len(pending[i]))); row += ids[:room]; lost += len(ids) - room
        rows.append(row)

# %%
def document_mask(rows: torch.Tensor, bos_id: int) -> torch.Tensor:
    "(B, T) token ids → (B, T, T) bool: query i may see key j when j <= i and both are in the same document."
    doc = (rows == bos_id).cumsum(-1)  # tokens before a row's first <|bos|> are document 0
    T = rows.shape[-1]
    causal = torch.ones(T, T, dtype=torch.bool, device=rows.device).tril()
    return causal & (doc[:, :, None] == doc[:, None, :])
