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
    assert pick_preset("auto") in ("cpu", "d20")
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
