"""chat_sft across two "nodes" on 127.0.0.1 (one gloo process each, torchrun's c10d rendezvous, the speedrun's
--nnodes/--node-rank/--rdzv-endpoint parameters) equals one process accumulating the same total batch.
(base_train's two-node test is in test_speedrun.py.)"""
import json, os, socket, subprocess

import pytest

from nanochat.checkpoint import step_dir
from nanochat.common import read_metrics, stage_command
from nanochat.sft import finetune
from test_sft import FAST, chat_base, flags, losses  # noqa: F401  (chat_base is a fixture)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def test_chat_sft_on_two_nodes_equals_one(chat_base):
    run = dict(FAST, num_iterations=4, save_every=-1, init_lr_frac=0.3, eval_every=4)
    endpoint, env = f"127.0.0.1:{free_port()}", {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(stage_command("chat_sft", flags(run_name="nodes", tag="nodes", grad_accum=1, **run), 1, nnodes=2,
                                            node_rank=r, rdzv_endpoint=endpoint, rdzv_id="sft-nodes"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) for r in (0, 1)]
    one = finetune("chat_sft", run_name="one", tag="one", grad_accum=2, **run)
    outs = [n.communicate(timeout=600)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    two = losses("nodes", "chat_sft")
    assert sorted(two) == list(range(4))
    for s in range(4):  # the same conversations per step, split across the nodes: equal up to float rounding
        assert two[s] == pytest.approx(one["losses"][s], rel=1e-4), (s, two[s], one["losses"][s])
    val = {r["step"]: r["val_loss"] for r in read_metrics("nodes", "chat_sft") if "val_loss" in r}
    assert val[4] == pytest.approx(one["val_losses"][4], rel=1e-4)
    assert json.loads((step_dir("chat_sft", "nodes", 4) / "meta.json").read_text())["world_size"] == 2
