"""The chat CLI in a real pseudo-terminal (pexpect): line editing and history with the arrow keys, Ctrl-C that
stops a reply, Ctrl-C and Ctrl-D that leave with exit code 0 and no traceback, the slash commands, and the
smoke pipeline's trained model answering in the terminal."""
import os, sys
from pathlib import Path

import pexpect
import pytest

REPO = Path(__file__).resolve().parents[1]
UP, LEFT = "\x1b[A", "\x1b[D"  # the keys as a terminal sends them (VT100 cursor keys)
PROMPT = "You: "

# The untrained model answers in well under a second: to press Ctrl-C *while* a reply streams, this wrapper
# runs the real CLI with every generated token held back 50 ms (the model, the service and the CLI unchanged).
SLOW = """
import runpy, sys, time
from nanochat.engine import Engine
generate = Engine.generate
def slow(self, *args, **kwargs):
    for step in generate(self, *args, **kwargs): time.sleep(0.05); yield step
Engine.generate = slow
sys.argv = ["chat_cli", *sys.argv[1:]]
runpy.run_module("nanochat.chat_cli", run_name="__main__", alter_sys=True)
"""


def spawn(args: list[str], base_dir: Path, slow: bool = False) -> pexpect.spawn:
    "The chat CLI in a pseudo-terminal, 100 columns wide; everything it shows is copied to this test's output."
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(base_dir), "OMP_NUM_THREADS": "1", "TERM": "xterm", "PYTHONUNBUFFERED": "1"}
    argv = ["-c", SLOW, *args] if slow else ["-m", "nanochat.chat_cli", *args]
    child = pexpect.spawn(sys.executable, argv, cwd=str(REPO), env=env, encoding="utf-8", timeout=120, dimensions=(40, 100))
    child.logfile_read = sys.stdout
    return child


def finish(child: pexpect.spawn) -> tuple[int, str]:
    "Wait for the CLI to exit: (exit code, what the screen showed last)."
    child.expect(pexpect.EOF)
    child.close()
    assert child.signalstatus is None, f"the CLI died of signal {child.signalstatus}"
    return child.exitstatus, child.before


def test_usage_line_shows_dash_p(base_dir):
    child = spawn(["--help"], base_dir)
    code, screen = finish(child)
    assert code == 0 and "[-p PROMPT]" in screen.split("\n\n")[0], screen


def test_slash_commands_never_reach_the_model(base_dir):
    "/help, an unknown /word, /clear and /quit are the CLI's own: no reply starts for them; a message gets one."
    child = spawn(["--source", "random", "--max-tokens", "4", "--seed", "0"], base_dir)
    child.expect(PROMPT)
    def say(line: str) -> str:
        "Send a line; what the screen shows until the next prompt."
        child.sendline(line)
        child.expect_exact(PROMPT)
        return child.before
    shown = say("/help")
    assert all(c in shown for c in ("/help", "/clear", "/quit")) and "nanochat: " not in shown, shown
    shown = say("/frobnicate")
    assert "unknown command /frobnicate" in shown and "nanochat: " not in shown, shown
    assert "nanochat: " in say("Hello")
    shown = say("/clear")
    assert "[new conversation]" in shown and "nanochat: " not in shown, shown
    child.sendline("/quit")
    code, screen = finish(child)
    assert code == 0 and "Traceback" not in screen and "nanochat: " not in screen


def test_arrow_keys_edit_the_line_and_recall_history_across_sessions(base_dir):
    "Left arrow moves the cursor to fix a typo; in a new session the up arrow brings back the last line."
    child = spawn(["--source", "random", "--max-tokens", "4"], base_dir)
    child.expect(PROMPT)
    child.send("/zbra" + LEFT * 3 + "e\r")  # cursor back before 'b', type the missing 'e': /zebra
    child.expect_exact("unknown command /zebra")
    child.expect(PROMPT)
    child.send(UP + "\r")  # the same session: up recalls /zebra
    child.expect_exact("unknown command /zebra")
    child.expect(PROMPT)
    child.sendeof()  # Ctrl-D at the prompt
    code, screen = finish(child)
    assert code == 0 and "Traceback" not in screen
    assert "/zebra" in (base_dir / "chat_cli_history").read_text()

    child = spawn(["--source", "random", "--max-tokens", "4"], base_dir)
    child.expect(PROMPT)
    child.send(UP + "\r")
    child.expect_exact("unknown command /zebra")
    child.expect(PROMPT)
    child.sendintr()  # Ctrl-C at the prompt also leaves, cleanly
    code, screen = finish(child)
    assert code == 0 and "Traceback" not in screen and "KeyboardInterrupt" not in screen


