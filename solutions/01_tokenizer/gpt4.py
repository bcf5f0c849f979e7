# %% [markdown]
# # Exercise 01b — GPT-4's tokenizer with your own encoder (solution)

# %%
import regex

# %%
def bpe_split(ranks: dict[bytes, int], token: bytes, max_rank: int | None = None) -> list[bytes]:
    "Merge the bytes of `token` as tiktoken does (the adjacent pair whose join has the lowest rank first), only ranks < max_rank."
    parts = [bytes([b]) for b in token]
    while len(parts) > 1:
        best = None
        for i, pair in enumerate(zip(parts, parts[1:])):
            rank = ranks.get(pair[0] + pair[1])
            if rank is not None and (max_rank is None or rank < max_rank) and (best is None or rank < best[1]):
                best = (i, rank)
        if best is None: break
        i = best[0]
        parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
    return parts

# %%
def recover_merges(ranks: dict[bytes, int]) -> dict[tuple[int, int], int]:
    "The merges behind mergeable ranks: for every token of 2+ bytes, (rank of left part, rank of right part) → its rank."
    merges = {}
    for token, rank in ranks.items():
        if len(token) == 1: continue
        parts = bpe_split(ranks, token, max_rank=rank)
        if len(parts) != 2: raise ValueError(f"token {token!r} (rank {rank}) does not split into two earlier tokens: {parts}")
        merges[ranks[parts[0]], ranks[parts[1]]] = rank
    return merges

# %%
def encode_with_merges(text: str, pattern: str, ranks: dict[bytes, int], merges: dict[tuple[int, int], int]) -> list[int]:
    "Split with `pattern`; map each byte to its rank; merge the pair with the lowest merge rank until none is left."
    out = []
    for chunk in regex.findall(pattern, text):
        ids = [ranks[bytes([b])] for b in chunk.encode("utf-8")]
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
            if pair not in merges: break
            new, i, merged = merges[pair], 0, []
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair: merged.append(new); i += 2
                else: merged.append(ids[i]); i += 1
            ids = merged
        out.extend(ids)
    return out
