"""Tokenizer files from elsewhere: ids must equal the reference libraries' (`tokenizers`, `tiktoken`) exactly.

The Hugging Face files are built here, offline, with `tokenizers` itself in the layouts real models
ship (GPT-2, Llama 3, Qwen2), from a vocabulary its BpeTrainer learns on Python's documentation.
"""

import json
import random
import time
import unicodedata

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt.bpe import ENDOFTEXT, Tokenizer, TokenizerError, bpe_pieces
from gpt.bpe_formats import (
    bytes_to_unicode,
    from_hf_dict,
    from_ranks,
    load_tokenizer,
    read_tokenizer_config,
    save_hf_tokenizer,
    save_tiktoken,
    to_hf_dict,
)

from .conftest import pydoc_text

tokenizers = pytest.importorskip("tokenizers")

LLAMA3 = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
          r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")  # Qwen2 splits numbers into single digits
EXTRA = ["héllo wörld, ça va? Grüße aus Köln", "日本語のテキストと漢字", "Привет, мир! Как дела?", "مرحبا بالعالم",
         "emoji 🎉👩‍👩‍👧 🇫🇷 ok 😀😀", "def f(x):\n    return x ** 2  # square\n\n\n", "\t\tindent\r\n  \u00a0 x",
         "e\u0301 combining Å A\u030a ﬁ", "numbers 1234567 3.14159 0xFF", "   many    spaces   \n\n\n  end  "]
TEXTS = [pydoc_text(120_000)[60_000:], *EXTRA, "".join(EXTRA), "  ", "\n", "", "a", "'s 'S 'LL it's"]


def hf_trained(pre_tokenizer, normalizer=None, vocab_size: int = 3000) -> dict:
    """A byte-level BPE learned by `tokenizers`' BpeTrainer, as a tokenizer.json dict (no added tokens yet)."""
    from tokenizers import decoders, models, pre_tokenizers, trainers
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    if normalizer is not None:
        tok.normalizer = normalizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([pydoc_text(300_000)] + EXTRA * 20, trainer)
    return json.loads(tok.to_str())


def add_tokens(data: dict, names: list[str], in_vocab: bool = False, special: bool = True) -> dict:
    """Append added tokens after the vocabulary (GPT-2 also lists its <|endoftext|> inside model.vocab)."""
    vocab = data["model"]["vocab"]
    for name in names:
        i = len(vocab) if in_vocab else max([*vocab.values(), *(t["id"] for t in data["added_tokens"])]) + 1
        if in_vocab:
            vocab[name] = i
        data["added_tokens"].append({"id": i, "content": name, "single_word": False, "lstrip": False,
                                     "rstrip": False, "normalized": False, "special": special})
    return data


@pytest.fixture(scope="module")
def layouts() -> dict[str, dict]:
    from tokenizers import Regex, normalizers, pre_tokenizers
    gpt2 = hf_trained(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    add_tokens(gpt2, [ENDOFTEXT], in_vocab=True)
    add_tokens(gpt2, ["<|extra|>"], special=False)
    split = pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated")
    llama3 = hf_trained(pre_tokenizers.Sequence([split, pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                                  use_regex=False)]))
    llama3["model"]["ignore_merges"] = True
    add_tokens(llama3, ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"])
    split = pre_tokenizers.Split(Regex(QWEN2), behavior="isolated")
    qwen2 = hf_trained(pre_tokenizers.Sequence([split, pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                                 use_regex=False)]),
                       normalizers.NFC())
    add_tokens(qwen2, [ENDOFTEXT, "<|im_start|>", "<|im_end|>"])
    return {"gpt2": gpt2, "llama3": llama3, "qwen2": qwen2}


def load_both(data: dict, tmp_path) -> tuple[Tokenizer, object]:
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return load_tokenizer(path), tokenizers.Tokenizer.from_file(str(path))


def assert_same_ids(ours: Tokenizer, theirs, text: str) -> None:
    expected = theirs.encode(text, add_special_tokens=False).ids
    assert ours.encode(text, allowed_special="all") == expected, text[:80]
    assert ours.encode(text, allowed_special="all", reference=True) == expected, text[:80]
    normal = unicodedata.normalize(ours.normalizer, text) if ours.normalizer else text
    assert ours.decode(expected) == normal


@pytest.mark.parametrize("name", ["gpt2", "llama3", "qwen2"])
def test_hf_layouts_encode_exactly_as_tokenizers(layouts, name, tmp_path):
    ours, theirs = load_both(layouts[name], tmp_path)
    specials = [t["content"] for t in layouts[name]["added_tokens"]]
    assert ours.special_tokens == {t["content"]: t["id"] for t in layouts[name]["added_tokens"]}
    assert ours.vocab[:256] != [bytes([b]) for b in range(256)]  # the trainer orders bytes by character
    for text in TEXTS + [f"a{s}b {s}\n" for s in specials] + [f"x{specials[0]}{specials[-1]} y"]:
        assert_same_ids(ours, theirs, text)
    assert ours.pattern_name == ("gpt2" if name == "gpt2" else "custom")
    assert ours.normalizer == ("NFC" if name == "qwen2" else None)


