"""The loss view of lesson 04 (nanochat/plots.py): live updates, replay from metrics.jsonl, PNG and HTML."""
from nanochat.common import log_metrics
from nanochat.plots import LossReplay, LossView, curves, write_loss_plots
from nanochat.report import save_loss_png


def _records():
    train = [dict(step=s, loss=5.0 - s / 10) for s in range(20)]
    val = [dict(step=s, val_bpb=3.0 - s / 20) for s in (0, 10, 19)]
    resumed = [dict(step=s, loss=9.0) for s in (16, 17)]  # a resumed run rewrote steps 16 and 17
    return train + val + resumed + [dict(step=19, samples=["The cat sat"])]


def test_curves_keep_the_latest_record_of_each_step():
    c = curves(_records())
    assert c["train"]["step"] == list(range(20))
    assert c["train"]["loss"][15:18] == [5.0 - 1.5, 9.0, 9.0]
    assert c["val"] == dict(step=[0, 10, 19], val_bpb=[3.0, 2.5, 3.0 - 19 / 20])


def test_live_view_streams_each_record():
    view = LossView("t", min_push_interval=0)
    for r in _records(): view.update(r)
    assert len(view.train.data["step"]) == 22 and view.val.data["val_bpb"][-1] == 3.0 - 19 / 20
    assert "step 19" in view.status.object and "val bpb 2.0500" in view.status.object
    assert "The cat sat" in view.samples.object
    assert view.panel() is not None


def test_replay_from_the_run_log_and_scrub():
    for r in _records(): log_metrics("r", "base_train", **r)
    log_metrics("r", "other_stage", 3, loss=123.0)
    replay = LossReplay.from_run("r")
    assert replay.train.data["loss"][16] == 9.0 and 123.0 not in replay.train.data["loss"]
    replay.player.value = 10  # the player drives show_until
    assert replay.train.data["step"][-1] == 10 and replay.val.data["step"] == [0, 10]
    replay.show_until(19)
    assert len(replay.train.data["step"]) == 20


def test_png_and_html(tmp_path):
    png = save_loss_png(_records(), tmp_path / "x" / "loss.png", title="t")  # the report's picture (lesson 05c)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    for r in _records(): log_metrics("r", "base_train", **r)
    html = write_loss_plots("r")
    assert html.name == "base_train_loss.html" and not list(html.parent.glob("*.png")), "the PNG is the report's to draw, once"
    text = html.read_text()
    assert "<html" in text.lower() and "Bokeh" in text and "The cat sat" in text
