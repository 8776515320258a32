"""The name sets and option descriptor tables as the binding reads them from the
library's registry (src/registry.c): the binding's name dicts are those tables, the
hand-written ctypes layouts of the options structs agree with the library's
descriptor tables (field offsets and struct sizes), the defaults are the
*_default() functions', and the docs' name lists (docs/compute-cases.md) agree."""
import ctypes
import os
import re

import numpy as np
import pytest

import detloss
from detloss import _lib, ops
from conftest import REPO

DOCS = os.path.join(REPO, "docs", "compute-cases.md")

STRUCTS = {"match": _lib.MatchOptions, "sample": _lib.SampleOptions,
           "coder": _lib.CoderOptions, "rpn": _lib.RpnOptions, "retina": _lib.RetinaOptions,
           "eval": _lib.EvalOptions, "resize": _lib.EvalOptions, "atss": _lib.AtssOptions,
           "fcos": _lib.FcosOptions}
DEFAULTS = {"match": "detloss_match_options_default", "sample": "detloss_sample_options_default",
            "coder": "detloss_coder_options_default", "rpn": "detloss_rpn_options_default",
            "retina": "detloss_retina_options_default", "eval": "detloss_eval_options_default",
            "resize": "detloss_eval_options_default", "atss": "detloss_atss_options_default",
            "fcos": "detloss_fcos_options_default"}


def test_the_binding_reads_every_name_from_the_library():
    assert set(ops.NAMES) == set(_lib.NAME_SETS)
    for s, table in ops.NAMES.items():
        k = _lib.NAME_SETS.index(s)
        assert list(table.values()) == list(range(len(table)))
        assert len(table) == _lib.fn("detloss_names_count")(k)
        for name, v in table.items():
            assert _lib.fn("detloss_names_find")(k, name.encode()).contents.value == v
    assert ops.RPN_CONVENTIONS == {"torchvision": 0, "detectron2": 1, "py_faster_rcnn": 2}
    assert ops.RETINA_NORMALIZERS == {"torchvision": 0, "detectron2_ema": 1, "caller": 2}
    assert ops._SEMANTICS == {"torchvision": 0, "detectron2": 1, "mmdet": 2}
    assert ops.BOX_LOSSES is ops.NAMES["box_loss"] and ops._IOU_KINDS is ops.NAMES["iou_kind"]
    alias = _lib.fn("detloss_names_find")(1, b"py-faster-rcnn").contents
    assert alias.name == b"py_faster_rcnn" and alias.alias == b"py-faster-rcnn"


@pytest.mark.parametrize("kind", _lib.OPTIONS_KINDS)
def test_ctypes_layouts_agree_with_the_descriptor_tables(kind):
    t = ops.OPTIONS[kind]
    struct = STRUCTS[kind]
    assert t.name == {"match": "detloss_match_options", "sample": "detloss_sample_options",
                      "coder": "detloss_coder_options", "rpn": "detloss_rpn_options",
                      "retina": "detloss_retina_options", "atss": "detloss_atss_options",
                      "fcos": "detloss_fcos_options"}.get(kind, "detloss_eval_options")
    assert ctypes.sizeof(struct) == t.size
    names = [n for n, _ in struct._fields_]
    for f in t.fields:
        assert f.field in names, f.field
        assert getattr(struct, f.field).offset == f.offset, f.field


@pytest.mark.parametrize("kind", _lib.OPTIONS_KINDS)
def test_descriptor_defaults_are_the_default_functions(kind):
    o = _lib.fn(DEFAULTS[kind])()
    for f in ops.OPTIONS[kind].fields:
        v = getattr(o, f.field)
        if f.type == "f32x4":
            assert list(v) == [np.float32(f.default)] * 4
        elif f.type == "f32":
            assert v == np.float32(f.default), f.field
        else:
            assert v == f.default, f.field
        if f.type == "enum":
            assert f.names in ops.NAMES and v in ops.NAMES[f.names].values()


def test_match_options_default_from_the_library():
    o = ops._match_options()
    d = _lib.fn("detloss_match_options_default")()
    for f in ops.OPTIONS["match"].fields:
        assert getattr(o, f.field) == getattr(d, f.field)
    o = ops._match_options(high=0.5, semantics="mmdet", allow_low_quality=False)
    assert o.high == 0.5 and o.semantics == 2 and o.allow_low_quality == 0 and o.low == d.low
    with pytest.raises(detloss.DetlossError) as e:
        ops._match_options(semantics="mmdetection")
    assert e.value.where == "semantics"
    assert e.value.message == ("must be one of ['detectron2', 'mmdet', 'torchvision'], "
                               "got 'mmdetection'")
    a = np.array([[0, 0, 10, 10], [0, 0, 4, 4], [20, 20, 30, 30]], np.float32)
    g = np.array([[0, 0, 9, 9]], np.float32)
    assert np.array_equal(ops.match(a, g), ops.match(a, g, 0.7, 0.3, True))


def _doc_lists():
    with open(DOCS) as f:
        text = " ".join(f.read().split())
    return {m.group(1): [n.strip(" `") for n in m.group(2).split("|")]
            for m in re.finditer(r"`(\w+)` \(((?:`\w+` \| )+`\w+`)", text)}


def test_docs_name_lists_agree_with_the_registry():
    lists = _doc_lists()
    sets = {"semantics": "semantics", "convention": "rpn_convention", "box_loss": "box_loss",
            "normalizer": "retina_normalizer"}
    for key, s in sets.items():
        assert lists[key] == list(ops.NAMES[s]), key
    with open(DOCS) as f:
        text = f.read()
    kinds = re.search(r"`kind` ∈ `([\w |]+)`", text).group(1)
    assert [k.strip() for k in kinds.split("|")] == list(ops.NAMES["iou_kind"])
