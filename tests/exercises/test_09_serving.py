"Grades exercises/09_serving (or solutions/ with --grade solutions)."
import codecs, math, random

import pytest


@pytest.fixture
def utf8(exercise): return exercise("09_serving/utf8_stream.py")


@pytest.fixture
def bucket(exercise): return exercise("09_serving/rate_limit.py")


@pytest.fixture
def api(exercise): return exercise("09_serving/validate.py")


# --- 09a: streaming text that never splits a character ---

TEXTS = ["plain ascii", "café au lait", "naïve — “quotes”", "日本語のテキスト", "emoji 🙂👍🏽 and ∑ maths", "Ω≈ç√∫˜µ≤≥÷"]


@pytest.mark.parametrize("text", TEXTS)
def test_every_cut_gives_back_the_text_and_no_broken_character(utf8, text):
    data = text.encode()
    for cut in range(len(data) + 1):
        s = utf8.Utf8Stream()
        pieces = [s.push(data[:cut]), s.push(data[cut:]), s.flush()]
        assert "".join(pieces) == text, f"cut at byte {cut}: the pieces {pieces!r} do not join to {text!r}"
        assert all("\ufffd" not in p for p in pieces), (f"cut at byte {cut}: a piece holds '\\ufffd' ({pieces!r}): "
                                                         "bytes of an incomplete character must wait for the next push")


def test_one_byte_at_a_time_each_character_comes_out_when_complete(utf8):
    s, text = utf8.Utf8Stream(), "aé🙂"
    out = [s.push(bytes([b])) for b in text.encode()]
    assert out == ["a", "", "é", "", "", "", "🙂"], (f"got {out!r}: a character should come out on the push that "
                                                      "completes it, and not before")
    left = s.flush()
    assert left == "", f"every character was complete, so flush has nothing left: expected '', got {left!r}"


def test_random_token_cuts_match_the_reference_decoder(utf8):
    rng = random.Random(0)
    alphabet = "abc é日🙂\n" + "".join(map(chr, range(0x391, 0x3a9)))
    for _ in range(200):
        data = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))).encode()
        if rng.random() < 0.3: data += bytes([rng.choice([0x80, 0xbf, 0xc3, 0xe2, 0xf0, 0xff, 0xc0])])  # broken bytes too
        cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randint(0, 6))))
        pieces, s, start = [], utf8.Utf8Stream(), 0
        for c in cuts + [len(data)]:
            pieces.append(s.push(data[start:c])); start = c
        pieces.append(s.flush())
        want = data.decode("utf-8", errors="replace")
        assert "".join(pieces) == want, f"{data!r} cut at {cuts}: got {''.join(pieces)!r}, expected {want!r}"


def test_broken_bytes_become_one_replacement_character_at_once(utf8):
    s = utf8.Utf8Stream()
    assert s.push(b"\xff") == "\ufffd", "0xff is never UTF-8: it should become '\\ufffd' at once, not wait"
    assert s.push(b"\x80ok") == "\ufffdok", "a continuation byte with no lead before it is broken at once"
    assert s.push(b"a\xc3") == "a", "0xc3 starts a 2-byte character: wait for its second byte"
    assert s.push(b"A") == "\ufffdA", "0xc3 followed by 'A' can never be completed: '\\ufffd', then the 'A'"
    assert s.push("日".encode()[:2]) == "" and s.flush() == "\ufffd", "flush turns an incomplete tail into '\\ufffd'"
    assert s.push("é".encode()) == "é", "after flush the stream starts afresh"


# --- 09b: a token-bucket rate limiter ---

class Clock:
    def __init__(self): self.now = 1000.0
    def __call__(self): return self.now


def test_a_burst_of_capacity_passes_then_the_rate(bucket):
    clock = Clock()
    limiter = bucket.TokenBucket(rate=2.0, capacity=5, clock=clock)
    got = [limiter.allow("alice")[0] for _ in range(6)]
    assert got == [True] * 5 + [False], f"a full bucket of 5 lets 5 requests through at once, then refuses; got {got}"
    ok, wait = limiter.allow("alice")
    assert not ok and wait == pytest.approx(0.5), f"at 2 tokens/s the next token is 0.5 s away; got wait={wait}"
    clock.now += 0.5
    assert limiter.allow("alice") == (True, 0.0), "after waiting the time it said, the request passes"
    assert limiter.allow("bob")[0], "each client has a bucket of its own"


