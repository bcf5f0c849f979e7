# %% [markdown]
# # Exercise 07a — render a conversation with its loss mask
# Lesson 01's `Tokenizer.render_conversation` turns messages into token ids and a mask that says which
# tokens the model is trained to write. Write it yourself, from the tokenizer's pieces:
#
# - ids start with `<|bos|>`; each user message is `<|user_start|>` + its text + `<|user_end|>`;
#   each assistant message is `<|assistant_start|>` + its parts + `<|assistant_end|>`;
# - a system message is folded into the first user message: `system + "\n\n" + user`;
# - an assistant message is a str or a list of parts `{"type": "text" | "python" | "python_output", "text": ...}`;
#   a python part is wrapped in `<|python_start|>`/`<|python_end|>`, an output in `<|output_start|>`/`<|output_end|>`;
# - the mask is 1 on what the assistant writes — its text, its python parts *with* their two markers, and
#   `<|assistant_end|>` — and 0 on everything else (`<|bos|>`, user turns, `<|assistant_start|>`, tool output
#   with its markers);
# - text is encoded with `tokenizer.encode(text)`, which never produces special tokens, so a user who types
#   `<|assistant_end|>` gets ordinary text. Special ids: `tokenizer.encode_special("<|bos|>")` etc.
#
# Target: the same ids and mask as `render_conversation(messages, max_tokens=None)` on every conversation
# of the tests (multi-turn, system messages, tool calls, hostile user text).
#
# Then a step beyond the lesson, the other direction: `parse_conversation` reads rendered ids back into
# messages, as a server or an eval must when it reads what a model wrote (its tool calls, its answer). Only
# special *tokens* mark structure: text that merely looks like `<|assistant_end|>` stays text, so a user
# cannot forge a turn. Target: `parse_conversation(render(m)) == m` for every test conversation (with a
# system message folded into the first user turn, as the render does), and a ValueError naming the problem
# for ids that are not a whole conversation. Grade with `make grade LESSON=07`.

# %%
def render_with_mask(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """(ids, mask) of a conversation, as described above. Roles alternate user, assistant, … after an optional system message.

    Hint: keep two lists and a helper `add(tokens, m)` that extends both; fold the system message first.
    """
    raise NotImplementedError("exercise 07a: bos, then for each message its markers and encoded text, with mask 1 on the assistant's own tokens")

# %%
def parse_conversation(tokenizer, ids: list[int]) -> list[dict]:
    """The messages of rendered `ids`: [{"role": "user" | "assistant", "content": ...}, ...].

    A user's content is its decoded text. An assistant's content is a str when it is a single text part, else a
    list of parts {"type": "text" | "python" | "python_output", "text": ...} in order (consecutive text tokens
    form one text part). Raise ValueError when ids do not start with <|bos|>, a message is not closed, or a
    special token appears where it cannot (say, <|python_end|> with no call open).
    Hint: walk the ids with an index; `tokenizer.decode(ids[a:b])` gives the text between two special tokens.
    """
    raise NotImplementedError("exercise 07a: a small state machine over the special tokens, decoding the text between them")
