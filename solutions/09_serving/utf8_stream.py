# %% [markdown]
# # Exercise 09a — stream text that never splits a character
# A model writes tokens, and a token is a run of **bytes**, not of characters: "é" is two bytes in UTF-8,
# an emoji four, and BPE happily cuts them apart. A server that decodes each token on its own sends
# broken characters (`\ufffd`) to the page. Lesson 09's `TextStream` decodes the whole reply again and
# holds back a trailing `\ufffd`; here you build the byte-level version a production server uses:
#
# - `push(piece)` takes the next token's bytes and returns the text that is **complete** so far and not yet
#   returned: the bytes of a character that is still incomplete wait for the next piece;
# - a step beyond the lesson: bytes that can **never** become a character (a stray continuation byte, an
#   invalid start byte like 0xff) must not hold the stream up forever: each becomes one `"\ufffd"` as soon
#   as it is known to be invalid, and the text after it flows on;
# - `flush()` at the end of the reply returns whatever is left (an incomplete tail becomes `"\ufffd"`).
#
# Every piece of text is returned exactly once: joining all returned pieces equals
# `b"".join(pieces).decode("utf-8", errors="replace")`.
#
# Write it by hand from UTF-8's rules (that is the point; `codecs.getincrementaldecoder` is the answer key the
# tests compare against): a byte `0xxxxxxx` is a whole character; `10xxxxxx` continues one; a lead byte
# `110xxxxx` (0xC2–0xDF) starts a 2-byte character, `1110xxxx` (0xE0–0xEF) a 3-byte one and `11110xxx`
# (0xF0–0xF4) a 4-byte one; 0xC0, 0xC1 and 0xF5–0xFF never appear in UTF-8.
#
# Target: the tests feed real UTF-8 cut at every byte, and broken bytes. Grade with `make grade LESSON=09`.



# %%
def incomplete_tail(buf: bytes) -> int:
    "How many bytes at the end of `buf` begin a character that more bytes could still complete (0 to 3)."
    for k in range(1, min(3, len(buf)) + 1):
        byte = buf[-k]
        if byte & 0xC0 == 0x80: continue  # a continuation byte: look further back for its lead
        need = 2 if 0xC2 <= byte <= 0xDF else 3 if 0xE0 <= byte <= 0xEF else 4 if 0xF0 <= byte <= 0xF4 else 1
        return k if need > k else 0
    return 0


# %%
class Utf8Stream:
    "Bytes in, complete characters out."
    def __init__(self):
        """Start with nothing pending.

        Hint: keep a `bytearray` of bytes not yet returned. After each push, find how many bytes at its end
        begin a character that is not complete yet (look back at most 3 bytes for a lead byte); decode the rest
        with `.decode("utf-8", errors="replace")` and keep the tail.
        """
        self.pending = bytearray()

    def push(self, piece: bytes) -> str:
        "The newly complete text after adding `piece` (often '' while a character is incomplete)."
        if not isinstance(piece, (bytes, bytearray)): raise TypeError(f"push takes bytes, got {type(piece).__name__}")
        self.pending += piece
        keep = incomplete_tail(self.pending)
        done = bytes(self.pending[:len(self.pending) - keep])
        del self.pending[:len(self.pending) - keep]
        return done.decode("utf-8", errors="replace")

    def flush(self) -> str:
        "Whatever is left at the end: an incomplete character becomes '\\ufffd'. The stream starts afresh."
        out = bytes(self.pending).decode("utf-8", errors="replace")
        self.pending.clear()
        return out
