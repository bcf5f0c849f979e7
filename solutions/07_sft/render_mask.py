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
    sp = tokenizer.encode_special
    ids, mask = [sp("<|bos|>")], [0]
    def add(tokens, m):
        ids.extend(tokens); mask.extend([m] * len(tokens))
    messages = list(messages)
    if messages[0]["role"] == "system":
        messages = [{"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}] + messages[2:]
    for message in messages:
        content = message["content"]
        if message["role"] == "user":
            add([sp("<|user_start|>")] + tokenizer.encode(content) + [sp("<|user_end|>")], 0)
            continue
        add([sp("<|assistant_start|>")], 0)
        for part in ([{"type": "text", "text": content}] if isinstance(content, str) else content):
            body = tokenizer.encode(part["text"])
            if part["type"] == "text": add(body, 1)
            elif part["type"] == "python": add([sp("<|python_start|>")] + body + [sp("<|python_end|>")], 1)
            else: add([sp("<|output_start|>")] + body + [sp("<|output_end|>")], 0)
        add([sp("<|assistant_end|>")], 1)
    return ids, mask

# %%
def parse_conversation(tokenizer, ids: list[int]) -> list[dict]:
    """The messages of rendered `ids`: [{"role": "user" | "assistant", "content": ...}, ...].

    A user's content is its decoded text. An assistant's content is a str when it is a single text part, else a
    list of parts {"type": "text" | "python" | "python_output", "text": ...} in order (consecutive text tokens
    form one text part). Raise ValueError when ids do not start with <|bos|>, a message is not closed, or a
    special token appears where it cannot (say, <|python_end|> with no call open).
    Hint: walk the ids with an index; `tokenizer.decode(ids[a:b])` gives the text between two special tokens.
    """
    sp = tokenizer.encode_special
    names = {sp(n): n for n in ("<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
                                "<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>")}
    if not ids or ids[0] != sp("<|bos|>"): raise ValueError("a conversation starts with <|bos|>")
    def until(i: int, end: str) -> int:  # the index of the next special token, which must be `end`
        j = next((j for j in range(i, len(ids)) if ids[j] in names), None)
        if j is None or names[ids[j]] != end:
            raise ValueError(f"expected {end} at token {j if j is not None else len(ids)}, found {names[ids[j]] if j is not None else 'the end'}")
        return j
    messages, i = [], 1
    while i < len(ids):
        token = names.get(ids[i])
        if token == "<|user_start|>":
            j = until(i + 1, "<|user_end|>")
            messages.append({"role": "user", "content": tokenizer.decode(ids[i + 1:j])}); i = j + 1
        elif token == "<|assistant_start|>":
            parts, i = [], i + 1
            while True:
                j = next((j for j in range(i, len(ids)) if ids[j] in names), None)
                if j is None: raise ValueError("an assistant message is not closed with <|assistant_end|>")
                if j > i: parts.append({"type": "text", "text": tokenizer.decode(ids[i:j])})
                kind = names[ids[j]]
                if kind == "<|assistant_end|>": i = j + 1; break
                if kind not in ("<|python_start|>", "<|output_start|>"): raise ValueError(f"{kind} at token {j} inside an assistant message")
                end, part = ("<|python_end|>", "python") if kind == "<|python_start|>" else ("<|output_end|>", "python_output")
                k = until(j + 1, end)
                parts.append({"type": part, "text": tokenizer.decode(ids[j + 1:k])}); i = k + 1
            content = parts[0]["text"] if len(parts) == 1 and parts[0]["type"] == "text" else parts
            messages.append({"role": "assistant", "content": content})
        else:
            raise ValueError(f"expected <|user_start|> or <|assistant_start|> at token {i}, found {token or 'text'}")
    return messages
