"""Lesson 05c: the report card assembled from stage sections, metrics.jsonl and stages.jsonl."""
import json

import pytest

from nanochat.common import get_run_dir, log_metrics, write_report_section
from nanochat.report import SUMMARY_ROWS, assemble_report, cost_lines, format_duration, section_table, summary_table, summary_values

SFT = {"arc_easy": 0.3876, "arc_challenge": 0.2807, "mmlu": 0.3151, "gsm8k": 0.0455, "humaneval": 0.0854}


def _rows(table: str) -> dict[str, list[str]]:
    lines = table.splitlines()
    assert lines[0] == "| Metric | BASE | MID | SFT | RL |"
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in l.strip("|").split("|")] for l in lines[2:] if l.startswith("|"))}


def _timings(run, rows):
    with open(get_run_dir(run) / "stages.jsonl", "w") as f:
        for stage, seconds, nproc in rows:
            f.write(json.dumps({"stage": stage, "seconds": seconds, "returncode": 0,
                                "command": ["python", "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", f"nanochat.{stage}"]}) + "\n")


def test_report_from_stage_sections_has_every_row_with_dashes_for_stages_that_did_not_run():
    run = "r"
    write_report_section(run, "preflight", "Environment", config={"gpus": "none", "torch": "2.x"})
    write_report_section(run, "base_eval", "Base model evaluation", metrics={"CORE": 0.2})
    write_report_section(run, "chat_eval_sft", "Chat evaluation (sft)", metrics={"GSM8K": 0.05})
    log_metrics(run, "base_eval", 100, core=0.2, core_tasks=14, val_bpb=1.1, train_bpb=1.0)
    log_metrics(run, "chat_eval", 50, source="sft", **SFT)
    text = assemble_report(run).read_text()
    rows = _rows(text.split("## Summary", 1)[1].strip().split("\n\n")[0])
    assert list(rows) == SUMMARY_ROWS
    assert rows["CORE"] == ["0.2000", "—", "—", "—"]
    assert rows["val bpb"] == ["1.1000", "—", "—", "—"]
    assert rows["GSM8K"] == ["—", "—", "0.0455", "—"]
    assert rows["ChatCORE"] == ["—", "—", "0.0884", "—"]  # computed from the five tasks: nanochat's SFT ChatCORE
    for name in ["ARC-Challenge", "ARC-Easy", "HumanEval", "MMLU"]:
        assert rows[name][0] == rows[name][1] == rows[name][3] == "—"
    assert "MID, RL: their stages did not run in this run" in text
    assert text.count("eval bundle") == 1 and "14 of 22 CORE tasks" in text
    assert "- Base model (step 100): train bpb 1.0000, val bpb 1.1000, CORE 0.2000 over 14 of 22 tasks" in text
    assert text.index("## Environment") < text.index("## Base model evaluation") < text.index("## Chat evaluation (sft)")


def test_tokenizer_compression_from_tok_train():
    log_metrics("t", "tok_train", 0, vocab_size=8192, val_chars_per_token=4.5, val_bytes_per_token=4.6)
    assert "- Tokenizer: 8,192 tokens, 4.50 characters (4.60 bytes) per token on validation text" in assemble_report("t").read_text()


def test_an_empty_run_gives_a_table_of_dashes():
    rows = _rows(summary_table("empty"))
    assert list(rows) == SUMMARY_ROWS and all(cells == ["—"] * 4 for cells in rows.values())
    assert "No stage timings" in assemble_report("empty").read_text()


def test_chat_evals_merge_per_model_and_the_latest_value_wins():
    log_metrics("m", "chat_eval", 1, source="mid", gsm8k=0.01)
    log_metrics("m", "chat_eval", 1, source="mid", mmlu=0.3)
    log_metrics("m", "chat_eval", 2, source="mid", gsm8k=0.02)
    log_metrics("m", "chat_eval", 2, source="rl", gsm8k=0.07, chatcore=0.1)
    values = summary_values("m")
    assert values["MID"] == {"GSM8K": 0.02, "MMLU": 0.3}
    assert values["RL"] == {"GSM8K": 0.07, "ChatCORE": 0.1}
    assert values["BASE"] == {} and values["SFT"] == {}


