"""Reports reach TensorBoard, W&B (offline) and the `edgewise` logger, read back from what
each one wrote. Reports come from a scripted client (test_monitor.py), so the expected
numbers are the script's."""

from __future__ import annotations

import io
import json
import logging
import sys
import time

import pytest

from edgewise.errors import SidecarTimeout
from edgewise.monitor import EdgewiseWarning
from test_monitor import ScriptedClient, make_monitor, report


class SteppedClient(ScriptedClient):
    """Echoes the round's training step into the report, as the sidecar does."""

    def run_round(self, oracle, **kwargs):
        return super().run_round(oracle, **kwargs) | {"step": kwargs["step"]}


def test_tensorboard_scalars_are_in_the_event_file(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monitor = make_monitor(SteppedClient([report(0.5), report(0.25)]), log_dir=tmp_path, tensorboard=True)
    monitor.round(lr=0.1, step=3)
    monitor.round(lr=0.1, step=7)
    monitor.close()
    (event_file,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    events = EventAccumulator(str(event_file)).Reload()
    eta = events.Scalars("edgewise/eta_star")
    assert [(e.step, e.value) for e in eta] == [(3, 0.5), (7, 0.25)]
    assert [e.value for e in events.Scalars("edgewise/lambda_gen")] == [4.0, 8.0]
    assert [e.value for e in events.Scalars("edgewise/margin")] == pytest.approx([0.2, 0.4])


def wandb_records(path):
    """The protobuf records of an offline run's ``.wandb`` file (a LevelDB-style log: a 7-byte
    ``:W&B`` header, then 32 KiB blocks of records with a 7-byte header each)."""
    from wandb.proto import wandb_internal_pb2 as pb

    raw = path.read_bytes()
    assert raw[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(raw):
        if block - pos % block < 7:  # block trailer
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(raw[pos + 4 : pos + 6], "little"), raw[pos + 6]
        pending += raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_wandb_offline_history_has_the_rounds_against_the_training_step(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(project="edgewise-test", dir=str(tmp_path), settings=wandb.Settings(console="off"))
    monitor = make_monitor(SteppedClient([report(0.5), SidecarTimeout("x"), report(0.25)]), wandb=run)
    monitor.round(lr=0.1, step=3)
    with pytest.warns(EdgewiseWarning):
        monitor.round(lr=0.1, step=5)  # missing: nothing logged
    monitor.round(lr=0.1, step=9)
    monitor.close()
    run.finish()

    (path,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    deadline = time.monotonic() + 30
    while True:  # W&B's service may still be writing the file when finish() returns
        records = list(wandb_records(path))
        rows = [{"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in rec.history.item}
                for rec in records if rec.WhichOneof("record_type") == "history"]
        if any(rec.WhichOneof("record_type") == "exit" for rec in records) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    ours = [r for r in rows if "edgewise/eta_star" in r]
    assert [(r["edgewise/step"], r["edgewise/eta_star"], r["edgewise/lambda_gen"]) for r in ours] == [(3, 0.5, 4.0), (9, 0.25, 8.0)]
    metrics = {rec.metric.glob_name or rec.metric.name: rec.metric.step_metric
               for rec in records if rec.WhichOneof("record_type") == "metric"}
    assert metrics.get("edgewise/*") == "edgewise/step"


def test_console_summaries_go_through_the_edgewise_logger():
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("edgewise")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)  # what the default handler sets when the program configured no logging
    try:
        monitor = make_monitor(ScriptedClient([report(0.5), SidecarTimeout("x")]), console=True)
        monitor.round(lr=0.1)
        with pytest.warns(EdgewiseWarning):
            monitor.round(lr=0.1)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert [r.levelno for r in records] == [logging.INFO, logging.WARNING]
    assert "η* 0.5" in records[0].getMessage() and "margin 0.200" in records[0].getMessage()
    assert "round skipped" in records[1].getMessage()


def test_the_first_round_shows_a_progress_bar_on_a_terminal_and_later_rounds_do_not(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    class OpsClient(ScriptedClient):
        def run_round(self, oracle, **kwargs):
            oracle.execute("random", {"r": 2, "seed": 0})  # one op through the progress wrapper
            return super().run_round(oracle, **kwargs)

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    monitor = make_monitor(OpsClient([report(0.5), report(0.5)]), console=True)
    monitor.round(lr=0.1)
    first = err.getvalue()
    monitor.round(lr=0.1)
    assert "edgewise: first round" in first
    assert err.getvalue().count("edgewise: first round") == first.count("edgewise: first round")
