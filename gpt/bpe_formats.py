"""Tokenizer files made elsewhere, in and out: tiktoken ranks files and Hugging Face tokenizer.json.

gpt/bpe.py holds the algorithm and our own JSON file; this module translates. Both foreign formats
describe the same kind of tokenizer as ours (byte-level BPE over regex pre-tokens), but say it
differently:

- tiktoken lists each token with its rank (= id) and nothing else: the merges are implied. We
  recover each token's merge by running the BPE rule on its bytes with only lower ranks allowed
  (``bpe_pieces(token, ranks, max_rank=rank)``), which stops at the two parts it is made of. That is
  linear in the vocabulary (minbpe's trick), where rebuilding a ranks dict per token is quadratic.
- Hugging Face lists merges, applied by their position in the list, and maps bytes to printable
  characters (``bytes_to_unicode``). Our rule ranks a merge by the id of the token it makes. The two
  agree when the list's order is the id order and each token's merge is the one our rule finds, so
  the import checks exactly that and refuses a file that would encode differently, naming the token.
  A pre-token that is itself a token is that token in our rule (tiktoken does the same); in
  ``tokenizers`` only with ``ignore_merges: true``, so a file without it must reach every token
  through its merges.

Added tokens become our special tokens (encode them with ``allowed_special``). ``tokenizers`` also
cuts out non-special added tokens wherever they occur; ours does so only when they are allowed.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

import regex

from gpt.bpe import FORMAT, PATTERNS, Tokenizer, TokenizerError, bpe_pieces
from gpt.files import atomic_write

# The regex `tokenizers` applies for ByteLevel(use_regex=true): GPT-2's pre-tokenizer.
HF_BYTELEVEL_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by Hugging Face byte-level BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _unicode_to_bytes_table() -> dict[int, int]:
    """str.translate table undoing bytes_to_unicode into latin-1; other characters become U+FFFF (no latin-1)."""
    table = {ord(c): b for b, c in bytes_to_unicode().items()}
    return table | {c: 0xFFFF for c in range(256) if c not in table}


_FROM_UNICODE = _unicode_to_bytes_table()


def _hf_bytes(text: str) -> bytes:
    """A byte-level token's bytes (UnicodeEncodeError for a character outside the 256 of bytes_to_unicode)."""
    return text.translate(_FROM_UNICODE).encode("latin-1")


# ----------------------------------------------------------------------------- ranks (tiktoken)

def _vocab_from_ranks(ranks: dict[bytes, int]) -> list[bytes]:
    vocab: list[bytes | None] = [None] * len(ranks)
    for tok, rank in ranks.items():
        if type(rank) is not int or not 0 <= rank < len(ranks) or vocab[rank] is not None or not tok:
            raise TokenizerError(f"ranks must number the {len(ranks)} non-empty tokens 0..{len(ranks) - 1} once "
                                 f"each; found {tok[:40]!r} with rank {rank!r}")
        vocab[rank] = tok
    return vocab  # type: ignore[return-value]


def recover_merges(vocab: list[bytes], ranks: dict[bytes, int]) -> tuple[list[tuple[int, int]], list[int]]:
    """Each multi-byte token's merge (the two earlier tokens it is made of), and the ids our rule cannot reach.

    A token our rule reaches splits, under lower ranks only, into exactly two parts. One it cannot
    reach (it is only ever produced whole, as a complete pre-token) is stored as its first split into
    two earlier tokens; without any, it cannot be described and is refused.
    """
    merges, unreachable = [], []
    for rank, tok in enumerate(vocab):
        if len(tok) == 1:
            continue
        parts = bpe_pieces(tok, ranks, max_rank=rank)
        if len(parts) != 2:
            unreachable.append(rank)
            parts = next(([tok[:c], tok[c:]] for c in range(1, len(tok))
                          if ranks.get(tok[:c], rank) < rank and ranks.get(tok[c:], rank) < rank), [])
            if not parts:
                raise TokenizerError(f"token {tok[:60]!r} (rank {rank}) is not made of two tokens of lower rank")
        merges.append((ranks[parts[0]], ranks[parts[1]]))
    return merges, unreachable


