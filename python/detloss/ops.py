"""detloss.ops - the detloss C API on numpy arrays, with torchvision's names.

Every function takes array-likes (numpy arrays, lists, CPU torch tensors)
and returns numpy arrays. C-contiguous float32 inputs are passed to the C
library without a copy; anything else real-valued is converted (a copy): the
arithmetic is float32, so float64 inputs are rounded to float32, float16 /
bfloat16 / integer inputs are widened to it, and results are float32 whatever
the input dtype. Integer arguments (counts, seeds, indices, labels, is_crowd
flags) are range- and type-checked first: out of range for the C type or the
argument's domain -> DetlossError "range" (a ValueError); a fractional float,
a bool or a non-number -> DetlossTypeError (a TypeError); integral floats (2.0)
are accepted. None for a required argument -> DetlossTypeError, status "null".
Boxes are (x1, y1, x2, y2) rows, width = x2 - x1. Errors raise
detloss.DetlossError (a ValueError) with .status, .where and .message.

Losses return the loss (a float32 array for reduction "none", else a
numpy float32 scalar); with grad=True they return (loss, grad, ...) where
grad is the gradient of the returned loss (of the sum for "none").
num_threads = 0 means the OpenMP default; results do not depend on it.
"""
import collections
import ctypes
import glob
import json
import math
import os

import numpy as np

from . import _lib
from ._lib import DetlossError, array, call, integer, out_array, ptr, threads

__all__ = [
    "fit_anchors", "fit_metrics",
    "box_area", "box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou",
    "box_iou_pairs", "box_encode", "box_decode", "BoxCoder",
    "anchor_config", "load_anchor_preset", "anchor_presets", "anchors_count", "anchors_base",
    "AnchorGrid", "anchor_grid", "torchvision_anchor_grid",
    "anchors_generate", "grid_anchors",
    "match", "match_grid", "sample_balanced", "match_targets",
    "loss", "binary_cross_entropy_with_logits", "binary_cross_entropy", "cross_entropy",
    "sigmoid_focal_loss", "softmax_focal_loss", "hinge_loss", "l1_loss", "mse_loss",
    "smooth_l1_loss", "huber_loss", "iou_loss", "generalized_box_iou_loss",
    "distance_box_iou_loss", "complete_box_iou_loss", "contrastive_loss",
    "cosine_embedding_loss", "triplet_margin_loss",
    "rpn_loss", "retina_loss", "rpn_options", "retina_options", "anchor_eval", "compute",
    "NAMES", "OPTIONS",
]

# The library's registry (src/registry.c), read at import: NAMES[set] = {name: enum value}
# for every detloss_name_set; OPTIONS[kind] = the descriptor table of an options struct
# (_lib.OptionsTable: fields with JSON key, C field, type, range, default, doc).
NAMES = {s: _lib.names(s) for s in _lib.NAME_SETS}
OPTIONS = {k: _lib.options_table(k) for k in _lib.OPTIONS_KINDS}

BBOX_XFORM_CLIP = math.log(1000.0 / 16)

_IOU_KINDS = NAMES["iou_kind"]


def _iou_options(eps, num_threads):
    o = _lib.IouOptions(_lib.scalar("eps", eps), threads(num_threads))
    return o


def box_area(boxes, *, out=None):
    """torchvision.ops.box_area: (x2 - x1) * (y2 - y1) per row of boxes [N, 4] -> [N]."""
    b = array("boxes", boxes, shape=(None, 4))
    o = out_array("out", out, (b.shape[0],))
    call("detloss_box_area", ptr(b), b.shape[0], ptr(o))
    return o


def _iou_matrix(kind, boxes1, boxes2, eps, out, num_threads):
    b1 = array("boxes1", boxes1, shape=(None, 4))
    b2 = array("boxes2", boxes2, shape=(None, 4))
    o = out_array("out", out, (b1.shape[0], b2.shape[0]))
    opt = _iou_options(eps, num_threads)
    call("detloss_iou_matrix", _IOU_KINDS[kind], ptr(b1), b1.shape[0], ptr(b2), b2.shape[0],
         ptr(o), ctypes.byref(opt))
    return o


def box_iou(boxes1, boxes2, *, out=None, num_threads=0):
    """torchvision.ops.box_iou: [N, 4] x [M, 4] -> IoU [N, M] (0, not NaN, where the union is 0)."""
    return _iou_matrix("iou", boxes1, boxes2, 1e-7, out, num_threads)


def generalized_box_iou(boxes1, boxes2, *, out=None, num_threads=0):
    """torchvision.ops.generalized_box_iou: [N, 4] x [M, 4] -> GIoU [N, M]."""
    return _iou_matrix("giou", boxes1, boxes2, 1e-7, out, num_threads)


def distance_box_iou(boxes1, boxes2, eps=1e-7, *, out=None, num_threads=0):
    """torchvision.ops.distance_box_iou: [N, 4] x [M, 4] -> DIoU [N, M]."""
    return _iou_matrix("diou", boxes1, boxes2, eps, out, num_threads)


def complete_box_iou(boxes1, boxes2, eps=1e-7, *, out=None, num_threads=0):
    """torchvision.ops.complete_box_iou: [N, 4] x [M, 4] -> CIoU [N, M]."""
    return _iou_matrix("ciou", boxes1, boxes2, eps, out, num_threads)


def box_iou_pairs(boxes1, boxes2, kind="iou", eps=1e-7, *, out=None, num_threads=0):
    """IoU-family value of matched pairs: [N, 4], [N, 4] -> [N] (the matrix's diagonal).
    kind: "iou", "giou", "diou" or "ciou"."""
    if kind not in _IOU_KINDS:
        raise DetlossError(_lib.ERR_RANGE, "kind", "must be one of %s, got %r"
                           % (sorted(_IOU_KINDS), kind))
    b1 = array("boxes1", boxes1, shape=(None, 4))
    b2 = array("boxes2", boxes2, shape=(b1.shape[0], 4))
    o = out_array("out", out, (b1.shape[0],))
    opt = _iou_options(eps, num_threads)
    call("detloss_iou_pairs", _IOU_KINDS[kind], ptr(b1), ptr(b2), b1.shape[0], ptr(o),
         ctypes.byref(opt))
    return o


def _coder_options(weights, clip, num_threads):
    o = _lib.CoderOptions()
    w = [_lib.scalar("weights", v) for v in _seq("weights", weights, 4)]
    o.weights[:] = w
    o.clip = _lib.scalar("clip", clip, allow_inf=True)
    o.num_threads = threads(num_threads)
    return o


def _seq(name, v, n, what="numbers"):
    if v is None:
        raise _lib.DetlossTypeError(_lib.ERR_NULL, name, "is required (%d %s), got None"
                                    % (n, what))
    if isinstance(v, (str, bytes, dict)):
        raise _lib.DetlossTypeError(_lib.ERR_TYPE, name, "must be a sequence of %d %s, got %s"
                                    % (n, what, type(v).__name__))
    try:
        v = list(v)
    except TypeError:
        raise _lib.DetlossTypeError(_lib.ERR_TYPE, name, "must be a sequence of %d %s, got %s"
                                    % (n, what, type(v).__name__))
    if len(v) != n:
        raise DetlossError(_lib.ERR_SHAPE, name, "must have %d numbers, got %d" % (n, len(v)))
    return v


def box_encode(anchors, boxes, weights=(1.0, 1.0, 1.0, 1.0), *, out=None, num_threads=0):
    """Regression targets (dx, dy, dw, dh) of boxes [N, 4] relative to anchors [N, 4]
    (torchvision BoxCoder(weights).encode_single(boxes, anchors) - note the argument order
    here: anchors first, as in the C API)."""
    a = array("anchors", anchors, shape=(None, 4))
    b = array("boxes", boxes, shape=(a.shape[0], 4))
    o = out_array("out", out, a.shape)
    opt = _coder_options(weights, BBOX_XFORM_CLIP, num_threads)
    call("detloss_box_encode", ptr(a), ptr(b), a.shape[0], ptr(o), ctypes.byref(opt))
    return o


def box_decode(anchors, deltas, weights=(1.0, 1.0, 1.0, 1.0), clip=BBOX_XFORM_CLIP, *, out=None,
               num_threads=0):
    """Boxes from deltas [N, 4] relative to anchors [N, 4] (torchvision BoxCoder.decode_single)."""
    a = array("anchors", anchors, shape=(None, 4))
    d = array("deltas", deltas, shape=(a.shape[0], 4))
    o = out_array("out", out, a.shape)
    opt = _coder_options(weights, clip, num_threads)
    call("detloss_box_decode", ptr(a), ptr(d), a.shape[0], ptr(o), ctypes.byref(opt))
    return o


