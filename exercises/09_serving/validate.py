# %% [markdown]
# # Exercise 09c — validate an API request
# An OpenAI-style server receives JSON from anyone. Every field must be checked for its **type** and its
# **range** before any work starts, and a bad field must give the client a clear answer that names it —
# never a crash deep inside generation (a 500), and never a silent replacement of what was asked.
#
# Write `validate(body, max_new_tokens)` for a `POST /v1/chat/completions` body. It returns a new dict with
# every field filled in (defaults below), or raises `RequestError(param, message)`:
#
# | field | rule | default |
# |---|---|---|
# | `messages` | a non-empty list of objects, each with `role` in system/user/assistant and `content` a string; the last message's role is `user` | required |
# | `max_tokens` | an int, 1 ≤ n ≤ `max_new_tokens` (`max_completion_tokens` is the same field under its new name; giving both with different values is an error) | `max_new_tokens` |
# | `temperature` | a number, 0 ≤ t ≤ 2 | 1.0 |
# | `top_p` | a number, 0 < p ≤ 1, or null | None |
# | `top_k` | an int ≥ 1, or null | None |
# | `seed` | an int, 0 ≤ s < 2**63, or null | None |
# | `stream` | a bool | False |
# | `stream_options` | an object or null, only with `stream` true; its `include_usage` is a bool | None |
# | `n` | 1 | 1 |
#
# Traps a hostile client sets, which your checks must catch: `True` is an `int` in Python (a bool is never
# a number here); `float("nan")` passes `0 <= t <= 2`-style checks written the wrong way round (write them so
# NaN and infinity fail); JSON numbers like `1e400` arrive as `inf`. An unknown field is an error too
# (say which), so a typo like `max_token` is not silently ignored.
#
# Target: the tests walk a table of good and bad bodies. Grade with `make grade LESSON=09`.

# %%
import math


class RequestError(ValueError):
    "A bad request: `param` names the field, str(error) says what is wrong."
    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


FIELDS = {"messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "seed", "stream",
          "stream_options", "n", "model"}


# %%
def validate(body, max_new_tokens: int) -> dict:
    """A checked copy of `body` with defaults filled in, or RequestError(param, message) naming the bad field.

    Hint: write two small helpers first — `is_int(x)` (an int that is not a bool) and
    `is_number(x)` (an int or float that `math.isfinite`) — and one that checks a numeric field's range.
    """
    raise NotImplementedError("exercise 09c: check every field of the table, fill in the defaults")
