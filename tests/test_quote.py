"""Quoting (gpt.sampling.Quote): decoding that can only copy a span of the passages, then end."""

from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt.config import SampleConfig
from gpt.sampling import Quote, generate_stream

END = 99
PASSAGE = [10, 11, 12, 10, 11, 13, 14]  # "10 11" occurs twice, followed once by 12, once by 13


def taken(quote: Quote, tokens: list[int]) -> Quote:
    for token in tokens:
        quote.advance(token)
    return quote


def test_any_passage_token_may_start_but_not_the_end():
    assert Quote([PASSAGE], {END}).allowed() == [10, 11, 12, 13, 14]


def test_after_a_prefix_only_its_continuations_or_the_end():
    assert taken(Quote([PASSAGE], {END}), [12]).allowed() == [10, END]
    assert taken(Quote([PASSAGE], {END}), [12, 10, 11]).allowed() == [13, END]
    assert taken(Quote([PASSAGE], {END}), [13, 14]).allowed() == [END]  # the passage's end: only the end


def test_a_span_that_occurs_twice_continues_either_way_until_it_is_told_apart():
    quote = taken(Quote([PASSAGE], {END}), [10])
    assert quote.active == [1, 4] and quote.allowed() == [11, END]
    quote.advance(11)
    assert quote.allowed() == [12, 13, END]
    quote.advance(13)
    assert quote.active == [6] and quote.allowed() == [14, END]


def test_the_end_ends_and_nothing_else_follows():
    quote = taken(Quote([PASSAGE], {END, 98}), [11, 98])
    assert quote.ended and quote.allowed() == [98, END]
    quote.advance(END)  # a stream that does not stop at the end token may go on with end tokens
    with pytest.raises(ValueError):
        quote.advance(12)


def test_a_token_that_does_not_continue_is_refused():
    with pytest.raises(ValueError):
        taken(Quote([PASSAGE], {END}), [10, 12])
    with pytest.raises(ValueError):
        Quote([PASSAGE], {END}).advance(END)  # an empty quote: at least one token first


def test_a_span_never_runs_from_one_passage_into_the_next():
    quote = taken(Quote([[1, 2], [3, 4]], {END}), [2])
    assert quote.allowed() == [END]


def test_a_quote_starts_with_the_bare_form_of_a_spaced_passage_token():
    """A reply is tokenized on its own, without a leading space: " person" starts a quote as "person"."""
    quote = Quote([PASSAGE], {END}, bare={11: 51})  # 11 is " person", 51 is "person"
    assert quote.allowed() == [10, 12, 13, 14, 51]
    quote.advance(51)
    assert quote.allowed() == [12, 13, END]
    quote.advance(12)
    with pytest.raises(ValueError):
        quote.advance(51)  # the bare form only starts a quote


def test_starts_and_ends_can_be_limited_to_given_tokens():
    quote = Quote([PASSAGE, [20, 21]], {END}, bare={13: 53}, start_at=[[0, 5], [1]], end_after=[[2], []])
    assert quote.allowed() == [10, 21, 53]  # PASSAGE[0], PASSAGE[5] in its bare form, the second's [1]
    quote.advance(10)
    assert quote.allowed() == [11]  # only the first "10" may start: "10 11" at 3 is not a start
    quote.advance(11)
    assert quote.allowed() == [12]  # no end after "11"
    quote.advance(12)
    assert quote.allowed() == [10, END]  # PASSAGE[2] ends a sentence
    assert taken(Quote([PASSAGE], {END}, start_at=[[5]], end_after=[[]]), [13, 14]).allowed() == [END]  # last


def test_mask_keeps_exactly_the_allowed_logits():
    logits = torch.arange(100.0).view(1, 100)
    masked = taken(Quote([PASSAGE], {END}), [10]).mask(logits)
    assert torch.isfinite(masked).nonzero()[:, 1].tolist() == [11, END]
    assert masked[0, 11] == 11 and masked[0, END] == END


def is_quoted(reply: list[int], sources: list[list[int]], bare: dict[int, int]) -> bool:
    """reply is a contiguous run of one source, its first token possibly the bare form of the source's."""
    n = len(reply)
    for source in sources:
        for at in range(len(source) - n + 1):
            window = source[at:at + n]
            if window[1:] == reply[1:] and reply[0] in (window[0], bare.get(window[0])):
                return True
    return False


def fake_model(steps: list[list[float]]):
    """A stand-in model whose logits at step i are steps[i] (decoding only asks read() and step())."""
    model = SimpleNamespace(config=SimpleNamespace(block_size=64), clear_cache=lambda: None)
    logits = torch.tensor(steps)
    read = lambda m, seq: (logits[0:1], None)  # noqa: E731
    step = lambda m, cache, token, pos: logits[pos - 3:pos - 2]  # noqa: E731 (the prompt is 3 tokens)
    return model, read, step