class BoxCoder:
    """torchvision.models.detection._utils.BoxCoder's single-tensor methods on detloss."""

    def __init__(self, weights=(1.0, 1.0, 1.0, 1.0), bbox_xform_clip=BBOX_XFORM_CLIP):
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = bbox_xform_clip

    def encode_single(self, reference_boxes, proposals):
        """torchvision's argument order: (gt boxes, anchors) -> deltas."""
        return box_encode(proposals, reference_boxes, self.weights)

    def decode_single(self, rel_codes, boxes):
        return box_decode(boxes, rel_codes, self.weights, self.bbox_xform_clip)


_CONVENTIONS = {"torchvision": 0, "detectron2": 1}


def _list(name, v, what):
    """v as a list (a list or tuple); DetlossTypeError naming it otherwise."""
    if v is None:
        raise _lib.DetlossTypeError(_lib.ERR_NULL, name, "is required (%s), got None" % what)
    if not isinstance(v, (list, tuple)):
        raise _lib.DetlossTypeError(_lib.ERR_TYPE, name, "must be %s, got %s"
                                    % (what, type(v).__name__))
    return list(v)


def _size(name, v, lo=0, hi=None):
    """A count or size (C size_t) >= lo."""
    return _lib.integer(name, v, "size_t", lo=lo, hi=hi)


def _data_dirs(sub):
    here = os.path.dirname(os.path.abspath(__file__))
    dirs = []
    env = os.environ.get("DETLOSS_DATA_DIR")
    if env:
        dirs.append(os.path.join(env, sub))
    dirs.append(os.path.join(here, "data", sub))                            # installed copy
    dirs.append(os.path.join(os.path.dirname(os.path.dirname(here)), sub))  # source checkout
    dirs.append(os.path.join("/usr/local/share/detloss", sub))
    dirs.append(os.path.join("/usr/share/detloss", sub))
    return dirs


def anchor_presets():
    """Names of the anchor presets found (anchors/*.json of the detloss source tree, or the
    copy installed with the package, or $DETLOSS_DATA_DIR/anchors)."""
    names = set()
    for d in _data_dirs("anchors"):
        names.update(os.path.splitext(os.path.basename(p))[0]
                     for p in glob.glob(os.path.join(d, "*.json")))
    return sorted(names)


def load_anchor_preset(name):
    """An anchor preset ("torchvision_retinanet", "yolov5", ... or a path to such a JSON
    file) as a config dict for anchors_generate / match_grid / anchor_eval."""
    if name is None:
        raise _lib.DetlossTypeError(_lib.ERR_NULL, "name", "is required (a preset name or a "
                                    "path), got None")
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise _lib.DetlossTypeError(_lib.ERR_TYPE, "name", "must be a preset name or a path, "
                                    "got %s" % type(name).__name__)
    if os.path.sep in name or name.endswith(".json"):
        paths = [name]
    else:
        paths = [os.path.join(d, name + ".json") for d in _data_dirs("anchors")]
    for p in paths:
        if os.path.isfile(p):
            with open(p) as f:
                return json.load(f)
    raise DetlossError(_lib.ERR_NOT_FOUND, "name", "anchor preset %r not found (looked in: %s; "
                       "known: %s)" % (name, ", ".join(paths), ", ".join(anchor_presets())))


def anchor_config(levels, convention="torchvision", offset=0.0):
    """A grid config dict: levels is a list of dicts with "stride" (s or [sh, sw]),
    optional "feature_size" [h, w], and either "sizes" + "aspect_ratios" (h / w),
    or "shapes" [[w, h], ...] (YOLO), or "base" [[x1, y1, x2, y2], ...]."""
    levels = _list("levels", levels, "a list of level dicts")
    for l, lv in enumerate(levels):
        if not isinstance(lv, dict):
            raise _lib.DetlossTypeError(_lib.ERR_TYPE, "levels[%d]" % l, "must be a dict, got %s"
                                        % type(lv).__name__)
    return {"convention": convention, "offset": offset, "levels": levels}