def test_refill_never_goes_above_capacity_and_costs_count(bucket):
    clock = Clock()
    limiter = bucket.TokenBucket(rate=1.0, capacity=3, clock=clock)
    assert limiter.allow("c", cost=3)[0], "a new client starts with a full bucket (3): a request costing 3 should be allowed, it was refused"
    clock.now += 3600
    assert limiter.allow("c", cost=3)[0] and not limiter.allow("c", cost=1)[0], \
        "an hour idle refills the bucket to its capacity (3), not to 3600"
    ok, wait = limiter.allow("c", cost=2)
    assert not ok and wait == pytest.approx(2.0), f"2 tokens missing at 1 token/s is 2 s; got {wait}"
    clock.now += 1.0
    ok, wait = limiter.allow("c", cost=2)
    assert not ok and wait == pytest.approx(1.0), f"a refused request takes nothing: 1 token is there, 1 s to go; got {wait}"
    for what, call in [("a cost of 4 above the capacity 3 (it could never be allowed)", lambda: limiter.allow("c", cost=4)),
                       ("rate 0 (the bucket would never refill)", lambda: bucket.TokenBucket(rate=0, capacity=3, clock=clock)),
                       ("capacity 0.5 (not even one request fits)", lambda: bucket.TokenBucket(rate=1, capacity=0.5, clock=clock))]:
        with pytest.raises(ValueError):
            got = call()
            pytest.fail(f"{what}: expected ValueError, got {got!r}")


def test_idle_clients_are_forgotten(bucket):
    clock = Clock()
    limiter = bucket.TokenBucket(rate=1.0, capacity=2, clock=clock)
    for i in range(100): limiter.allow(f"client{i}")
    limiter.allow("busy", cost=2)
    clock.now += 1.0  # everyone who spent 1 token is full again; "busy" still misses 1
    assert limiter.forget_idle() == 100, "the 100 clients whose buckets refilled hold no information any more"
    assert not limiter.allow("busy", cost=2)[0], "a client still refilling must be remembered"
    assert limiter.allow("client7", cost=2)[0], "a forgotten client comes back with a full bucket"


# --- 09c: validate an API request ---

def body(**fields):
    return {"messages": [{"role": "user", "content": "hi"}], **fields}


def test_a_good_body_gets_its_defaults(api):
    out = api.validate(body(), max_new_tokens=256)
    assert out["max_tokens"] == 256 and out["temperature"] == 1.0 and out["stream"] is False, f"defaults not filled: {out}"
    assert out["top_p"] is None and out["top_k"] is None and out["seed"] is None and out["n"] == 1, (
        f"fields left out: expected top_p, top_k and seed None and n 1, got {out}")
    out = api.validate(body(max_completion_tokens=17, temperature=0, top_k=40, top_p=0.9, seed=2**63 - 1, stream=True,
                            stream_options={"include_usage": True}, model="nanochat"), max_new_tokens=256)
    assert out["max_tokens"] == 17 and out["top_k"] == 40 and out["top_p"] == 0.9 and out["stream"] is True, out


BAD = [
    ("a list, not an object", ["hi"], "body"),
    ("no messages", {"temperature": 1}, "messages"),
    ("empty messages", {"messages": []}, "messages"),
    ("a message with no content", {"messages": [{"role": "user"}]}, "messages"),
    ("an unknown role", {"messages": [{"role": "root", "content": "x"}]}, "messages"),
    ("content not a string", {"messages": [{"role": "user", "content": 5}]}, "messages"),
    ("last message the assistant's", {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}, "messages"),
    ("max_tokens 0", body(max_tokens=0), "max_tokens"),
    ("max_tokens above the server's limit", body(max_tokens=257), "max_tokens"),
    ("max_tokens a float", body(max_tokens=12.0), "max_tokens"),
    ("max_tokens true (a bool is an int in Python)", body(max_tokens=True), "max_tokens"),
    ("the two lengths disagree", body(max_tokens=10, max_completion_tokens=20), "max_tokens"),
    ("temperature NaN", body(temperature=math.nan), "temperature"),
    ("temperature infinite (JSON 1e400)", body(temperature=math.inf), "temperature"),
    ("temperature a string", body(temperature="0.5"), "temperature"),
    ("temperature negative", body(temperature=-0.1), "temperature"),
    ("top_p 0", body(top_p=0), "top_p"),
    ("top_p above 1", body(top_p=1.5), "top_p"),
    ("top_k 0", body(top_k=0), "top_k"),
    ("top_k a float", body(top_k=2.5), "top_k"),
    ("seed huge", body(seed=2**64), "seed"),
    ("seed negative", body(seed=-1), "seed"),
    ("stream a string", body(stream="yes"), "stream"),
    ("stream_options not an object", body(stream=True, stream_options="usage"), "stream_options"),
    ("stream_options without stream", body(stream_options={"include_usage": True}), "stream_options"),
    ("n of 2", body(n=2), "n"),
    ("a typo'd field", body(max_token=5), "max_token"),
]


@pytest.mark.parametrize("what,bad,param", BAD, ids=[b[0] for b in BAD])
def test_a_bad_field_is_named(api, what, bad, param):
    with pytest.raises(api.RequestError) as e:
        api.validate(bad, max_new_tokens=256)
        pytest.fail(f"{what}: validate accepted it")
    assert e.value.param == param, f"{what}: the error names {e.value.param!r}, expected {param!r} ({e.value})"
    assert str(e.value), f"{what}: the error needs a message the client can read"


def test_validate_does_not_change_the_body(api):
    b = body(temperature=0.5)
    before = repr(b)
    api.validate(b, max_new_tokens=64)
    assert repr(b) == before, "validate must return a new dict and leave the request as it came"