def test_gpt2_layout_keeps_its_ids(layouts, tmp_path):
    ours, _ = load_both(layouts["gpt2"], tmp_path)
    eot = layouts["gpt2"]["model"]["vocab"][ENDOFTEXT]
    assert ours.eot_id == eot == len(ours.vocab) and ours.vocab_size == eot + 2


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40))
def test_any_text_encodes_as_tokenizers(layouts, tmp_path_factory, text):
    for name in ("llama3", "qwen2"):
        ours, theirs = _cached(layouts, name, tmp_path_factory)
        assert_same_ids(ours, theirs, text)


_LOADED: dict = {}


def _cached(layouts, name, tmp_path_factory):
    if name not in _LOADED:
        _LOADED[name] = load_both(layouts[name], tmp_path_factory.mktemp(name))
    return _LOADED[name]


def test_a_token_reached_only_whole_needs_ignore_merges(layouts, tmp_path):
    data = json.loads(json.dumps(layouts["llama3"]))
    vocab = data["model"]["vocab"]
    ranks = {bytes(from_uni(t)): i for t, i in vocab.items() if i < 3000}
    # a new token made of two tokens (" the" + a word) that the merges cannot reach: the rank rule stops at
    # more than two parts on its bytes
    words = [t for t in ranks if t.isalpha() and len(t) > 4]
    new = next(b" the" + w for w in words if b" the" + w not in ranks and len(bpe_pieces(b" the" + w, ranks)) > 2)
    to_uni = bytes_to_unicode()
    data["added_tokens"] = []
    vocab["".join(to_uni[b] for b in new)] = len(vocab)
    add_tokens(data, ["<|eot_id|>"])
    ours, theirs = load_both(data, tmp_path)
    word = new.decode()
    for text in [word, "x" + word, word + "s", word + word, pydoc_text(5000)]:
        assert_same_ids(ours, theirs, text)
    assert ours.encode(new.decode()) == [len(vocab) - 1]
    data["model"]["ignore_merges"] = False
    with pytest.raises(TokenizerError, match="not reached by merges and ignore_merges is false"):
        load_both(data, tmp_path)


def from_uni(text: str) -> list[int]:
    back = {c: b for b, c in bytes_to_unicode().items()}
    return [back[c] for c in text]


def test_merges_out_of_id_order_are_refused(layouts):
    data = json.loads(json.dumps(layouts["llama3"]))
    merges = data["model"]["merges"]
    merges[10], merges[11] = merges[11], merges[10]
    with pytest.raises(TokenizerError, match="merges must be listed in id order"):
        from_hf_dict(data)
    del merges[10]  # the token that merge made can now only come from a pair the file does not list
    with pytest.raises(TokenizerError, match="has no merge"):
        from_hf_dict(data)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["model"].update(type="WordPiece"), "byte-level BPE only"),
    (lambda d: d.update(pre_tokenizer={"type": "Metaspace", "replacement": "▁"}), "not a byte-level BPE"),
    (lambda d: d["pre_tokenizer"].update(add_prefix_space=True), "add_prefix_space"),
    (lambda d: d.update(normalizer={"type": "Lowercase"}), "normalizer 'Lowercase'"),
    (lambda d: d["added_tokens"][-1].update(lstrip=True), "lstrip=true"),
    (lambda d: d["added_tokens"][-1].update(id=10**12), "special token '<|extra|>' has id 1000000000000"),
    (lambda d: d["added_tokens"][-1].update(id=-5), "has id -5"),
    (lambda d: d["model"]["vocab"].update({"Ġzzzz": 10**12}), "ranks must number"),
])
def test_unsupported_hf_files_fail_in_one_line(layouts, change, message):
    data = json.loads(json.dumps(layouts["gpt2"]))
    change(data)
    with pytest.raises(TokenizerError, match=message) as info:
        from_hf_dict(data)
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train([pydoc_text(40_000)], 600, special_tokens=[ENDOFTEXT, "<|user|>"])


def test_tiktoken_export_round_trip(tok, tmp_path):
    path = tmp_path / "ranks.tiktoken"
    save_tiktoken(tok, path)
    from tiktoken.load import load_tiktoken_bpe
    ranks = load_tiktoken_bpe(str(path))
    enc = tiktoken.Encoding("ours", pat_str=tok.pattern, mergeable_ranks=ranks, special_tokens=tok.special_tokens)
    text = pydoc_text(30_000)
    assert enc.encode(text) == tok.encode(text)
    again = load_tokenizer(path, special_tokens=tok.special_tokens)
    assert again.vocab == tok.vocab and again.merges == tok.merges


def test_ranks_import_encodes_as_tiktoken(layouts):
    """Ranks we did not make (the Llama-3-style vocabulary), imported, encode as tiktoken.Encoding on them."""
    data = layouts["llama3"]
    ranks = {bytes(from_uni(t)): i for t, i in data["model"]["vocab"].items()}
    specials = {t["content"]: t["id"] for t in data["added_tokens"]}
    ours = from_ranks(ranks, LLAMA3, specials)
    enc = tiktoken.Encoding("theirs", pat_str=LLAMA3, mergeable_ranks=ranks, special_tokens=specials)
    for text in TEXTS + ["<|eot_id|> x"]:
        assert ours.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
        assert ours.encode(text, allowed_special="all", reference=True) == enc.encode(text, allowed_special="all")


