import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gpt.config import resolve
from gpt.model import GPT
from gpt.optim import WeightAverage, build_optimizers, lr_multiplier, regulariser_strength, set_regulariser
from gpt.train import Trainer, TrainError

from .conftest import TINY, kill_after, losses, run_gpt


def train_args(corpus, out, *extra):
    return ["train", *TINY, "--input", str(corpus), "--out", str(out), "--train.log_interval", "1", *extra]


def test_loss_falls_and_run_dir_is_complete(corpus_file, tmp_path):
    run = tmp_path / "run"
    proc = run_gpt(*train_args(corpus_file, run, "--train.max_iters", "60"), check=True)
    assert "val loss" in proc.stdout
    for name in ("model.safetensors", "best.safetensors", "tokenizer.json", "config.toml", "log.jsonl"):
        assert (run / name).exists(), name
    seen = losses(run)
    assert seen[60] < seen[1] - 1.0  # from ~log(300) = 5.7 to well below


def test_resume_after_sigkill_equals_uninterrupted(corpus_file, tmp_path):
    common = ("--train.max_iters", "400", "--train.ckpt_interval", "25", "--train.eval_interval", "1000",
              "--train.precision", "fp32", "--model.dropout", "0.1", "--model.drop_path", "0.2",  # RNG in the step
              "--train.regularise_after", "1")  # and the regulariser rising after the resume (about 4 passes in all)
    straight = tmp_path / "straight"
    run_gpt(*train_args(corpus_file, straight, *common), check=True)

    killed = tmp_path / "killed"
    kill_after(train_args(corpus_file, killed, *common), killed / "checkpoints" / "step-00000050")
    assert not (killed / "checkpoints" / "step-00000400").exists()
    resumed = run_gpt(*train_args(corpus_file, killed, *common), check=True)
    assert "resume: continuing from" in resumed.stdout
    a, b = losses(straight), losses(killed)
    assert sorted(b) == list(range(1, 401))
    assert [a[s] for s in range(1, 401)] == [b[s] for s in range(1, 401)]  # bit-identical, not close
    averages = [torch.load(run / "checkpoints" / "step-00000400" / "state.pt", weights_only=True)["average"]
                for run in (straight, killed)]  # the weights' moving average went on from the checkpoint too
    assert averages[0]["weight"] == averages[1]["weight"] > 0.9
    assert all(torch.equal(x, y) for x, y in zip(averages[0]["average"], averages[1]["average"]))
    from gpt.checkpoint import read_weights
    kept = [read_weights(run / "model.safetensors") for run in (straight, killed)]  # the header's order may differ
    assert all(torch.equal(kept[0][name], kept[1][name]) for name in kept[0])


def test_other_config_refuses_to_resume(corpus_file, tmp_path):
    run = tmp_path / "run"
    run_gpt(*train_args(corpus_file, run, "--train.max_iters", "10"), check=True)
    proc = run_gpt(*train_args(corpus_file, run, "--train.max_iters", "10", "--model.n_layer", "3"))
    assert proc.returncode == 2
    assert "another config" in proc.stderr and "model.n_layer: 2 -> 3" in proc.stderr
    assert "Traceback" not in proc.stderr
    fresh = run_gpt(*train_args(corpus_file, run, "--train.max_iters", "10", "--model.n_layer", "3", "--fresh"))
    assert fresh.returncode == 0, fresh.stderr


def test_corrupt_checkpoint_falls_back(corpus_file, tmp_path):
    run = tmp_path / "run"
    run_gpt(*train_args(corpus_file, run, "--train.max_iters", "20"), check=True)
    newest = sorted((run / "checkpoints").glob("step-*"))[-1]
    state = newest / "state.pt"
    state.write_bytes(state.read_bytes()[:100])  # truncated
    proc = run_gpt(*train_args(corpus_file, run, "--train.max_iters", "30"), check=True)
    assert "damaged" in proc.stdout and "falling back" in proc.stdout
    assert "continuing from" in proc.stdout and "step-00000010" in proc.stdout


def test_nan_stops_and_keeps_the_good_checkpoint(corpus_file, tmp_path, monkeypatch):
    cfg = resolve(preset="tiny", overrides={"data.input": [str(corpus_file)], "train.max_iters": 40,
                                            "train.ckpt_interval": 5})
    trainer = Trainer(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    real_step = trainer.train_step
    monkeypatch.setattr(trainer, "train_step", lambda: float("nan") if trainer.step >= 12 else real_step())
    with pytest.raises(TrainError, match="loss became nan at step 13.*step-00000010") as err:
        trainer.run()
    assert err.value.code == 3
    from safetensors.torch import load_file
    weights = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values())


