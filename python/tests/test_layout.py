"""The ctypes mirrors of the C structs and prototypes against include/detloss/detloss.h:
same fields in the same order with the same sizes, every public function bound with
the right number of arguments, and the *_default() functions read back through them."""
import ctypes
import os
import re

import numpy as np
import pytest

from detloss import _lib
from conftest import REPO

HEADER = os.path.join(REPO, "include", "detloss", "detloss.h")
HEADER_JSON = os.path.join(REPO, "include", "detloss", "detloss_json.h")
pytestmark = pytest.mark.skipif(not os.path.isfile(HEADER), reason="not in a source checkout")

STRUCTS = {
    "detloss_error": _lib.Error, "detloss_iou_options": _lib.IouOptions,
    "detloss_coder_options": _lib.CoderOptions, "detloss_anchor_level": _lib.AnchorLevel,
    "detloss_anchor_config": _lib.AnchorConfig, "detloss_match_options": _lib.MatchOptions,
    "detloss_sample_options": _lib.SampleOptions, "detloss_loss_options": _lib.LossOptions,
    "detloss_head_image": _lib.HeadImage, "detloss_head_image_stats": _lib.HeadImageStats,
    "detloss_head_result": _lib.HeadResult, "detloss_rpn_options": _lib.RpnOptions,
    "detloss_retina_options": _lib.RetinaOptions, "detloss_eval_dataset": _lib.EvalDataset,
    "detloss_eval_anchors": _lib.EvalAnchors, "detloss_eval_options": _lib.EvalOptions,
    "detloss_eval_gt": _lib.EvalGt, "detloss_eval_stats": _lib.EvalStats,
    "detloss_eval_worst": _lib.EvalWorst, "detloss_eval_report": _lib.EvalReport,
    "detloss_config": _lib.Config, "detloss_dataset": _lib.Dataset,
    "detloss_json_limits": _lib.JsonLimits, "detloss_loss_param": _lib.LossParam,
    "detloss_simota_options": _lib.SimotaOptions, "detloss_simota_image": _lib.SimotaImage,
    "detloss_loss_info": _lib.LossInfo, "detloss_name_info": _lib.NameInfo,
    "detloss_option_field": _lib.OptionField, "detloss_options_info": _lib.OptionsInfo,
    "detloss_yolo_options": _lib.YoloOptions, "detloss_eval_assigner": _lib.EvalAssigner,
    "detloss_atss_options": _lib.AtssOptions, "detloss_fcos_options": _lib.FcosOptions,
    "detloss_yolov8_options": _lib.Yolov8Options, "detloss_yolov8_image": _lib.Yolov8Image,
    "detloss_yolov8_result": _lib.Yolov8Result,
}
from detloss import head_fcos as _head_fcos  # noqa: E402
STRUCTS.update({"detloss_fcos_loss_options": _head_fcos.FcosLossOptions,
                "detloss_fcos_image": _head_fcos.FcosImage,
                "detloss_fcos_result": _head_fcos.FcosResult})
SCALARS = {"float": 4, "double": 8, "int": 4, "size_t": ctypes.sizeof(ctypes.c_size_t),
           "int64_t": 8, "uint64_t": 8, "uint32_t": 4, "int16_t": 2, "uint8_t": 1, "char": 1}


def _source():
    text = ""
    for h in (HEADER, HEADER_JSON):
        with open(h) as f:
            text += f.read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    consts = dict(re.findall(r"#define\s+(DETLOSS_\w+)\s+(\d+)\s*$", text, flags=re.M))
    return text, consts


def _parse_structs():
    text, consts = _source()
    out = {}
    for m in re.finditer(r"typedef struct (\w+) \{(.*?)\} \1;", text, flags=re.S):
        fields = []
        body = re.sub(r"\w[\w\s\*]*\(\s*\*\s*(\w+)\s*\)\s*\([^)]*\)", r"void *\1", m.group(2))
        for decl in body.split(";"):
            decl = " ".join(decl.split())
            if not decl:
                continue
            decl = re.sub(r"\bconst\b ?", "", decl)
            tm = re.match(r"([\w]+)\s*(.*)", decl)
            base, rest = tm.group(1), tm.group(2)
            for name in rest.split(","):
                name = name.strip()
                ptr_ = name.startswith("*")
                name = name.lstrip("* ")
                n = 1
                am = re.match(r"(\w+)\[(\w+)\]", name)
                if am:
                    name, dim = am.group(1), am.group(2)
                    n = int(consts.get(dim, dim))
                fields.append((name, base, ptr_, n))
        out[m.group(1)] = fields
    return out


