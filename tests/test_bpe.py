import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt.bpe import ENDOFTEXT, Tokenizer, TokenizerError
from gpt.bpe_formats import load_tokenizer

from .conftest import pydoc_text


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train([pydoc_text(40_000)], 600, special_tokens=[ENDOFTEXT, "<|user|>"])


def test_hand_checked_merges():
    # aa (count 4); then ab and (aa, a) tie at 2: the smaller pair (97, 98) wins; then (aa, ab)
    t = Tokenizer.train(["aaabdaaabac"], 259, pattern="none", special_tokens=())
    assert t.merges == [(97, 97), (97, 98), (256, 257)]
    assert t.encode("aaabdaaabac") == [258, 100, 258, 97, 99]


def test_tie_break_is_smallest_pair():
    t = Tokenizer.train(["cd ab"], 257, pattern="none", special_tokens=())
    assert t.merges == [(32, 97)]  # all pairs count 1: (' ', 'a') is the smallest


def test_tinyshakespeare_fingerprint(shakespeare):
    t = Tokenizer.train([shakespeare], 4096, pattern="gpt4", special_tokens=())
    ids = t.encode(shakespeare)
    assert len(ids) == 310_486
    assert t.encode(shakespeare, reference=True) == ids
    assert t.decode(ids) == shakespeare


def test_reference_equals_fast_on_real_text(tok):
    text = pydoc_text(200_000)[100_000:]
    assert tok.encode(text, reference=True) == tok.encode(text)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_round_trip_and_encoders_agree(tok, text):
    ids = tok.encode(text, disallowed_special=())
    assert tok.decode_bytes(ids) == text.encode("utf-8")
    assert tok.encode(text, disallowed_special=(), reference=True) == ids


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["Monstera", " ", ENDOFTEXT, "<|user|>", "é", "\n", "12345"]), max_size=20))
def test_array_path_treats_special_text_as_plain(tok, parts):
    text = "".join(parts)
    array = tok.encode_to_array(text)
    assert array.dtype.name == "uint32"
    assert array.tolist() == tok.encode(text, disallowed_special=()) == tok.encode(text, disallowed_special=(),
                                                                                   reference=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 599), max_size=50))
def test_decode_never_raises_on_cut_characters(tok, ids):
    raw = tok.decode_bytes(ids)
    assert tok.decode(ids) == raw.decode("utf-8", errors="replace")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_bytes_are_tokens(tok, data):
    assert tok.decode_bytes(list(data)) == data  # ids 0-255 are the bytes themselves


def test_unicode_edge_cases(tok):
    for text in ["héllo wörld", "日本語のテキスト", "emoji 🎉👩‍👩‍👧 ok", "e\u0301 combining", "\x00\x01\t\r\n", ""]:
        assert tok.decode(tok.encode(text)) == text


def test_lone_surrogate_is_rejected(tok):
    with pytest.raises(TokenizerError, match="lone surrogate"):
        tok.encode("ab\ud800c")


def test_special_tokens_follow_tiktoken_rules(tok):
    text = f"hi{ENDOFTEXT}there"
    with pytest.raises(TokenizerError, match="special token"):
        tok.encode(text)
    as_token = tok.encode(text, allowed_special={ENDOFTEXT})
    assert tok.eot_id in as_token
    as_text = tok.encode(text, disallowed_special=())
    assert tok.eot_id not in as_text and tok.decode(as_text) == text
    assert tok.encode(text, allowed_special="all") == as_token
    assert tok.encode(text, allowed_special={ENDOFTEXT}, reference=True) == as_token
    assert tok.decode(as_token) == text


def test_special_ids_follow_the_vocabulary(tok):
    assert tok.special_tokens == {ENDOFTEXT: 598, "<|user|>": 599} and tok.vocab_size == 600


def test_save_load_round_trip(tok, tmp_path):
    path = tmp_path / "tok.json"
    tok.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == "gpt-bpe" and data["version"] == 1 and data["pattern"] == "gpt4"
    again = load_tokenizer(path)
    assert again.vocab == tok.vocab and again.special_tokens == tok.special_tokens and again.hash() == tok.hash()


def test_bad_files(tmp_path):
    (tmp_path / "a.json").write_text("not json")
    (tmp_path / "b.json").write_text('{"format": "something-else"}')
    (tmp_path / "c.json").write_text('{"format": "gpt-bpe", "version": 99}')
    for name, message in [("a.json", "not JSON"), ("b.json", "not a gpt-bpe"), ("c.json", "version 99"),
                          ("missing.json", "cannot read")]:
        with pytest.raises(TokenizerError, match=message):
            load_tokenizer(tmp_path / name)


def test_bad_training_input():
    with pytest.raises(TokenizerError, match="too small"):
        Tokenizer.train(["abc"], 256, special_tokens=[ENDOFTEXT])
    with pytest.raises(TokenizerError, match="empty"):
        Tokenizer.train([""], 300)


def test_missing_byte_is_refused():
    vocab = [bytes([b]) for b in range(255)]
    with pytest.raises(TokenizerError, match="256 single bytes"):
        Tokenizer(vocab)


def test_odd_vocabulary_follows_the_rank_rule():
    # merges ab (256), bc (257), then a+bc (258). The rank rule merges ab, then sees ab+c = "abc", a token: one id.
    # A merge-list rule would stop at ab|c, since (ab, c) is not a listed pair. Both our encoders follow the rank rule.
    vocab = [bytes([b]) for b in range(256)] + [b"ab", b"bc", b"abc"]
    t = Tokenizer(vocab, [(97, 98), (98, 99), (97, 257)], pattern="none", special_tokens={})
    assert t.encode("abc", reference=True) == t.encode("abc") == [258]
    assert t.encode("xbc", reference=True) == t.encode("xbc") == [120, 257]


def test_gpt2_pattern_matches_tiktoken_on_shared_words():
    t = Tokenizer.train([pydoc_text(20_000)], 400, pattern="gpt2", special_tokens=())
    text = "Hello world, it's 2024!  Spaces   and\nnewlines"
    assert t.encode(text) == t.encode(text, reference=True)
    assert t.decode(t.encode(text)) == text


def test_encode_batch_matches_encode(tok):
    texts = [pydoc_text(5000)[i * 500:(i + 1) * 500] for i in range(10)]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]
