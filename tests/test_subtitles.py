"""Subtitles read as what was said: cue numbers, times and styling dropped, rolling captions said once."""

from hypothesis import given
from hypothesis import strategies as st

from gpt.documents import read_documents
from gpt.qa import derive_from_files
from gpt.subtitles import subtitles_to_markdown

SRT = """1
00:00:01,000 --> 00:00:03,500
<i>Welcome</i> to the talk on houseplants.

2
00:00:03,600 --> 00:00:06,000
Monstera is a genus of flowering plants
native to tropical America.

3
01:00:10,000 --> 01:00:12,000
Water it when the top of the soil is dry &amp; warm.
"""

VTT = """WEBVTT
Kind: captions
Language: en

NOTE written by hand

STYLE
::cue { color: yellow }

00:00.000 --> 00:02.000 align:start position:0%
<v Ann>Pothos<00:00:00.500><c> is</c><00:00:01.000><c> a</c> trailing vine

00:02.000 --> 00:02.010 align:start position:0%
Pothos is a trailing vine
<SPACE>

00:02.010 --> 00:04.000 align:start position:0%
Pothos is a trailing vine
that tolerates low light.
""".replace("<SPACE>", " ")  # a line of one space, as YouTube's captions have


def test_a_talk_as_paragraphs_split_at_its_pauses():
    assert subtitles_to_markdown(SRT) == ("Welcome to the talk on houseplants. Monstera is a genus of flowering plants "
                                          "native to tropical America.\n\nWater it when the top of the soil is dry & "
                                          "warm.\n")  # an hour's pause before the third cue
    assert subtitles_to_markdown(SRT.replace("\n", "\r\n")) == subtitles_to_markdown(SRT)  # as Windows writes it


def test_rolling_captions_tags_and_blocks_that_are_no_cue():
    assert subtitles_to_markdown(VTT) == "Pothos is a trailing vine that tolerates low light.\n"
    assert subtitles_to_markdown("WEBVTT\n\nNOTE nothing said\n") == ""


def test_questions_from_a_talk(tmp_path):
    (tmp_path / "talk.srt").write_text(SRT, encoding="utf-8")
    (tmp_path / "video.en.vtt").write_text(VTT, encoding="utf-8")
    files = [str(tmp_path / "talk.srt"), str(tmp_path / "video.en.vtt")]
    assert [d.text for d in read_documents(files)] == [subtitles_to_markdown(SRT), subtitles_to_markdown(VTT)]
    pairs = {p.question: p.answer for p in derive_from_files(files)}
    assert pairs["What is Monstera?"] == "Monstera is a genus of flowering plants native to tropical America."
    assert pairs["What is Pothos?"] == "Pothos is a trailing vine that tolerates low light."


@given(st.text(alphabet=st.sampled_from("0123456789:,.-> \n\r<>/abcWEBVT&;"), max_size=300))
def test_any_text_converts(text):
    converted = subtitles_to_markdown(text)
    assert converted == "" or converted.endswith("\n") and not converted.startswith("\n") and "\r" not in converted