def test_sigterm_saves_and_exits_130(corpus_file, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "gpt", *train_args(corpus_file, run, "--train.max_iters", "100000",
                                                                      "--train.ckpt_interval", "100000")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "log.jsonl").exists() or len((run / "log.jsonl").read_text().splitlines()) < 5:
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    newest = sorted((run / "checkpoints").glob("step-*"))[-1]
    assert int(newest.name.split("-")[1]) == max(losses(run))  # saved at the step it stopped


@pytest.mark.parametrize("schedule", ["cosine", "wsd", "constant"])
def test_schedule_shapes(schedule):
    cfg = resolve(overrides={"train.schedule": schedule, "train.warmup_iters": 10, "train.max_iters": 100,
                             "train.min_lr_ratio": 0.1, "train.decay_fraction": 0.2})
    lrs = [lr_multiplier(cfg, s, s / 100) for s in range(101)]
    flat = resolve(overrides={"train.schedule": "constant", "train.warmup_iters": 10})
    warm = [lr_multiplier(flat, s, s / 100) for s in range(12)]
    assert warm[0] == pytest.approx(1 / 11) and warm[9] == pytest.approx(10 / 11) and warm[11] == 1.0  # linear
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))  # warmup multiplies the schedule
    assert max(lrs) == pytest.approx(1.0)
    if schedule == "cosine":
        assert lrs[10] == 1.0 and lrs[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
        assert lrs[100] == pytest.approx(0.1)
    elif schedule == "wsd":
        assert lrs[80] == 1.0 and lrs[100] == pytest.approx(0.1)
        assert lrs[91] == pytest.approx(0.1 + 0.9 * (1 - (0.9 - 0.8) / 0.2))  # linear decay over the last 20%
    else:
        assert lrs[100] == 1.0


def test_time_budget_stops_on_time(corpus_file, tmp_path):
    start = time.time()
    run_gpt(*train_args(corpus_file, tmp_path / "run", "--train.max_iters", "10000000", "--train.max_time", "4s"),
            check=True)
    assert time.time() - start < 60
    records = losses(tmp_path / "run")
    assert 10 < max(records) < 10_000_000


def test_ddp_two_gloo_processes_equal_one(corpus_file, tmp_path):
    common = ("--train.max_iters", "8", "--train.batch_size", "8", "--train.precision", "fp32", "--data.qa", "off",
              "--train.eval_interval", "1000", "--train.ckpt_interval", "1000", "--train.sample_tokens", "0")
    single = tmp_path / "single"
    run_gpt(*train_args(corpus_file, single, *common), check=True)
    ddp = tmp_path / "ddp"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29517", "-m", "gpt", *train_args(corpus_file, ddp, *common)],
                          capture_output=True, text=True, timeout=300, env=env)
    # judged by the result, not the exit: gloo sometimes aborts at exit after the work is done
    assert (ddp / "log.jsonl").exists(), proc.stderr[-2000:]
    assert "processes 2" in proc.stdout
    a, b = losses(single), losses(ddp)
    assert sorted(b) == list(range(1, 9))
    for step in range(1, 9):
        assert b[step] == pytest.approx(a[step], rel=1e-4, abs=1e-4), step


DDP_TIME_BUDGET_SCRIPT = """
import hashlib, json, os, sys
from gpt.config import resolve
from gpt.train import Trainer
corpus, out = sys.argv[1], sys.argv[2]
cfg = resolve(preset="tiny", overrides={"data.input": [corpus], "data.qa": "off", "train.device": "cpu",
    "train.precision": "fp32", "train.max_iters": 10**7, "train.max_time": 3.0, "train.eval_interval": 10**6,
    "train.ckpt_interval": 10**6, "train.sample_tokens": 0})
trainer = Trainer(cfg, out, progress=False, log=lambda *a: None)
trainer.run()
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in trainer.model.parameters())).hexdigest()
with open(os.path.join(out, "rank" + os.environ["RANK"] + ".json"), "w") as fh:
    json.dump({"step": trainer.step, "elapsed": trainer.elapsed, "weights": digest}, fh)
"""