class _Config:
    """ctypes detloss_anchor_config built from a config dict; keeps its arrays alive."""

    def __init__(self, cfg, image_size=None, feature_maps=None, need_feat=True):
        if isinstance(cfg, (str, os.PathLike)):
            cfg = load_anchor_preset(cfg)
        if cfg is None:
            raise _lib.DetlossTypeError(_lib.ERR_NULL, "config", "is required (a config dict, "
                                        "a preset name or a JSON path), got None")
        if not isinstance(cfg, dict) or "levels" not in cfg:
            raise _lib.DetlossTypeError(_lib.ERR_TYPE, "config",
                                        "must be a dict with \"levels\" (see anchor_config)")
        levels = _list("config.levels", cfg["levels"], "a list of level dicts")
        if feature_maps is not None:
            feature_maps = _list("feature_maps", feature_maps, "a list of [h, w], one per level")
        conv = cfg.get("convention", "torchvision")
        if conv not in _CONVENTIONS:
            raise DetlossError(_lib.ERR_RANGE, "config.convention",
                               "must be 'torchvision' or 'detectron2', got %r" % (conv,))
        if feature_maps is not None and len(feature_maps) != len(levels):
            raise DetlossError(_lib.ERR_SHAPE, "feature_maps", "has %d entries for %d levels"
                               % (len(feature_maps), len(levels)))
        self.keep = []
        self.levels = (_lib.AnchorLevel * max(1, len(levels)))()
        if image_size is not None:
            ih, iw = _seq("image_size", image_size, 2)
            image_size = (_lib.scalar("image_size", ih, lo=0), _lib.scalar("image_size", iw, lo=0))
        for l, lv in enumerate(levels):
            w = "config.levels[%d]" % l
            if not isinstance(lv, dict):
                raise _lib.DetlossTypeError(_lib.ERR_TYPE, w, "must be a dict, got %s"
                                            % type(lv).__name__)
            c = self.levels[l]
            stride = lv.get("stride")
            fm, fm_name = lv.get("feature_size"), w + ".feature_size"
            if feature_maps is not None:
                fm, fm_name = feature_maps[l], "feature_maps[%d]" % l
            if fm is not None:
                fh, fw = _seq(fm_name, fm, 2, "integers")
                fm = [_size(fm_name, fh), _size(fm_name, fw)]
            if stride is None and fm is not None and image_size is not None:
                if fm[0] == 0 or fm[1] == 0:
                    raise DetlossError(_lib.ERR_RANGE, fm_name, "must be >= 1 to derive the "
                                       "stride image_size // feature size, got %s" % (fm,))
                stride = [image_size[0] // fm[0], image_size[1] // fm[1]]  # torchvision
            if stride is None:
                raise DetlossError(_lib.ERR_MISSING, w + ".stride", "is required")
            sh, sw = (stride, stride) if np.isscalar(stride) else _seq(w + ".stride", stride, 2)
            c.stride_h, c.stride_w = _lib.scalar(w + ".stride", sh), _lib.scalar(w + ".stride", sw)
            if fm is None and image_size is not None and c.stride_h > 0 and c.stride_w > 0:
                fm = [math.ceil(image_size[0] / c.stride_h), math.ceil(image_size[1] / c.stride_w)]
                fm = [_size(fm_name, fm[0]), _size(fm_name, fm[1])]
            if fm is None:
                if need_feat:
                    raise DetlossError(_lib.ERR_MISSING, w + ".feature_size",
                                       "feature map size unknown: pass image_size or feature_maps")
                fm = [0, 0]
            c.feat_h, c.feat_w = fm
            for key, field, cnt, sh_ in (("sizes", "sizes", "num_sizes", (None,)),
                                         ("aspect_ratios", "ratios", "num_ratios", (None,)),
                                         ("shapes", "shapes", "num_shapes", (None, 2)),
                                         ("base", "base", "num_base", (None, 4))):
                if lv.get(key) is not None:
                    a = array("%s.%s" % (w, key), lv[key], shape=sh_)
                    self.keep.append(a)
                    setattr(c, field, ptr(a))
                    setattr(c, cnt, a.shape[0])
        self.cfg = _lib.AnchorConfig(self.levels, len(levels), _CONVENTIONS[conv],
                                     _lib.scalar("config.offset", cfg.get("offset", 0.0)))

    def count(self):
        n = ctypes.c_size_t()
        call("detloss_anchors_count", ctypes.byref(self.cfg), ctypes.byref(n))
        return n.value

    def anchors(self):
        """The anchors [A, 4] of this grid (detloss_anchors_generate)."""
        n = self.count()
        out = np.empty((n, 4), np.float32)
        call("detloss_anchors_generate", ctypes.byref(self.cfg), ptr(out), n)
        return out

    def matches(self, anchors):
        """True when anchors (an [A, 4] array) are exactly this grid's anchors."""
        a = np.asarray(anchors)
        return a.shape == (self.count(), 4) and np.array_equal(self.anchors(), a)


class AnchorGrid(_Config):
    """A grid config with its feature map sizes fixed: the anchors of one image size.

    Given to match_grid, rpn_loss / retina_loss (anchor_grid=) and detloss.torch's head
    losses, it lets the library match on the grid (visiting only the cells near each gt)
    instead of scanning every anchor; the anchors passed alongside must be exactly
    grid.anchors() (checked)."""


def _level_lists(sizes, aspect_ratios, feature_maps):
    """The per-level lists of a torchvision-style anchor grid, checked to have one entry
    per level."""
    sizes = _list("sizes", sizes, "a list of per-level size lists")
    aspect_ratios = _list("aspect_ratios", aspect_ratios, "a list of per-level ratio lists")
    fms = _list("feature_maps", feature_maps, "a list of [h, w], one per level")
    if len(sizes) != len(fms) or len(aspect_ratios) != len(fms):
        raise DetlossError(_lib.ERR_SHAPE, "sizes", "sizes, aspect_ratios and feature_maps must "
                           "have one entry per level")
    return sizes, aspect_ratios, fms


def torchvision_anchor_grid(sizes, aspect_ratios, image_size, feature_maps):
    """The AnchorGrid of torchvision's AnchorGenerator(sizes, aspect_ratios) for a batch
    tensor of image_size (H, W) and feature maps [[h, w] per level] (strides H // h,
    W // w, as torchvision computes them)."""
    sizes, aspect_ratios, fms = _level_lists(sizes, aspect_ratios, feature_maps)
    ih, iw = _seq("image_size", image_size, 2, "integers")
    ih, iw = _size("image_size", ih, lo=1), _size("image_size", iw, lo=1)
    fmi = []
    for l, fm in enumerate(fms):
        h, w = _seq("feature_maps[%d]" % l, fm, 2, "integers")
        # torchvision's stride is H // h: h must be in [1, H]
        fmi.append([_size("feature_maps[%d]" % l, h, lo=1, hi=ih),
                    _size("feature_maps[%d]" % l, w, lo=1, hi=iw)])
    levels = [{"sizes": array("sizes[%d]" % l, sz, shape=(None,)).tolist(),
               "aspect_ratios": array("aspect_ratios[%d]" % l, ar, shape=(None,)).tolist()}
              for l, (sz, ar) in enumerate(zip(sizes, aspect_ratios))]
    return AnchorGrid({"convention": "torchvision", "offset": 0.0, "levels": levels},
                      [ih, iw], fmi)


def anchor_grid(config, image_size=None, feature_maps=None):
    """An AnchorGrid from a config dict / preset name / JSON path and the image size (or
    the feature map sizes [[h, w] per level]); see anchors_generate for the rules."""
    return AnchorGrid(config, image_size, feature_maps)


def anchors_count(config, image_size=None, feature_maps=None):
    """Number of anchors of a grid config for an image / feature map sizes."""
    return _Config(config, image_size, feature_maps).count()


def anchors_base(config, level=0):
    """The cell anchors [K, 4] of one level of a config (centred on 0)."""
    c = _Config(config, need_feat=False)
    level = _size("level", level, hi=max(c.cfg.num_levels, 1) - 1)
    k = ctypes.c_size_t()
    call("detloss_anchors_level_base", ctypes.byref(c.cfg), level, None, 0, ctypes.byref(k))
    out = np.empty((k.value, 4), np.float32)
    call("detloss_anchors_level_base", ctypes.byref(c.cfg), level, ptr(out), k.value,
         ctypes.byref(k))
    return out


def anchors_generate(config, image_size=None, feature_maps=None):
    """The anchors [A, 4] of a grid config (a dict, a preset name or a JSON path), in
    torchvision's order (level, row-major location, base anchor).

    Feature map sizes come from, in order: feature_maps [[h, w] per level]; a level's
    "feature_size"; ceil(image_size / stride). A level without "stride" takes
    image_size // feature size (torchvision AnchorGenerator)."""
    c = config if isinstance(config, _Config) else _Config(config, image_size, feature_maps)
    return c.anchors()


def grid_anchors(image_size, feature_maps, sizes, aspect_ratios):
    """torchvision AnchorGenerator(sizes, aspect_ratios) for one image (the `anchors`
    compute op): image_size [H, W], feature_maps [[h, w], ...]; stride = H // h."""
    _seq("image_size", image_size, 2)
    sizes, aspect_ratios, feature_maps = _level_lists(sizes, aspect_ratios, feature_maps)
    levels = [{"sizes": array("sizes[%d]" % l, s, shape=(None,)).tolist(),
               "aspect_ratios": array("aspect_ratios[%d]" % l, r, shape=(None,)).tolist()}
              for l, (s, r) in enumerate(zip(sizes, aspect_ratios))]
    return anchors_generate({"levels": levels}, image_size, feature_maps)


_SEMANTICS = NAMES["semantics"]


def _set_fields(o, kind, values):
    """Sets the fields of options struct o named in values (None: keep o's value, the
    library's default) through the library's descriptor table of `kind`."""
    for f in OPTIONS[kind].fields:
        v = values.get(f.field)
        if v is None:
            continue
        if f.type == "bool":
            v = 1 if _lib.flag(f.field, v) else 0
        elif f.type == "enum":
            table = NAMES[f.names]
            if not isinstance(v, str) or v not in table:
                raise DetlossError(_lib.ERR_RANGE, f.field, "must be one of %s, got %r"
                                   % (sorted(table), v))
            v = table[v]
        else:
            v = _lib.scalar(f.field, v)
        setattr(o, f.field, v)


def _match_options(high=None, low=None, allow_low_quality=None, semantics=None,
                   low_quality_min_iou=None, gt_max_assign_all=None, crowd_ioa_thresh=None,
                   allowed_border=None, image_size=None, num_threads=0):
    o = _lib.fn("detloss_match_options_default")()
    _set_fields(o, "match", dict(high=high, low=low, allow_low_quality=allow_low_quality,
                                 semantics=semantics, low_quality_min_iou=low_quality_min_iou,
                                 gt_max_assign_all=gt_max_assign_all,
                                 crowd_ioa_thresh=crowd_ioa_thresh,
                                 allowed_border=allowed_border))
    if image_size is not None:
        h, w = _seq("image_size", image_size, 2)
        o.image_h, o.image_w = _lib.scalar("image_size", h), _lib.scalar("image_size", w)
    o.num_threads = threads(num_threads)
    return o


def match(anchors, gt, high=None, low=None, allow_low_quality=None, *, gt_is_crowd=None,
          semantics=None, low_quality_min_iou=None, gt_max_assign_all=None,
          crowd_ioa_thresh=None, allowed_border=None, image_size=None, return_max_iou=False,
          num_threads=0):
    """Assign anchors [A, 4] to gt boxes [G, 4]: matches [A] int64 (gt index, -1 negative,
    -2 ignored); with return_max_iou also max_iou [A]. An option left None takes the
    library's default (detloss.OPTIONS["match"]: high 0.7, low 0.3, low-quality matches
    on, semantics "torchvision", crowd_ioa_thresh 0.7, allowed_border -1 = off).

    Equals torchvision Matcher(high, low, allow_low_quality)(box_iou(gt, anchors)) bit for
    bit (semantics "torchvision"); "detectron2" and "mmdet" follow those libraries.
    gt_is_crowd [G] (bool, or integers 0 / 1; other values are refused): crowd gts are
    never matched; anchors they cover
    (intersection / anchor area > crowd_ioa_thresh) are ignored. allowed_border >= 0 (with
    image_size (H, W)) ignores anchors outside the image by more than that margin."""
    a = array("anchors", anchors, shape=(None, 4))
    g = array("gt", gt, shape=(None, 4))
    crowd = array("gt_is_crowd", gt_is_crowd, np.uint8, shape=(g.shape[0],), allow_none=True,
                  lo=0, hi=1)
    opt = _match_options(high, low, allow_low_quality, semantics, low_quality_min_iou,
                         gt_max_assign_all, crowd_ioa_thresh, allowed_border, image_size,
                         num_threads)
    m = np.empty(a.shape[0], np.int64)
    v = np.empty(a.shape[0], np.float32) if return_max_iou else None
    call("detloss_match", ptr(a), a.shape[0], ptr(g), g.shape[0], ptr(crowd), ptr(m), ptr(v),
         ctypes.byref(opt))
    return (m, v) if return_max_iou else m


def match_grid(config, gt, high=None, low=None, allow_low_quality=None, *, image_size=None,
               feature_maps=None, gt_is_crowd=None, semantics=None,
               low_quality_min_iou=None, gt_max_assign_all=None, crowd_ioa_thresh=None,
               allowed_border=None, return_max_iou=False, num_threads=0):
    """match() on the anchors of a grid config without forming them (identical results,
    O(A + gt footprint) work). image_size (H, W) sizes the feature maps (as
    anchors_generate) and is the image for allowed_border."""
    c = config if isinstance(config, _Config) else _Config(config, image_size, feature_maps)
    n = c.count()
    g = array("gt", gt, shape=(None, 4))
    crowd = array("gt_is_crowd", gt_is_crowd, np.uint8, shape=(g.shape[0],), allow_none=True,
                  lo=0, hi=1)
    opt = _match_options(high, low, allow_low_quality, semantics, low_quality_min_iou,
                         gt_max_assign_all, crowd_ioa_thresh, allowed_border, image_size,
                         num_threads)
    m = np.empty(n, np.int64)
    v = np.empty(n, np.float32) if return_max_iou else None
    call("detloss_match_grid", ctypes.byref(c.cfg), ptr(g), g.shape[0], ptr(crowd), ptr(m),
         ptr(v), n, ctypes.byref(opt))
    return (m, v) if return_max_iou else m


def _sample_options(batch_size_per_image, positive_fraction, seed, num_threads):
    o = _lib.SampleOptions()
    o.batch_size_per_image = _lib.integer("batch_size_per_image", batch_size_per_image, "int64",
                                          lo=0)
    o.positive_fraction = _lib.scalar("positive_fraction", positive_fraction)
    o.seed = _lib.integer("seed", seed, "uint64")
    o.num_threads = threads(num_threads)
    return o


def sample_balanced(matches, batch_size_per_image=256, positive_fraction=0.5, *, seed=0,
                    image_index=0, num_threads=0):
    """Balanced positive/negative sampling of one image's matches [A] (torchvision
    BalancedPositiveNegativeSampler counts, seeded choice). Returns (sampled [A] int8:
    1 chosen positive, 0 chosen negative, -1 not chosen; num_pos; num_neg)."""
    m = array("matches", matches, np.int64, shape=(None,))
    o = _sample_options(batch_size_per_image, positive_fraction, seed, num_threads)
    image_index = _lib.integer("image_index", image_index, "uint64")
    s = np.empty(m.shape[0], np.int8)
    npos, nneg = ctypes.c_size_t(), ctypes.c_size_t()
    call("detloss_sample_balanced", ptr(m), m.shape[0], image_index, ptr(s),
         ctypes.byref(npos), ctypes.byref(nneg), ctypes.byref(o))
    return s, npos.value, nneg.value


def match_targets(anchors, gt, matches, weights=(1.0, 1.0, 1.0, 1.0)):
    """Training targets from matches: (labels [A] int8 1/0/-1, matched_gt [A] int64
    (clamped at 0 as torchvision), deltas [A, 4] (encoded for positives, 0 elsewhere))."""
    a = array("anchors", anchors, shape=(None, 4))
    g = array("gt", gt, shape=(None, 4))
    m = array("matches", matches, np.int64, shape=(a.shape[0],))
    labels = np.empty(a.shape[0], np.int8)
    mg = np.empty(a.shape[0], np.int64)
    d = np.empty((a.shape[0], 4), np.float32)
    co = _coder_options(weights, BBOX_XFORM_CLIP, 0)
    call("detloss_match_targets", ptr(a), a.shape[0], ptr(g), g.shape[0], ptr(m), ptr(labels),
         ptr(mg), ptr(d), ctypes.byref(co))
    return labels, mg, d


LossParam = collections.namedtuple("LossParam", "key type default lo hi lo_open hi_open doc")
LossInfo = collections.namedtuple("LossInfo", "name kind form params grad_inputs reference")
LOSS_FORMS = ("elementwise", "classes", "boxes", "embedding", "soft_rows",
              "distribution")  # detloss_loss_form
PARAM_TYPES = ("float", "int", "bool", "floats")               # detloss_param_type


def _loss_registry():
    """The library's table of loss kinds (src/loss_registry.c), read through ctypes:
    {name: LossInfo}, in kind order. Nothing about the kinds is restated here."""
    rows = {}
    for k in range(_lib.fn("detloss_loss_count")()):
        r = _lib.fn("detloss_loss_info_get")(k).contents
        params = tuple(LossParam(p.key.decode(), PARAM_TYPES[p.type], p.default_value, p.lo,
                                 p.hi, bool(p.lo_open), bool(p.hi_open), p.doc.decode())
                       for p in (r.params[i] for i in range(r.num_params)))
        rows[r.name.decode()] = LossInfo(r.name.decode(), r.kind, LOSS_FORMS[r.form], params,
                                         tuple(r.grad_inputs.decode().split(",")),
                                         r.reference.decode())
    return rows


LOSSES = _loss_registry()
LOSS_KINDS = {name: r.kind for name, r in LOSSES.items()}
_ELEMENTWISE = {n for n, r in LOSSES.items() if r.form == "elementwise"}
_CLASSES = {n for n, r in LOSSES.items() if r.form == "classes"}
_BOXES = {n for n, r in LOSSES.items() if r.form == "boxes"}
_EMBED = {n for n, r in LOSSES.items() if r.form == "embedding"}
_ROWS = {n for n, r in LOSSES.items() if r.form in ("soft_rows", "distribution")}
_PARAMS = {p.key for r in LOSSES.values() for p in r.params}
_BOOL_PARAMS = {p.key for r in LOSSES.values() for p in r.params if p.type == "bool"}


def loss_options(kind, reduction="mean", num_threads=0, **params):
    """The C options struct of loss `kind` with the library's defaults, params applied
    (and kept alive on the returned object)."""
    if kind not in LOSS_KINDS:
        raise DetlossError(_lib.ERR_UNKNOWN, "loss", "unknown loss %r (known: %s)"
                           % (kind, ", ".join(sorted(LOSS_KINDS))))
    o = _lib.fn("detloss_loss_options_default")(LOSS_KINDS[kind])
    o.reduction = _lib.reduction(reduction)
    o.num_threads = threads(num_threads)
    keep = None
    for k, v in params.items():
        if k not in _PARAMS:
            raise DetlossError(_lib.ERR_UNKNOWN, k, "unknown parameter of %s (known: %s)"
                               % (kind, ", ".join(sorted(_PARAMS))))
        if v is None:
            continue
        if k == "pos_weight":
            pw = array("pos_weight", np.atleast_1d(_lib._to_numpy("pos_weight", v)),
                       shape=(None,))
            o.pos_weight, o.pos_weight_len, keep = ptr(pw), pw.shape[0], pw
        elif k in _BOOL_PARAMS:
            setattr(o, k, 1 if _lib.flag(k, v) else 0)
        elif k == "ignore_index":
            o.ignore_index = _lib.integer("ignore_index", v, "int64")
        else:
            setattr(o, k, _lib.scalar(k, v))
    o._keep = keep  # noqa: SLF001  (pos_weight must outlive the call)
    return o


def _reduced(l, red):
    return l if red == "none" else np.float32(l[0])


def loss(name, input, target=None, weight=None, reduction="mean", grad=False, *, x3=None,
         num_threads=0, **params):
    """Any detloss loss by its contract name ("sigmoid_focal", "giou_loss", ...).

    element-wise (bce_with_logits, bce, sigmoid_focal, hinge, l1, mse, smooth_l1, huber,
        varifocal): input, target, weight of one shape; returns loss [, grad_input].
    soft rows (quality_focal): input logits [N, C], target soft scores [N, C], weight [N];
        distribution (distribution_focal): input [N, n+1], target [N] in [0, n], weight [N];
        one loss per row; returns loss [, grad_input].
    class-indexed (cross_entropy, softmax_focal): input logits [N, C], target int [N],
        weight [N]; returns loss [, grad_input].
    boxes (iou_loss, giou_loss, diou_loss, ciou_loss): input, target [N, 4], weight [N];
        returns loss [, grad_input, grad_target].
    embedding (contrastive, cosine_embedding, triplet_margin): input = x1 [N, D],
        target = x2 for triplet (x3 the negatives) else the pair labels with x3 = x2 ...
        use the named functions contrastive_loss / cosine_embedding_loss /
        triplet_margin_loss instead.
    params: alpha, gamma, beta, delta, margin, label_smoothing, eps, p, swap, ignore_index,
    pos_weight, activated, iou_weighted, detach_weight (defaults: the library's per-loss
    defaults = the references')."""
    return _loss(name, input, target, weight, reduction, grad, num_threads, ("input", "target"),
                 **params)


def _loss(name, input, target, weight, reduction, grad, num_threads, names, **params):
    """loss() with the caller's names for input and target (for the errors)."""
    opt = loss_options(name, reduction, num_threads, **params)
    kind = LOSS_KINDS[name]
    xn, yn = names
    if name in _ELEMENTWISE:
        x = array(xn, input, shape=None)
        y = array(yn, target, shape=x.shape)
        w = array("weight", weight, shape=x.shape, allow_none=True)
        n = x.size
        l = np.empty(x.shape if reduction == "none" else (1,), np.float32)
        g = np.empty(x.shape, np.float32) if grad else None
        call("detloss_loss_elementwise", kind, ptr(x), ptr(y), ptr(w), n, ptr(l), ptr(g),
             ctypes.byref(opt))
        return (_reduced(l, reduction), g) if grad else _reduced(l, reduction)
    if name in _CLASSES:
        x = array(xn, input, shape=(None, None))
        n, c = x.shape
        t = array(yn, target, np.int64, shape=(n,))
        w = array("weight", weight, shape=(n,), allow_none=True)
        l = np.empty((n,) if reduction == "none" else (1,), np.float32)
        g = np.empty(x.shape, np.float32) if grad else None
        call("detloss_loss_classes", kind, ptr(x), ptr(t), ptr(w), n, c, ptr(l), ptr(g),
             ctypes.byref(opt))
        return (_reduced(l, reduction), g) if grad else _reduced(l, reduction)
    if name in _ROWS:
        x = array(xn, input, shape=(None, None))
        n, c = x.shape
        y = array(yn, target, shape=(n, c) if LOSSES[name].form == "soft_rows" else (n,))
        w = array("weight", weight, shape=(n,), allow_none=True)
        l = np.empty((n,) if reduction == "none" else (1,), np.float32)
        g = np.empty(x.shape, np.float32) if grad else None
        call("detloss_loss_rows", kind, ptr(x), ptr(y), ptr(w), n, c, ptr(l), ptr(g),
             ctypes.byref(opt))
        return (_reduced(l, reduction), g) if grad else _reduced(l, reduction)
    if name in _BOXES:
        x = array(xn, input, shape=(None, 4))
        n = x.shape[0]
        y = array(yn, target, shape=(n, 4))
        w = array("weight", weight, shape=(n,), allow_none=True)
        l = np.empty((n,) if reduction == "none" else (1,), np.float32)
        g1 = np.empty(x.shape, np.float32) if grad else None
        g2 = np.empty(x.shape, np.float32) if grad else None
        call("detloss_loss_boxes", kind, ptr(x), ptr(y), ptr(w), n, ptr(l), ptr(g1), ptr(g2),
             ctypes.byref(opt))
        return (_reduced(l, reduction), g1, g2) if grad else _reduced(l, reduction)
    raise DetlossError(_lib.ERR_RANGE, "loss", "%s is an embedding loss: use %s_loss()"
                       % (name, name))


def _embedding(name, x1, x2, x3, target, weight, reduction, grad, num_threads,
               names=("x1", "x2", "x3"), **params):
    opt = loss_options(name, reduction, num_threads, **params)
    a = array(names[0], x1, shape=(None, None))
    n, d = a.shape
    b = array(names[1], x2, shape=(n, d))
    c = array(names[2], x3, shape=(n, d)) if name == "triplet_margin" else None
    t = array("target", target, shape=(n,)) if name != "triplet_margin" else None
    w = array("weight", weight, shape=(n,), allow_none=True)
    l = np.empty((n,) if reduction == "none" else (1,), np.float32)
    gs = [np.empty((n, d), np.float32) if grad else None for _ in range(3 if c is not None else 2)]
    g3 = gs[2] if c is not None else None
    call("detloss_loss_embedding", LOSS_KINDS[name], ptr(a), ptr(b), ptr(c), ptr(t), ptr(w), n,
         d, ptr(l), ptr(gs[0]), ptr(gs[1]), ptr(g3), ctypes.byref(opt))
    return (_reduced(l, reduction), *gs) if grad else _reduced(l, reduction)


# torch / torchvision names and defaults ------------------------------------
def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None, *, grad=False, num_threads=0):
    return loss("bce_with_logits", input, target, weight, reduction, grad,
                num_threads=num_threads, pos_weight=pos_weight)