def _tokenizer(vocab: list[bytes], merges: list[tuple[int, int]], pattern: str,
               special_tokens: dict[str, int] | None, normalizer: str | None) -> Tokenizer:
    """A Tokenizer whose vocabulary is given in full (bytes need not be ids 0-255)."""
    singles = [tok for tok in vocab if len(tok) == 1]
    if len(singles) != 256:
        raise TokenizerError(f"the vocabulary has {len(singles)} single-byte tokens; byte-level BPE needs all 256")
    if any(len(tok) == 1 for tok in vocab[256:]):
        raise TokenizerError("the 256 single bytes must be the first 256 ids (gpt's format lists them first)")
    return Tokenizer(vocab, merges, pattern, special_tokens, normalizer)


def from_ranks(ranks: dict[bytes, int], pattern: str = "gpt4", special_tokens: dict[str, int] | None = None,
               normalizer: str | None = None) -> Tokenizer:
    """A Tokenizer from tiktoken-style ranks (token bytes -> id), in time linear in the vocabulary."""
    vocab = _vocab_from_ranks(ranks)
    merges, _ = recover_merges(vocab, ranks)
    return _tokenizer(vocab, merges, pattern, special_tokens, normalizer)


def read_tiktoken(path: str | Path) -> dict[bytes, int]:
    """A tiktoken ranks file: one 'base64(token) rank' line per token."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"cannot read tokenizer {path}: {getattr(exc, 'strerror', None) or exc}") from None
    ranks = {}
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                tok, rank = line.split()
                ranks[base64.b64decode(tok, validate=True)] = int(rank)
            except (ValueError, binascii.Error):
                raise TokenizerError(f"{path}:{n}: not a 'base64 rank' line") from None
    return ranks


def save_tiktoken(tok: Tokenizer, path: str | Path) -> None:
    """tiktoken's ranks file (special tokens, pattern and normalizer are not part of it)."""
    lines = [f"{base64.b64encode(t).decode()} {rank}" for rank, t in enumerate(tok.vocab)]
    atomic_write(path, "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- Hugging Face tokenizer.json

def to_hf_dict(tok: Tokenizer) -> dict:
    """A Hugging Face tokenizer.json (BPE model, regex Split + ByteLevel) that encodes identically."""
    to_uni = bytes_to_unicode()
    text = ["".join(to_uni[b] for b in t) for t in tok.vocab]
    merges = []
    for rank, t in enumerate(tok.vocab):  # every split into two earlier tokens, ranked by the result
        for cut in range(1, len(t)):
            a, b = tok.ranks.get(t[:cut], rank), tok.ranks.get(t[cut:], rank)
            if a < rank and b < rank:
                merges.append([text[a], text[b]])
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for s, i in tok.special_tokens.items()]
    byte_level = {"add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": tok.normalizer} if tok.normalizer else None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": tok.pattern}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", **byte_level}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  # our rule: a pre-token that is a token is that token (see the module docstring)
                  "ignore_merges": True, "vocab": {t: i for i, t in enumerate(text)}, "merges": merges},
    }


def save_hf_tokenizer(tok: Tokenizer, path: str | Path) -> None:
    atomic_write(path, json.dumps(to_hf_dict(tok), ensure_ascii=False))


