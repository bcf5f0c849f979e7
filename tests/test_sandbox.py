"""The sandbox (lesson 06a): untrusted code is stopped with a clear result and the caller is unharmed."""
import os, socket, threading
from pathlib import Path

import pytest

from nanochat.sandbox import SandboxResult, calculator, run_python


def test_runs_code_and_captures_output():
    r = run_python("import sys\nprint('hello')\nprint('oops', file=sys.stderr)")
    assert isinstance(r, SandboxResult)
    assert (r.ok, r.stdout, r.stderr, r.error, r.timed_out) == (True, "hello\n", "oops\n", None, False)


def test_exception_gives_its_last_line_and_traceback():
    r = run_python("def f():\n    raise ValueError('bad value')\nf()")
    assert not r.ok and r.error == "ValueError: bad value"
    assert "line 2, in f" in r.stderr and "_sandbox_child" not in r.stderr


def test_sys_exit_zero_is_success_and_nonzero_is_an_error():
    assert run_python("import sys; print('a'); sys.exit(0)").ok
    r = run_python("import sys; sys.exit(2)")
    assert not r.ok and r.error == "SystemExit: 2"


def test_infinite_loop_is_killed_and_the_caller_goes_on():
    r = run_python("while True: pass", timeout=1)
    assert (r.ok, r.timed_out) == (False, True) and "timeout" in r.error
    assert run_python("print(6 * 7)").stdout == "42\n"


def test_memory_bomb_fails_inside_the_child():
    r = run_python("x = bytearray(10**10)", memory_mb=128)
    assert not r.ok and r.error == "MemoryError"
    r = run_python("chunks = []\nwhile True: chunks.append(bytearray(10**6))", memory_mb=128, timeout=20)
    assert not r.ok and not r.timed_out and r.error == "MemoryError"


def test_fork_bomb_is_refused():
    r = run_python("import os\nwhile True:\n    os.fork()")
    assert not r.ok and "creating processes is not allowed" in r.error


def test_os_system_and_subprocess_are_refused(tmp_path):
    marker = tmp_path / "marker"
    for code in [f"import os; os.system('touch {marker}')",
                 f"import subprocess; subprocess.run(['touch', '{marker}'])",
                 f"import os; os.execv('/usr/bin/touch', ['touch', '{marker}'])"]:
        r = run_python(code)
        assert not r.ok and "not allowed" in r.error, (code, r)
    assert not marker.exists()


def test_socket_cannot_reach_a_listening_server():
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        for code in [f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)",
                     "import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM)"]:
            r = run_python(code)
            assert not r.ok and "network access is not allowed" in r.error, r
        with pytest.raises(TimeoutError):
            server.accept()  # nobody connected
    finally:
        server.close()


def test_write_to_the_home_directory_is_refused(tmp_path, monkeypatch):
    home = tmp_path / "home"; home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # the caller's home, here a throwaway one
    target = home / "pwned.txt"
    r = run_python(f"open({str(target)!r}, 'w').write('x')")
    assert not r.ok and "writing outside the working directory is not allowed" in r.error
    assert not target.exists()
    # inside the sandbox, ~ is its own temporary directory: writing there works and never reaches our home
    r = run_python("import os\np = os.path.expanduser('~/notes.txt')\nopen(p, 'w').write('mine')\nprint(p)")
    assert r.ok and not r.stdout.startswith(str(home))
    assert list(home.iterdir()) == []


def test_deleting_or_renaming_outside_is_refused(tmp_path):
    (tmp_path / "keep").mkdir(); (tmp_path / "keep" / "a.txt").write_text("a")
    for code in [f"import shutil; shutil.rmtree({str(tmp_path / 'keep')!r})",
                 f"import os; os.remove({str(tmp_path / 'keep' / 'a.txt')!r})",
                 f"import os; os.rename({str(tmp_path / 'keep' / 'a.txt')!r}, 'stolen.txt')",
                 f"import os; os.symlink('/etc', {str(tmp_path / 'link')!r})"]:
        r = run_python(code)
        assert not r.ok and "outside the working directory" in r.error, (code, r)
    assert (tmp_path / "keep" / "a.txt").read_text() == "a" and not (tmp_path / "link").exists()