def binary_cross_entropy(input, target, weight=None, reduction="mean", *, grad=False,
                         num_threads=0):
    return loss("bce", input, target, weight, reduction, grad, num_threads=num_threads)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, *, grad=False, num_threads=0):
    """torch cross_entropy with class-index targets. weight is per ROW [N] here (torch's
    weight is per class: pass class_weight[target] to get torch's sum; torch's mean
    divides by the weight sum, detloss's by the count)."""
    return loss("cross_entropy", input, target, weight, reduction, grad, num_threads=num_threads,
                ignore_index=ignore_index, label_smoothing=label_smoothing)


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none", *, grad=False,
                       num_threads=0):
    """torchvision.ops.sigmoid_focal_loss (same defaults: reduction "none")."""
    return _loss("sigmoid_focal", inputs, targets, None, reduction, grad, num_threads,
                 ("inputs", "targets"), alpha=alpha, gamma=gamma)


def softmax_focal_loss(input, target, alpha=1.0, gamma=2.0, reduction="mean", weight=None,
                       ignore_index=-100, *, grad=False, num_threads=0):
    return loss("softmax_focal", input, target, weight, reduction, grad, num_threads=num_threads,
                alpha=alpha, gamma=gamma, ignore_index=ignore_index)


def hinge_loss(input, target, margin=1.0, reduction="mean", weight=None, *, grad=False,
               num_threads=0):
    return loss("hinge", input, target, weight, reduction, grad, num_threads=num_threads,
                margin=margin)


