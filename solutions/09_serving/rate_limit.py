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
        if not rate > 0: raise ValueError(f"rate must be > 0 tokens per second, got {rate}")
        if not capacity >= 1: raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.rate, self.capacity, self.clock, self.buckets = float(rate), float(capacity), clock, {}

    def _level(self, client, now: float) -> float:
        tokens, then = self.buckets.get(client, (self.capacity, now))
        return min(self.capacity, tokens + (now - then) * self.rate)

    def allow(self, client, cost: float = 1.0) -> tuple[bool, float]:
        "(True, 0.0) and take `cost` tokens, or (False, seconds to wait) and take nothing."
        if cost > self.capacity: raise ValueError(f"a cost of {cost} can never pass a bucket of {self.capacity}")
        now = self.clock()
        tokens = self._level(client, now)
        if tokens >= cost:
            self.buckets[client] = (tokens - cost, now)
            return True, 0.0
        self.buckets[client] = (tokens, now)
        return False, (cost - tokens) / self.rate

    def forget_idle(self) -> int:
        "Drop every client whose bucket is full by now; return how many were dropped."
        now = self.clock()
        full = [c for c in self.buckets if self._level(c, now) >= self.capacity]
        for c in full: del self.buckets[c]
        return len(full)
