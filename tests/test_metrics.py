"""Metrics: log.jsonl survives a torn line, sinks are closed at the end of a run, a full disk costs one write."""

import errno
import json
import signal

from gpt.config import resolve
from gpt.metrics import Metrics, guarded
from gpt.train import Trainer


def test_records_pass_over_a_torn_line_and_close_calls_every_closer(tmp_path):
    metrics = Metrics(tmp_path, resolve(preset="tiny"), warn=print)
    metrics.log({"step": 1, "loss": 2.0})
    with open(tmp_path / "log.jsonl", "a") as fh:
        fh.write('{"step": 2, "lo')
    assert metrics.records() == [{"step": 1, "loss": 2.0}]
    closed = []
    metrics.closers.append(lambda: closed.append(True))
    metrics.close()
    assert closed == [True] and metrics.closers == []


def test_a_full_disk_costs_one_write():
    warnings = []

    def full():
        raise OSError(errno.ENOSPC, "No space left on device")
    assert guarded("loss.png", full, warnings.append) is False
    assert "could not write loss.png: No space left on device" in warnings[0]


def test_a_run_logs_flops_per_second_and_gives_the_signal_handlers_back(corpus_file, tmp_path):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    cfg = resolve(preset="tiny", overrides={"data.input": [str(corpus_file)], "train.max_iters": 5,
                                            "data.qa": "off"})
    Trainer(cfg, tmp_path / "run", progress=False, log=lambda *a: None).run()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    first = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert first["flops_per_s"] > 0 and "mfu" not in first