def test_wall_time_and_cost():
    run = "gpu"
    write_report_section(run, "preflight", "Environment", config={"gpus": "8 × NVIDIA H100 80GB HBM3"})
    _timings(run, [("preflight", 30.0, 8), ("base_train", 3 * 3600.0, 8), ("base_eval", 570.0, 8)])
    lines = cost_lines(run, gpu_hour_price=3.0)
    hours = (30 + 3 * 3600 + 570) / 3600
    assert lines[0] == f"Total wall-clock time: {format_duration(30 + 3 * 3600 + 570)} over 3 stages" == "Total wall-clock time: 3h10m over 3 stages"
    assert f"{8 * hours:.2f} GPU-hours × $3.00 = ${8 * hours * 3:.2f}" in lines[1]
    text = assemble_report(run, gpu_hour_price=2.5).read_text()
    assert f"${8 * hours * 2.5:.2f}" in text and "| base_train | 3h00m | 8 | 24.000 | $60.00 | ok |" in text
    assert f"| total | 3h10m |  | {8 * hours:.3f} | ${8 * hours * 2.5:,.2f} |  |" in text


def test_a_stage_run_again_is_listed_once_with_its_earlier_runs():
    run = "again"
    write_report_section(run, "preflight", "Environment", config={"gpus": "none"})
    _timings(run, [("preflight", 3.0, 1), ("chat_sft", 159.0, 1), ("chat_rl", 164.0, 1)])
    with open(get_run_dir(run) / "stages.jsonl", "a") as f:  # chat_sft fails once, then both are redone (force)
        for stage, seconds, code in [("chat_sft", 20.0, 1), ("chat_sft", 300.0, 0), ("chat_rl", 230.0, 0)]:
            f.write(json.dumps({"stage": stage, "seconds": seconds, "returncode": code, "command": []}) + "\n")
    text = assemble_report(run).read_text()
    assert "| chat_sft | 5m00s | 1 | ok; earlier: ok in 2m39s, failed (exit 1) in 20.0s |" in text, text
    assert "| chat_rl | 3m50s | 1 | ok; earlier: ok in 2m44s |" in text and text.count("| chat_sft |") == 1
    assert "| total | 8m53s |  |  |" in text, "the total counts each stage's latest run: 3 + 300 + 230 s"
    assert cost_lines(run)[0] == "Total wall-clock time: 8m53s over 3 stages (the latest run of each; 3 earlier runs took 5m43s more)"


def test_a_cpu_run_costs_no_gpu_time():
    write_report_section("cpu", "preflight", "Environment", config={"gpus": "none"})
    _timings("cpu", [("preflight", 3.0, 1)])
    assert cost_lines("cpu")[1] == "Estimated cost: no GPU was used (a CPU run)"


def test_loss_curves_are_plotted_from_metrics_with_whole_steps(monkeypatch):
    import sys
    from nanochat import report
    monkeypatch.setitem(sys.modules, "nanochat.plots", None)  # Panel is not needed (a bare GPU machine has none)
    for step in range(5):
        log_metrics("p", "base_train", step, loss=3.0 - step * 0.1)
    log_metrics("p", "base_train", 4, val_bpb=1.2)
    log_metrics("p", "chat_sft", 0, loss=2.0)
    text = assemble_report("p").read_text()
    assert "![loss_base_train](loss_base_train.png)" in text and "![loss_chat_sft](loss_chat_sft.png)" in text
    assert (get_run_dir("p") / "loss_base_train.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.figure import Figure
    saved = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, path, **kw: saved.append(fig))
    report.save_loss_png(report.read_metrics("p", "base_train"), "x.png")
    for ax in saved[0].axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_failed_stages_and_number_formats_keep_the_markdown_whole():
    write_report_section("n", "preflight", "Environment", config={"gpus": "none", "rustbpe": "/x/site-packages/rustbpe/__init__.py"},
                         metrics={"characters": 35952511, "tok_per_s": 21750.522, "mfu": 0.21594})
    with open(get_run_dir("n") / "stages.jsonl", "w") as f:
        f.write(json.dumps({"stage": "base_train", "seconds": 5.0, "returncode": 1, "command": ["--nproc_per_node=1"]}) + "\n")
    text = assemble_report("n").read_text()
    assert "| rustbpe | `/x/site-packages/rustbpe/__init__.py` |" in text
    assert "| characters | 35,952,511 |" in text and "| tok_per_s | 21,751 |" in text and "| mfu | 0.2159 |" in text
    assert "| base_train | 5.0s | 1 | failed (exit 1) |" in text
    tables, block = [], []
    for line in text.splitlines() + [""]:  # every row of every table has as many cells as the table's header
        if line.startswith("|"): block.append(line.replace("\\|", "").count("|"))
        elif block: tables.append(block); block = []
    assert tables and all(len(set(t)) == 1 for t in tables), tables


def test_section_tables_read_back():
    write_report_section("s", "preflight", "Environment", config={"gpus": "none", "cpu cores": 2})
    assert section_table((get_run_dir("s") / "report" / "preflight.md").read_text()) == {"gpus": "none", "cpu cores": "2"}
