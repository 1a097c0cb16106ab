import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import gpt.data as data_module
import gpt.documents as documents_module
from gpt.batches import Batches
from gpt.bpe import ENDOFTEXT, Tokenizer, TokenizerError
from gpt.data import check_sizes, prepare
from gpt.documents import BUILTIN, DataError

from .conftest import pydoc_text


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train([pydoc_text(30_000)], 400, special_tokens=[ENDOFTEXT])


def test_documents_are_separated_by_endoftext(folder, tok, tmp_path):
    data = prepare([str(folder)], tok, tmp_path / "cache", val_fraction=0.1, progress=False, log=lambda *a: None)
    all_tokens = np.concatenate([data.train, data.val])
    assert (all_tokens == tok.eot_id).sum() == 5  # one after each document
    assert data.manifest["dtype"] == "uint16"


def test_without_special_tokens_documents_just_follow_each_other(folder, tmp_path):
    plain = Tokenizer.train([pydoc_text(30_000)], 400, special_tokens=[])
    data = prepare([str(folder)], plain, tmp_path / "cache", val_fraction=0.1, progress=False, log=lambda *a: None)
    all_tokens = np.concatenate([data.train, data.val])
    texts = ["first record", "second record", "# Monstera\nMonstera is a plant.\n", "Water it weekly. " * 50,
             "café naïve"]  # the Latin-1 file, read as Windows-1252
    assert len(all_tokens) == sum(len(plain.encode(t)) for t in texts)  # no separator token in between


def test_cache_reuse_and_invalidation(folder, tok, tmp_path):
    logs = []
    cache = tmp_path / "cache"
    prepare([str(folder)], tok, cache, progress=False, log=logs.append)
    prepare([str(folder)], tok, cache, progress=False, log=logs.append)
    assert "reusing" in logs[-1]
    target = folder / "a.md"
    time.sleep(0.01)
    target.write_text("# Monstera\nMonstera deliciosa is a plant.\n")
    prepare([str(folder)], tok, cache, progress=False, log=logs.append)
    assert "tokenized" in logs[-1]
    other = Tokenizer.train([pydoc_text(30_000)], 420, special_tokens=[ENDOFTEXT])
    prepare([str(folder)], other, cache, progress=False, log=logs.append)
    assert "tokenized" in logs[-1]


def test_corrupt_cache_is_rebuilt(folder, tok, tmp_path, capsys):
    cache = tmp_path / "cache"
    first = prepare([str(folder)], tok, cache, progress=False, log=lambda *a: None)
    expected = np.array(first.train).copy()
    raw = bytearray((cache / "tokens.bin").read_bytes())
    raw[0] ^= 0xFF
    (cache / "tokens.bin").write_bytes(bytes(raw))
    again = prepare([str(folder)], tok, cache, progress=False, log=lambda *a: None)
    assert "damaged" in capsys.readouterr().err
    assert np.array_equal(np.array(again.train), expected)