def _hf_pattern(data: dict, source: str) -> str:
    """The pre-token regex of a byte-level pipeline: ByteLevel(use_regex) alone, or Split(regex) + ByteLevel."""
    pre = data.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps]
    byte_level = steps[-1] if kinds and kinds[-1] == "ByteLevel" else None
    if byte_level is None or kinds.count("ByteLevel") != 1:
        raise TokenizerError(f"{source}: not a byte-level BPE (pre-tokenizers {kinds}); gpt imports byte-level only")
    if byte_level.get("add_prefix_space"):
        raise TokenizerError(f"{source}: ByteLevel add_prefix_space=true is not supported")
    if kinds == ["ByteLevel"]:
        if byte_level.get("use_regex", True):
            return HF_BYTELEVEL_PATTERN
        return PATTERNS["none"]
    split = steps[0]
    if kinds != ["Split", "ByteLevel"] or byte_level.get("use_regex", True):
        raise TokenizerError(f"{source}: unsupported pre-tokenizers {kinds}; gpt reads ByteLevel alone or one "
                             "Split regex followed by ByteLevel(use_regex=false)")
    if split.get("behavior") != "Isolated" or split.get("invert"):
        raise TokenizerError(f"{source}: the Split pre-tokenizer must be behavior Isolated, invert false")
    pattern = split.get("pattern", {})
    if "Regex" in pattern:
        return pattern["Regex"]
    if "String" in pattern:
        return regex.escape(pattern["String"])
    raise TokenizerError(f"{source}: Split has no pattern")


def _hf_normalizer(data: dict, source: str) -> str | None:
    norm = data.get("normalizer")
    if norm and norm.get("type") == "Sequence" and len(norm.get("normalizers", [])) <= 1:
        norm = (norm["normalizers"] or [None])[0]
    if not norm:
        return None
    if norm.get("type") == "NFC":
        return "NFC"
    raise TokenizerError(f"{source}: normalizer {norm.get('type')!r} is not supported (gpt applies NFC or none)")


def _hf_model_checks(model: dict, source: str) -> None:
    if model.get("type") != "BPE":
        raise TokenizerError(f"{source}: a {model.get('type')} model; gpt imports byte-level BPE only")
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            raise TokenizerError(f"{source}: BPE {key} is not supported")
    if model.get("byte_fallback") or model.get("dropout"):
        raise TokenizerError(f"{source}: BPE byte_fallback and dropout are not supported")


def _hf_added(data: dict, model_vocab: dict[str, int], source: str) -> dict[str, int]:
    """Added tokens (special or not) -> our special tokens. GPT-2 also lists its <|endoftext|> in the model vocab."""
    specials = {}
    for added in data.get("added_tokens") or []:
        content, i = added.get("content"), added.get("id")
        flags = [f for f in ("lstrip", "rstrip", "single_word") if added.get(f)]
        if flags:
            raise TokenizerError(f"{source}: added token {content!r} has {flags[0]}=true, which gpt does not apply")
        if content in model_vocab and model_vocab[content] != i:
            raise TokenizerError(f"{source}: added token {content!r} has id {i!r} but {model_vocab[content]} "
                                 "in the model vocabulary")
        specials[content] = i
    return specials


def _hf_ranks(model: dict, specials: dict[str, int], source: str) -> dict[bytes, int]:
    special_ids = set(specials.values())
    try:
        return {_hf_bytes(text): i for text, i in model["vocab"].items()
                if not (i in special_ids and specials.get(text) == i)}
    except UnicodeEncodeError as exc:
        raise TokenizerError(f"{source}: not a byte-level vocabulary (token {exc.object[:40]!r})") from None
    except (KeyError, TypeError, AttributeError):
        raise TokenizerError(f"{source}: model.vocab is not a token -> id table") from None


def _hf_merge_pairs(model: dict, ranks: dict[bytes, int], source: str) -> list[tuple[int, int, int]]:
    """The file's merges as (left id, right id, id made), in the file's order."""
    out = []
    for n, merge in enumerate(model.get("merges", [])):
        try:
            left, right = merge.split(" ") if isinstance(merge, str) else merge
            a, b = _hf_bytes(left), _hf_bytes(right)
            out.append((ranks[a], ranks[b], ranks[a + b]))
        except (KeyError, ValueError, TypeError, AttributeError):
            raise TokenizerError(f"{source}: merge {n} ({merge!r}) is not two vocabulary tokens making a third") \
                from None
    return out


