# %% [markdown]
# # Exercise 09b — a rate limiter per client
# Lesson 09's server caps the requests in flight for everyone together (`Limits.max_in_flight`), so one
# busy client can still take every slot. A public server also limits each client over time. The classic
# tool is the **token bucket**: each client has a bucket of `capacity` tokens that refills at `rate` tokens
# per second (never above `capacity`); a request costs one token (or more: a long reply may cost more) and
# is allowed only if the bucket holds enough. A burst of `capacity` requests passes at once, then requests
# pass at `rate` per second.
#
# - `allow(client, cost=1)` returns `(True, 0.0)` and takes the tokens, or `(False, wait)` where `wait` is the
#   seconds until `cost` tokens will be there (what a server sends as HTTP `Retry-After`), taking nothing;
# - a cost above `capacity` can never pass: raise `ValueError` saying so;
# - time comes from the `clock` you are given (a function returning seconds), never from `time.time()`
#   directly, so the tests can move time by hand;
# - a step beyond: a server meets millions of clients; a bucket that has been full for a while holds no
#   information, so `forget_idle()` drops every client whose bucket would be full by now and returns how many
#   it dropped (memory stays bounded by the active clients).
#
# Target: the tests drive a fake clock. Grade with `make grade LESSON=09`.

# %%
import time


# %%
class TokenBucket:
    "Per-client token buckets: `capacity` tokens, refilled at `rate` per second."
    def __init__(self, rate: float, capacity: float, clock=time.monotonic):
        """Keep the settings and an empty table of clients: client -> (tokens, time of the last update).

        Raise ValueError unless rate > 0 and capacity >= 1. A new client starts with a full bucket.
        """
        raise NotImplementedError("exercise 09b: check rate and capacity, keep them, the clock and an empty table")

    def allow(self, client, cost: float = 1.0) -> tuple[bool, float]:
        """(True, 0.0) and take `cost` tokens, or (False, seconds to wait) and take nothing.

        Hint: a client's level now is min(capacity, tokens + (now - then) * rate); a client never seen has a full
        bucket; the wait is the tokens missing divided by the rate. Raise ValueError if cost > capacity.
        """
        raise NotImplementedError("exercise 09b: refill by the time passed, then take `cost` or say how long to wait")

    def forget_idle(self) -> int:
        "Drop every client whose bucket is full by now; return how many were dropped."
        raise NotImplementedError("exercise 09b: drop the clients whose bucket has refilled completely")