def test_ddp_time_budget_keeps_the_processes_together(corpus_file, tmp_path):
    # Each process's clock differs a little: the lr (a function of elapsed time) and the last step must still be
    # the same on every rank, or the replicas drift apart and one rank waits for a step the other never takes.
    script = tmp_path / "ddp_budget.py"
    script.write_text(DDP_TIME_BUDGET_SCRIPT)
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29519", str(script), str(corpus_file), str(out)],
                          capture_output=True, text=True, timeout=180, env=env)
    ranks = [out / "rank0.json", out / "rank1.json"]
    assert all(r.exists() for r in ranks), proc.stderr[-2000:]  # judged by the result, not gloo's exit
    first, second = (json.loads(r.read_text()) for r in ranks)
    assert first["step"] == second["step"] > 10
    assert first["elapsed"] == second["elapsed"] >= 3.0
    assert first["weights"] == second["weights"]


def test_full_disk_keeps_the_previous_checkpoint(corpus_file, tmp_path, monkeypatch):
    import errno

    import gpt.checkpoint as ckpt
    cfg = resolve(preset="tiny", overrides={"data.input": [str(corpus_file)], "train.max_iters": 20,
                                            "train.ckpt_interval": 10, "train.eval_interval": 1000})
    messages = []
    trainer = Trainer(cfg, tmp_path / "run", progress=False, log=messages.append)
    real_save_file = ckpt.save_file

    def disk_fills_after_step_10(tensors, filename, metadata=None):
        if trainer.step <= 10:
            return real_save_file(tensors, filename, metadata=metadata)
        with open(filename, "wb") as fh:  # a partial write, then the disk is full
            fh.write(b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", disk_fills_after_step_10)
    with open(tmp_path / "run" / "log.jsonl", "a") as fh:
        fh.write('{"step": 0, "lo')  # an append the full disk cut short: the loss plot must pass over it
    with pytest.raises(TrainError, match="No space left on device; the last intact checkpoint is step-00000010"):
        trainer.run()  # the run outlives the failed save; as it was the last one, it says so (exit 1)
    assert any("could not write a checkpoint at step 20: No space left on device" in m for m in messages)
    run = tmp_path / "run"
    good = ckpt.Checkpointer(run).latest_good()
    assert good is not None and good.name == "step-00000010" and ckpt.verify_checkpoint(good) is None
    assert not list((run / "checkpoints").glob(".tmp-*")) and not list(run.glob(".*.tmp"))
    model, _, _ = ckpt.load_run(run)  # model.safetensors is still the intact step-10 file
    from gpt.checkpoint import read_weights
    step10 = read_weights(str(good / "model.safetensors"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in step10.items())


def test_fine_tune_from_a_run_and_from_its_hugging_face_export(corpus_file, tmp_path):
    pytest.importorskip("transformers")
    base = tmp_path / "base"
    run_gpt(*train_args(corpus_file, base, "--train.max_iters", "40"), check=True)
    new_text = tmp_path / "new.txt"
    new_text.write_text("Monstera deliciosa likes bright, indirect light and a chunky, airy soil mix. " * 80)
    args = ("--input", str(new_text), "--train.max_iters", "3", "--train.precision", "fp32")
    tuned = tmp_path / "tuned"
    refused = run_gpt("train", *TINY, "--out", str(tuned), "--init-from", str(base), *args, "--model.n_layer", "5")
    assert refused.returncode == 2 and "--model.n_layer 5 conflicts with --init-from" in refused.stderr
    assert not (tuned / "model.safetensors").exists()
    proc = run_gpt("train", *TINY, "--out", str(tuned), "--init-from", str(base), "--train.log_interval", "1", *args,
                   check=True)
    assert "init: weights from" in proc.stdout and "2 layers" in proc.stdout
    assert (tuned / "tokenizer.json").read_text() == (base / "tokenizer.json").read_text()
    fresh = tmp_path / "fresh"
    run_gpt("train", *TINY, "--out", str(fresh), "--train.log_interval", "1", *args, check=True)
    assert losses(tuned)[1] < losses(fresh)[1] - 0.5  # it starts from what base learned

    hf_dir = tmp_path / "hf"
    run_gpt("export", "--out", str(base), "--format", "hf", "--to", str(hf_dir), check=True)
    from_hf = tmp_path / "from_hf"
    run_gpt("train", *TINY, "--out", str(from_hf), "--init-from", str(hf_dir), "--train.log_interval", "1", *args,
            check=True)
    a, b = losses(tuned), losses(from_hf)
    assert all(b[s] == pytest.approx(a[s], abs=1e-4) for s in (1, 2, 3))  # the same weights, the same run


@pytest.mark.parametrize("floor", [1, "more"])
def test_epoch_cap_ends_the_run_after_that_many_passes_or_the_minimum_steps(corpus_file, tmp_path, monkeypatch,
                                                                            floor):
    """A run ends after max_epochs passes over the text, unless that is fewer than optim.MIN_CAPPED_STEPS steps
    (a tiny notes folder makes its passes in a step or two): then it makes those steps."""
    import gpt.optim
    cfg = resolve(preset="tiny", overrides={"data.input": [str(corpus_file)], "train.max_iters": 100000,
                                            "train.max_epochs": 0.5, "train.eval_interval": 100000,
                                            "train.ckpt_interval": 100000, "train.sample_tokens": 0})
    passes = math.ceil(0.5 * Path(corpus_file).stat().st_size / 256)  # more than the passes take (token >= byte)
    monkeypatch.setattr(gpt.optim, "MIN_CAPPED_STEPS", 1 if floor == 1 else passes + 7)
    trainer = Trainer(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    trainer.run()
    expected = math.ceil(0.5 * len(trainer.data.train) / trainer.tokens_per_step)
    assert trainer.step == (expected if floor == 1 else passes + 7) and trainer.progress_fraction() >= 1.0


@pytest.mark.parametrize("last_is_better", [False, True])
def test_model_file_holds_the_best_evaluated_weights(corpus_file, tmp_path, monkeypatch, last_is_better):
    from gpt.checkpoint import read_weights
    cfg = resolve(preset="tiny", overrides={"data.input": [str(corpus_file)], "train.max_iters": 20,
                                            "train.eval_interval": 10, "train.sample_tokens": 0})
    messages = []
    trainer = Trainer(cfg, tmp_path / "run", progress=False, log=messages.append)
    val = {10: 2.0, 20: 1.0} if last_is_better else {10: 1.0, 20: 2.0}  # an overfitting run: worse at the end
    monkeypatch.setattr(trainer, "evaluate", lambda: {"val_loss": val[trainer.step], "val_bpb": val[trainer.step] / 2})
    result = trainer.run()
    run = tmp_path / "run"
    chosen = read_weights(run / "model.safetensors")
    step = 20 if last_is_better else 10
    at_step = read_weights(run / "checkpoints" / f"step-{step:08d}" / "model.safetensors")
    assert chosen.keys() == at_step.keys() and all(torch.equal(chosen[k], at_step[k]) for k in chosen)
    assert result["val_loss"] == 1.0 and result["step"] == step
    if not last_is_better:
        assert result["last_val_loss"] == 2.0 and result["last_step"] == 20
        assert any("the best weights, from step 10" in m for m in messages)
        assert trainer.checkpointer.latest_good().name == "step-00000020"  # resuming continues from the last step


def test_a_run_trained_to_answer_keeps_the_weights_that_answer(corpus_file, tmp_path, monkeypatch):
    """Text and derived questions: weights that predict the text a little better but answer far worse are not the
    best ones (evaluate.held_out_loss weighs both as the last batches mix them)."""
    from gpt.checkpoint import read_weights
    from gpt.evaluate import held_out_loss
    cfg = resolve(preset="tiny", overrides={"data.input": [str(corpus_file)], "train.max_iters": 30,
                                            "train.eval_interval": 10, "train.sample_tokens": 0,
                                            "data.chat_weight": 0.5, "data.chat_weight_decay": -1})
    trainer = Trainer(cfg, tmp_path / "run", progress=False, log=lambda *a: None, explicit={"data.chat_weight"})
    assert trainer.chat_conversations and trainer.chat_share_at_end == 0.5  # the built-in text derives questions
    val = {10: (1.0, 3.0), 20: (1.1, 0.5), 30: (1.3, 0.6)}  # (text, conversations): the text alone says step 10
    monkeypatch.setattr(trainer, "evaluate", lambda: {"val_loss": val[trainer.step][0], "val_bpb": 1.0,
                                                      "val_chat_loss": val[trainer.step][1]})
    result = trainer.run()
    assert result["step"] == 20 and result["last_step"] == 30
    run = tmp_path / "run"
    chosen, at_20 = (read_weights(run / f)
                     for f in ("model.safetensors", "checkpoints/step-00000020/model.safetensors"))
    assert all(torch.equal(chosen[k], at_20[k]) for k in at_20)
    assert held_out_loss({"val_loss": 1.0, "val_chat_loss": 3.0}, 0.25) == 1.5
    assert held_out_loss({"val_loss": 1.0}, 0.25) == 1.0  # text alone


def test_weight_average_is_the_bias_corrected_moving_average_of_the_trainable_weights():
    model = torch.nn.Linear(2, 1, bias=True)
    model.bias.requires_grad_(False)  # frozen, as a base weight under LoRA: not averaged
    average = WeightAverage(model, 0.5)
    history = [torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 6.0]]), torch.tensor([[5.0, 4.0]])]
    for w in history:
        with torch.no_grad():
            model.weight.copy_(w)
        average.update()
    coefficients = [0.5 * 0.5 * 0.5, 0.5 * 0.5, 0.5]  # (1 - d) d^(n - 1 - i), over their sum (1 - d^n)
    expected = sum(c * w for c, w in zip(coefficients, history)) / sum(coefficients)
    assert len(average.params) == 1 and average.weight == sum(coefficients)
    held = average.swap()
    assert torch.allclose(model.weight, expected) and torch.equal(held[0], history[-1])
    average.swap(held)
    assert torch.equal(model.weight, history[-1])
    again = WeightAverage(model, 0.5)
    again.load_state_dict(average.state_dict())
    assert again.weight == average.weight and torch.equal(again.average[0], average.average[0])
    other = WeightAverage(model, 0.9)
    other.load_state_dict(average.state_dict())  # another decay: starts afresh
    assert other.weight == 0.0
    assert WeightAverage(model, 0.0).params == []  # off


