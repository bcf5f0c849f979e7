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
# of the tests (multi-turn, system messages, tool calls, hostile user text). Grade with `make grade LESSON=07`.

# %%
def render_with_mask(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """(ids, mask) of a conversation, as described above. Roles alternate user, assistant, … after an optional system message.

    Hint: keep two lists and a helper `add(tokens, m)` that extends both; fold the system message first.
    """
    raise NotImplementedError("exercise 07a: bos, then for each message its markers and encoded text, with mask 1 on the assistant's own tokens")