VOCAB = 24


@settings(max_examples=60, deadline=None)
@given(sources=st.lists(st.lists(st.integers(0, VOCAB - 3), min_size=1, max_size=12), min_size=1, max_size=3),
       steps=st.lists(st.lists(st.floats(-20, 20), min_size=VOCAB, max_size=VOCAB), min_size=16, max_size=16),
       temperature=st.sampled_from([0.0, 0.7, 1.5]), top_k=st.sampled_from([0, 3]), seed=st.integers(0, 99),
       bounded=st.booleans(), data=st.data())
def test_whatever_the_logits_the_reply_is_a_span_of_a_passage(sources, steps, temperature, top_k, seed, bounded,
                                                                data):
    end, bare = VOCAB - 1, {0: VOCAB - 2}
    starts = ends = None
    if bounded:  # random sentence bounds, the first source's first token always a start
        starts = [data.draw(st.sets(st.integers(0, len(s) - 1))) | ({0} if n == 0 else set())
                  for n, s in enumerate(sources)]
        ends = [data.draw(st.sets(st.integers(0, len(s) - 1))) for s in sources]
    quote = Quote(sources, {end}, bare, starts, ends)
    model, read, step = fake_model(steps)
    opts = SampleConfig(max_new_tokens=16, temperature=temperature, top_k=top_k)
    gen = torch.Generator().manual_seed(seed)
    reply, ended = [], False
    for token in generate_stream(model, torch.tensor([[1, 2, 3]]), opts, gen, read, step, constraint=quote):
        if token.item() == end:
            ended = True
            break
        reply.append(token.item())
    assert reply and is_quoted(reply, sources, bare), (reply, sources)
    if bounded:  # it starts at a start; it ends after an end (or its source's last token), unless cut at 16
        assert any(a in starts[n] and is_quoted(reply, [s[a:a + len(reply)]], bare)
                   and (not ended or a + len(reply) - 1 in ends[n] | {len(s) - 1})
                   for n, s in enumerate(sources) for a in range(len(s) - len(reply) + 1)), (reply, starts, ends)


def test_token_spans_find_the_passages_tokens_in_the_prompt(tmp_path):
    from gpt.bpe import Tokenizer
    from gpt.generate import bare_tokens, token_spans
    text = "Context:\nMonstera: A climbing plant.\n\nPothos: A vine.\n\nQuestion: What is Monstera?"
    tok = Tokenizer.train([text * 5], 300)
    ids = tok.encode(text)
    spans = token_spans(tok, ids, ["Monstera: A climbing plant.", "Pothos: A vine.", "absent"])
    assert [tok.decode(s) for s in spans] == ["Monstera: A climbing plant.", "Pothos: A vine.", ""]
    bare = bare_tokens(tok, set(ids))
    assert all(tok.decode_bytes([t]) == b" " + tok.decode_bytes([b]) for t, b in bare.items()) and bare


def test_sentence_bounds_start_at_the_body_and_after_each_sentence():
    from gpt.bpe import Tokenizer
    from gpt.generate import sentence_bounds
    text = "Monstera: A climbing plant. It has split leaves, e.g. big ones. Grow it in shade."
    tok = Tokenizer.train([text * 5], 320)
    ids = tok.encode(text)
    starts, ends = sentence_bounds(tok, ids, body=len("Monstera: "))
    pieces = [tok.decode(ids[a:b + 1]).strip() for a, b in zip(starts, ends + [len(ids) - 1])]
    assert pieces == ["A climbing plant.", "It has split leaves, e.g. big ones.", "Grow it in shade."]


def test_a_quote_guesses_how_it_goes_on():
    """Drafts for speculative decoding: the first start's tokens, then the first occurrence's continuation."""
    quote = Quote([PASSAGE, [30, 31]], {END}, bare={10: 40}, start_at=[[3, 5], [0]])
    assert quote.guess(3) == [40, 11, 13]  # from the first start (position 3), its first token in its bare form
    assert taken(quote, [13]).guess(9) == [14]  # never past its passage's end
    assert taken(Quote([PASSAGE], {END}), [10]).guess(2) == [11, 12]  # "10" occurs twice: the first goes on
    assert taken(Quote([PASSAGE], {END}), [10, 11, 12]).guess(2) == [10, 11] and Quote([PASSAGE], {END}).guess(0) == []
    assert taken(Quote([PASSAGE], {END}), [14, END]).guess(3) == []  # ended
