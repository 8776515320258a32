"""Test setup: import the package from this source tree (no install needed); the
library comes from DETLOSS_LIBRARY or the build tree (see detloss/_lib.py)."""
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)
REPO = os.path.dirname(PYDIR)
if PYDIR not in sys.path:
    sys.path.insert(0, PYDIR)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def random_boxes(rng, n, scale=100.0, min_size=1.0):
    """n well-formed float32 boxes (x1 < x2, y1 < y2)."""
    xy = rng.uniform(0, scale, (n, 2))
    wh = rng.uniform(min_size, scale / 2, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)