def test_ctrl_c_stops_the_reply_and_the_chat_goes_on(base_dir):
    "Ctrl-C mid-reply: the reply stops, the prompt comes back, the next message is answered, and Ctrl-D exits 0."
    child = spawn(["--source", "random", "--max-tokens", "200", "--temperature", "0", "--no-history"], base_dir, slow=True)
    child.expect(PROMPT)
    child.sendline("Tell me a long story")
    child.expect_exact("nanochat: ")
    child.expect(r"\S")  # the reply has started streaming (greedy, this model never stops on its own before 200 tokens)
    child.sendintr()
    child.expect_exact("[stopped]")
    child.expect(PROMPT)
    child.sendline("/clear")
    child.expect_exact("[new conversation]")
    child.expect(PROMPT)
    child.sendline("And another")
    child.expect_exact("nanochat: ")
    child.expect(r"\S")
    child.sendintr()
    child.expect_exact("[stopped]")
    child.expect(PROMPT)
    child.sendeof()
    code, screen = finish(child)
    assert code == 0, screen
    assert "Traceback" not in child.before and "terminate called" not in child.before


def test_ctrl_c_during_a_one_shot_answer_exits_130_quietly(base_dir):
    child = spawn(["--source", "random", "--max-tokens", "200", "--temperature", "0", "-p", "Hi"], base_dir, slow=True)
    child.expect(r"\S")
    child.sendintr()
    child.expect_exact("[stopped]")
    code, screen = finish(child)
    assert code == 130 and "Traceback" not in screen and "terminate called" not in screen


def test_the_trained_model_chats_in_the_terminal(smoke_base):
    "The smoke pipeline's model in a terminal: its greedy answer (as the service gives it) appears on the screen."
    from nanochat.checkpoint import available_models, load_model
    from nanochat.engine import Engine
    from nanochat.serving import ChatService
    best = available_models()[0]
    model, tok, _ = load_model(best)
    expected = ChatService([Engine(model.eval(), tok)]).complete([{"role": "user", "content": "Hi"}], max_tokens=8, temperature=0).text
    child = spawn(["--max-tokens", "8", "--temperature", "0", "--no-history"], smoke_base)
    child.expect(rf"nanochat \(nanochat-{best}-step\d+\)")
    child.expect(PROMPT)
    child.sendline("Hi")
    child.expect_exact("nanochat: ")
    child.expect(PROMPT)
    shown = child.before.replace("\r\n", "\n")
    assert expected.strip() in shown, f"expected the greedy reply {expected!r} on the screen, it showed {shown!r}"
    child.sendeof()
    code, _ = finish(child)
    assert code == 0
    assert not (smoke_base / "chat_cli_history").exists()  # --no-history writes nothing


def test_int8_answers_as_the_int8_model_does(smoke_base):
    "--int8: the CLI serves lesson 06's int8 copy of the trained model (its greedy answer, exactly) and prints its size."
    import subprocess
    from nanochat.checkpoint import available_models, load_model
    from nanochat.engine import Engine, quantize_int8
    from nanochat.serving import ChatService
    model, tok, _ = load_model(available_models()[0])
    small = quantize_int8(model.eval())
    expected = ChatService([Engine(small, tok)]).complete([{"role": "user", "content": "Hi"}], max_tokens=8, temperature=0).text
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(smoke_base), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "nanochat.chat_cli", "--int8", "-p", "Hi", "--max-tokens", "8", "--temperature", "0",
                          "--device-type", "cpu"], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout == expected + "\n"
    assert "int8 weights:" in out.stderr and "nanochat-" in out.stderr, out.stderr