def test_huggingface_export_round_trip(tok, tmp_path):
    transformers = pytest.importorskip("transformers")
    path = tmp_path / "tokenizer.json"
    save_hf_tokenizer(tok, path)
    text = pydoc_text(60_000)[20_000:] + " héllo 日本 🎉\n\n  x"
    ours = tok.encode(text)
    assert tokenizers.Tokenizer.from_file(str(path)).encode(text).ids == ours
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path))
    assert fast(text)["input_ids"] == ours
    assert fast.decode(ours) == text
    again = load_tokenizer(tmp_path)  # a directory holding tokenizer.json
    assert again.vocab == tok.vocab and again.special_tokens == tok.special_tokens


def test_imported_layouts_survive_our_file_and_export(layouts, tmp_path):
    ours, theirs = load_both(layouts["qwen2"], tmp_path)
    ours.save(tmp_path / "ours.json")
    again = load_tokenizer(tmp_path / "ours.json")
    assert again.normalizer == "NFC" and again.vocab == ours.vocab and again.hash() == ours.hash()
    assert to_hf_dict(again)["normalizer"] == {"type": "NFC"}
    save_hf_tokenizer(again, tmp_path / "export.json")
    exported = tokenizers.Tokenizer.from_file(str(tmp_path / "export.json"))
    for text in TEXTS:
        assert exported.encode(text).ids == theirs.encode(text, add_special_tokens=False).ids


def random_ranks(n: int, seed: int = 0) -> dict[bytes, int]:
    """A vocabulary of n tokens grown by random merges of earlier tokens (up to 24 bytes)."""
    rng = random.Random(seed)
    vocab = [bytes([b]) for b in range(256)]
    seen = set(vocab)
    while len(vocab) < n:
        a, b = vocab[int(len(vocab) * rng.random() ** 2)], vocab[int(len(vocab) * rng.random() ** 3)]
        if a + b not in seen and len(a + b) <= 24:
            seen.add(a + b)
            vocab.append(a + b)
    return {t: i for i, t in enumerate(vocab)}


def test_large_vocabulary_imports_in_linear_time():
    ranks = random_ranks(50_000)
    start = time.perf_counter()
    tok = from_ranks(ranks, "gpt2", {ENDOFTEXT: 50_000})
    assert time.perf_counter() - start < 10
    assert tok.vocab_size == 50_001 and all(tok.vocab[a] + tok.vocab[b] == tok.vocab[256 + i]
                                            for i, (a, b) in enumerate(tok.merges))


@pytest.mark.parametrize("bad", [10**12, -5, 3, "7"])
def test_bad_special_ids_fail_in_one_line(tok, tmp_path, bad):
    data = tok.to_dict() | {"special_tokens": {ENDOFTEXT: bad}}
    (tmp_path / "ours.json").write_text(json.dumps(data))
    with pytest.raises(TokenizerError, match="special token"):
        load_tokenizer(tmp_path / "ours.json")
    save_tiktoken(tok, tmp_path / "r.tiktoken")
    if isinstance(bad, int):
        with pytest.raises(TokenizerError, match="special ids must be"):
            load_tokenizer(tmp_path / "r.tiktoken", special_tokens={ENDOFTEXT: bad})
    (tmp_path / "bad.tiktoken").write_text(f"YQ== {bad}\n")
    with pytest.raises(TokenizerError):
        load_tokenizer(tmp_path / "bad.tiktoken")


def test_merge_bomb_fails_fast(tmp_path):
    # 46 merges that each double a token would make a 70-terabyte token; the load stops at the size bound
    merges = [[97, 97]] + [[256 + i, 256 + i] for i in range(45)]
    data = {"format": "gpt-bpe", "version": 1, "pattern": "gpt4", "merges": merges, "special_tokens": {}}
    (tmp_path / "bomb.json").write_text(json.dumps(data))
    start = time.perf_counter()
    with pytest.raises(TokenizerError, match="2048-byte token") as info:
        load_tokenizer(tmp_path / "bomb.json")
    assert time.perf_counter() - start < 1 and "\n" not in str(info.value)


def test_merges_must_name_earlier_tokens(tmp_path):
    data = {"format": "gpt-bpe", "version": 1, "pattern": "gpt4", "merges": [[97, -5]], "special_tokens": {}}
    (tmp_path / "neg.json").write_text(json.dumps(data))
    with pytest.raises(TokenizerError, match="does not exist yet"):
        load_tokenizer(tmp_path / "neg.json")


def test_tokenizer_config_is_read(tmp_path):
    assert read_tokenizer_config(tmp_path) == {}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|eot_id|>", "lstrip": False},
        "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}", "add_bos_token": True,
        "model_max_length": 8192}))
    assert read_tokenizer_config(tmp_path) == {
        "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "add_bos_token": True,
        "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}"}
