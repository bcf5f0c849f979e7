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
def _is_int(x) -> bool: return isinstance(x, int) and not isinstance(x, bool)
def _is_number(x) -> bool: return (_is_int(x) or isinstance(x, float)) and math.isfinite(x)


def _number(body, name, low, high, default, *, integer=False, nullable=False, open_low=False):
    if name not in body: return default
    x = body[name]
    if x is None and nullable: return None
    if not (_is_int(x) if integer else _is_number(x)):
        raise RequestError(name, f"{name} must be {'an integer' if integer else 'a finite number'}"
                                 f"{' or null' if nullable else ''}, got {x!r}")
    if not ((low < x) if open_low else (low <= x)) or (high is not None and not x <= high):
        bound = f" and <= {high}" if high is not None else ""
        raise RequestError(name, f"{name} must be {'>' if open_low else '>='} {low}{bound}, got {x!r}")
    return x


def validate(body, max_new_tokens: int) -> dict:
    "A checked copy of `body` with defaults filled in, or RequestError naming the bad field."
    if not isinstance(body, dict): raise RequestError("body", f"the body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - FIELDS)
    if unknown: raise RequestError(unknown[0], f"unknown field {unknown[0]!r}")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages", "messages must be a non-empty list of {role, content} objects")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
            raise RequestError("messages", f"messages[{i}] must be an object with role system/user/assistant and string content")
    if messages[-1]["role"] != "user": raise RequestError("messages", "the last message must be the user's")
    if "max_tokens" in body and "max_completion_tokens" in body and body["max_tokens"] != body["max_completion_tokens"]:
        raise RequestError("max_tokens", "max_tokens and max_completion_tokens disagree: send one of them")
    length = dict(body)
    if "max_completion_tokens" in body: length["max_tokens"] = body["max_completion_tokens"]
    out = {"messages": messages,
           "max_tokens": _number(length, "max_tokens", 1, max_new_tokens, max_new_tokens, integer=True),
           "temperature": _number(body, "temperature", 0, 2, 1.0),
           "top_p": _number(body, "top_p", 0, 1, None, nullable=True, open_low=True),
           "top_k": _number(body, "top_k", 1, None, None, integer=True, nullable=True),
           "seed": _number(body, "seed", 0, 2**63 - 1, None, integer=True, nullable=True),
           "n": _number(body, "n", 1, 1, 1, integer=True)}  # this server writes one reply per request
    stream = body.get("stream", False)
    if not isinstance(stream, bool): raise RequestError("stream", f"stream must be true or false, got {stream!r}")
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict): raise RequestError("stream_options", f"stream_options must be an object, got {options!r}")
        if not stream: raise RequestError("stream_options", "stream_options is only allowed with stream: true")
        if not isinstance(options.get("include_usage", False), bool):
            raise RequestError("stream_options", "stream_options.include_usage must be true or false")
    out.update(stream=stream, stream_options=options)
    return out
