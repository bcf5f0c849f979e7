"""Checkpoints of lesson 04 (nanochat/checkpoint.py): round trip, atomicity, corruption, load_model."""
import json, random, warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from nanochat.checkpoint import (MARKER, CheckpointError, complete_steps, find_checkpoint, find_tag, get_rng_state,
                                 latest_step, load_checkpoint, load_model, save_checkpoint, set_rng_state, step_dir)
from nanochat.gpt import GPT, config_from_depth
from nanochat.optim import setup_optimizers
from nanochat.tokenizer import Tokenizer

TEXT = ("Checkpoints hold the weights, the optimizer state, the data position and the random state, "
        "so that a run that stops can continue exactly where it was. ") * 20


def _trained(vocab=300, steps=2):
    torch.manual_seed(0)
    model = GPT(config_from_depth(2, vocab_size=vocab, sequence_len=16, head_dim=32))
    opts = setup_optimizers(model)
    for _ in range(steps):
        x = torch.randint(0, vocab, (2, 16))
        model(x, targets=x).backward()
        for o in opts: o.step()
        model.zero_grad()
    return model, opts


def test_round_trip_of_weights_optimizer_loader_and_rng():
    model, opts = _trained()
    path = save_checkpoint("base_train", "d2", 7, model, opts, meta=dict(flags=dict(depth=2)), loader_state=dict(batches=14))
    assert path == step_dir("base_train", "d2", 7) and path.name == "step_000007"
    assert sorted(p.name for p in path.iterdir()) == [MARKER, "meta.json", "model.pt", "optim_0.pt", "optim_1_rank0.pt"]
    state, optim_states, meta = load_checkpoint("base_train", "d2")
    assert meta["step"] == 7 and meta["flags"] == dict(depth=2) and meta["world_size"] == 1
    assert meta["loader_state"] == [dict(batches=14)] and meta["model_config"]["n_layer"] == 2
    assert meta["command"] and "rng" in meta
    for k, v in model.state_dict().items(): torch.testing.assert_close(state[k], v, rtol=0, atol=0)
    fresh_model, fresh = _trained(steps=0)
    fresh_model.load_state_dict(state)
    for o, s in zip(fresh, optim_states): o.load_state_dict(s)
    for a, b in zip(opts, fresh):  # the next step is identical
        assert json.dumps(a.state_dict()["param_groups"]) == json.dumps(b.state_dict()["param_groups"])
    x = torch.randint(0, 300, (2, 16))
    for m, os_ in ((model, opts), (fresh_model, fresh)):
        m(x, targets=x).backward()
        for o in os_: o.step()
    for p, q in zip(model.parameters(), fresh_model.parameters()): torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_rng_state_survives_json():
    random.seed(1); np.random.seed(1); torch.manual_seed(1)
    state = json.loads(json.dumps(get_rng_state()))
    want = (random.random(), np.random.rand(), torch.rand(3).tolist())
    random.seed(2); np.random.seed(2); torch.manual_seed(2)
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(3).tolist()) == want


def test_unfinished_write_is_not_a_checkpoint_and_is_cleaned_up():
    model, opts = _trained()
    save_checkpoint("s", "t", 1, model, opts)
    leftover = step_dir("s", "t", 2).with_name(".step_000002.tmp")  # a crash in the middle of saving step 2
    leftover.mkdir(); (leftover / "model.pt").write_bytes(b"half")
    step_dir("s", "t", 3).mkdir()  # a step directory without the marker
    assert complete_steps("s", "t") == [1] and latest_step("s", "t") == 1
    save_checkpoint("s", "t", 2, model, opts)
    assert not leftover.exists() and latest_step("s", "t") == 2


