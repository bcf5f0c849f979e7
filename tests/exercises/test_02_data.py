"""Grades exercises/02_data (or solutions/ with --grade solutions): packing with <|bos|>, dealing data to ranks and
(beyond the lesson) the same count for every rank, checked against torch's DistributedSampler; and (02c) rows that
start at a document, best-fit packing and the document mask."""
import itertools, math, random

import pytest
import torch
import torch.nn.functional as F

from torch.utils.data import DistributedSampler

from nanochat.data import TokenLoader, rank_units, write_shard
from nanochat.tokenizer import Tokenizer


@pytest.fixture
def packing(exercise):
    return exercise("02_data/packing.py")


@pytest.fixture
def sharding(exercise):
    return exercise("02_data/sharding.py")


@pytest.fixture
def alignment(exercise):
    return exercise("02_data/alignment.py")


def check(got, expected, call: str, idea: str):
    assert got == expected, f"{call}: expected {expected!r}, got {got!r}. Revisit {idea}."


PACKING = "'From documents to batches' in lesson 02"


def test_bos_stream(packing):
    check(packing.bos_stream([[5, 6], [7]], bos_id=0), [0, 5, 6, 0, 7], "bos_stream([[5, 6], [7]], 0)", PACKING)
    check(packing.bos_stream([[], [3]], bos_id=9), [9, 9, 3], "bos_stream([[], [3]], 9) (an empty document keeps its <|bos|>)", PACKING)
    check(packing.bos_stream([], bos_id=1), [], "bos_stream([], 1)", PACKING)


def test_pack_rows(packing):
    check(packing.pack_rows([0, 5, 6, 0, 7, 8, 9], seq_len=2), [[0, 5, 6], [0, 7, 8]], "pack_rows([0, 5, 6, 0, 7, 8, 9], 2)", PACKING)
    check(packing.pack_rows(list(range(9)), seq_len=2), [[0, 1, 2], [3, 4, 5], [6, 7, 8]], "pack_rows(range(9), 2)", PACKING)
    check(packing.pack_rows([1, 2], seq_len=2), [], "pack_rows([1, 2], 2) (too short for one row of 3)", PACKING)
    with pytest.raises(ValueError):
        packing.pack_rows([1, 2, 3], seq_len=0)
        pytest.fail(f"pack_rows(..., seq_len=0) should raise ValueError: a row needs at least one input and one target. Revisit {PACKING}.")


def test_inputs_targets(packing):
    x, y = packing.inputs_targets([[0, 5, 6], [0, 7, 8]])
    assert x.dtype == y.dtype == torch.int64, f"inputs and targets must be int64 (token ids), got {x.dtype} and {y.dtype}. Revisit {PACKING}."
    assert x.shape == y.shape == (2, 2), f"expected shapes (2, 2) and (2, 2), got {tuple(x.shape)} and {tuple(y.shape)}. Revisit {PACKING}: a row of seq_len + 1 gives seq_len inputs and targets."
    check((x.tolist(), y.tolist()), ([[0, 5], [0, 7]], [[5, 6], [7, 8]]), "inputs_targets([[0, 5, 6], [0, 7, 8]])",
          "the shift by one: position t predicts token t+1")


def test_packing_matches_the_lesson_loader(packing, tmp_path):
    "Your three steps give exactly the batches nanochat.data.TokenLoader gives."
    docs = [f"document {i}: " + "la " * (i % 9) for i in range(60)]
    write_shard(docs, tmp_path / "shard_00000.parquet"); write_shard(["held out"], tmp_path / "shard_00001.parquet")
    tok = Tokenizer.train(docs, vocab_size=300)
    loader = TokenLoader(tok, batch_size=3, seq_len=16, data_dir=tmp_path)
    stream = packing.bos_stream(tok.encode(docs), tok.bos_token_id)
    x, y = packing.inputs_targets(packing.pack_rows(stream, 16))
    for b, (lx, ly) in enumerate(itertools.islice(loader, 4)):
        assert torch.equal(lx, x[3 * b:3 * b + 3]) and torch.equal(ly, y[3 * b:3 * b + 3]), (
            f"batch {b}: TokenLoader gives inputs {lx.tolist()}, your steps give {x[3 * b:3 * b + 3].tolist()}. "
            f"Revisit {PACKING}: the stream is cut every seq_len + 1 tokens, with no overlap")


SHARDING = "'Many GPUs, disjoint data' in lesson 02"


def test_rank_share(sharding):
    check(sharding.rank_share(10, 1, 3), [1, 4, 7], "rank_share(10, rank=1, world_size=3)", SHARDING)
    check(sharding.rank_share(10, 0, 1), list(range(10)), "rank_share(10, rank=0, world_size=1)", SHARDING)
    check(sharding.rank_share(2, 3, 4), [], "rank_share(2, rank=3, world_size=4)", SHARDING)
    for bad in [(10, 3, 3), (10, -1, 2), (10, 0, 0)]:
        with pytest.raises(ValueError):
            sharding.rank_share(*bad)
            pytest.fail(f"rank_share{bad} should raise ValueError (rank must be in [0, world_size)). Revisit {SHARDING}.")