@pytest.mark.parametrize("average_is_better", [True, False])
def test_the_weights_average_is_kept_if_it_validates_better(corpus_file, tmp_path, monkeypatch, average_is_better):
    from gpt.checkpoint import read_weights
    cfg = resolve(preset="tiny", overrides={"data.input": [str(corpus_file)], "train.max_iters": 20,
                                            "train.eval_interval": 10, "train.sample_tokens": 0})
    trainer = Trainer(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    losses_by_call = iter([2.0, 1.5, 1.0 if average_is_better else 1.7])  # step 10, step 20, the average at 20
    monkeypatch.setattr(trainer, "evaluate", lambda: {"val_loss": (v := next(losses_by_call)), "val_bpb": v / 2})
    result = trainer.run()
    run = tmp_path / "run"
    chosen, last = (read_weights(run / f) for f in ("model.safetensors", "checkpoints/step-00000020/model.safetensors"))
    averaged = dict(zip((n for n, p in trainer.model.named_parameters() if p.requires_grad),
                        (a / trainer.average.weight for a in trainer.average.average)))
    assert result["step"] == 20 and result.get("weights") == ("averaged" if average_is_better else None)
    if average_is_better:
        assert all(torch.allclose(chosen[n], w) for n, w in averaged.items() if n in chosen)
        assert not all(torch.equal(chosen[n], last[n]) for n in last)  # the checkpoint keeps the last step's
    else:
        assert all(torch.equal(chosen[n], last[n]) for n in last)


def test_best_weights_are_used_only_if_the_file_holds_the_recorded_step(tmp_path):
    from gpt.checkpoint import save_weights, use_best_weights
    model = GPT(resolve(preset="tiny").model.__class__(vocab_size=300, block_size=8, n_layer=1, n_head=1, n_embd=8))
    save_weights(model, tmp_path / "model.safetensors", {"step": "20"})
    last = (tmp_path / "model.safetensors").read_bytes()
    torch.nn.init.zeros_(model.lm_head.weight)
    save_weights(model, tmp_path / "best.safetensors", {"step": "30"})  # newer than the record: a resumed run
    with pytest.raises(OSError, match="holds step 30, not the best evaluated step 10"):
        use_best_weights(tmp_path, 10)
    assert (tmp_path / "model.safetensors").read_bytes() == last
    use_best_weights(tmp_path, 30)
    assert (tmp_path / "model.safetensors").read_bytes() == (tmp_path / "best.safetensors").read_bytes()


def test_a_tokenizer_that_comes_up_short_still_gives_a_usable_run(tmp_path):
    text = tmp_path / "repetitive.txt"
    text.write_text("the cat sat on the mat. " * 400)  # too few distinct pairs for 300 tokens
    run = tmp_path / "run"
    proc = run_gpt("train", *TINY, "--input", str(text), "--out", str(run), "--train.max_iters", "4", check=True)
    assert "tokenizer: 2" in proc.stdout  # fewer tokens than the 300 asked for
    out = run_gpt("generate", "the", "--out", str(run), "--max-new-tokens", "4", "--seed", "1")
    assert out.returncode == 0, out.stderr


def test_the_step_weighs_every_target_token_the_same_across_micro_batches(corpus_file, tmp_path):
    cfg = resolve(preset="tiny", overrides={"data.input": [str(corpus_file)], "train.grad_accum": 2,
                                            "train.precision": "fp32", "data.qa": "off", "train.grad_clip": 0.0})
    trainer = Trainer(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    torch.manual_seed(0)
    x = torch.randint(0, 300, (2, 8, 32))
    y = torch.randint(0, 300, (2, 8, 32))
    y[0, :, 4:] = -1  # the first micro-batch scores 4 tokens a row, the second all 32
    batches = iter([(x[0], y[0]), (x[1], y[1])])
    trainer.batches = type("Fixed", (), {"next": lambda self: next(batches)})()
    model = trainer.model
    _, pooled = model(torch.cat([x[0], x[1]]), torch.cat([y[0], y[1]]))  # the mean over every scored token
    expected = torch.autograd.grad(pooled, [p for p in model.parameters() if p.requires_grad])
    seen = {}
    opt = trainer.optimizers[0]
    real_step = opt.step
    opt.step = lambda *a, **k: (seen.setdefault("grads", [p.grad.clone() for g in opt.param_groups
                                                           for p in g["params"]]), real_step(*a, **k))[1]
    loss = trainer.train_step()
    assert loss == pytest.approx(pooled.item(), rel=1e-5)
    by_id = {id(p): e for p, e in zip([p for p in model.parameters() if p.requires_grad], expected)}
    order = [by_id[id(p)] for g in opt.param_groups for p in g["params"]]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(seen["grads"], order))
    trainer.close()


def test_only_rank_0_puts_the_best_weights_in_place(tmp_path):
    """A resumed DDP run restores best_record on every rank (state.pt is shared): the other ranks must not copy
    best.safetensors too, racing rank 0 on the same temporary file."""
    from types import SimpleNamespace

    from gpt.checkpoint import save_weights
    model = GPT(resolve(preset="tiny").model.__class__(vocab_size=300, block_size=8, n_layer=1, n_head=1, n_embd=8))
    save_weights(model, tmp_path / "model.safetensors", {"step": "20"})
    last_bytes = (tmp_path / "model.safetensors").read_bytes()
    torch.nn.init.zeros_(model.lm_head.weight)
    save_weights(model, tmp_path / "best.safetensors", {"step": "10"})
    rank1 = SimpleNamespace(run_dir=tmp_path, best_record={"step": 10, "val_loss": 1.0}, step=20,
                            dist=SimpleNamespace(master=False), log=lambda *a: None, answers_first=False,
                            chat_share_at_end=0.0)
    last = {"step": 20, "val_loss": 2.0}
    assert Trainer._use_best_weights(rank1, last) is last
    assert (tmp_path / "model.safetensors").read_bytes() == last_bytes
    rank0 = SimpleNamespace(**{**vars(rank1), "dist": SimpleNamespace(master=True)})
    reciting = SimpleNamespace(**{**vars(rank0), "answers_first": True})  # trained to recite: the last step's
    assert Trainer._use_best_weights(reciting, last) is last
    assert (tmp_path / "model.safetensors").read_bytes() == last_bytes
    assert Trainer._use_best_weights(rank0, last)["step"] == 10
    assert (tmp_path / "model.safetensors").read_bytes() == (tmp_path / "best.safetensors").read_bytes()


def test_the_regulariser_sets_in_after_its_passes():
    """The cpu preset regularises from its 4th pass over the text, fully from its 8th, in quarters; drop path
    and the weight decay above the default 0.1 follow; other presets regularise from the start."""
    cfg = resolve(preset="cpu", overrides={"model.vocab_size": 300})
    assert [regulariser_strength(cfg, p) for p in (0, 4, 5, 6.5, 8, 20)] == [0, 0, 0.25, 0.5, 1, 1]
    assert regulariser_strength(resolve(preset="tiny"), 0.0) == 1.0
    model = GPT(cfg.model)
    optimizers = build_optimizers(model, cfg, torch.device("cpu"))
    for passes, drop_path, decay in ((6.5, 0.1, 0.55), (20, 0.2, 1.0), (0, 0.0, 0.1)):
        set_regulariser(model, optimizers, cfg, passes)
        assert [b.drop_path for b in model.h] == [pytest.approx(drop_path)] * cfg.model.n_layer
        decays = sorted({round(g["weight_decay"], 6) for opt in optimizers for g in opt.param_groups})
        assert decays == [0.0, pytest.approx(decay)], passes  # norms' gains and biases never decay