def test_saving_a_step_again_replaces_it():
    model, opts = _trained()
    save_checkpoint("s", "t", 1, model, opts, meta=dict(n=1))
    save_checkpoint("s", "t", 1, model, opts, meta=dict(n=2))
    assert load_checkpoint("s", "t")[2]["n"] == 2 and complete_steps("s", "t") == [1]


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_corrupt_latest_falls_back_to_the_previous_one(damage):
    model, opts = _trained()
    save_checkpoint("s", "t", 1, model, opts)
    path = save_checkpoint("s", "t", 2, model, opts)
    target = path / "optim_1_rank0.pt"
    data = target.read_bytes()
    if damage == "truncate": target.write_bytes(data[:-10])
    elif damage == "flip": target.write_bytes(data[:50] + bytes([data[50] ^ 0x10]) + data[51:])
    else: target.unlink()
    with pytest.warns(UserWarning, match="skipping checkpoint s/t step 2"):
        assert find_checkpoint("s", "t") == step_dir("s", "t", 1)
    with pytest.raises(CheckpointError, match="truncated|corrupt|missing"):
        find_checkpoint("s", "t", step=2)
    with pytest.warns(UserWarning):
        assert load_checkpoint("s", "t")[2]["step"] == 1
    (step_dir("s", "t", 1) / "model.pt").write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(CheckpointError, match="no usable checkpoint"):
        find_checkpoint("s", "t")


def test_missing_checkpoints_give_clear_errors():
    with pytest.raises(CheckpointError, match="run that stage first"): find_tag("base_train")
    with pytest.raises(CheckpointError, match="no usable checkpoint"): find_checkpoint("base_train", "d4")
    model, opts = _trained()
    save_checkpoint("s", "t", 1, model, opts)
    with pytest.raises(CheckpointError, match="complete steps: \\[1\\]"): find_checkpoint("s", "t", step=5)


def test_optimizer_shards_need_the_same_number_of_processes():
    model, opts = _trained()
    path = save_checkpoint("s", "t", 1, model, opts)
    meta = json.loads((path / "meta.json").read_text())
    meta["world_size"] = 2
    (path / "meta.json").write_text(json.dumps(meta))
    marker = json.loads((path / MARKER).read_text())
    from nanochat.checkpoint import file_sha256
    marker["files"]["meta.json"] = dict(bytes=(path / "meta.json").stat().st_size, sha256=file_sha256(path / "meta.json"))
    (path / MARKER).write_text(json.dumps(marker))
    with pytest.raises(CheckpointError, match="written by 2 processes"):
        load_checkpoint("s", "t")
    load_checkpoint("s", "t", load_optimizer=False)  # weights alone are fine


def test_load_model_builds_the_model_and_checks_the_tokenizer():
    Tokenizer.train([TEXT], vocab_size=300).save()
    model, _ = _trained()
    save_checkpoint("base_train", "d2", 3, model, [])
    save_checkpoint("base_train", "older", 1, model, [])
    import os, time
    old = step_dir("base_train", "older", 1) / MARKER
    os.utime(old, (time.time() - 100, time.time() - 100))
    assert find_tag("base_train") == "d2"
    loaded, tok, meta = load_model("base_train")
    assert meta["step"] == 3 and tok.vocab_size == 300 and not loaded.training
    x = torch.randint(0, 300, (1, 16))
    with torch.no_grad(): torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)
    Tokenizer.train([TEXT], vocab_size=290).save()
    with pytest.raises(CheckpointError, match="tokenizer has 290 tokens"):
        load_model("base_train", tag="d2")