@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_ranks_are_disjoint_and_complete(sharding, world_size):
    for epoch in range(3):
        shares = [sharding.epoch_share(21, r, world_size, epoch) for r in range(world_size)]
        check(sorted(u for share in shares for u in share), list(range(21)),
              f"every rank's epoch_share(21, r, {world_size}, {epoch}) together, sorted", SHARDING + ": every unit to exactly one rank")


def test_epochs_reshuffle_like_the_lesson_loader(sharding):
    check(sharding.epoch_share(10, 1, 3, 0), [1, 4, 7], "epoch_share(10, 1, 3, epoch=0) (epoch 0 is not shuffled)", SHARDING)
    assert sharding.epoch_share(40, 0, 1, 1) != list(range(40)), f"epoch_share(40, 0, 1, epoch=1) came back in order 0 … 39: expected a shuffled order. Revisit {SHARDING}: epochs after 0 are shuffled."
    for epoch, rank in itertools.product(range(4), range(3)):
        check(sharding.epoch_share(17, rank, 3, epoch), rank_units(range(17), rank, 3, epoch),
              f"epoch_share(17, {rank}, 3, {epoch}) against nanochat.data.rank_units", SHARDING + " (random.Random(epoch).shuffle)")


EVEN = "the exercise's step beyond: pad the epoch's order from its start (or cut it) to a multiple of world_size, then deal"


@pytest.mark.parametrize("num_units,world_size", [(10, 4), (12, 4), (3, 8), (1, 1), (17, 5)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_even_share_matches_torchs_distributed_sampler(sharding, num_units, world_size, drop_last):
    for rank in range(world_size):
        want = list(DistributedSampler(list(range(num_units)), num_replicas=world_size, rank=rank, shuffle=False, drop_last=drop_last))
        check(sharding.even_share(num_units, rank, world_size, drop_last=drop_last), want,
              f"even_share({num_units}, rank={rank}, world_size={world_size}, drop_last={drop_last}) against DistributedSampler(shuffle=False)", EVEN)


@pytest.mark.parametrize("drop_last", [False, True])
def test_even_share_gives_every_rank_the_same_count_in_every_epoch(sharding, drop_last):
    N, W = 23, 4
    for epoch in range(3):
        shares = [sharding.even_share(N, r, W, epoch, drop_last) for r in range(W)]
        want = N // W if drop_last else math.ceil(N / W)
        check([len(s) for s in shares], [want] * W, f"the counts of even_share({N}, r, {W}, epoch={epoch}, drop_last={drop_last}) over the ranks", EVEN)
        order = list(range(N))
        if epoch: random.Random(epoch).shuffle(order)
        dealt = sorted(u for s in shares for u in s)
        expected = sorted(order[:want * W] if drop_last else order + order[:want * W - N])
        check(dealt, expected, f"every unit dealt in epoch {epoch} (drop_last={drop_last}), sorted",
              EVEN + " (the same shuffled order as epoch_share: random.Random(epoch).shuffle)")
    with pytest.raises(ValueError):
        got = sharding.even_share(10, 4, 4)
        pytest.fail(f"even_share(10, rank=4, world_size=4): expected ValueError (rank must be in [0, world_size)), got {got}")


ALIGNED = "'Try it: how should rows be cut?' in lesson 02"


def test_bos_aligned_rows(alignment):
    check(alignment.bos_aligned_rows([[1, 2], [3], [4, 5, 6, 7]], bos_id=0, seq_len=3), ([[0, 1, 2, 0], [0, 4, 5, 6]], 2),
          "bos_aligned_rows([[1, 2], [3], [4, 5, 6, 7]], 0, 3)", ALIGNED)
    check(alignment.bos_aligned_rows([[1, 2], [3, 4]], bos_id=0, seq_len=2), ([[0, 1, 2], [0, 3, 4]], 0),
          "bos_aligned_rows([[1, 2], [3, 4]], 0, 2) (documents that fill rows exactly lose nothing)", ALIGNED)
    check(alignment.bos_aligned_rows([[1], [2]], bos_id=0, seq_len=7), ([], 4),
          "bos_aligned_rows([[1], [2]], 0, 7) (an unfinished last row is dropped and counted as lost)", ALIGNED)
    with pytest.raises(ValueError):
        alignment.bos_aligned_rows([[1]], 0, 0)
        pytest.fail(f"bos_aligned_rows(..., seq_len=0) should raise ValueError. Revisit {ALIGNED}.")


def random_docs(seed: int, n: int = 300, longest: int = 60) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(1, 50) for _ in range(rng.randint(1, longest))] for _ in range(n)]


