"""Speculative decoding (gpt/speculate.py): the one-token path's tokens whatever the drafts, in fewer forwards."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gpt.speculate
from gpt.config import SampleConfig
from gpt.decode import decode_block, decode_stream
from gpt.sampling import Quote
from gpt.speculate import CorpusIndex, Drafter, speculative_stream
from tests.test_sampling import VARIANTS, model_for

GREEDY = SampleConfig(max_new_tokens=60, temperature=0)
SAMPLED = SampleConfig(max_new_tokens=60, temperature=0.9, top_k=20, top_p=0.9, repetition_penalty=1.3)


def tokens(stream) -> list[int]:
    return [t.item() for t in stream]


def both(model, idx, opts, seed=3, **kw) -> tuple[list[int], list[int]]:
    plain = tokens(decode_stream(model, idx, opts, torch.Generator().manual_seed(seed)))
    fast = tokens(speculative_stream(model, idx, opts, torch.Generator().manual_seed(seed), **kw))
    return plain, fast


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("block_size", [40, 12])  # 12: the window slides several times
@pytest.mark.parametrize("opts", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_same_tokens_as_the_one_token_path(variant, block_size, opts):
    model = model_for(variant, seed=1, block_size=block_size)
    idx = torch.randint(0, 97, (1, 7), generator=torch.Generator().manual_seed(5))
    plain, fast = both(model, idx, opts)
    assert fast == plain
    corpus = CorpusIndex(np.array(plain * 2 + list(range(97))))  # drafts from the corpus, right and wrong
    assert tokens(speculative_stream(model, idx, opts, torch.Generator().manual_seed(3), corpus=corpus)) == plain


@settings(max_examples=25, deadline=None)
@given(corpus=st.lists(st.integers(0, 120), min_size=0, max_size=300), prompt=st.lists(st.integers(0, 96), min_size=1,
       max_size=30), draft_tokens=st.integers(1, 9), temperature=st.sampled_from([0.0, 1.0]))
def test_any_draft_leaves_the_output_alone(corpus, prompt, draft_tokens, temperature):
    """Drafts are guesses: garbage ones (ids past the vocabulary included) cost time, never change a token."""
    model = model_for("modern", seed=2, block_size=24)
    opts = SampleConfig(max_new_tokens=30, temperature=temperature)
    index = CorpusIndex(np.array(corpus, dtype=np.int64))
    plain, fast = both(model, torch.tensor([prompt]), opts, corpus=index, draft_tokens=draft_tokens)
    assert fast == plain


def test_a_quote_constraint_is_followed_token_by_token():
    model = model_for("llama", seed=4)
    sources = [[5, 6, 7, 8, 9, 10, 11], [20, 21, 22, 23]]
    idx = torch.tensor([[1, 2, *sources[0], 3, *sources[1], 4]])
    opts = SampleConfig(max_new_tokens=12, temperature=0)
    plain = tokens(decode_stream(model, idx, opts, constraint=Quote(sources, [96])))
    fast = tokens(speculative_stream(model, idx, opts, constraint=Quote(sources, [96])))
    assert fast == plain
    quote = plain[:plain.index(96)]  # then only the end token may come
    assert quote and any(quote == s[i:i + len(quote)] for s in sources for i in range(len(s)))


def test_a_reply_the_corpus_holds_takes_fewer_forwards():
    """A reply the drafts can guess (here: the corpus holds it) comes several tokens to a forward."""
    model = model_for("gpt2")
    prompt = [3, 1, 4]
    plain = tokens(decode_stream(model, torch.tensor([prompt]), GREEDY))
    forwards = []
    counted = lambda *a: forwards.append(a[2].size(1)) or decode_block(*a)  # noqa: E731
    corpus = CorpusIndex(np.array(prompt + plain))
    assert tokens(speculative_stream(model, torch.tensor([prompt]), GREEDY, corpus=corpus, forward=counted)) == plain
    assert len(forwards) < len(plain) / 3 and max(forwards) == 2 * gpt.speculate.DRAFT_TOKENS + 2  # sure: longer


def test_a_quoted_reply_is_drafted_from_its_quote():
    """With no corpus and no repeat in the prompt to draft from, a quote's own continuation is the draft (here
    the quote is the whole passage: it starts at its start and may end only at its end)."""
    model = model_for("modern", seed=4, block_size=128)
    source = list(range(20, 60))
    idx = torch.tensor([[1, *source, 2]])
    opts = SampleConfig(max_new_tokens=30, temperature=0)
    quote = lambda: Quote([source], [96], start_at=[[0]], end_after=[[]])  # noqa: E731
    forwards = []
    counted = lambda *a: forwards.append(a[2].size(1)) or decode_block(*a)  # noqa: E731
    plain = tokens(decode_stream(model, idx, opts, constraint=quote()))
    assert tokens(speculative_stream(model, idx, opts, constraint=quote(), forward=counted)) == plain == source[:30]
    # 29 tokens after the prefill's: 7 guesses, all taken, then twice as many, then what is left
    assert forwards == [gpt.speculate.DRAFT_TOKENS + 1, 2 * gpt.speculate.DRAFT_TOKENS + 2, 5]


def test_drafter_prefers_the_longest_match_in_the_text_then_the_corpus():
    drafter = Drafter(CorpusIndex(np.array([7, 8, 9, 50, 51, 52, 53])), vocab_size=52)
    drafter.extend([1, 2, 3, 4, 9, 3, 4, 5, 1, 2, 3])
    assert drafter.draft(3) == [4, 9, 3]  # after "1 2 3", not after the later "3 4" -> 5
    drafter.extend([4, 5, 6])
    assert drafter.draft(3) == []  # "4 5 6" and "5 6" occur nowhere before
    drafter.extend([7, 8, 9])
    assert drafter.draft(5) == [50, 51]  # from the corpus, cut before the first id past the vocabulary
    assert drafter.draft(0) == []


def test_corpus_index_finds_each_ngram_and_only_those():
    corpus = np.array([5, 6, 7, 8, 9, 5, 6, 7, 8, 1], dtype=np.uint16)
    index = CorpusIndex(corpus)
    assert index.continuation([0, 5, 6, 7], 2) in ([8, 9], [8, 1])  # the last n tokens, at either occurrence
    assert index.continuation([7, 8, 9], 4) == [5, 6, 7, 8]
    assert index.continuation([8, 1], 3) == []  # shorter than the index's n-gram
    assert index.continuation([9, 9, 9], 3) == []
    assert CorpusIndex(np.array([], dtype=np.uint16)).continuation([1, 2, 3], 3) == []


def test_the_model_is_left_clean_when_the_reader_stops_early():
    model = model_for("modern")
    stream = speculative_stream(model, torch.tensor([[1, 2, 3]]), GREEDY)
    next(stream)
    stream.close()
    assert all(block.attn.cache is None for block in model.h)
    assert tokens(speculative_stream(model, torch.tensor([[1, 2]]), SampleConfig(max_new_tokens=0))) == []
    with pytest.raises(ValueError, match="batch size 1"):
        next(speculative_stream(model, torch.zeros(2, 3, dtype=torch.long), GREEDY))


def test_drafts_stop_being_sent_while_missed_and_resume_once_taken():
    drafter = Drafter()
    assert drafter.worth_sending()  # a new reply tries its drafts
    for _ in range(10):
        drafter.score([1, 2, 3], [4, 2, 3])  # the first guess missed: one miss, the rest not counted
    assert not drafter.worth_sending()
    drafter.score([5], [5])
    assert not drafter.worth_sending()  # one hit does not outweigh ten misses
    for _ in range(3):
        drafter.score([5, 6, 7], [5, 6, 7])  # scored as a draft not sent is: its guesses against the tokens chosen
    assert drafter.worth_sending()


def test_drafts_grow_while_nearly_every_guess_is_taken():
    drafter = Drafter()
    assert drafter.draft_length(7) == 7  # as it starts: half taken
    drafter.score([1] * 20, [1] * 20)
    assert drafter.draft_length(7) == 15
    for _ in range(2):
        drafter.score([1], [2])  # two misses in a row
    assert drafter.draft_length(7) == 7