def l1_loss(input, target, reduction="mean", weight=None, *, grad=False, num_threads=0):
    return loss("l1", input, target, weight, reduction, grad, num_threads=num_threads)


def mse_loss(input, target, reduction="mean", weight=None, *, grad=False, num_threads=0):
    return loss("mse", input, target, weight, reduction, grad, num_threads=num_threads)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0, weight=None, *, grad=False,
                   num_threads=0):
    return loss("smooth_l1", input, target, weight, reduction, grad, num_threads=num_threads,
                beta=beta)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None, *, grad=False,
               num_threads=0):
    return loss("huber", input, target, weight, reduction, grad, num_threads=num_threads,
                delta=delta)


def iou_loss(boxes1, boxes2, reduction="none", eps=1e-7, weight=None, *, grad=False,
             num_threads=0):
    return _loss("iou_loss", boxes1, boxes2, weight, reduction, grad, num_threads,
                 ("boxes1", "boxes2"), eps=eps)


def generalized_box_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7, weight=None, *,
                             grad=False, num_threads=0):
    """torchvision.ops.generalized_box_iou_loss; with grad=True returns
    (loss, grad_boxes1, grad_boxes2)."""
    return _loss("giou_loss", boxes1, boxes2, weight, reduction, grad, num_threads,
                 ("boxes1", "boxes2"), eps=eps)


def distance_box_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7, weight=None, *,
                          grad=False, num_threads=0):
    return _loss("diou_loss", boxes1, boxes2, weight, reduction, grad, num_threads,
                 ("boxes1", "boxes2"), eps=eps)


def complete_box_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7, weight=None, *,
                          grad=False, num_threads=0):
    return _loss("ciou_loss", boxes1, boxes2, weight, reduction, grad, num_threads,
                 ("boxes1", "boxes2"), eps=eps)


def contrastive_loss(x1, x2, target, margin=1.0, reduction="mean", weight=None, *, grad=False,
                     num_threads=0):
    """Hadsell et al. contrastive loss; target 1 = same identity, 0 = different.
    grad=True: (loss, grad_x1, grad_x2)."""
    return _embedding("contrastive", x1, x2, None, target, weight, reduction, grad, num_threads,
                      margin=margin)


def cosine_embedding_loss(input1, input2, target, margin=0.0, reduction="mean", weight=None, *,
                          grad=False, num_threads=0):
    """torch cosine_embedding_loss; target +1 / -1."""
    return _embedding("cosine_embedding", input1, input2, None, target, weight, reduction, grad,
                      num_threads, ("input1", "input2", None), margin=margin)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False,
                        reduction="mean", weight=None, *, grad=False, num_threads=0):
    """torch triplet_margin_loss; grad=True: (loss, grad_anchor, grad_positive,
    grad_negative)."""
    return _embedding("triplet_margin", anchor, positive, negative, None, weight, reduction, grad,
                      num_threads, ("anchor", "positive", "negative"), margin=margin, p=p,
                      eps=eps, swap=swap)


# {name: enum value}, read from the library's name registry (src/registry.c)
BOX_LOSSES = NAMES["box_loss"]
RPN_CONVENTIONS = NAMES["rpn_convention"]
RETINA_NORMALIZERS = NAMES["retina_normalizer"]


def _choice(name, v, table):
    if not isinstance(v, str):
        raise _lib.DetlossTypeError(_lib.ERR_TYPE, name, "must be one of %s (a str), got %r"
                                    % (", ".join(table), v))
    if v not in table:
        raise DetlossError(_lib.ERR_RANGE, name, "must be one of %s, got %r"
                           % (", ".join(table), v))
    return table[v]


def _stats(s):
    return {k: getattr(s, k) for k, _ in _lib.HeadImageStats._fields_}