def test_split_never_overlaps_and_batches_stay_in_train(tok, tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(pydoc_text(40_000))
    data = prepare([str(path)], tok, tmp_path / "cache", val_fraction=0.2, progress=False, log=lambda *a: None)
    n_train = len(data.train)
    assert n_train + len(data.val) == data.manifest["files"]["tokens.bin"]["tokens"]
    text_ids = [int(i) for i in data.val if i != tok.eot_id]
    assert data.val_bytes == len(tok.decode_bytes(text_ids))  # the bits-per-byte denominator
    batches = Batches(data.train, 16, 64, seed=1)
    assert batches.high + 16 == n_train  # the last window ends at the last train token: never in val
    for _ in range(20):
        x, y = batches.next()
        assert bool((x[:, 1:] == y[:, :-1]).all())


def test_bad_inputs(tok, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        prepare([str(empty)], tok, tmp_path / "c1", progress=False, log=lambda *a: None)
    short = tmp_path / "short.txt"
    short.write_text("a few words only, and then some more words to split " * 3)
    data = prepare([str(short)], tok, tmp_path / "c2", progress=False, log=lambda *a: None)
    with pytest.raises(DataError, match=r"block_size 128 needs at least 129 .* --model.block_size \d+"):
        check_sizes(data, 128)
    check_sizes(data, len(data.train) - 1)  # the block_size it suggests does fit
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("short text")  # 3 tokens, none for validation: no block_size would do
    data = prepare([str(tiny)], tok, tmp_path / "c3", progress=False, log=lambda *a: None)
    with pytest.raises(DataError, match=r"training tokens. Use more text$"):
        check_sizes(data, 128)


def test_builtin_corpus(tok, tmp_path):
    data = prepare([BUILTIN], tok, tmp_path / "c", progress=False, log=lambda *a: None)
    assert len(data.train) > 100_000 and data.val_bytes > 10_000


class _RecordingPool(ProcessPoolExecutor):
    started = 0

    def __init__(self, *args, **kwargs):
        _RecordingPool.started += 1
        super().__init__(*args, **kwargs)


@pytest.mark.parametrize("specials", [[ENDOFTEXT], []])
def test_encoder_processes_write_the_same_tokens_in_order(folder, tmp_path, monkeypatch, specials):
    (folder / "long.txt").write_text(pydoc_text(40_000))
    tokenizer = Tokenizer.train([pydoc_text(30_000)], 400, special_tokens=specials)
    monkeypatch.setattr(documents_module, "_READ_BYTES", 512)  # many small groups: their order matters
    monkeypatch.setattr(data_module, "_GROUP_CHARS", 512)
    one = prepare([str(folder)], tokenizer, tmp_path / "one", workers=1, progress=False, log=lambda *a: None)
    monkeypatch.setattr(data_module, "_PROCESS_MIN_BYTES", 0)
    monkeypatch.setattr(data_module, "ProcessPoolExecutor", _RecordingPool)
    two = prepare([str(folder)], tokenizer, tmp_path / "two", workers=2, progress=False, log=lambda *a: None)
    assert _RecordingPool.started >= 1
    assert (tmp_path / "one" / "tokens.bin").read_bytes() == (tmp_path / "two" / "tokens.bin").read_bytes()
    assert one.manifest["files"]["tokens.bin"]["documents"] == two.manifest["files"]["tokens.bin"]["documents"] == 6
    assert one.manifest["files"]["tokens.bin"]["bytes"] == two.manifest["files"]["tokens.bin"]["bytes"]


def test_an_encoder_process_error_reaches_the_caller_and_leaves_no_file(tok, tmp_path, monkeypatch):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": "lone \\ud800 surrogate"}\n')
    monkeypatch.setattr(data_module, "_PROCESS_MIN_BYTES", 0)
    with pytest.raises(TokenizerError, match="lone surrogate"):
        prepare([str(bad)], tok, tmp_path / "c", workers=2, progress=False, log=lambda *a: None)
    assert not list((tmp_path / "c").iterdir())  # neither tokens.bin nor its .tmp


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
def test_a_file_read_in_pieces_encodes_as_the_whole_text(tmp_path, monkeypatch, pattern):
    # Trailing spaces and CRLF line ends: where a cut after the newline would change GPT-2's pre-tokens.
    text = pydoc_text(20_000).replace("\n", "  \n").replace("  \n", " \r\n", 100)
    (tmp_path / "doc.txt").write_bytes(text.encode("utf-8"))
    texts = [pydoc_text(30_000)] + ["x  \n", "y \r\n"] * 500  # so that "  \n" and " \r\n" are tokens
    tokenizer = Tokenizer.train(texts, 400, pattern=pattern, special_tokens=[ENDOFTEXT])
    monkeypatch.setattr(documents_module, "_READ_BYTES", 256)  # dozens of cuts
    assert len(list(documents_module._read_pieces(str(tmp_path / "doc.txt")))) > 20
    data = prepare([str(tmp_path / "doc.txt")], tokenizer, tmp_path / "c", progress=False, log=lambda *a: None)
    assert np.concatenate([data.train, data.val]).tolist() == tokenizer.encode(text) + [tokenizer.eot_id]