def _check_merge_rule(vocab: list[bytes], merges: list[tuple[int, int]], unreachable: list[int],
                      file_merges: list[tuple[int, int, int]], ignore_merges: bool, source: str) -> None:
    """Refuse a file whose merge list would encode differently from our rank rule (see the module docstring)."""
    last = -1
    for n, (_, _, made) in enumerate(file_merges):
        if made < last:
            raise TokenizerError(f"{source}: merge {n} makes id {made} after a merge made id {last}; gpt ranks "
                                 "merges by the id they make, so merges must be listed in id order")
        last = made
    listed = {(a, b) for a, b, _ in file_merges}
    skip = set(unreachable)
    made = (i for i, tok in enumerate(vocab) if len(tok) > 1)
    for i, pair in zip(made, merges):
        if i not in skip and pair not in listed:
            raise TokenizerError(f"{source}: token {vocab[i]!r} (id {i}) has no merge {vocab[pair[0]]!r} + "
                                 f"{vocab[pair[1]]!r}, the one gpt's rank rule makes it from")
    if unreachable and not ignore_merges:
        i = unreachable[0]
        raise TokenizerError(f"{source}: token {vocab[i]!r} (id {i}) is not reached by merges and ignore_merges is "
                             "false; gpt would encode that pre-token as one token, tokenizers would not")


def from_hf_dict(data: dict, source: str = "tokenizer.json") -> Tokenizer:
    """A Tokenizer from a Hugging Face tokenizer.json (parsed), refused in one line if it would encode differently."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise TokenizerError(f"{source} is not a Hugging Face tokenizer.json")
    model = data["model"]
    _hf_model_checks(model, source)
    pattern, normalizer = _hf_pattern(data, source), _hf_normalizer(data, source)
    specials = _hf_added(data, model.get("vocab") or {}, source)
    ranks = _hf_ranks(model, specials, source)
    vocab = _vocab_from_ranks(ranks)
    merges, unreachable = recover_merges(vocab, ranks)
    _check_merge_rule(vocab, merges, unreachable, _hf_merge_pairs(model, ranks, source),
                      bool(model.get("ignore_merges")), source)
    pattern = "gpt2" if pattern == HF_BYTELEVEL_PATTERN else pattern  # the same split, tiktoken's spelling
    return _tokenizer(vocab, merges, pattern, specials, normalizer)


# ----------------------------------------------------------------------------- any file

def load_tokenizer(path: str | Path, pattern: str = "gpt4", special_tokens: dict[str, int] | None = None) -> Tokenizer:
    """Our JSON, a Hugging Face tokenizer.json, a tiktoken ranks file, or a directory holding tokenizer.json.

    pattern and special_tokens apply to a ranks file only (it holds neither).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TokenizerError(f"cannot read tokenizer {path}: {exc.strerror}") from None
    if not raw.lstrip().startswith(b"{"):
        if path.suffix in (".tiktoken", ".model"):
            return from_ranks(read_tiktoken(path), pattern, special_tokens)
        raise TokenizerError(f"{path} is not a tokenizer file (not JSON)")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TokenizerError(f"{path} is not a tokenizer file (not JSON)") from None
    if isinstance(data, dict) and "model" in data and "format" not in data:
        return from_hf_dict(data, str(path))
    if isinstance(data, dict) and data.get("format") != FORMAT:
        raise TokenizerError(f"{path} is not a gpt-bpe tokenizer file")
    return Tokenizer.from_dict(data, str(path))


def read_tokenizer_config(directory: str | Path) -> dict[str, Any]:
    """bos_token, eos_token, chat_template (and add_bos_token) from a model directory's tokenizer_config.json.

    Only the keys present are returned ({} without the file). A token given as an AddedToken object
    ({"content": ...}) is returned as its text.
    """
    path = Path(directory) / "tokenizer_config.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"cannot read {path}: {exc}") from None
    out: dict[str, Any] = {}
    for key in ("bos_token", "eos_token"):
        value = data.get(key)
        value = value.get("content") if isinstance(value, dict) else value
        if isinstance(value, str):
            out[key] = value
    template = data.get("chat_template")
    if isinstance(template, list):  # several named templates: the default one
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    if isinstance(template, str):
        out["chat_template"] = template
    if isinstance(data.get("add_bos_token"), bool):
        out["add_bos_token"] = data["add_bos_token"]
    return out
