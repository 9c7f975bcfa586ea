import pytest
import torch

from hw4.data.loaders.batches import TensorBatches


def _data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(n), torch.arange(n) * 10


def test_training_batches_cover_a_permutation_and_reshuffle_per_epoch():
    x, y = _data(100)
    loader = TensorBatches((x, y), batch_size=10, shuffle=True, seed=3)
    first = torch.cat([b[0] for b in loader])
    assert len(loader) == 10 and sorted(first.tolist()) == list(range(100))
    loader.set_epoch(1)
    second = torch.cat([b[0] for b in loader])
    assert not torch.equal(first, second)
    assert all(torch.equal(bx * 10, by) for bx, by in loader)


def test_ranks_split_each_global_batch_without_overlap():
    x, y = _data(103)
    ranks = [TensorBatches((x, y), batch_size=10, shuffle=True, seed=0, rank=r, world_size=2) for r in range(2)]
    batches = [list(r) for r in ranks]
    assert len(batches[0]) == len(batches[1]) == 10  # same number of steps on every rank
    for b0, b1 in zip(*batches):
        assert len(b0[0]) == len(b1[0]) == 5
        assert not set(b0[0].tolist()) & set(b1[0].tolist())


def test_evaluation_shards_see_every_sample_exactly_once():
    x, y = _data(1001)
    seen = []
    for rank in range(3):
        loader = TensorBatches((x, y), batch_size=64, rank=rank, world_size=3)
        got = [b[0] for b in loader]
        assert len(got) == len(loader)
        seen += torch.cat(got).tolist()
    assert sorted(seen) == list(range(1001))


def test_stacked_training_items_hold_the_same_steps_in_the_same_order():
    x, y = _data(230)
    plain = list(TensorBatches((x, y), batch_size=20, shuffle=True, seed=5))
    stacked = TensorBatches((x, y), batch_size=20, shuffle=True, seed=5, steps_per_item=4)
    items = list(stacked)
    assert len(stacked) == len(items) == 3  # 11 steps: 4 + 4 + 3
    assert [tuple(i[0].shape) for i in items] == [(4, 20), (4, 20), (3, 20)]
    assert torch.equal(torch.cat([i[0] for i in items]), torch.stack([b[0] for b in plain]))
    assert all(torch.equal(ix * 10, iy) for ix, iy in items)


def test_stacking_is_for_training_batches_only():
    with pytest.raises(ValueError, match="training batches only"):
        TensorBatches(_data(10), batch_size=5, steps_per_item=2)
