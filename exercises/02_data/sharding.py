# %% [markdown]
# # Exercise 02b — dealing the data out to ranks
# With W processes training together, each must read different data. Lesson 02 deals out the parquet
# *row groups*: numbered 0 … N-1 across all shards, rank r takes r, r+W, r+2W, … So no two ranks share a
# row group, and together they cover them all, exactly like one rank alone.
#
# After each full pass (epoch) the order is reshuffled, with a seed every rank agrees on, and dealt out
# again: the ranks stay disjoint, but no rank reads the same sequence twice.
#
# Then a step beyond the lesson. Its loader streams forever, so a rank with one row group fewer simply starts
# its next epoch sooner. A *finite* pass cannot: an evaluation over the validation split, one epoch of SFT. If
# 10 units are dealt to 4 ranks, ranks 0 and 1 get 3 and ranks 2 and 3 get 2, and at the third step ranks 0
# and 1 wait at the all-reduce for partners that have stopped: the run hangs. `even_share` gives every rank
# the same count, the way PyTorch's `DistributedSampler` does: pad the (shuffled) order by repeating it from
# its start up to a multiple of the world size, or, with `drop_last`, cut it down to one. The tests check it
# against `DistributedSampler` itself.
#
# Fill in the three functions, then grade them with `make grade LESSON=02`.

# %%
import random

# %%
def rank_share(num_units: int, rank: int, world_size: int) -> list[int]:
    """The unit numbers (0 … num_units-1) that `rank` of `world_size` reads: rank, rank + world_size, …

    Example: rank_share(10, 1, 3) == [1, 4, 7]
    Raise ValueError (naming the numbers) when world_size < 1 or rank is not in [0, world_size).
    """
    raise NotImplementedError("exercise 02b: a range with a step")

# %%
def epoch_share(num_units: int, rank: int, world_size: int, epoch: int) -> list[int]:
    """Like rank_share, but for `epoch`: epoch 0 keeps the order 0 … num_units-1; a later epoch first shuffles
    the list of all units with random.Random(epoch).shuffle (the same on every rank), then deals it out.

    Example: epoch_share(10, 1, 3, 0) == [1, 4, 7]
    Hint: shuffle the full list, then take every world_size-th item starting at rank.
    """
    raise NotImplementedError("exercise 02b: shuffle everything with the epoch's seed, then deal")

# %%
def even_share(num_units: int, rank: int, world_size: int, epoch: int = 0, drop_last: bool = False) -> list[int]:
    """Like epoch_share, but every rank gets the same number of units.

    Take the epoch's order (epoch_share's: 0 … num_units-1, shuffled after epoch 0); with drop_last=False, extend it
    by repeating it from its start (again and again if it is shorter than the padding) to ceil(num_units /
    world_size) × world_size units; with drop_last=True, cut it to floor(num_units / world_size) × world_size.
    Then deal it out as rank_share does.
    Examples: even_share(10, 3, 4) == [3, 7, 1];  even_share(10, 3, 4, drop_last=True) == [3, 7]
    """
    raise NotImplementedError("exercise 02b: the epoch's order, padded (or cut) to a multiple of world_size, then dealt")
