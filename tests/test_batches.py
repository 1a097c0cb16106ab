"""Batch sources: seeded, resumable, rank-sliced windows, each token once a pass; evaluation windows that cover
each token once."""

import numpy as np

from gpt.batches import Batches, eval_windows
from gpt.model import IGNORE_INDEX


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_batches_reproducible_and_resumable():
    tokens = np.arange(10_000, dtype=np.uint16)
    a, b = Batches(tokens, 8, 4, seed=7), Batches(tokens, 8, 4, seed=7)
    for _ in range(3):
        assert torch_equal(a.next()[0], b.next()[0])
    state = a.state_dict()
    expected = a.next()[0]
    c = Batches(tokens, 8, 4, seed=0)
    c.load_state_dict(state)
    assert torch_equal(c.next()[0], expected)


def test_a_pass_tiles_the_text_from_its_own_offset():
    tokens = np.arange(1_000, dtype=np.uint16)  # a window's first input is its start
    batches = Batches(tokens, 10, 1, seed=5)
    passes: dict[int, list[int]] = {}
    while batches.epoch < 4:
        start = int(batches.next()[0][0, 0])
        passes.setdefault(batches.epoch, []).append(start)  # the pass that window came from
    assert passes[0] != sorted(passes[0])  # shuffled
    del passes[4]  # its first window only
    for starts in passes.values():
        starts.sort()
        assert starts[0] < 10 and starts[-1] + 10 >= batches.high - 10  # from the offset to the end
        assert all(b - a == 10 for a, b in zip(starts, starts[1:]))  # abutting, none twice, none skipped
    assert len({starts[0] for starts in passes.values()}) > 1  # the edges move between passes


def test_windows_are_shuffled_and_a_batch_runs_on_into_the_next_pass():
    tokens = np.arange(100, dtype=np.uint16)
    batches = Batches(tokens, 8, 5, seed=2)  # 11 or 12 windows a pass: the third batch spans two passes
    firsts = [batches.next()[0][:, 0].tolist() for _ in range(3)]
    assert batches.epoch == 1
    counts = np.bincount(np.concatenate(firsts), minlength=100)
    assert counts.max() <= 2  # a start repeats only across passes
    state = batches.state_dict()
    expected = [batches.next()[0] for _ in range(4)]
    resumed = Batches(tokens, 8, 5, seed=0)
    resumed.load_state_dict(state)
    assert all(torch_equal(resumed.next()[0], e) for e in expected)


def test_ranks_take_disjoint_slices_of_the_global_batch():
    tokens = np.arange(100_000, dtype=np.uint32)
    whole = Batches(tokens, 8, 6, seed=3).next()[0]
    parts = [Batches(tokens, 8, 3, seed=3, rank=r, world_size=2).next()[0] for r in range(2)]
    assert torch_equal(whole[:3], parts[0]) and torch_equal(whole[3:], parts[1])


def test_eval_windows_cover_every_token_once():
    tokens = np.arange(1, 102, dtype=np.int64)  # 100 targets
    targets = [t for _, y in eval_windows(tokens, 16, 3) for t in y[y != IGNORE_INDEX].tolist()]
    assert targets == list(range(2, 102))




def test_eval_windows_split_over_ranks_cover_each_window_once():
    tokens = np.arange(1, 202, dtype=np.int64)
    alone = sorted(t for _, y in eval_windows(tokens, 16, 2) for t in y[y != IGNORE_INDEX].tolist())
    shared = sorted(t for r in range(3) for _, y in eval_windows(tokens, 16, 2, rank=r, world_size=3)
                    for t in y[y != IGNORE_INDEX].tolist())
    assert alone == shared == list(range(2, 202))
    capped = [y for _, y in eval_windows(tokens, 16, 2, max_batches=2)]
    assert len(capped) == 2 and all(y.shape == (2, 16) for y in capped)
