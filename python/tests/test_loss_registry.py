"""The loss kinds as the binding reads them from the library's registry
(src/loss_registry.c), and the docs' loss tables (docs/compute-cases.md) checked
against that registry: every kind listed, with exactly its params and defaults."""
import os
import re

import numpy as np
import pytest

from detloss import ops
from conftest import REPO

DOCS = os.path.join(REPO, "docs", "compute-cases.md")


def test_the_binding_reads_every_kind_from_the_library():
    assert list(ops.LOSS_KINDS.values()) == list(range(len(ops.LOSS_KINDS)))
    assert ops.LOSS_KINDS["giou_loss"] == 11 and ops.LOSSES["triplet_margin"].form == "embedding"
    assert ops.LOSSES["cross_entropy"].form == "classes"
    assert ops.LOSSES["giou_loss"].grad_inputs == ("input", "target")
    assert {p.key: p.default for p in ops.LOSSES["sigmoid_focal"].params} == \
        {"alpha": 0.25, "gamma": 2.0}
    assert ops._PARAMS == {"alpha", "gamma", "beta", "delta", "margin", "label_smoothing",
                           "eps", "p", "swap", "ignore_index", "pos_weight", "activated",
                           "iou_weighted", "detach_weight"}


def _doc_rows():
    rows = {}
    with open(DOCS) as f:
        text = f.read()
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cols = [c.strip() for c in line.strip("|").split("|")]
        names = re.findall(r"`(\w+)`", cols[0])
        params = cols[2] if len(cols) == 4 else cols[1]
        for n in names:
            if n in ops.LOSSES:
                rows[n] = dict(re.findall(r"`(\w+)` \(([^,;)]+)", params))
    return rows


@pytest.mark.skipif(not os.path.isfile(DOCS), reason="not in a source checkout")
def test_the_docs_tables_list_every_kind_with_its_params_and_defaults():
    rows = _doc_rows()
    assert set(rows) == set(ops.LOSSES)
    for name, r in ops.LOSSES.items():
        assert set(rows[name]) == {p.key for p in r.params}, name
        for p in r.params:
            doc = rows[name][p.key]
            if p.type == "floats":
                assert doc == "none", name
            elif p.type == "bool":
                assert doc == ("true" if p.default else "false"), name
            else:
                assert np.float32(float(doc)) == np.float32(p.default), (name, p.key)
