"""Subtitles (SRT, WebVTT) read as what was said: a lecture's or a talk's transcript as paragraphs of text.

A subtitle file is mostly numbers and times: "12", "00:01:02,500 --> 00:01:04,000", then a line or two of words.
Trained on as it is, a model would learn the times; asked about the talk, it would quote half-sentences cut at
cue boundaries. So each file is converted whole (gpt/documents.py, like a web page): the cues' words joined into
sentences, a pause of more than PAUSE seconds between two cues starting a new paragraph, styling tags ("<i>",
"<c.yellow>", a karaoke time "<00:01:03.000>", a speaker's "<v Ann>") dropped, and a line that repeats the one
before (YouTube's rolling captions show each line twice, in two cues) said once.
"""

from __future__ import annotations

import html
import re

SUBTITLE_SUFFIXES = (".srt", ".vtt")
PAUSE = 2.0  # seconds of silence between two cues that end a paragraph
_TIME = r"(?:(\d{1,3}):)?(\d{1,2}):(\d{2})[.,](\d{3})"  # "01:02:03,500" (SRT), "02:03.500" (WebVTT)
_CUE_TIMES = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_TAG = re.compile(r"<[^<>\n]*>")
_BLANK_LINES = re.compile(r"\n[ \t]*\n")


def subtitles_to_markdown(text: str) -> str:
    """The words of a subtitle file as paragraphs (see the module's docstring); "" for one with no cue."""
    paragraphs: list[list[str]] = [[]]
    last_end, previous = None, ""
    for block in _BLANK_LINES.split(text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = block.strip("\n").split("\n")
        timing = next((i for i, line in enumerate(lines) if _CUE_TIMES.match(line)), None)
        if timing is None:
            continue  # WebVTT's header, a NOTE, STYLE or REGION block, a stray line
        times = _CUE_TIMES.match(lines[timing]).groups()
        start, end = _seconds(times[:4]), _seconds(times[4:])
        if last_end is not None and start - last_end > PAUSE and paragraphs[-1]:
            paragraphs.append([])
        for line in lines[timing + 1:]:
            words = " ".join(html.unescape(_TAG.sub("", line)).split())
            if words and words != previous:
                paragraphs[-1].append(words)
                previous = words
        last_end = end
    return "\n\n".join(" ".join(p) for p in paragraphs if p) + ("\n" if paragraphs[0] else "")


def _seconds(time: tuple[str | None, ...]) -> float:
    hours, minutes, seconds, millis = (int(part or 0) for part in time)
    return hours * 3600 + minutes * 60 + seconds + millis / 1000
