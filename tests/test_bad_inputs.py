"""Bad invocations of every stage (issue 12, §5): each is refused with one line that names the flag, exit code 2, no
traceback, and nothing under the base directory changes. The base directory is a copy of what the real smoke
pipeline wrote (data, tokenizer, checkpoints), so "nothing changed" is checked against real files."""
import os, shutil, signal, socket, subprocess, sys

import pytest

# stage -> [(arguments, what the one-line error must contain)]; add a row for every flag that can be wrong
BAD = {
    "base_train": [(["--device-batch-size", "0"], "--device-batch-size 0: must be at least 1"),
                   (["--device-type", "tpu"], "--device-type 'tpu': choose cuda or cpu"),
                   (["--num-iterations", "0"], "--num-iterations 0: must be at least 1, or -1"),
                   (["--depth", "2", "--max-seq-len", "128", "--device-batch-size", "4", "--total-batch-size", "1000"],
                    "--total-batch-size 1000: must be a multiple of"),
                   (["--warmdown-ratio", "1.5"], "--warmdown-ratio 1.5: must be between 0 and 1"),
                   (["--matrix-lr", "nan"], "--matrix-lr nan: must be a number"),
                   (["--tag", "../elsewhere"], "--tag '../elsewhere': must be a plain name"),
                   (["--dtype", "float16"], "--dtype 'float16': choose bfloat16 or float32")],
    "base_eval": [(["--source", "bsae"], "--source 'bsae': choose one of base, mid, sft, rl"),
                  (["--device-batch-size", "0"], "--device-batch-size 0: must be at least 1"),
                  (["--core-labels", "arc_easy,nosuch"], "--core-labels 'arc_easy,nosuch': unknown tasks ['nosuch']"),
                  (["--device-type", "tpu"], "--device-type 'tpu'")],
    "dataset": [(["-n", "-1"], "--num-shards -1: must be at least 1"),
                (["--source", "ftp"], "--source 'ftp': choose packages, fineweb or auto")],
    "tok_train": [(["--vocab-size", "10"], "--vocab-size 10: must be at least 265"),
                  (["--max-chars", "0"], "--max-chars 0: must be at least 1")],
    "tok_eval": [(["--max-chars", "0"], "--max-chars 0: must be at least 1")],
    "preflight": [(["--device-type", "tpu"], "--device-type 'tpu'"), (["--run-name", "a/b"], "--run-name 'a/b': must be a plain")],
    "chat_web": [(["--port", "99999"], "--port 99999: must be between 1 and 65535"),
                 (["--max-new-tokens", "0"], "--max-new-tokens 0: must be at least 1"),
                 (["--max-in-flight", "0"], "--max-in-flight 0: must be at least 1"),
                 (["--max-request-bytes", "0"], "--max-request-bytes 0: must be at least 1024"),
                 (["--threads", "-1"], "--threads -1: must be 0"),
                 (["--step", "-5"], "--step -5: must be a step number"),
                 (["--source", "bsae"], "--source 'bsae': choose auto, random or one of"),
                 (["--device-type", "tpu"], "--device-type 'tpu': choose cuda or cpu"),
                 (["--host", "no-such-host.invalid"], "--host 'no-such-host.invalid': not an address of this machine"),
                 (["--host", "192.0.2.1"], "--host '192.0.2.1': cannot listen on 192.0.2.1:5006")],  # TEST-NET-1: no machine's own
}


@pytest.fixture(scope="module")
def trained_base(smoke_run, tmp_path_factory):
    "A copy of the smoke pipeline's base directory, shared by this module's tests (which must leave it unchanged)."
    dest = tmp_path_factory.mktemp("bad-inputs") / "nanochat-base"
    shutil.copytree(smoke_run.base_dir, dest)
    return dest


def snapshot(root):
    "Every file under `root` with its size and modification time (directories' times change with a write probe)."
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()} if root.exists() else None


def run_stage(stage, args, base):
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(base), "OMP_NUM_THREADS": "1"}
    env.pop("NANOCHAT_TRACEBACK", None)
    return subprocess.run([sys.executable, "-m", f"nanochat.{stage}", *args], env=env, capture_output=True, text=True, timeout=300)


def assert_one_line_error(result, says):
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.stderr


@pytest.mark.parametrize("stage,args,says", [(s, a, m) for s, rows in BAD.items() for a, m in rows],
                         ids=[f"{s} {' '.join(a)}" for s, rows in BAD.items() for a, _ in rows])
def test_a_bad_flag_is_one_clear_line_and_changes_nothing(trained_base, stage, args, says):
    before = snapshot(trained_base)
    assert_one_line_error(run_stage(stage, args, trained_base), says)
    assert snapshot(trained_base) == before


def _immutable(path):
    "Make directory `path` unwritable, for root too (chattr +i); returns the undo."
    if os.geteuid() != 0:
        path.chmod(0o555); return lambda: path.chmod(0o755)
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("making a directory unwritable for root needs chattr +i (a filesystem with the immutable flag)")
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("stage", ["preflight", "base_train"])
@pytest.mark.parametrize("kind", ["file", "uncreatable", "unwritable"])
def test_an_unusable_base_dir_is_one_clear_line(tmp_path, stage, kind):
    (tmp_path / "a-file").write_text("keep me")
    base = {"file": tmp_path / "a-file", "uncreatable": tmp_path / "a-file" / "base", "unwritable": tmp_path / "ro"}[kind]
    undo = lambda: None
    if kind == "unwritable":
        base.mkdir(); undo = _immutable(base)
    try:
        result = run_stage(stage, [], base)
    finally:
        undo()
    assert_one_line_error(result, f"NANOCHAT_BASE_DIR={base} " + {"file": "is a file", "uncreatable": "is missing and cannot be created",
                                                                  "unwritable": "cannot be written"}[kind])
    assert (tmp_path / "a-file").read_text() == "keep me" and (kind != "unwritable" or not list(base.iterdir()))


def test_a_second_training_on_the_same_tag_stops_before_touching_the_first(trained_base):
    "A holder of the lock (a training in progress, here a stand-in process) makes a second base_train stop at once."
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(trained_base)}
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from nanochat.checkpoint import lock_checkpoints\n"
                               "with lock_checkpoints('base_train', 'd2'):\n print('locked', flush=True); sys.stdin.read()"],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(trained_base)
        result = run_stage("base_train", ["--run-name", "smoke", "--depth", "2", "--max-seq-len", "128", "--device-batch-size", "4",
                                          "--total-batch-size", "1024", "--num-iterations", "20", "--no-compile"], trained_base)
        assert_one_line_error(result, f"checkpoints base_train/d2 are in use by another training (pid {holder.pid}")
        assert snapshot(trained_base) == before  # the first run's checkpoints were neither archived nor overwritten
    finally:
        os.kill(holder.pid, signal.SIGKILL); holder.wait()


def test_chat_web_on_a_port_in_use_is_one_clear_line(trained_base):
    "A port another server holds: one line naming --port, before the model is loaded (not Tornado's traceback after it)."
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0)); taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_error(run_stage("chat_web", ["--port", str(port)], trained_base), f"--port {port}: cannot listen on 127.0.0.1:{port}")