def _result(r):
    return {k: getattr(r, k) for k, _ in _lib.HeadResult._fields_}


def _grids(anchor_grid, n):
    """anchor_grid (one AnchorGrid, or a list of n of them / None) as a list of n."""
    if anchor_grid is None:
        return [None] * n
    grids = list(anchor_grid) if isinstance(anchor_grid, (list, tuple)) else [anchor_grid] * n
    if len(grids) != n:
        raise DetlossError(_lib.ERR_SHAPE, "anchor_grid", "has %d entries for %d images"
                           % (len(grids), n))
    for i, g in enumerate(grids):
        if g is not None and not isinstance(g, _Config):
            raise _lib.DetlossTypeError(_lib.ERR_TYPE, "anchor_grid", "must be an AnchorGrid "
                                        "(detloss.anchor_grid(...))")
    return grids


class _HeadBatch:
    """ctypes detloss_head_image array for a batch of dicts; keeps the arrays alive."""

    def __init__(self, images, kind, num_classes=None, grad=True, anchor_grid=None):
        if isinstance(images, dict):
            images = [images]
        images = _list("images", images, "a list of image dicts")
        if len(images) == 0:
            raise DetlossError(_lib.ERR_SHAPE, "images", "empty batch")
        self.keep, self.grads = [], []
        self.c = (_lib.HeadImage * len(images))()
        grids = _grids(anchor_grid, len(images))
        for i, im in enumerate(images):
            w = "images[%d]" % i
            if not isinstance(im, dict):
                raise _lib.DetlossTypeError(_lib.ERR_NULL if im is None else _lib.ERR_TYPE, w,
                                            "must be a dict, got %s" % type(im).__name__)
            c = self.c[i]
            a = array(w + ".anchors", im.get("anchors"), shape=(None, 4))
            na = a.shape[0]
            if grids[i] is not None:
                if not grids[i].matches(a):
                    raise DetlossError(_lib.ERR_SHAPE, "anchor_grid", "images[%d].anchors are not "
                                       "the anchors of the grid" % i)
                c.anchor_config = ctypes.addressof(grids[i].cfg)
                self.keep.append(grids[i])
            gtv = im.get("gt", im.get("boxes"))
            g = array(w + ".gt", np.zeros((0, 4), np.float32) if gtv is None else gtv,
                      shape=(None, 4))
            ng = g.shape[0]
            cv = im.get("gt_is_crowd", im.get("is_crowd"))
            crowd = array(w + ".is_crowd", cv, np.uint8, shape=(ng,), allow_none=True, lo=0, hi=1)
            d = array(w + ".deltas", im.get("deltas"), shape=(na, 4))
            c.anchors, c.num_anchors, c.gt, c.num_gt = ptr(a), na, ptr(g), ng
            c.gt_is_crowd, c.num_predictions, c.deltas = ptr(crowd), na, ptr(d)
            gd = np.zeros((na, 4), np.float32) if grad else None
            c.grad_deltas = ptr(gd)
            if kind == "rpn":
                o = array(w + ".objectness", im.get("objectness")).reshape(-1)  # [A] or [A, 1]
                if o.shape[0] != na:
                    raise DetlossError(_lib.ERR_SHAPE, w + ".objectness",
                                       "has %d values for %d anchors" % (o.shape[0], na))
                go = np.zeros(na, np.float32) if grad else None
                c.objectness, c.grad_objectness = ptr(o), ptr(go)
                self.grads.append({"grad_objectness": go, "grad_deltas": gd})
                keep = [a, g, crowd, d, o]
            else:
                x = array(w + ".cls_logits", im.get("cls_logits"), shape=(na, num_classes))
                lab = array(w + ".labels", im.get("labels", np.zeros(0, np.int64)), np.int64,
                            shape=(ng,))
                gx = np.zeros((na, num_classes), np.float32) if grad else None
                c.cls_logits, c.labels, c.grad_cls_logits = ptr(x), ptr(lab), ptr(gx)
                self.grads.append({"grad_cls_logits": gx, "grad_deltas": gd})
                keep = [a, g, crowd, d, x, lab]
            size = im.get("image_size")
            if size is not None:
                h, wd = _seq(w + ".image_size", size, 2)
                c.image_h = _lib.scalar(w + ".image_size", h)
                c.image_w = _lib.scalar(w + ".image_size", wd)
            self.keep.append(keep)
        self.n = len(images)


def _copy(struct_type, value):
    o = struct_type()
    ctypes.pointer(o)[0] = value
    return o


def _set_match(m, fg_iou_thresh, bg_iou_thresh, allow_low_quality, allowed_border):
    if fg_iou_thresh is not None:
        m.high = _unit("fg_iou_thresh", fg_iou_thresh)
    if bg_iou_thresh is not None:
        m.low = _unit("bg_iou_thresh", bg_iou_thresh)
    if allow_low_quality is not None:
        m.allow_low_quality = 1 if _lib.flag("allow_low_quality", allow_low_quality) else 0
    if allowed_border is not None:
        m.allowed_border = _lib.scalar("allowed_border", allowed_border)


def _unit(name, v):
    """An IoU threshold: a number in [0, 1] (the library checks it too, but names its
    options field, match.high / match.low, not the argument)."""
    f = _lib.scalar(name, v)
    if not 0.0 <= f <= 1.0:
        raise DetlossError(_lib.ERR_RANGE, name, "must be in [0, 1], got %r" % (v,))
    return f


def _config(config):
    """config: a detloss.Config (duck-typed: its C struct is config.c)."""
    if not hasattr(config, "c") or not hasattr(config.c, "rpn"):
        raise _lib.DetlossTypeError(_lib.ERR_TYPE, "config", "must be a detloss.Config "
                                    "(detloss.load_config(...)), got %s" % type(config).__name__)
    return config


def _set_box(o, box_loss, smooth_l1_beta, box_weights):
    if box_loss is not None:
        o.box_loss = _choice("box_loss", box_loss, BOX_LOSSES)
    if smooth_l1_beta is not None:
        o.smooth_l1_beta = _lib.scalar("smooth_l1_beta", smooth_l1_beta)
    if box_weights is not None:
        o.box_weights[:] = [_lib.scalar("box_weights", float(v))
                            for v in _seq("box_weights", box_weights, 4)]


def rpn_options(config=None, convention=None, fg_iou_thresh=None, bg_iou_thresh=None,
                allow_low_quality=None, batch_size_per_image=None, positive_fraction=None,
                seed=None, box_loss=None, smooth_l1_beta=None, box_weights=None,
                allowed_border=None, num_threads=0):
    """The C detloss_rpn_options: from config (a detloss.Config: its "loss", "matcher",
    "sampler" settings) if given, else the convention's preset (default "torchvision");
    then every argument that is not None overrides its field."""
    if config is not None:
        if convention is not None:
            raise DetlossError(_lib.ERR_RANGE, "convention", "give a config or a convention")
        o = _copy(_lib.RpnOptions, _config(config).c.rpn)
    else:
        o = _lib.fn("detloss_rpn_options_preset")(
            _choice("convention", "torchvision" if convention is None else convention,
                    RPN_CONVENTIONS))
    _set_match(o.match, fg_iou_thresh, bg_iou_thresh, allow_low_quality, allowed_border)
    if batch_size_per_image is not None:
        o.sample.batch_size_per_image = _lib.integer("batch_size_per_image",
                                                     batch_size_per_image, "int64", lo=0)
    if positive_fraction is not None:
        o.sample.positive_fraction = _lib.scalar("positive_fraction", positive_fraction)
    if seed is not None:
        o.sample.seed = _lib.integer("seed", seed, "uint64")
    _set_box(o, box_loss, smooth_l1_beta, box_weights)
    o.num_threads = threads(num_threads)
    return o


def retina_options(config=None, fg_iou_thresh=None, bg_iou_thresh=None, allow_low_quality=None,
                   alpha=None, gamma=None, box_loss=None, smooth_l1_beta=None, box_weights=None,
                   normalizer=None, ema_momentum=None, caller_normalizer=None,
                   allowed_border=None, num_threads=0):
    """The C detloss_retina_options: from config (a detloss.Config) if given, else the
    torchvision defaults (0.5 / 0.4, alpha 0.25, gamma 2, L1 box loss, per-image
    normalizer); then every argument that is not None overrides its field. The EMA
    state pointer is left NULL (the loss functions set it)."""
    o = _copy(_lib.RetinaOptions, _config(config).c.retina) if config is not None else \
        _lib.fn("detloss_retina_options_default")()
    o.ema_state = None
    _set_match(o.match, fg_iou_thresh, bg_iou_thresh, allow_low_quality, allowed_border)
    if alpha is not None:
        o.alpha = _lib.scalar("alpha", alpha)
    if gamma is not None:
        o.gamma = _lib.scalar("gamma", gamma)
    _set_box(o, box_loss, smooth_l1_beta, box_weights)
    if normalizer is not None:
        o.normalizer = _choice("normalizer", normalizer, RETINA_NORMALIZERS)
    if ema_momentum is not None:
        o.ema_momentum = _lib.scalar("ema_momentum", ema_momentum)
    if caller_normalizer is not None:
        o.caller_normalizer = _lib.scalar("caller_normalizer", caller_normalizer)
    o.num_threads = threads(num_threads)
    return o


