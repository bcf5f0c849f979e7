# %% [markdown]
# # Exercise 08 — pass@k
# The unbiased estimator 1 - C(n-c, k)/C(n, k) overflows floats for large n if computed with factorials.
# Write it as a product that stays between 0 and 1, then average it over problems.

# %%
import math


# %%
def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples, c right. Compute C(n-c,k)/C(n,k) as the product over i in [n-c+1, n]
    of (1 - k/i) (no factorials, no math.comb); return 1.0 when n - c < k.
    Raise ValueError unless 0 <= c <= n and 1 <= k <= n.
    """
    if not 0 <= c <= n or not 1 <= k <= n: raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got {n}, {c}, {k}")
    if n - c < k: return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(counts: list[tuple[int, int]], k: int) -> float:
    """The mean of pass_at_k(n, c, k) over problems given as (n, c) pairs; raise ValueError on an empty list."""
    if not counts: raise ValueError("no problems")
    return sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