def test_weights_only_loading_ignores_a_damaged_optimizer_file():
    "Evaluation and serving read only model.pt and meta.json: a bad optimizer shard must not block them."
    model, opts = _trained()
    save_checkpoint("s", "t", 1, model, opts)
    path = save_checkpoint("s", "t", 2, model, opts)
    (path / "optim_0.pt").write_bytes(b"garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback, no warning
        assert load_checkpoint("s", "t", load_optimizer=False)[2]["step"] == 2
    with pytest.warns(UserWarning, match="optim_0.pt"):
        assert load_checkpoint("s", "t")[2]["step"] == 1  # resuming training needs it: falls back


def test_model_names_and_stage_names_load_what_base_train_wrote(smoke_base, smoke_run):
    "The real producer (base_train in the smoke speedrun) writes; load_model finds it by model name and by stage name."
    from nanochat.checkpoint import MODEL_STAGES, available_models, model_stage
    assert model_stage("base") == MODEL_STAGES["base"] == "base_train" and model_stage("chat_rl") == "chat_rl"
    assert (smoke_base / "checkpoints" / "base_train").is_dir() and not (smoke_base / "checkpoints" / "base").exists()
    assert "base" in available_models()
    by_name, _, meta = load_model("base")
    by_stage, _, meta2 = load_model("base_train")
    assert meta["step"] == meta2["step"] > 0
    for (k, v), w in zip(by_name.state_dict().items(), by_stage.state_dict().values()):
        torch.testing.assert_close(v, w, rtol=0, atol=0)


def test_a_model_with_no_checkpoint_names_the_stage_directory():
    with pytest.raises(CheckpointError, match=r"model 'sft' \(stage chat_sft\) under .*checkpoints/chat_sft: run that stage first"):
        load_model("sft")
    with pytest.raises(CheckpointError, match="models: base=base_train"):
        load_model("bsae")  # a typo: not a known stage either, so the known names are listed


@pytest.mark.parametrize("garbage", ["", "{\"files\": ", "null", "[1, 2]", "{\"step\": 2}", "{\"step\": 2, \"files\": {}}",
                                     "{\"step\": 2, \"files\": {\"model.pt\": 5, \"meta.json\": {}}}", "\x00\xff" * 40, "other step"])
def test_a_damaged_marker_falls_back_like_any_corruption(garbage):
    model, opts = _trained()
    save_checkpoint("s", "t", 1, model, opts)
    path = save_checkpoint("s", "t", 2, model, opts)
    if garbage == "other step":  # a marker copied from another step: well-formed, but not this checkpoint's
        (path / MARKER).write_text((step_dir("s", "t", 1) / MARKER).read_text())
    else:
        (path / MARKER).write_bytes(garbage.encode("latin-1"))
    with pytest.warns(UserWarning, match=f"skipping checkpoint s/t step 2: {path / MARKER} is damaged"):
        assert find_checkpoint("s", "t") == step_dir("s", "t", 1)
    with pytest.raises(CheckpointError, match="is damaged"):
        find_checkpoint("s", "t", step=2)
    with pytest.warns(UserWarning):
        assert load_checkpoint("s", "t")[2]["step"] == 1


def _checkpoint_bytes(path):
    return sum(p.stat().st_size for p in path.iterdir())


def test_disk_full_on_a_real_small_filesystem_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    "A size-limited tmpfs (root can mount one) that holds one checkpoint and a half: the second save hits ENOSPC."
    import subprocess
    model, opts = _trained()
    size = _checkpoint_bytes(save_checkpoint("probe", "t", 1, model, opts))
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(size * 1.5) // 4096 * 4096}", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); test_disk_full_while_writing_any_file covers the same path")
    try:
        monkeypatch.setenv("NANOCHAT_BASE_DIR", str(mnt))
        save_checkpoint("s", "t", 1, model, opts)
        with pytest.raises(CheckpointError, match=r"disk full while saving checkpoint s/t step 2 .*previous checkpoint \(step 1\) is intact"):
            save_checkpoint("s", "t", 2, model, opts)
        assert sorted(p.name for p in step_dir("s", "t", 1).parent.iterdir()) == ["step_000001"]  # the unfinished save is gone
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert load_checkpoint("s", "t")[2]["step"] == 1
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize("fail_at", ["optim_0.pt", "model.pt", "meta.json", MARKER])
def test_disk_full_while_writing_any_file(monkeypatch, fail_at):
    "ENOSPC injected at each write of a save (half the bytes written first, as a full disk does)."
    import errno, pathlib
    import nanochat.checkpoint as ckpt
    model, opts = _trained()
    save_checkpoint("s", "t", 1, model, opts, meta=dict(n=1))
    real_save, real_write = ckpt.torch.save, pathlib.Path.write_text
    def full(name, write_half):
        write_half()
        raise OSError(errno.ENOSPC, "No space left on device")
    def torch_save(obj, f):
        if Path(f.name).name == fail_at: full(fail_at, lambda: f.write(b"x" * 100))
        return real_save(obj, f)
    def write_text(self, text, *a, **k):
        if self.name == fail_at and ".tmp" in self.parent.name: full(fail_at, lambda: real_write(self, text[:len(text) // 2]))
        return real_write(self, text, *a, **k)
    with monkeypatch.context() as m:
        m.setattr(ckpt.torch, "save", torch_save)
        m.setattr(pathlib.Path, "write_text", write_text)
        with pytest.raises(CheckpointError, match="disk full while saving checkpoint s/t step 2"):
            save_checkpoint("s", "t", 2, model, opts, meta=dict(n=2))
    assert complete_steps("s", "t") == [1] and not list(step_dir("s", "t", 1).parent.glob(".*"))
    assert load_checkpoint("s", "t")[2]["n"] == 1
    save_checkpoint("s", "t", 2, model, opts)  # with space again, the same step saves
    assert load_checkpoint("s", "t")[2]["step"] == 2


def test_a_second_training_on_the_same_tag_is_refused(tmp_path):
    "The lock holds across processes, names the holder, and goes away with it (even when it is killed)."
    import os, signal, subprocess, sys
    from nanochat.checkpoint import lock_checkpoints
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from nanochat.checkpoint import lock_checkpoints\n"
                               "with lock_checkpoints('base_train', 'd2'):\n print('locked', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CheckpointError, match=f"base_train/d2 are in use by another training \\(pid {holder.pid} on "):
            with lock_checkpoints("base_train", "d2"): pass
        with lock_checkpoints("base_train", "d3"): pass  # another tag is free
    finally:
        os.kill(holder.pid, signal.SIGKILL); holder.wait()
    with lock_checkpoints("base_train", "d2") as path:  # a killed holder leaves no stale lock
        assert path.name == ".d2.lock" and path.parent.name == "base_train"


def test_a_lora_checkpoint_loads_as_its_base_with_the_adapters_merged():
    "chat_sft --lora-rank saves adapters only (meta['lora'] names the base); load_model returns the merged model."
    from nanochat.checkpoint import merge_lora
    Tokenizer.train([TEXT], vocab_size=300).save()
    base, _ = _trained()
    save_checkpoint("mid_train", "d2", 5, base, [])
    name = next(k for k, v in base.state_dict().items() if k.endswith(".weight") and v.dim() == 2 and "transformer.h" in k)[:-len(".weight")]
    W = base.state_dict()[f"{name}.weight"]
    A, B = torch.randn(4, W.shape[1]), torch.randn(W.shape[0], 4)

    class Adapters(torch.nn.Module):  # what a LoRA training would save: the pairs, and the base's shape
        def __init__(self):
            super().__init__()
            self.config = base.config
        def state_dict(self, *a, **k): return {f"{name}.lora_A": A, f"{name}.lora_B": B}
    save_checkpoint("chat_sft", "lora", 7, Adapters(), [],
                    meta=dict(lora=dict(base=dict(stage="mid_train", tag="d2", step=5), rank=4, alpha=8)))
    merged, _, meta = load_model("sft", tag="lora")
    assert meta["step"] == 7
    torch.testing.assert_close(merged.state_dict()[f"{name}.weight"], W + 2.0 * (B @ A), rtol=1e-5, atol=1e-5)
    other = next(k for k in base.state_dict() if k.endswith(".weight") and not k.startswith(name))
    torch.testing.assert_close(merged.state_dict()[other], base.state_dict()[other], rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="do not fit the base weight"):
        merge_lora(base.state_dict(), {f"{name}.lora_A": A, f"{name}.lora_B": B[:, :3]}, 1.0)
    with pytest.raises(CheckpointError, match="without their pair"):
        merge_lora(base.state_dict(), {f"{name}.lora_A": A}, 1.0)
