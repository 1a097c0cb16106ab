"""Pre-tokens of large inputs: cuts that change nothing, and streamed counting equal to counting the whole."""

import regex
from hypothesis import given, settings
from hypothesis import strategies as st

import gpt.pretokenize as pretokenize
from gpt import bpe
from gpt.pretokenize import count_pretokens

_CUT_TEXT = st.lists(st.sampled_from(["a", "Bo", "é", "ll", "'s", " ", "  ", "\n", "\r\n", "\t", "\u00a0", ".", "!?",
                                      "7", "12345", "\u2028", "x\u0301"]), max_size=14).map("".join)


@given(_CUT_TEXT)
@settings(max_examples=400, deadline=None)
def test_text_cut_at_safe_points_pretokenizes_as_the_whole(text):
    for name in ("gpt2", "gpt4"):
        pattern = regex.compile(bpe.PATTERNS[name])
        whole = pattern.findall(text)
        for cut in regex.finditer(pretokenize.SAFE_CUT, text):
            assert pattern.findall(text[:cut.end()]) + pattern.findall(text[cut.end():]) == whole, (name, cut.end())


def test_a_cut_after_a_newline_would_not_be_safe():
    # Why SAFE_CUT is not "after a newline": GPT-2's pattern ends a piece's trailing whitespace differently.
    gpt2 = regex.compile(bpe.PATTERNS["gpt2"])
    assert gpt2.findall("a  \nBob") != gpt2.findall("a  \n") + gpt2.findall("Bob")
    assert [m.end() for m in regex.finditer(pretokenize.SAFE_CUT, "a  \nBob")] == [1]  # after the letter only


def test_streamed_training_equals_whole(monkeypatch, shakespeare):
    text = shakespeare[:300_000]
    whole = count_pretokens([text], bpe.PATTERNS["gpt4"])
    monkeypatch.setattr(pretokenize, "PIECE_CHARS", 5_000)
    assert count_pretokens([text], bpe.PATTERNS["gpt4"]) == whole
    assert count_pretokens([text], bpe.PATTERNS["gpt4"], workers=2) == whole
