"""Questions from the user's own text, mixed into training: derived, rendered, trained on, answered."""

import json

import pytest

from gpt.config import resolve
from gpt.qa_mix import conversations, derived_pairs

from .conftest import TINY, run_gpt

GLOSSARY = "\n".join(f"{name}: {text}" for name, text in [
    ("Monstera", "a climbing plant with split leaves."), ("Pothos", "a trailing vine for low light."),
    ("Fern", "a plant that spreads by spores."), ("Cactus", "a succulent that stores water."),
    ("Orchid", "a flower that grows on trees."), ("Basil", "a herb that loves the sun."),
    ("Ivy", "a climber that clings to walls."), ("Aloe", "a succulent with a soothing gel."),
    ("Bamboo", "a grass that grows very fast."), ("Tulip", "a bulb that flowers in spring."),
    ("Moss", "a small plant without roots."), ("Palm", "a tree with a crown of leaves."),
]) + "\n"


@pytest.fixture()
def notes(tmp_path):
    path = tmp_path / "glossary.txt"
    path.write_text(GLOSSARY)
    return path


def test_pairs_and_open_book_conversations_come_from_the_structure(notes):
    cfg = resolve(preset="tiny", overrides={"data.input": [str(notes)], "model.block_size": 128})
    pairs = derived_pairs(cfg, [str(notes)], log=lambda m: None)
    assert ("What is Monstera?", "a climbing plant with split leaves.") in {(p.question, p.answer) for p in pairs}
    chats = conversations(pairs, [str(notes)], cfg)
    open_book = [c for c in chats if c[0]["content"].startswith("Context:")]
    assert len(chats) == len(pairs) + len(open_book) and open_book
    assert all(c[1]["content"] in c[0]["content"] for c in open_book[:3])  # the answer's passage was retrieved
    tiny = resolve(preset="tiny", overrides={"data.input": [str(notes)]})  # a 32-token context: no room for them
    assert not [c for c in conversations(pairs, [str(notes)], tiny) if c[0]["content"].startswith("Context:")]
    off = resolve(preset="tiny", overrides={"data.input": [str(notes)], "data.qa": "off"})
    assert derived_pairs(off, [str(notes)], log=lambda m: None) == []


def test_prose_without_structure_derives_nothing(tmp_path):
    prose = tmp_path / "story.txt"
    prose.write_text("it was a quiet morning and the garden slept under the fog, waiting for the sun. " * 50)
    cfg = resolve(preset="tiny", overrides={"data.input": [str(prose)]})
    assert derived_pairs(cfg, [str(prose)], log=lambda m: None) == []


def test_a_run_on_notes_answers_a_derived_question(notes, tmp_path):
    run = tmp_path / "run"
    text = notes.read_text() * 20  # enough text for the tiny preset's validation split
    notes.write_text(text)
    proc = run_gpt("train", *TINY, "--input", str(notes), "--out", str(run), "--train.max_iters", "400",
                   "--model.n_embd", "64", "--model.block_size", "64", "--data.chat_weight", "0.7",
                   "--train.eval_interval", "200", "--train.sample_tokens", "0", check=True)
    assert "derived from the text's structure" in proc.stdout
    answers = 0
    for question, answer in [("What is Monstera?", "a climbing plant with split leaves."),
                             ("What is Pothos?", "a trailing vine for low light."),
                             ("What is Fern?", "a plant that spreads by spores.")]:
        got = run_gpt("ask", question, "--out", str(run), "--temperature", "0", check=True).stdout.strip()
        answers += got == answer
    assert answers >= 2  # held-out questions may miss; trained ones are recalled
    book = run_gpt("ask", "What is Monstera?", "--out", str(run), "--source", str(notes), "--temperature", "0",
                   check=True)  # open-book: passages fitted to the 64-token context, and named
    assert book.stderr.startswith(f"source: {notes}:") and book.stdout.strip()


def test_open_book_questions_are_fitted_to_the_context():
    from gpt.retrieval import fitted_question
    passages = ["Monstera: a climbing plant with split leaves. " * 4, "Pothos: a trailing vine. " * 4]
    text, used = fitted_question("What is Monstera?", passages, lambda t: len(t) < 10_000)
    assert used == 2 and text.startswith("Context:\n") and text.endswith("Question: What is Monstera?")
    text, used = fitted_question("What is Monstera?", passages, lambda t: len(t) < 250)
    assert used == 1 and "Pothos" not in text and len(text) < 250
    text, used = fitted_question("What is Monstera?", passages, lambda t: len(t) < 120)
    assert used == 1 and text.count("...") == 1 and len(text) < 120
    assert fitted_question("What is Monstera?", passages, lambda t: len(t) < 20) == ("What is Monstera?", 0)


def test_gpt_qa_writes_pairs_and_refuses_notes_without_structure(notes, tmp_path):
    out = tmp_path / "qa.jsonl"
    proc = run_gpt("qa", "--input", str(notes), "--to", str(out), check=True)
    assert "question/answer pairs" in proc.stdout
    first = json.loads(out.read_text().splitlines()[0])
    assert first["messages"][0] == {"role": "user", "content": "What is Monstera?"}
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "story.txt").write_text("nothing here but a quiet line of prose.\n")
    proc = run_gpt("qa", "--input", str(empty), "--to", str(tmp_path / "none.jsonl"))
    assert proc.returncode == 2 and "no questions found" in proc.stderr and "Traceback" not in proc.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text(out.read_text().splitlines()[0] + "\n{not json\n")
    proc = run_gpt("train", *TINY, "--input", str(broken), "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and f"{broken}:2" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