def _c_size(base, ptr_, n, structs):
    if ptr_:
        return ctypes.sizeof(ctypes.c_void_p) * n
    if base in SCALARS:
        return SCALARS[base] * n
    if base in STRUCTS:
        return ctypes.sizeof(STRUCTS[base]) * n
    return 4 * n  # an enum


def test_every_struct_mirror_has_the_headers_fields_in_order_with_the_same_sizes():
    parsed = _parse_structs()
    for cname, cls in STRUCTS.items():
        assert cname in parsed, "header has no struct %s" % cname
        fields = parsed[cname]
        names = [f[0] for f in fields]
        assert [f[0] for f in cls._fields_] == names, cname
        for (name, base, ptr_, n), (pname, ptype) in zip(fields, cls._fields_):
            assert ctypes.sizeof(ptype) == _c_size(base, ptr_, n, parsed), "%s.%s" % (cname, name)


def test_every_public_function_is_bound_with_its_number_of_arguments():
    text, _ = _source()
    protos = re.findall(r"DETLOSS_API\s+[\w\s\*]+?\b(detloss_\w+)\s*\(([^)]*)\)", text)
    assert len(protos) > 30
    for name, args in protos:
        args = " ".join(args.split())
        nargs = 0 if args in ("", "void") else args.count(",") + 1
        if name in ("detloss_status_str", "detloss_version", "detloss_has_openmp",
                    "detloss_loss_name", "detloss_loss_from_name", "detloss_eval_size_name",
                    "detloss_compute_json_file"):
            continue  # bound by hand or not needed from Python (a C FILE *: Python passes text)
        assert name in _lib._SIGS, "%s is not bound in detloss/_lib.py" % name
        assert len(_lib._SIGS[name][1]) == nargs, name


def test_the_default_options_read_through_the_mirrors_are_the_documented_defaults():
    m = _lib.fn("detloss_match_options_default")()
    assert (m.high, m.low, m.allow_low_quality, m.semantics, m.gt_max_assign_all) == \
        (np.float32(0.7), np.float32(0.3), 1, 0, 1)
    assert (m.crowd_ioa_thresh, m.allowed_border, m.num_threads) == (np.float32(0.7), -1.0, 0)
    s = _lib.fn("detloss_sample_options_default")()
    assert (s.batch_size_per_image, s.positive_fraction, s.seed, s.num_threads) == (256, 0.5, 0, 0)
    c = _lib.fn("detloss_coder_options_default")()
    assert list(c.weights) == [1, 1, 1, 1] and c.clip == np.float32(np.log(1000 / 16))
    f = _lib.fn("detloss_loss_options_default")(3)  # sigmoid_focal
    assert (f.reduction, f.alpha, f.gamma, f.ignore_index) == (2, 0.25, 2.0, -100)
    r = _lib.fn("detloss_rpn_options_default")()
    assert (r.match.high, r.sample.batch_size_per_image, r.box_loss) == (np.float32(0.7), 256, 1)
    assert r.smooth_l1_beta == np.float32(1 / 9) and list(r.box_weights) == [1, 1, 1, 1]
    t = _lib.fn("detloss_retina_options_default")()
    assert (t.match.high, t.match.low, t.alpha, t.gamma, t.box_loss) == \
        (np.float32(0.5), np.float32(0.4), 0.25, 2.0, 0)
    assert (t.ema_momentum, t.caller_normalizer, t.num_threads) == (np.float32(0.9), 1.0, 0)
    e = _lib.fn("detloss_eval_options_default")()
    assert (e.metric, e.iou_thresh, e.ratio_thresh, e.count_positives, e.num_worst) == \
        (0, 0.5, 4.0, 1, 20)
    assert e.match.high == np.float32(0.7)


def test_the_per_gt_record_dtype_matches_the_struct():
    assert _lib.EVAL_GT_DTYPE.itemsize == ctypes.sizeof(_lib.EvalGt)
    assert list(_lib.EVAL_GT_DTYPE.names) == [f[0] for f in _lib.EvalGt._fields_]
    for name, ctype in _lib.EvalGt._fields_:
        assert _lib.EVAL_GT_DTYPE.fields[name][1] == getattr(_lib.EvalGt, name).offset