def rpn_loss(images, *, config=None, convention=None, fg_iou_thresh=None, bg_iou_thresh=None,
             allow_low_quality=None, batch_size_per_image=None, positive_fraction=None,
             seed=None, box_loss=None, smooth_l1_beta=None, box_weights=None,
             allowed_border=None, anchor_grid=None, grad=True, num_threads=0):
    """Faster R-CNN RPN loss of a batch (torchvision RegionProposalNetwork
    assign_targets_to_anchors + compute_loss; conventions "detectron2", "py_faster_rcnn";
    or a detloss.Config's settings with config=).

    images: list of dicts {"anchors" [A, 4], "gt" [G, 4], "objectness" [A],
    "deltas" [A, 4], optional "is_crowd" [G], "image_size" (H, W)} (the keys of the
    rpn_loss compute op; "boxes" is accepted for "gt"). Options left at None keep the
    preset's (or config's) value: 0.7 / 0.3, 256 per image, 0.5 positive, seed 0,
    smooth-L1 beta 1/9. Returns a dict: loss_objectness, loss_box_reg, num_pos,
    num_neg, num_ignored (matched counts), num_sampled_pos, num_sampled_neg,
    normalizer, nonfinite, per_image (list of dicts), and with grad: grad_objectness,
    grad_deltas (lists of arrays, per image). anchor_grid: the AnchorGrid the anchors
    come from (one, or one per image): the same result, faster matching."""
    o = rpn_options(config, convention, fg_iou_thresh, bg_iou_thresh, allow_low_quality,
                    batch_size_per_image, positive_fraction, seed, box_loss, smooth_l1_beta,
                    box_weights, allowed_border, num_threads)
    b = _HeadBatch(images, "rpn", grad=grad, anchor_grid=anchor_grid)
    res = _lib.HeadResult()
    per = (_lib.HeadImageStats * b.n)()
    call("detloss_rpn_loss", ctypes.addressof(b.c), b.n, ctypes.byref(res), ctypes.addressof(per),
         ctypes.byref(o))
    out = _result(res)
    out["loss_objectness"] = np.float32(out.pop("loss_cls"))
    out["loss_box_reg"] = np.float32(out["loss_box_reg"])
    out["per_image"] = [_stats(s) for s in per]
    if grad:
        out["grad_objectness"] = [g["grad_objectness"] for g in b.grads]
        out["grad_deltas"] = [g["grad_deltas"] for g in b.grads]
    return out


def retina_loss(images, num_classes, *, config=None, fg_iou_thresh=None, bg_iou_thresh=None,
                allow_low_quality=None, alpha=None, gamma=None, box_loss=None,
                smooth_l1_beta=None, box_weights=None, normalizer=None, ema_state=None,
                ema_momentum=None, caller_normalizer=None, allowed_border=None,
                anchor_grid=None, grad=True, num_threads=0):
    """RetinaNet loss of a batch (torchvision RetinaNet.compute_loss; detectron2's EMA
    normalizer with normalizer="detectron2_ema", or a caller's normalizer; or a
    detloss.Config's settings with config=).

    images: list of dicts {"anchors" [A, 4], "gt" [G, 4], "labels" [G] (int),
    "cls_logits" [A, C], "deltas" [A, 4], optional "is_crowd" [G], "image_size"}.
    Options left at None keep torchvision's (or the config's) value: 0.5 / 0.4,
    alpha 0.25, gamma 2, box_loss "l1", smooth_l1_beta 1, box_weights (1, 1, 1, 1),
    normalizer "torchvision". ema_state: the EMA normalizer's state (a float, 100 to
    start); the updated value is returned in the result as "ema_state". Returns a
    dict: loss_cls, loss_box_reg, counts, normalizer, per_image, and with grad:
    grad_cls_logits, grad_deltas (lists, per image). anchor_grid: as in rpn_loss."""
    num_classes = _lib.integer("num_classes", num_classes, "size_t", lo=1)
    o = retina_options(config, fg_iou_thresh, bg_iou_thresh, allow_low_quality, alpha, gamma,
                       box_loss, smooth_l1_beta, box_weights, normalizer, ema_momentum,
                       caller_normalizer, allowed_border, num_threads)
    ema = ctypes.c_float(100.0 if ema_state is None else _lib.scalar("ema_state", ema_state))
    o.ema_state = ctypes.addressof(ema)
    b = _HeadBatch(images, "retina", int(num_classes), grad=grad, anchor_grid=anchor_grid)
    res = _lib.HeadResult()
    per = (_lib.HeadImageStats * b.n)()
    call("detloss_retina_loss", ctypes.addressof(b.c), b.n, int(num_classes), ctypes.byref(res),
         ctypes.addressof(per), ctypes.byref(o))
    out = _result(res)
    out["loss_cls"] = np.float32(out["loss_cls"])
    out["loss_box_reg"] = np.float32(out["loss_box_reg"])
    out["per_image"] = [_stats(s) for s in per]
    if o.normalizer == RETINA_NORMALIZERS["detectron2_ema"]:
        out["ema_state"] = ema.value
    if grad:
        out["grad_cls_logits"] = [g["grad_cls_logits"] for g in b.grads]
        out["grad_deltas"] = [g["grad_deltas"] for g in b.grads]
    return out


_METRICS = {"iou": 0, "wh_ratio": 1}
_SIZE_NAMES = ("small", "medium", "large")


def _eval_stats(s):
    d = {k: getattr(s, k) for k, _ in _lib.EvalStats._fields_ if k != "pos_hist"}
    d["pos_hist"] = list(s.pos_hist)
    return d


def _dataset_struct(dataset, keep):
    """(detloss_eval_dataset, number of boxes) of a Dataset or a list of image dicts."""
    if hasattr(dataset, "view") and hasattr(dataset, "num_boxes"):  # config.Dataset
        keep.append(dataset)
        return dataset.view(), dataset.num_boxes
    if isinstance(dataset, dict):
        if "images" not in dataset:
            raise DetlossError(_lib.ERR_MISSING, "dataset.images", "is required")
        images = _list("dataset.images", dataset["images"], "a list of image dicts")
    else:
        images = _list("dataset", dataset, "a detloss.Dataset, a list of image dicts or a "
                       "dict with \"images\"")
    if len(images) == 0:
        raise DetlossError(_lib.ERR_SHAPE, "dataset", "no images")
    hw = np.empty((len(images), 2), np.float32)
    starts = np.zeros(len(images) + 1, np.uint64 if ctypes.sizeof(ctypes.c_size_t) == 8
                      else np.uint32)
    boxes, crowds, any_crowd = [], [], False
    for i, im in enumerate(images):
        w = "dataset.images[%d]" % i
        if not isinstance(im, dict):
            raise _lib.DetlossTypeError(_lib.ERR_NULL if im is None else _lib.ERR_TYPE, w,
                                        "must be a dict, got %s" % type(im).__name__)
        try:
            hw[i] = (_lib.scalar(w + ".height", im["height"]),
                     _lib.scalar(w + ".width", im["width"]))
        except KeyError as e:
            raise DetlossError(_lib.ERR_MISSING, "%s.%s" % (w, e.args[0]), "is required")
        b = array(w + ".boxes", im.get("boxes", np.zeros((0, 4))), shape=(None, 4))
        boxes.append(b)
        cv = im.get("is_crowd", im.get("iscrowd"))
        cr = array(w + ".is_crowd", cv, np.uint8, shape=(b.shape[0],), allow_none=True, lo=0,
                   hi=1)
        any_crowd |= cr is not None
        crowds.append(cr if cr is not None else np.zeros(b.shape[0], np.uint8))
        starts[i + 1] = starts[i] + b.shape[0]
    allb = np.ascontiguousarray(np.concatenate(boxes), np.float32)
    allc = np.ascontiguousarray(np.concatenate(crowds), np.uint8) if any_crowd else None
    keep.extend([hw, starts, allb, allc])
    return _lib.EvalDataset(len(images), ptr(hw), ptr(starts), ptr(allb), ptr(allc)), \
        allb.shape[0]


