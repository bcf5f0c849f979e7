"""The FineWeb-EDU download path against a local HTTP server that misbehaves on request: dropped connections,
server errors, corrupt files, wrong checksums, stalls. No shard that failed verification may ever be left in place."""
import hashlib, http.server, os, socket, subprocess, sys, threading, time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nanochat.data import (FINEWEB_LAST_SHARD, DownloadError, download_fineweb, download_shard, iter_documents,
                           list_shards, read_manifest, shard_name, write_manifest)


def make_shard(index: int, docs: int = 40) -> bytes:
    "A small real parquet shard, different for every index."
    sink = pa.BufferOutputStream()
    texts = [f"shard {index} document {d}: " + "words " * (d % 7 + 1) for d in range(docs)]
    pq.write_table(pa.table({"text": texts}), sink, row_group_size=8, compression="zstd")
    return sink.getvalue().to_pybytes()


def tamper(data: bytes) -> bytes:
    "Overwrite the data of row group 1 (past its first bytes), leaving the footer intact."
    column = pq.ParquetFile(pa.BufferReader(data)).metadata.row_group(1).column(0)
    start = (column.dictionary_page_offset or column.data_page_offset) + 10
    end = (column.dictionary_page_offset or column.data_page_offset) + column.total_compressed_size
    return data[:start] + bytes((i * 37 + 11) % 256 for i in range(end - start)) + data[end:]


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.files; server.plan[name] lists what to do on each request for `name` (then 'ok'):
    ok, drop (close half-way), 500, 404, garbage (random bytes), tamper (damage one row group's data),
    norange (ignore Range), stall (sleep past the client's timeout), redirect:<sha> (302 to /blob/ with that
    X-Linked-Etag; 'good' = the file's real hash)."""
    def log_message(self, *args): pass

    def do_HEAD(self):
        self.send_response(200 if self.path.rsplit("/", 1)[-1] in self.server.files else 404); self.end_headers()

    def do_GET(self):
        blob = self.path.startswith("/blob/")
        name = self.path.rsplit("/", 1)[-1]
        self.server.log.append((self.path, self.headers.get("Range")))
        data = self.server.files.get(name)
        plan = self.server.plan.get(name, [])
        action = plan.pop(0) if plan else "ok"
        if data is None or action == "404": return self.send_error(404)
        if action == "500": return self.send_error(500)
        if action == "stall": time.sleep(1.5); return self.send_error(500)
        if action.startswith("redirect:") and not blob:
            sha = action.split(":", 1)[1]
            self.send_response(302)
            self.send_header("Location", f"/blob/{name}")
            self.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest() if sha == "good" else sha}"')
            self.end_headers(); return
        if action == "garbage": data = bytes((i * 131 + 7) % 256 for i in range(len(data)))
        if action == "tamper": data = tamper(data)
        start = 0
        if self.headers.get("Range") and action != "norange":
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if action == "drop":
            self.wfile.write(data[start:start + (len(data) - start) // 2]); self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR); return
        self.wfile.write(data[start:])


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads, httpd.block_on_close = True, False
    httpd.files = {shard_name(i): make_shard(i) for i in [0, 1, 2, 3, FINEWEB_LAST_SHARD]}
    httpd.plan, httpd.log = {}, []
    httpd.url = f"http://127.0.0.1:{httpd.server_port}/datasets/resolve/main"
    threading.Thread(target=httpd.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True).start()
    yield httpd
    httpd.shutdown(); httpd.server_close()


def get(server, index, folder, **kw):
    return download_shard(index, folder, base_url=server.url, backoff=0.01, **kw)


def requests_for(server, index):
    return [entry for entry in server.log if entry[0].endswith(shard_name(index))]


def no_leftovers(folder):
    return not list(folder.glob("*.tmp"))


def test_downloads_train_shards_and_the_validation_shard(server, base_dir):
    manifest = download_fineweb(3, base_url=server.url, workers=4, backoff=0.01)
    folder = base_dir / "base_data"
    assert [p.name for p in list_shards("train")] == [shard_name(i) for i in range(3)]
    assert [p.name for p in list_shards("val")] == [shard_name(FINEWEB_LAST_SHARD)]
    for shard in manifest["shards"]:
        assert (folder / shard["file"]).read_bytes() == server.files[shard["file"]]
        assert shard["sha256"] == hashlib.sha256(server.files[shard["file"]]).hexdigest()
    assert [s["split"] for s in manifest["shards"]] == ["train"] * 3 + ["val"]
    assert read_manifest() == manifest and manifest["source"] == "fineweb"
    assert next(iter_documents("val")).startswith(f"shard {FINEWEB_LAST_SHARD} document 0")
    assert no_leftovers(folder)


def test_more_shards_later_keeps_the_first_ones(server, base_dir):
    download_fineweb(1, base_url=server.url, backoff=0.01)
    server.log.clear()
    manifest = download_fineweb(3, base_url=server.url, backoff=0.01)
    assert {p for p, _ in server.log} == {f"/datasets/resolve/main/{shard_name(i)}" for i in (1, 2)}  # 0 and val skipped
    assert len(manifest["shards"]) == 4 and all("sha256" in s for s in manifest["shards"])


def test_shards_from_an_earlier_download_without_a_manifest_are_kept(server, base_dir):
    folder = base_dir / "base_data"; folder.mkdir(parents=True)
    (folder / shard_name(0)).write_bytes(server.files[shard_name(0)])  # e.g. fetched by nanochat itself
    manifest = download_fineweb(2, base_url=server.url, backoff=0.01)
    assert requests_for(server, 0) == [] and [s["file"] for s in manifest["shards"]] == [shard_name(i) for i in (0, 1, FINEWEB_LAST_SHARD)]


def test_dropped_connection_is_resumed_with_a_range_request(server, tmp_path):
    server.plan[shard_name(0)] = ["drop"]
    get(server, 0, tmp_path)
    (first, r1), (second, r2) = requests_for(server, 0)
    half = len(server.files[shard_name(0)]) // 2
    assert r1 is None and r2 == f"bytes={half}-"
    assert (tmp_path / shard_name(0)).read_bytes() == server.files[shard_name(0)] and no_leftovers(tmp_path)


def test_server_that_ignores_ranges_gets_a_fresh_start(server, tmp_path):
    server.plan[shard_name(0)] = ["drop", "norange"]
    get(server, 0, tmp_path)
    assert (tmp_path / shard_name(0)).read_bytes() == server.files[shard_name(0)]


def test_interrupted_run_continues_from_the_partial_file(server, tmp_path):
    data = server.files[shard_name(2)]
    (tmp_path / (shard_name(2) + ".tmp")).write_bytes(data[:1000])  # what a killed run leaves behind
    assert not (tmp_path / shard_name(2)).exists()  # a .tmp never counts as a shard
    get(server, 2, tmp_path)
    assert requests_for(server, 2) == [(f"/datasets/resolve/main/{shard_name(2)}", "bytes=1000-")]
    assert (tmp_path / shard_name(2)).read_bytes() == data and no_leftovers(tmp_path)


def test_server_errors_are_retried(server, tmp_path):
    server.plan[shard_name(1)] = ["500", "500"]
    entry = get(server, 1, tmp_path)
    assert len(requests_for(server, 1)) == 3
    assert entry["sha256"] == hashlib.sha256(server.files[shard_name(1)]).hexdigest()


def test_a_stalled_server_times_out_and_is_retried(server, tmp_path):
    server.plan[shard_name(1)] = ["stall"]
    get(server, 1, tmp_path, timeout=0.3)
    assert len(requests_for(server, 1)) == 2 and (tmp_path / shard_name(1)).exists()


def test_corrupt_file_is_deleted_and_fetched_again(server, tmp_path):
    server.plan[shard_name(0)] = ["garbage"]
    get(server, 0, tmp_path)
    assert len(requests_for(server, 0)) == 2
    assert (tmp_path / shard_name(0)).read_bytes() == server.files[shard_name(0)]


def test_damaged_data_pages_are_caught_even_with_an_intact_footer(server, tmp_path):
    server.plan[shard_name(0)] = ["tamper", "tamper", "tamper"]
    with pytest.raises(DownloadError, match="not a readable parquet"):
        get(server, 0, tmp_path, attempts=3)
    assert not (tmp_path / shard_name(0)).exists() and no_leftovers(tmp_path)


def test_advertised_checksum_is_checked(server, tmp_path):
    server.plan[shard_name(3)] = ["redirect:good"]
    get(server, 3, tmp_path)
    assert [p for p, _ in requests_for(server, 3)] == [f"/datasets/resolve/main/{shard_name(3)}", f"/blob/{shard_name(3)}"]
    server.plan[shard_name(1)] = ["redirect:" + "ab" * 32] * 6  # each attempt: a redirect, then the blob
    with pytest.raises(DownloadError, match="advertised"):
        get(server, 1, tmp_path, attempts=3)
    assert not (tmp_path / shard_name(1)).exists() and no_leftovers(tmp_path)


def test_missing_shard_fails_at_once(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        get(server, 7, tmp_path)
    assert len(requests_for(server, 7)) == 1


def test_persistent_failure_is_reported_and_good_shards_are_kept(server, base_dir):
    server.plan[shard_name(1)] = ["drop"] * 3
    with pytest.raises(DownloadError, match=r"1 of 4 shards failed:\n.*shard_00001.*IncompleteRead"):
        download_fineweb(3, base_url=server.url, attempts=3, backoff=0.01)
    folder = base_dir / "base_data"
    assert sorted(p.name for p in folder.glob("*.parquet")) == [shard_name(i) for i in (0, 2, FINEWEB_LAST_SHARD)]
    assert [s["file"] for s in read_manifest()["shards"]] == [shard_name(i) for i in (0, 2, FINEWEB_LAST_SHARD)]
    assert no_leftovers(folder)


def test_present_shards_are_skipped_and_broken_ones_replaced(server, tmp_path):
    (tmp_path / shard_name(0)).write_bytes(server.files[shard_name(0)])
    (tmp_path / shard_name(1)).write_bytes(b"PAR1 this is not parquet PAR1")  # e.g. left by another tool
    get(server, 0, tmp_path); get(server, 1, tmp_path)
    assert requests_for(server, 0) == [] and len(requests_for(server, 1)) == 1
    assert (tmp_path / shard_name(1)).read_bytes() == server.files[shard_name(1)]


def test_base_url_from_the_environment(server, base_dir, monkeypatch):
    monkeypatch.setenv("NANOCHAT_FINEWEB_URL", server.url)
    download_fineweb(1, backoff=0.01)
    assert len(list_shards("train")) == 1


def test_refuses_to_download_over_the_embedded_corpus(server, base_dir):
    write_manifest(dict(source="packages", shards=[]), base_dir / "base_data")
    with pytest.raises(RuntimeError, match="already holds packages shards"):
        download_fineweb(1, base_url=server.url)


def test_bad_shard_count():
    with pytest.raises(ValueError, match="between 1 and 1822"):
        download_fineweb(0)


def test_stage_downloads_and_reports(server, base_dir, monkeypatch):
    from nanochat.dataset import main
    monkeypatch.setenv("NANOCHAT_FINEWEB_URL", server.url)
    metrics = main(num_shards=2, source="fineweb", run_name="t")
    assert metrics["source"] == "fineweb" and metrics["train shards"] == 2 and metrics["val shards"] == 1
    assert metrics["documents"] == 3 * 40
    assert "## Data" in (base_dir / "runs" / "t" / "report" / "dataset.md").read_text()


def test_auto_picks_fineweb_when_its_server_answers(server, base_dir, monkeypatch):
    from nanochat.dataset import fineweb_reachable, main
    monkeypatch.setenv("NANOCHAT_FINEWEB_URL", server.url)
    assert fineweb_reachable()
    assert main(num_shards=1, source="auto", run_name="t")["source"] == "fineweb"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); closed_port = s.getsockname()[1]  # nothing listens there once closed
    monkeypatch.setenv("NANOCHAT_FINEWEB_URL", f"http://127.0.0.1:{closed_port}/x")
    assert not fineweb_reachable(timeout=1)
    with pytest.raises(ValueError, match="--source 'hub': choose packages, fineweb or auto"):
        main(source="hub")


def test_command_line_with_nanochats_short_flag(server, base_dir):
    env = {**os.environ, "NANOCHAT_FINEWEB_URL": server.url, "NANOCHAT_BASE_DIR": str(base_dir)}
    out = subprocess.run([sys.executable, "-m", "nanochat.dataset", "-n", "2", "--source", "fineweb", "--run-name", "cli"],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "train shards: 2" in out.stdout and len(list_shards("train")) == 2
