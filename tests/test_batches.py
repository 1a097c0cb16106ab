"""Batch sources: seeded, resumable, rank-sliced random windows; evaluation windows that cover each token once."""

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