def test_ctypes_cannot_reach_libc():
    r = run_python("import ctypes; ctypes.CDLL(None).fork()")
    assert not r.ok and "not allowed" in r.error


KERNEL_CHECKS = {  # layer -> (code, what the kernel answers) with the audit hook switched off
    "seccomp": [("import os; os.fork()", "Operation not permitted"), ("import socket; socket.socket()", "Operation not permitted"),
                ("import ctypes; assert ctypes.CDLL(None).fork() == -1, 'fork went through'", None)],
    "landlock": [("open(OUTSIDE, 'w')", "Permission denied"), ("import os; os.execv('/usr/bin/true', ['true'])", None)],
}


@pytest.mark.parametrize("layer", sorted(KERNEL_CHECKS))
def test_kernel_layers_hold_without_the_audit_hook(layer, tmp_path):
    if layer not in run_python("pass").guards:
        pytest.skip(f"the kernel of this machine does not offer {layer} (the audit hook still guards)")
    for code, message in KERNEL_CHECKS[layer]:
        r = run_python(code.replace("OUTSIDE", repr(str(tmp_path / "x"))), python_guard=False)
        if message: assert not r.ok and message in r.error, (code, r)
        else: assert r.ok or "Permission" in r.error, (code, r)  # the call failed inside: nothing ran
    assert not (tmp_path / "x").exists()


def test_output_is_bounded():
    r = run_python("print('x' * 10**6)\nprint('done')", max_output_bytes=2000)
    assert r.ok and r.truncated and len(r.stdout) == 2000


def test_the_environment_does_not_leak(monkeypatch):
    monkeypatch.setenv("NANOCHAT_TEST_SECRET", "hunter2")
    r = run_python("import os; print(sorted(os.environ))")
    assert "NANOCHAT_TEST_SECRET" not in r.stdout and "HOME" in r.stdout


def test_the_working_directory_is_removed_afterwards():
    r = run_python("import os; open('f.txt', 'w').write('x'); print(os.getcwd())")
    assert r.ok and not Path(r.stdout.strip()).exists()


def test_concurrent_runs_from_threads():
    results = {}
    def work(i): results[i] = run_python(f"print({i} * {i})").stdout
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert results == {i: f"{i * i}\n" for i in range(4)}


def test_bad_arguments_get_clear_errors():
    with pytest.raises(TypeError, match="str"): run_python(b"print(1)")
    with pytest.raises(ValueError, match="timeout"): run_python("pass", timeout=0)
    with pytest.raises(ValueError, match="memory_mb"): run_python("pass", memory_mb=8)


@pytest.mark.parametrize("expr,value", [("2 + 3", "5"), ("48 / 2", "24"), ("0.1 + 0.2", "0.3"), ("7 * 6.5", "45.5"),
                                        ("-(3 - 10) * 2", "14"), ("7 // 2 + 7 % 3", "4"), ("2**64", "18446744073709551616"),
                                        ("2 ** -1", "0.5"), ("10/3", "3.333333333"), ("1,000*2", "2000"), ("1,234,567 + 1", "1234568"),
                                        ("'strawberry'.count('r')", "3"), ("'a,b,c'.count(',')", "2"), (" 3 ", "3")])
def test_calculator_computes_arithmetic(expr, value):
    assert calculator(expr) == value


@pytest.mark.parametrize("expr", ["1/0", "5 % 0", "import os", "", "x + 1", "__import__('os').system('ls')", "abs(-2)",
                                  "(1).__class__", "'ab' * 3", "[1, 2][0]", "True + 1", "lambda: 1", "(-8) ** 0.5",
                                  "9**9**9", "2**100000", "10**400", "(10**200)*(10**200)", "1e308 * 10", "1" * 301,
                                  "'a'.count('a', 0)", "'a'.upper()", "'abc'.count(x)", "1 if 2 else 3", "1 +"])
def test_calculator_refuses_what_is_not_bounded_arithmetic(expr):
    assert calculator(expr) is None


def test_calculator_starts_no_process(monkeypatch):
    import subprocess
    monkeypatch.setattr(subprocess, "Popen", None)  # any process start would fail
    assert [calculator(f"{i} * 3") for i in range(2000)] == [str(3 * i) for i in range(2000)]
    assert calculator("2**1000", max_chars=50) is None and calculator("2**1000", max_chars=400) == str(2**1000)
