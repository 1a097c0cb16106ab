"""Run set-up: the resume point, reuse of what `gpt prepare` made, one verification of the cache per start."""

import pytest

import gpt.data
from gpt.config import ConfigError, resolve
from gpt.run_setup import MAX_CHAT_REPEATS, SetupError, resume_point, text_and_chat_weights
from gpt.train import Trainer

from .conftest import TINY, pydoc_text, run_gpt


def tiny(corpus, **overrides):
    return resolve(preset="tiny", overrides={"data.input": [str(corpus)], "data.qa": "off", **overrides})


def test_a_speed_setting_may_change_on_resume_but_not_the_data(corpus_file, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(corpus_file, **{"train.max_iters": 10}), run, progress=False, log=lambda *a: None).run()
    assert resume_point(run, tiny(corpus_file, **{"data.workers": 2}), "auto", warn=print) is not None
    with pytest.raises(SetupError, match="another config.*data.val_fraction"):
        resume_point(run, tiny(corpus_file, **{"data.val_fraction": 0.2}), "auto", warn=print)


def test_a_resume_hashes_the_token_cache_once(corpus_file, tmp_path, monkeypatch):
    run = tmp_path / "run"
    Trainer(tiny(corpus_file, **{"train.max_iters": 10}), run, progress=False, log=lambda *a: None).run()
    calls = []
    real = gpt.data.sha256_file
    monkeypatch.setattr(gpt.data, "sha256_file", lambda path: calls.append(path) or real(path))
    Trainer(tiny(corpus_file, **{"train.max_iters": 12}), run, progress=False, log=lambda *a: None).run()
    assert [p.name for p in calls] == ["tokens.bin"]


def test_prepare_then_train_reuses_the_tokenizer_and_the_cache(corpus_file, tmp_path):
    run = tmp_path / "run"
    run_gpt("prepare", *TINY[:2], "--input", str(corpus_file), "--out", str(run), check=True)
    tokenizer = (run / "tokenizer.json").read_bytes()
    proc = run_gpt("train", *TINY, "--input", str(corpus_file), "--out", str(run), "--train.max_iters", "3",
                   check=True)
    assert "tokenizer: training" not in proc.stdout and "reusing the token cache" in proc.stdout
    assert (run / "tokenizer.json").read_bytes() == tokenizer


def test_a_run_prepared_without_questions_trains_with_them(corpus_file, tmp_path):
    run = tmp_path / "run"
    run_gpt("prepare", *TINY[:2], "--input", str(corpus_file), "--out", str(run), "--data.qa", "off", check=True)
    proc = run_gpt("train", *TINY, "--input", str(corpus_file), "--out", str(run), "--train.max_iters", "3",
                   check=True)
    assert "tokenizer: training" not in proc.stdout and "questions:" in proc.stdout
    assert (run / "chat_template.jinja").exists()


def test_every_damaged_checkpoint_is_refused_not_retrained_over(corpus_file, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(corpus_file, **{"train.max_iters": 20}), run, progress=False, log=lambda *a: None).run()
    for state in (run / "checkpoints").glob("step-*/state.pt"):
        state.write_bytes(b"damaged")
    weights = (run / "model.safetensors").read_bytes()
    with pytest.raises(SetupError, match="every checkpoint .* is damaged.*--fresh"):
        resume_point(run, tiny(corpus_file), "auto", warn=lambda m: None)
    assert (run / "model.safetensors").read_bytes() == weights


def test_the_question_share_changes_when_the_lr_decays(corpus_file, tmp_path):
    cfg = resolve(preset="cpu", overrides={"data.chat_weight": 0.25, "data.chat_weight_decay": 0.75})
    assert cfg.train.decay_fraction == 0.2
    assert text_and_chat_weights(cfg, 0.0) == text_and_chat_weights(cfg, 0.79) == [0.75, 0.25]
    assert text_and_chat_weights(cfg, 0.8) == text_and_chat_weights(cfg, 1.0) == [0.25, 0.75]
    cfg.data.chat_weight_decay = -1  # the default: one share for the whole run
    assert text_and_chat_weights(cfg, 0.9) == [0.75, 0.25]
    with pytest.raises(ConfigError, match="data.chat_weight_decay must be in"):
        resolve(overrides={"data.chat_weight_decay": 1.5})
    trainer = Trainer(tiny(corpus_file, **{"data.qa": "on", "data.chat_weight": 0.25, "data.chat_weight_decay": 0.75,
                                           "train.max_iters": 10}), tmp_path / "run", progress=False,
                      explicit={"data.chat_weight", "data.chat_weight_decay"}, log=lambda *a: None)
    trainer.run()  # 8 steps at a quarter conversations, 2 at three quarters: 16 + 12 of 80 rows
    assert trainer.batches.weights == [0.25, 0.75] and trainer.batches.given == [52, 28]


def test_a_few_questions_in_a_long_text_are_not_half_of_every_batch(tmp_path):
    """A novel gives a handful of questions: at the default half of each batch, each would be read about a hundred
    times for each time the text is. The share is capped so that no conversation is seen more than
    MAX_CHAT_REPEATS times as often as the text; a share given on the command line is the run's."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "plants.md").write_text("".join(f"## Plant {c}\n\nPlant {c} is a green plant with {c} leaves.\n\n"
                                             for c in "ABCDEF"))
    (notes / "novel.txt").write_text(pydoc_text(60_000))
    lines = []
    cfg = resolve(preset="tiny", overrides={"data.input": [str(notes)], "data.qa": "auto", "train.max_iters": 4})
    trainer = Trainer(cfg, tmp_path / "run", progress=False, log=lines.append)
    text, chat = len(trainer.data.train), sum(len(ids) for ids, _ in trainer.batches.sources[1].rendered)
    cap = MAX_CHAT_REPEATS * chat / (text + MAX_CHAT_REPEATS * chat)
    assert cap < 0.2 and trainer.batches.weights == pytest.approx([1 - cap, cap])
    assert any("(capped: each seen at most 4x as often as the text)" in line for line in lines), lines
    given = Trainer(resolve(preset="tiny", overrides={"data.input": [str(notes)], "data.qa": "auto",
                                                      "data.chat_weight": 0.5, "train.max_iters": 4}),
                    tmp_path / "given", explicit={"data.chat_weight"}, progress=False, log=lambda *a: None)
    assert given.batches.weights == [0.5, 0.5]
