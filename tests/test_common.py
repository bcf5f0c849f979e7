"The shared helpers of nanochat.common."
import pytest

from nanochat.common import PRESETS, BadInput, get_base_dir, StageFailed, get_run_dir, log_metrics, pick_preset, read_metrics, run_stage, write_report_section


def test_run_names_must_be_plain():
    for bad in ["", "a/b", "..", ".hidden"]:
        with pytest.raises(ValueError, match="run name"):
            get_run_dir(bad)


def test_metrics_round_trip():
    log_metrics("r", "base_train", 0, loss=2.0)
    log_metrics("r", "base_eval", 5, val_bpb=1.5)
    records = read_metrics("r")
    assert [(r["stage"], r["step"]) for r in records] == [("base_train", 0), ("base_eval", 5)]
    assert all("time" in r for r in records)
    assert read_metrics("r", "base_eval")[0]["val_bpb"] == 1.5


def test_presets():
    assert pick_preset("smoke") == "smoke"
    assert pick_preset("auto") in ("cpu", "gpu1", "d20")
    assert [pick_preset("auto", gpus=n) for n in (0, 1, 7, 8, 16)] == ["cpu", "gpu1", "gpu1", "d20", "d20"]
    with pytest.raises(ValueError, match="unknown preset"):
        pick_preset("d99")
    for name, preset in PRESETS.items():
        # the total batch must be a whole number of device batches (on one process)
        assert preset["total_batch_size"] % (preset["device_batch_size"] * preset["max_seq_len"]) == 0, name


def test_failed_stage_names_the_cause():
    with pytest.raises(StageFailed, match="exit code"):
        run_stage("preflight", ["--run-name", "r", "--device-type", "cuda"], run="r")
    try:
        run_stage("preflight", ["--run-name", "r", "--device-type", "cuda"], run="r")
    except StageFailed as e:
        assert "error: --device-type 'cuda': asked for, but torch sees no GPU" in str(e).splitlines()[0]


def _unwritable(path):
    "Make directory `path` unwritable even for root (immutable); returns the undo. Skips where that cannot be done."
    import os, subprocess
    if os.geteuid() != 0:
        path.chmod(0o555); return lambda: path.chmod(0o755)
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("needs chattr +i (root on a filesystem with the immutable flag) to make a directory unwritable for root")
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


def test_an_unusable_base_dir_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a directory")
    for bad, says in [(tmp_path / "file", "is a file, not a directory"),
                      (tmp_path / "file" / "below", "is missing and cannot be created"),
                      (tmp_path / "ro", "cannot be written")]:
        monkeypatch.setenv("NANOCHAT_BASE_DIR", str(bad))
        if bad.name == "ro":
            bad.mkdir(); undo = _unwritable(bad)
        try:
            with pytest.raises(BadInput, match=f"NANOCHAT_BASE_DIR={bad} {says}"):
                get_base_dir()
        finally:
            if bad.name == "ro": undo()
    assert (tmp_path / "file").read_text() == "not a directory" and list((tmp_path / "ro").iterdir()) == []


def test_the_command_line_in_a_report_is_the_one_that_ran(monkeypatch):
    from nanochat.common import command_line
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    argv = ["/repo/nanochat/base_eval.py", "--device-type", "", "--core-labels", "a b"]
    assert command_line(argv) == "python -m nanochat.base_eval --device-type '' --core-labels 'a b'"
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert command_line(argv[:1]) == "torchrun --nproc_per_node=2 -m nanochat.base_eval"
    write_report_section("r", "x", "X")
    assert "Command: `torchrun --nproc_per_node=2 " in (get_run_dir("r") / "report" / "x.md").read_text()


def test_stage_commands_for_one_node_and_several():
    from nanochat.common import stage_command, step_stage
    one = stage_command("base_train", ["--depth", 4], nproc=2)
    assert one[3:] == ["--standalone", "--nproc_per_node=2", "-m", "nanochat.base_train", "--depth", "4"]
    two = stage_command("base_train", [], nproc=8, nnodes=2, node_rank=1, rdzv_endpoint="10.0.0.1:29500", rdzv_id="r")
    assert two[3:-2] == ["--nnodes=2", "--node-rank=1", "--rdzv-backend=c10d", "--rdzv-endpoint=10.0.0.1:29500", "--rdzv-id=r",
                         "--nproc_per_node=8"]
    with pytest.raises(BadInput, match="needs rdzv_endpoint"):
        stage_command("base_train", [], nnodes=2)
    assert [step_stage(s) for s in ("chat_eval_sft", "chat_sft", "base_eval")] == ["chat_eval", "chat_sft", "base_eval"]
