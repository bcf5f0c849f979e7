# %% [markdown]
# # Exercise 02b — dealing the data out to ranks (solution)

# %%
import random

# %%
def rank_share(num_units: int, rank: int, world_size: int) -> list[int]:
    "The unit numbers that `rank` of `world_size` reads: rank, rank + world_size, …"
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    return list(range(rank, num_units, world_size))

# %%
def epoch_share(num_units: int, rank: int, world_size: int, epoch: int) -> list[int]:
    "rank_share for `epoch`: after epoch 0 all units are shuffled with random.Random(epoch) before dealing."
    units = list(range(num_units))
    if epoch: random.Random(epoch).shuffle(units)
    return [units[i] for i in rank_share(num_units, rank, world_size)]

# %%
def even_share(num_units: int, rank: int, world_size: int, epoch: int = 0, drop_last: bool = False) -> list[int]:
    """Like epoch_share, but every rank gets the same number of units.

    Take the epoch's order (epoch_share's: 0 … num_units-1, shuffled after epoch 0); with drop_last=False, extend it
    by repeating it from its start (again and again if it is shorter than the padding) to ceil(num_units /
    world_size) × world_size units; with drop_last=True, cut it to floor(num_units / world_size) × world_size.
    Then deal it out as rank_share does.
    Examples: even_share(10, 3, 4) == [3, 7, 1];  even_share(10, 3, 4, drop_last=True) == [3, 7]
    """
    rank_share(num_units, rank, world_size)  # the same checks of rank and world_size
    units = list(range(num_units))
    if epoch: random.Random(epoch).shuffle(units)
    if drop_last: units = units[:num_units // world_size * world_size]
    else:
        total = -(-num_units // world_size) * world_size
        while len(units) < total: units += units[:total - len(units)]
    return units[rank::world_size]