@pytest.mark.parametrize("packer", ["bos_aligned_rows", "best_fit_rows"])
def test_rows_start_with_bos_and_account_for_every_token(alignment, packer):
    docs, T = random_docs(1), 63
    rows, lost = getattr(alignment, packer)(docs, 0, T)
    assert rows and all(len(r) == T + 1 for r in rows), f"{packer}: every row must have seq_len + 1 = {T + 1} tokens, got lengths {sorted({len(r) for r in rows})}. Revisit {ALIGNED}."
    assert all(r[0] == 0 for r in rows), f"{packer}: every row must start with bos_id; rows {[i for i, r in enumerate(rows) if r[0] != 0][:5]} do not. Revisit {ALIGNED}."
    total = sum(len(d) + 1 for d in docs)
    assert (T + 1) * len(rows) + lost == total, (f"{packer}: {len(rows)} rows of {T + 1} plus {lost} lost should be the {total} tokens "
                                                 "of the documents with their <|bos|>: some tokens were counted twice or not at all. Revisit the docstring's identity "
                                                 "(seq_len + 1) × rows + lost == all tokens.")


def test_best_fit_rows(alignment):
    check(alignment.best_fit_rows([[1, 2, 3, 4, 5], [6], [7, 8]], bos_id=0, seq_len=3), ([[0, 7, 8, 0], [0, 1, 2, 3]], 3),
          "best_fit_rows([[1, 2, 3, 4, 5], [6], [7, 8]], 0, 3)", "the docstring: longest that fits, else the shortest cropped")
    check(alignment.best_fit_rows([[1, 2], [3], [4, 5, 6, 7]], 0, 3, window=1), alignment.bos_aligned_rows([[1, 2], [3], [4, 5, 6, 7]], 0, 3),
          "best_fit_rows(..., window=1) against bos_aligned_rows (a window of one has no choice)", "the window")
    with pytest.raises(ValueError):
        alignment.best_fit_rows([[1]], 0, 3, window=0)
        pytest.fail("best_fit_rows(..., window=0) should raise ValueError: a window must hold at least one document")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_fit_loses_far_fewer_tokens(alignment, seed):
    docs = random_docs(seed)
    greedy, best = alignment.bos_aligned_rows(docs, 0, 127)[1], alignment.best_fit_rows(docs, 0, 127)[1]
    assert best < greedy / 2, (f"on 300 documents of 2 to 61 tokens in rows of 128, best fit lost {best} tokens and the in-order "
                               f"packer {greedy}: best fit should lose less than half as many. Revisit the docstring: the longest that fits whole, else crop the shortest.")


def test_document_mask(alignment):
    got = alignment.document_mask(torch.tensor([[5, 0, 6, 7, 0, 8]]), bos_id=0)
    assert got.dtype == torch.bool and got.shape == (1, 6, 6), f"expected a (1, 6, 6) bool mask, got {tuple(got.shape)} {got.dtype}. Revisit the exercise's step 3: (B, T, T), True where attention is allowed."
    check(got[0].int().tolist(), [[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 1, 0],
                                  [0, 0, 0, 0, 1, 1]], "document_mask([[5, 0, 6, 7, 0, 8]], 0)", "the causal mask of lesson 03, cut at every <|bos|>")
    no_bos = alignment.document_mask(torch.tensor([[3, 4, 5]]), bos_id=0)[0]
    check(no_bos.tolist(), torch.ones(3, 3, dtype=torch.bool).tril().tolist(), "document_mask of a row with no <|bos|>",
          "a row with one document is plain causal")


def test_document_mask_keeps_packed_documents_apart(alignment):
    "Attention over a packed row with the mask equals attention over each document on its own."
    torch.manual_seed(0)
    docs = [[7, 8, 9], [4, 5], [1, 2, 3, 6]]
    row = torch.tensor([[t for d in docs for t in [0, *d]]])
    q, k, v = (torch.randn(1, 2, row.shape[1], 8) for _ in range(3))
    packed = F.scaled_dot_product_attention(q, k, v, attn_mask=alignment.document_mask(row, 0)[:, None])
    start = 0
    for d in docs:
        end = start + len(d) + 1
        alone = F.scaled_dot_product_attention(q[..., start:end, :], k[..., start:end, :], v[..., start:end, :], is_causal=True)
        assert torch.allclose(packed[..., start:end, :], alone, atol=1e-6), (
            f"tokens {start}..{end - 1} (one document) attend differently packed than alone: expected the same outputs; the mask lets them see "
            "another document. Revisit the exercise's step 3: number the documents with a cumulative sum of the <|bos|> tokens.")
        start = end