def _run_eval(dataset, src, o, return_per_gt, progress, keep, assigner=None):
    keep = list(keep)
    data, nboxes = _dataset_struct(dataset, keep)
    if progress is not None:
        if not callable(progress):
            raise _lib.DetlossTypeError(_lib.ERR_TYPE, "progress", "must be callable")
        cb = _lib.EVAL_PROGRESS(lambda _user, done, total: progress(done, total))
        keep.append(cb)
        o.progress = ctypes.cast(cb, ctypes.c_void_p)
    rep = _lib.EvalReport()
    per = np.empty(nboxes, _lib.EVAL_GT_DTYPE) if return_per_gt else None
    call("detloss_anchor_eval_ex", ctypes.byref(data), ctypes.byref(src),
         ctypes.byref(assigner) if assigner is not None else None, ptr(per),
         ctypes.byref(rep), ctypes.byref(o))
    out = {k: getattr(rep, k) for k in ("num_images", "num_images_empty", "num_boxes",
                                        "num_crowd", "num_clipped", "num_degenerate",
                                        "num_anchors", "num_levels", "num_out_of_range")}
    out.update(_eval_stats(rep.all))
    out["by_size"] = {_SIZE_NAMES[k]: _eval_stats(rep.by_size[k]) for k in range(3)}
    out["level_best"] = list(rep.level_best[:rep.num_levels])
    out["level_pos"] = list(rep.level_pos[:rep.num_levels])
    out["worst"] = [{"image": w.image, "box": w.box, "w": w.w, "h": w.h, "best": w.best}
                    for w in rep.worst[:rep.num_worst]]
    return (out, per) if return_per_gt else out


def anchor_eval(dataset, *, anchors=None, grid=None, shapes=None, metric="iou", iou_thresh=0.5,
                ratio_thresh=4.0, resize_min_size=0.0, resize_max_size=0.0,
                count_positives=True, num_worst=20, return_per_gt=False, progress=None,
                num_threads=0, **match_kw):
    """How well an anchor set covers the gt boxes of a data set (detloss_anchor_eval).

    dataset: a detloss.Dataset (load_dataset), or a list of images {"height", "width",
    "boxes" [G, 4], optional "is_crowd" [G]} (or a dict with "images"). Exactly one
    source: anchors [A, 4] (the same for every image), grid (a config dict or preset
    name; feature maps are sized per image), or shapes [[w, h], ...] (metric
    "wh_ratio"). match_kw: the matcher's options as in match() (high, low,
    allow_low_quality, semantics, ...) for the positive counts. (A detloss.Config
    evaluates its own anchors and options: Config.evaluate.)
    Returns the report as a dict (num_gt, recall, mean_best, anchors_per_gt, by_size,
    level_best, level_pos, worst, ...); with return_per_gt also a structured array of
    the per-gt records (w, h, best, num_fit, num_pos, level, size, status, clipped,
    out_of_range).
    progress: optional callable(images_done, num_images), called on this thread after
    each chunk of images."""
    src = _lib.EvalAnchors()
    keep = []
    nsrc = sum(x is not None for x in (anchors, grid, shapes))
    if nsrc != 1:
        raise DetlossError(_lib.ERR_SHAPE, "src", "give exactly one of anchors, grid, shapes "
                           "(got %d)" % nsrc)
    if grid is not None:
        cfgobj = _Config(grid, need_feat=False)
        keep.append(cfgobj)
        src.grid = ctypes.pointer(cfgobj.cfg)
    if anchors is not None:
        a = array("anchors", anchors, shape=(None, 4))
        keep.append(a)
        src.anchors, src.num_anchors = ptr(a), a.shape[0]
    if shapes is not None:
        sh = array("shapes", shapes, shape=(None, 2))
        keep.append(sh)
        src.shapes, src.num_shapes = ptr(sh), sh.shape[0]
    o = _lib.fn("detloss_eval_options_default")()
    o.metric = _choice("metric", metric, _METRICS)
    o.iou_thresh = _lib.scalar("iou_thresh", iou_thresh)
    o.ratio_thresh = _lib.scalar("ratio_thresh", ratio_thresh)
    o.resize_min_size = _lib.scalar("resize_min_size", resize_min_size)
    o.resize_max_size = _lib.scalar("resize_max_size", resize_max_size)
    o.count_positives = 1 if count_positives else 0
    if match_kw:
        o.match = _match_options(**match_kw)
    o.num_worst = _lib.integer("num_worst", num_worst, "size_t", hi=_lib.EVAL_MAX_WORST)
    o.num_threads = threads(num_threads)
    return _run_eval(dataset, src, o, return_per_gt, progress, keep)


def compute(case):
    """`detloss compute` in-process: a case (dict, list of cases or JSON text) -> result."""
    return _lib.compute_json(case)


_FIT_METHODS = {"kmeans": 0, "evolve": 1}


def _wh(name, x):
    a = array(name, x)
    if a.ndim != 2 or a.shape[1] not in (2, 4):
        raise DetlossError(_lib.ERR_SHAPE, name,
                           "expected [N, 2] widths and heights or [N, 4] boxes, got shape %s"
                           % (tuple(a.shape),))
    if a.shape[1] == 4:
        a = np.ascontiguousarray(np.stack([a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]], 1),
                                 dtype=np.float32)
    return a


def _metrics(m):
    return {"mean_iou": m.mean_iou, "fitness": m.fitness, "bpr": m.bpr, "aat": m.aat}


def fit_anchors(wh, k=9, method="kmeans", *, old=None, seed=0, restarts=None, max_iter=1000,
                generations=1000, ratio_thresh=4.0, mutation_prob=0.9, sigma=0.1, min_side=2.0,
                num_threads=0):
    """detloss_fit_shapes: k anchor shapes (w, h) fitted to labels.

    wh: [N, 2] label widths and heights (after your resize), or [N, 4] boxes (x1, y1, x2, y2).
    method "kmeans": darknet calc_anchors k-means with the 1 - IoU distance of corner-aligned
    boxes, k-means++ seeding, `restarts` (default 10) runs, the highest mean best IoU wins.
    method "evolve": YOLOv5 AutoAnchor: whitened k-means (`restarts` default 30, scipy's
    iter), then `generations` mutations (probability mutation_prob, sigma) keeping a mutant
    that raises mean(best r * [best r > 1/ratio_thresh]); labels with both sides < min_side
    are left out of the fit.
    old: the current shapes [M, 2] (optional) for the "before" metrics.
    Returns (shapes float32 [k, 2] sorted by area, report dict with num_labels, num_used,
    iterations, before (None without old) and after: {mean_iou, fitness, bpr, aat}).
    The same seed gives the same bits for any num_threads. The FPN "levels" method needs a
    config and a data set: use `detloss fit CONFIG --method levels`.
    """
    if method not in _FIT_METHODS:
        raise DetlossError(_lib.ERR_RANGE, "method",
                           "unknown method %r (kmeans or evolve; levels: detloss fit)" % (method,))
    w = _wh("wh", wh)
    kk = integer("k", k, "size_t", lo=1)
    o = _lib.fn("detloss_fit_options_default")()
    o.seed = integer("seed", seed, "uint64")
    # 0 (None) = the method's default: 10 k-means++ restarts, 30 whitened k-means runs
    o.restarts = integer("restarts", 0 if restarts is None else restarts, "size_t")
    o.max_iter = integer("max_iter", max_iter, "size_t", lo=1)
    o.generations = integer("generations", generations, "size_t")
    o.ratio_thresh = _lib.scalar("ratio_thresh", ratio_thresh)
    o.mutation_prob = _lib.scalar("mutation_prob", mutation_prob)
    o.sigma = _lib.scalar("sigma", sigma)
    o.min_side = _lib.scalar("min_side", min_side)
    o.num_threads = threads(num_threads)
    if old is not None:
        ol = array("old", old, shape=(None, 2))
        optr, on = ptr(ol), ol.shape[0]
    else:
        optr, on = None, 0
    out = np.empty((kk, 2), np.float32)
    rep = _lib.FitReport()
    call("detloss_fit_shapes", _FIT_METHODS[method], ptr(w), w.shape[0], kk, optr, on,
         ptr(out), ctypes.byref(rep), ctypes.byref(o))
    report = {"num_labels": rep.num_labels, "num_used": rep.num_used,
              "iterations": rep.iterations,
              "before": _metrics(rep.before) if rep.has_before else None,
              "after": _metrics(rep.after)}
    return out, report


def fit_metrics(wh, shapes, ratio_thresh=4.0, *, num_threads=0):
    """detloss_fit_metrics_of: {mean_iou, fitness, bpr, aat} of shapes [K, 2] on labels wh
    ([N, 2] or [N, 4] boxes): darknet's mean best IoU of corner-aligned boxes and YOLOv5's
    fitness, best possible recall and anchors above threshold (thr = ratio_thresh)."""
    w = _wh("wh", wh)
    s = array("shapes", shapes, shape=(None, 2))
    m = _lib.FitMetrics()
    call("detloss_fit_metrics_of", ptr(w), w.shape[0], ptr(s), s.shape[0],
         _lib.scalar("ratio_thresh", ratio_thresh), threads(num_threads), ctypes.byref(m))
    return _metrics(m)
