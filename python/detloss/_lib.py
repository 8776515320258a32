"""Loading libdetloss.so with ctypes, the C structs, and argument checking.

The library is searched, in this order (the first one that loads wins):
  1. the file named by the environment variable DETLOSS_LIBRARY (an explicit
     choice: if it is set but cannot be loaded, that is an error, no fallback);
  2. next to this package (detloss/libdetloss.so*, put there by
     `DETLOSS_LIBRARY=... pip install ./python`);
  3. the build trees of the source checkout this package sits in
     (<repo>/build*/libdetloss.so, <repo>/_build/*/libdetloss.so), newest first;
  4. the system library path (ctypes.util.find_library("detloss"),
     libdetloss.so.0).
If none loads, ImportError lists every place that was tried.

Arrays: numpy arrays that are C-contiguous float32 (int64, uint8, ... where
the C side takes those) are passed to C without a copy; any other real
numeric array (float64, float16, int32, a non-contiguous view, a list; a
bfloat16 tensor) is converted, which copies: the library computes in float32,
so float64 values are rounded to float32 and float16 / bfloat16 / integer
values are widened to it. Booleans-as-floats, complex, object and string
arrays are refused (DetlossTypeError naming the argument). Outputs are new
arrays, or the caller's `out=` array, which must then be C-contiguous float32
of the right shape (no silent copy for outputs).

Integers (integer() for scalars, array() with an integer dtype for arrays) are
checked before anything reaches ctypes, which would wrap or truncate silently:
ints, numpy integers and integral floats (2.0) are accepted; a fractional
float (2.9), a bool, a string or a non-scalar is a DetlossTypeError; NaN / Inf
a DetlossError "nonfinite"; a value outside the C type's range or the
argument's domain a DetlossError "range" (a ValueError) naming the argument.
Integer arrays take integer dtypes, bool (for flags) or float arrays of
integral values, range-checked before the cast. None for a required array is
a DetlossTypeError with status "null".
"""
import operator
import collections
import ctypes
import ctypes.util
import glob
import os
import threading

import numpy as np

STATUS_NAMES = {
    0: "ok", 1: "null", 2: "shape", 3: "nonfinite", 4: "range", 5: "nomem", 6: "parse",
    7: "type", 8: "missing", 9: "unknown", 10: "io", 11: "unsupported", 12: "not_found",
}
OK, ERR_NULL, ERR_SHAPE, ERR_NONFINITE, ERR_RANGE, ERR_NOMEM = 0, 1, 2, 3, 4, 5
ERR_PARSE, ERR_TYPE, ERR_MISSING, ERR_UNKNOWN, ERR_IO, ERR_UNSUPPORTED = 6, 7, 8, 9, 10, 11
ERR_NOT_FOUND = 12


class DetlossError(ValueError):
    """An error reported by detloss (or found by the binding before the call).

    Attributes: status (int, detloss_status), status_name ("shape",
    "nonfinite", ...), where (the argument, element or JSON path at fault,
    e.g. "boxes1[3]"), message (what is wrong). A subclass of ValueError.
    """

    def __init__(self, status, where, message):
        self.status = int(status)
        self.status_name = STATUS_NAMES.get(self.status, "status %d" % self.status)
        self.where = where
        self.message = message
        super().__init__("%s: %s (%s)" % (where, message, self.status_name) if where
                         else "%s (%s)" % (message, self.status_name))


class DetlossTypeError(DetlossError, TypeError):
    """A wrong dtype or a wrong kind of object (also a TypeError)."""


# C structs (mirrors of include/detloss/detloss.h; the tests check the
# layouts against the library's *_default() functions)
c_float_p = ctypes.c_void_p  # all array pointers are passed as addresses


class Error(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("where", ctypes.c_char * 160),
                ("msg", ctypes.c_char * 320)]


class IouOptions(ctypes.Structure):
    _fields_ = [("eps", ctypes.c_float), ("num_threads", ctypes.c_int)]


class CoderOptions(ctypes.Structure):
    _fields_ = [("weights", ctypes.c_float * 4), ("clip", ctypes.c_float),
                ("num_threads", ctypes.c_int)]


class AnchorLevel(ctypes.Structure):
    _fields_ = [("feat_h", ctypes.c_size_t), ("feat_w", ctypes.c_size_t),
                ("stride_h", ctypes.c_float), ("stride_w", ctypes.c_float),
                ("sizes", ctypes.c_void_p), ("num_sizes", ctypes.c_size_t),
                ("ratios", ctypes.c_void_p), ("num_ratios", ctypes.c_size_t),
                ("shapes", ctypes.c_void_p), ("num_shapes", ctypes.c_size_t),
                ("base", ctypes.c_void_p), ("num_base", ctypes.c_size_t)]


class AnchorConfig(ctypes.Structure):
    _fields_ = [("levels", ctypes.POINTER(AnchorLevel)), ("num_levels", ctypes.c_size_t),
                ("convention", ctypes.c_int), ("offset", ctypes.c_float)]


class MatchOptions(ctypes.Structure):
    _fields_ = [("high", ctypes.c_float), ("low", ctypes.c_float),
                ("allow_low_quality", ctypes.c_int), ("low_quality_min_iou", ctypes.c_float),
                ("semantics", ctypes.c_int), ("gt_max_assign_all", ctypes.c_int),
                ("crowd_ioa_thresh", ctypes.c_float), ("allowed_border", ctypes.c_float),
                ("image_h", ctypes.c_float), ("image_w", ctypes.c_float),
                ("num_threads", ctypes.c_int)]


class SimotaOptions(ctypes.Structure):
    _fields_ = [("semantics", ctypes.c_int), ("center_radius", ctypes.c_float),
                ("candidate_topk", ctypes.c_int64), ("iou_weight", ctypes.c_float),
                ("cls_weight", ctypes.c_float), ("num_threads", ctypes.c_int)]


class SimotaImage(ctypes.Structure):
    _fields_ = [("num_points", ctypes.c_size_t), ("points", ctypes.c_void_p),
                ("level_counts", ctypes.c_void_p), ("scores", ctypes.c_void_p),
                ("pred_boxes", ctypes.c_void_p), ("num_gt", ctypes.c_size_t),
                ("gt", ctypes.c_void_p), ("gt_labels", ctypes.c_void_p),
                ("assigned_gt", ctypes.c_void_p), ("assigned_labels", ctypes.c_void_p),
                ("assigned_iou", ctypes.c_void_p)]


class SampleOptions(ctypes.Structure):
    _fields_ = [("batch_size_per_image", ctypes.c_int64), ("positive_fraction", ctypes.c_double),
                ("seed", ctypes.c_uint64), ("num_threads", ctypes.c_int)]


class LossOptions(ctypes.Structure):
    _fields_ = [("reduction", ctypes.c_int), ("alpha", ctypes.c_float), ("gamma", ctypes.c_float),
                ("beta", ctypes.c_float), ("delta", ctypes.c_float), ("margin", ctypes.c_float),
                ("label_smoothing", ctypes.c_float), ("eps", ctypes.c_float),
                ("p", ctypes.c_float), ("swap", ctypes.c_int), ("ignore_index", ctypes.c_int64),
                ("pos_weight", ctypes.c_void_p), ("pos_weight_len", ctypes.c_size_t),
                ("num_threads", ctypes.c_int), ("activated", ctypes.c_int),
                ("iou_weighted", ctypes.c_int), ("detach_weight", ctypes.c_int)]


class LossParam(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char_p), ("type", ctypes.c_int), ("offset", ctypes.c_size_t),
                ("default_value", ctypes.c_double), ("lo", ctypes.c_double), ("hi", ctypes.c_double),
                ("lo_open", ctypes.c_int), ("hi_open", ctypes.c_int), ("doc", ctypes.c_char_p)]


class LossInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("kind", ctypes.c_int), ("form", ctypes.c_int),
                ("params", ctypes.POINTER(LossParam)), ("num_params", ctypes.c_size_t),
                ("grad_inputs", ctypes.c_char_p), ("reference", ctypes.c_char_p)]


class HeadImage(ctypes.Structure):
    _fields_ = [("anchors", ctypes.c_void_p), ("num_anchors", ctypes.c_size_t),
                ("anchor_config", ctypes.c_void_p), ("gt", ctypes.c_void_p), ("num_gt", ctypes.c_size_t),
                ("labels", ctypes.c_void_p), ("gt_is_crowd", ctypes.c_void_p),
                ("image_h", ctypes.c_float), ("image_w", ctypes.c_float),
                ("num_predictions", ctypes.c_size_t),
                ("objectness", ctypes.c_void_p), ("cls_logits", ctypes.c_void_p),
                ("deltas", ctypes.c_void_p), ("grad_objectness", ctypes.c_void_p),
                ("grad_cls_logits", ctypes.c_void_p), ("grad_deltas", ctypes.c_void_p)]


class HeadImageStats(ctypes.Structure):
    _fields_ = [("num_pos", ctypes.c_size_t), ("num_neg", ctypes.c_size_t),
                ("num_ignored", ctypes.c_size_t), ("num_sampled_pos", ctypes.c_size_t),
                ("num_sampled_neg", ctypes.c_size_t), ("loss_cls", ctypes.c_float),
                ("loss_box_reg", ctypes.c_float)]


class HeadResult(ctypes.Structure):
    _fields_ = [("loss_cls", ctypes.c_float), ("loss_box_reg", ctypes.c_float),
                ("normalizer", ctypes.c_double), ("num_pos", ctypes.c_size_t),
                ("num_neg", ctypes.c_size_t), ("num_ignored", ctypes.c_size_t),
                ("num_sampled_pos", ctypes.c_size_t), ("num_sampled_neg", ctypes.c_size_t),
                ("nonfinite", ctypes.c_int)]


class RpnOptions(ctypes.Structure):
    _fields_ = [("match", MatchOptions), ("sample", SampleOptions),
                ("convention", ctypes.c_int), ("box_loss", ctypes.c_int),
                ("smooth_l1_beta", ctypes.c_float), ("box_weights", ctypes.c_float * 4),
                ("num_threads", ctypes.c_int), ("workspace", ctypes.c_void_p),
                ("workspace_size", ctypes.c_size_t)]


class RetinaOptions(ctypes.Structure):
    _fields_ = [("match", MatchOptions), ("alpha", ctypes.c_float), ("gamma", ctypes.c_float),
                ("box_loss", ctypes.c_int), ("smooth_l1_beta", ctypes.c_float),
                ("box_weights", ctypes.c_float * 4), ("normalizer", ctypes.c_int),
                ("ema_state", ctypes.c_void_p), ("ema_momentum", ctypes.c_float),
                ("caller_normalizer", ctypes.c_double), ("num_threads", ctypes.c_int),
                ("workspace", ctypes.c_void_p), ("workspace_size", ctypes.c_size_t)]


class NameInfo(ctypes.Structure):  # detloss_name_info
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_int), ("alias", ctypes.c_char_p),
                ("doc", ctypes.c_char_p), ("reference", ctypes.c_char_p)]


class OptionField(ctypes.Structure):  # detloss_option_field
    _fields_ = [("key", ctypes.c_char_p), ("field", ctypes.c_char_p), ("type", ctypes.c_int),
                ("offset", ctypes.c_size_t), ("lo", ctypes.c_double), ("hi", ctypes.c_double),
                ("lo_open", ctypes.c_int), ("hi_open", ctypes.c_int), ("names", ctypes.c_int),
                ("default_value", ctypes.c_double), ("doc", ctypes.c_char_p)]


class OptionsInfo(ctypes.Structure):  # detloss_options_info
    _fields_ = [("name", ctypes.c_char_p), ("size", ctypes.c_size_t),
                ("fields", ctypes.POINTER(OptionField)), ("num_fields", ctypes.c_size_t)]


# detloss_name_set and detloss_options_kind (the indices of the registry's tables)
NAME_SETS = ("semantics", "rpn_convention", "box_loss", "retina_normalizer", "iou_kind",
             "anchor_convention", "eval_metric", "atss_semantics", "fcos_semantics")
OPTIONS_KINDS = ("match", "sample", "coder", "rpn", "retina", "eval", "resize", "atss", "fcos")
OPTION_TYPES = ("f32", "f64", "bool", "i64", "u64", "size", "enum", "f32x4")


EVAL_MAX_LEVELS = 16
EVAL_MAX_WORST = 100


class EvalDataset(ctypes.Structure):
    _fields_ = [("num_images", ctypes.c_size_t), ("image_hw", ctypes.c_void_p),
                ("box_start", ctypes.c_void_p), ("boxes", ctypes.c_void_p),
                ("is_crowd", ctypes.c_void_p)]


class EvalAnchors(ctypes.Structure):
    _fields_ = [("grid", ctypes.POINTER(AnchorConfig)), ("anchors", ctypes.c_void_p),
                ("num_anchors", ctypes.c_size_t), ("shapes", ctypes.c_void_p),
                ("num_shapes", ctypes.c_size_t)]


class EvalOptions(ctypes.Structure):
    _fields_ = [("metric", ctypes.c_int), ("iou_thresh", ctypes.c_float),
                ("ratio_thresh", ctypes.c_float), ("resize_min_size", ctypes.c_float),
                ("resize_max_size", ctypes.c_float), ("count_positives", ctypes.c_int),
                ("match", MatchOptions), ("num_worst", ctypes.c_size_t),
                ("num_threads", ctypes.c_int), ("progress", ctypes.c_void_p),
                ("progress_user", ctypes.c_void_p)]


# void (*progress)(void *user, size_t images_done, size_t num_images)
EVAL_PROGRESS = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t)


class EvalGt(ctypes.Structure):
    _fields_ = [("w", ctypes.c_float), ("h", ctypes.c_float), ("best", ctypes.c_float),
                ("num_fit", ctypes.c_uint32), ("num_pos", ctypes.c_uint32),
                ("level", ctypes.c_int16), ("size", ctypes.c_uint8), ("status", ctypes.c_uint8),
                ("clipped", ctypes.c_uint8), ("out_of_range", ctypes.c_uint8)]


def _numpy_dtype(struct):
    """The numpy record dtype of a flat ctypes struct (same offsets and padding)."""
    return np.dtype({"names": [n for n, _ in struct._fields_],
                     "formats": [np.dtype(t) for _, t in struct._fields_],
                     "offsets": [getattr(struct, n).offset for n, _ in struct._fields_],
                     "itemsize": ctypes.sizeof(struct)})


# The same record as a numpy dtype, so per-gt results come back as one array.
EVAL_GT_DTYPE = _numpy_dtype(EvalGt)


class EvalStats(ctypes.Structure):
    _fields_ = [("num_gt", ctypes.c_size_t), ("num_recalled", ctypes.c_size_t),
                ("recall", ctypes.c_double), ("mean_best", ctypes.c_double),
                ("anchors_per_gt", ctypes.c_double), ("positives_per_gt", ctypes.c_double),
                ("pos_hist", ctypes.c_size_t * 4)]


class EvalWorst(ctypes.Structure):
    _fields_ = [("image", ctypes.c_size_t), ("box", ctypes.c_size_t), ("w", ctypes.c_float),
                ("h", ctypes.c_float), ("best", ctypes.c_float)]


class EvalReport(ctypes.Structure):
    _fields_ = [("num_images", ctypes.c_size_t), ("num_images_empty", ctypes.c_size_t),
                ("num_boxes", ctypes.c_size_t), ("num_crowd", ctypes.c_size_t),
                ("num_clipped", ctypes.c_size_t), ("num_degenerate", ctypes.c_size_t),
                ("num_anchors", ctypes.c_size_t), ("all", EvalStats),
                ("by_size", EvalStats * 3), ("num_levels", ctypes.c_size_t),
                ("level_best", ctypes.c_size_t * EVAL_MAX_LEVELS),
                ("level_pos", ctypes.c_size_t * EVAL_MAX_LEVELS),
                ("num_worst", ctypes.c_size_t), ("worst", EvalWorst * EVAL_MAX_WORST),
                ("num_out_of_range", ctypes.c_size_t)]



class FitOptions(ctypes.Structure):  # detloss_fit_options
    _fields_ = [("seed", ctypes.c_uint64), ("restarts", ctypes.c_size_t),
                ("max_iter", ctypes.c_size_t), ("generations", ctypes.c_size_t),
                ("ratio_thresh", ctypes.c_float), ("mutation_prob", ctypes.c_float),
                ("sigma", ctypes.c_float), ("min_side", ctypes.c_float),
                ("max_evals", ctypes.c_size_t), ("num_threads", ctypes.c_int),
                ("progress", ctypes.c_void_p), ("progress_user", ctypes.c_void_p)]


class FitMetrics(ctypes.Structure):  # detloss_fit_metrics
    _fields_ = [("mean_iou", ctypes.c_double), ("fitness", ctypes.c_double),
                ("bpr", ctypes.c_double), ("aat", ctypes.c_double)]


class FitReport(ctypes.Structure):  # detloss_fit_report
    _fields_ = [("num_labels", ctypes.c_size_t), ("num_used", ctypes.c_size_t),
                ("iterations", ctypes.c_size_t), ("has_before", ctypes.c_int),
                ("before", FitMetrics), ("after", FitMetrics)]

class AtssOptions(ctypes.Structure):  # detloss_atss_options
    _fields_ = [("semantics", ctypes.c_int), ("topk", ctypes.c_int64),
                ("anchors_per_location", ctypes.c_int64), ("ignore_iof_thr", ctypes.c_float),
                ("num_threads", ctypes.c_int)]


class FcosOptions(ctypes.Structure):  # detloss_fcos_options
    _fields_ = [("semantics", ctypes.c_int), ("regress_ranges", ctypes.c_void_p),
                ("center_sampling", ctypes.c_int), ("center_sample_radius", ctypes.c_float),
                ("norm_on_bbox", ctypes.c_int), ("num_threads", ctypes.c_int)]


class EvalAssigner(ctypes.Structure):  # detloss_eval_assigner
    _fields_ = [("method", ctypes.c_int), ("atss", AtssOptions), ("fcos", FcosOptions),
                ("regress_ranges", ctypes.c_float * (2 * EVAL_MAX_LEVELS)),
                ("num_ranges", ctypes.c_size_t),
                ("point_strides", ctypes.c_float * EVAL_MAX_LEVELS),
                ("num_point_levels", ctypes.c_size_t), ("point_offset", ctypes.c_float)]


EVAL_METHODS = ("max_iou", "atss", "fcos", "simota", "task_aligned", "hungarian")


class Config(ctypes.Structure):  # detloss_config (detloss_json.h)
    _fields_ = [("path", ctypes.c_char_p), ("name", ctypes.c_char_p),
                ("source", ctypes.c_char_p), ("notes", ctypes.c_char_p),
                ("anchors_path", ctypes.c_char_p), ("anchors_name", ctypes.c_char_p),
                ("anchors_source", ctypes.c_char_p), ("dataset_path", ctypes.c_char_p),
                ("head", ctypes.c_int), ("grid", AnchorConfig),
                ("image_size", ctypes.c_float * 2), ("anchors", ctypes.c_void_p),
                ("num_anchors", ctypes.c_size_t), ("shapes", ctypes.c_void_p),
                ("num_shapes", ctypes.c_size_t), ("eval", EvalOptions),
                ("coder", CoderOptions), ("rpn", RpnOptions), ("retina", RetinaOptions),
                ("storage", ctypes.c_void_p), ("assigner", EvalAssigner),
                ("num_point_levels", ctypes.c_size_t),
                ("point_strides", ctypes.c_float * EVAL_MAX_LEVELS),
                ("point_offset", ctypes.c_float)]


class Dataset(ctypes.Structure):  # detloss_dataset (detloss_json.h)
    _fields_ = [("path", ctypes.c_char_p), ("name", ctypes.c_char_p),
                ("source", ctypes.c_char_p), ("license", ctypes.c_char_p),
                ("is_coco", ctypes.c_int), ("num_images", ctypes.c_size_t),
                ("num_boxes", ctypes.c_size_t), ("image_hw", ctypes.c_void_p),
                ("box_start", ctypes.c_void_p), ("boxes", ctypes.c_void_p),
                ("is_crowd", ctypes.c_void_p), ("image_id", ctypes.c_void_p)]


class JsonLimits(ctypes.Structure):  # detloss_json_limits (detloss_json.h, docs/limits.md)
    _fields_ = [("max_input_bytes", ctypes.c_size_t), ("max_output_numbers", ctypes.c_size_t),
                ("max_anchors", ctypes.c_size_t), ("max_image_side", ctypes.c_double)]


class Yolov8Options(ctypes.Structure):  # detloss_yolov8_options (YOLOv8 loss)
    _fields_ = [("strides", ctypes.c_float * 8), ("num_levels", ctypes.c_size_t),
                ("reg_max", ctypes.c_size_t), ("topk", ctypes.c_int64),
                ("alpha", ctypes.c_float), ("beta", ctypes.c_float),
                ("gain_box", ctypes.c_float), ("gain_cls", ctypes.c_float),
                ("gain_dfl", ctypes.c_float), ("target_score_sum", ctypes.c_double),
                ("num_threads", ctypes.c_int)]


class Yolov8Image(ctypes.Structure):  # detloss_yolov8_image
    _fields_ = [("gt", ctypes.c_void_p), ("num_gt", ctypes.c_size_t),
                ("labels", ctypes.c_void_p), ("pred_distri", ctypes.c_void_p),
                ("pred_scores", ctypes.c_void_p), ("grad_pred_distri", ctypes.c_void_p),
                ("grad_pred_scores", ctypes.c_void_p), ("assigned_gt", ctypes.c_void_p)]


class Yolov8Result(ctypes.Structure):  # detloss_yolov8_result
    _fields_ = [("loss", ctypes.c_float), ("loss_box", ctypes.c_float),
                ("loss_cls", ctypes.c_float), ("loss_dfl", ctypes.c_float),
                ("target_score_sum", ctypes.c_double), ("normalizer", ctypes.c_double),
                ("num_fg", ctypes.c_size_t), ("nonfinite", ctypes.c_int)]


class YoloOptions(ctypes.Structure):  # detloss_yolo_options (detloss_json.h, docs/datasets.md)
    _fields_ = [("image_w", ctypes.c_float), ("image_h", ctypes.c_float),
                ("tolerance", ctypes.c_double)]


_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(_HERE))  # <repo>/python/detloss -> <repo>


def _candidates():
    """(description, path or name) in search order, without the env var."""
    out = []
    for p in sorted(glob.glob(os.path.join(_HERE, "libdetloss.so*"))):
        out.append(("next to the package", p))
    if os.path.isfile(os.path.join(_REPO, "CMakeLists.txt")):
        pats = [os.path.join(_REPO, "build", "libdetloss.so"),
                os.path.join(_REPO, "build*", "libdetloss.so"),
                os.path.join(_REPO, "_build", "*", "libdetloss.so")]
        found = {p for pat in pats for p in glob.glob(pat)}
        # the most recently built first; sanitizer builds abort the interpreter when
        # loaded without their runtime preloaded, so they are only used through
        # DETLOSS_LIBRARY
        for p in sorted(found, key=lambda q: -os.path.getmtime(q)):
            if not _needs_sanitizer_runtime(p):
                out.append(("build tree", p))
    name = ctypes.util.find_library("detloss")
    if name:
        out.append(("system library path", name))
    out.append(("system library path", "libdetloss.so.0"))
    out.append(("system library path", "libdetloss.so"))
    return out


def _needs_sanitizer_runtime(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"libasan.so" in data or b"libtsan.so" in data or b"__asan_init" in data


def _required_symbols_ok(lib):
    try:
        lib.detloss_version
        lib.detloss_iou_matrix
        return True
    except AttributeError:
        return False


def load_library():
    tried = []
    env = os.environ.get("DETLOSS_LIBRARY")
    if env:
        try:
            lib = ctypes.CDLL(env)
        except OSError as e:
            raise ImportError("detloss: DETLOSS_LIBRARY=%s cannot be loaded: %s" % (env, e))
        if not _required_symbols_ok(lib):
            raise ImportError("detloss: DETLOSS_LIBRARY=%s is not libdetloss" % env)
        return lib, env
    for desc, path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append("  %s: %s (%s)" % (desc, path, str(e).split(":")[-1].strip()))
            continue
        if not _required_symbols_ok(lib):
            tried.append("  %s: %s (not libdetloss)" % (desc, path))
            continue
        return lib, path
    raise ImportError(
        "detloss: libdetloss.so not found. Build it (cmake -S . -B build && cmake --build build"
        " --target detloss_shared) and set DETLOSS_LIBRARY=/path/to/libdetloss.so, or install it."
        " Looked in:\n  DETLOSS_LIBRARY: (not set)\n" + "\n".join(tried))


lib, library_path = load_library()

_sz = ctypes.c_size_t
_vp = ctypes.c_void_p
_i = ctypes.c_int
_f = ctypes.c_float

lib.detloss_version.restype = ctypes.c_char_p
lib.detloss_version.argtypes = []
lib.detloss_status_str.restype = ctypes.c_char_p
lib.detloss_status_str.argtypes = [_i]
lib.detloss_has_openmp.restype = _i
lib.detloss_has_openmp.argtypes = []

_SIGS = {
    "detloss_iou_options_default": (IouOptions, []),
    "detloss_coder_options_default": (CoderOptions, []),
    "detloss_match_options_default": (MatchOptions, []),
    "detloss_sample_options_default": (SampleOptions, []),
    "detloss_loss_options_default": (LossOptions, [_i]),
    "detloss_loss_count": (_sz, []),
    "detloss_loss_info_get": (ctypes.POINTER(LossInfo), [_i]),
    "detloss_loss_info_by_name": (ctypes.POINTER(LossInfo), [ctypes.c_char_p]),
    "detloss_names_count": (_sz, [_i]),
    "detloss_names_get": (ctypes.POINTER(NameInfo), [_i, _sz]),
    "detloss_names_find": (ctypes.POINTER(NameInfo), [_i, ctypes.c_char_p]),
    "detloss_names_label": (ctypes.c_char_p, [_i]),
    "detloss_options_info_get": (ctypes.POINTER(OptionsInfo), [_i]),
    "detloss_rpn_options_default": (RpnOptions, []),
    "detloss_rpn_options_preset": (RpnOptions, [_i]),
    "detloss_retina_options_default": (RetinaOptions, []),
    "detloss_eval_options_default": (EvalOptions, []),
    "detloss_box_area": (_i, [_vp, _sz, _vp, _vp]),
    "detloss_iou_matrix": (_i, [_i, _vp, _sz, _vp, _sz, _vp, _vp, _vp]),
    "detloss_iou_pairs": (_i, [_i, _vp, _vp, _sz, _vp, _vp, _vp]),
    "detloss_box_encode": (_i, [_vp, _vp, _sz, _vp, _vp, _vp]),
    "detloss_box_decode": (_i, [_vp, _vp, _sz, _vp, _vp, _vp]),
    "detloss_anchors_level_base": (_i, [_vp, _sz, _vp, _sz, _vp, _vp]),
    "detloss_anchors_count": (_i, [_vp, _vp, _vp]),
    "detloss_anchors_generate": (_i, [_vp, _vp, _sz, _vp]),
    "detloss_match": (_i, [_vp, _sz, _vp, _sz, _vp, _vp, _vp, _vp, _vp]),
    "detloss_match_grid": (_i, [_vp, _vp, _sz, _vp, _vp, _vp, _sz, _vp, _vp]),
    "detloss_simota_options_default": (SimotaOptions, []),
    "detloss_simota_options_for": (SimotaOptions, [_i]),
    "detloss_assign_simota": (_i, [_vp, _sz, _vp, _vp, _sz, _vp, _sz, _vp, _vp, _vp, _sz, _vp,
                                   _vp, _vp, _vp, _vp]),
    "detloss_assign_simota_batch": (_i, [_vp, _sz, _vp, _sz, _sz, _vp, _vp]),
    "detloss_sample_balanced": (_i, [_vp, _sz, ctypes.c_uint64, _vp, _vp, _vp, _vp, _vp]),
    "detloss_match_targets": (_i, [_vp, _sz, _vp, _sz, _vp, _vp, _vp, _vp, _vp, _vp]),
    "detloss_loss_elementwise": (_i, [_i, _vp, _vp, _vp, _sz, _vp, _vp, _vp, _vp]),
    "detloss_loss_classes": (_i, [_i, _vp, _vp, _vp, _sz, _sz, _vp, _vp, _vp, _vp]),
    "detloss_loss_rows": (_i, [_i, _vp, _vp, _vp, _sz, _sz, _vp, _vp, _vp, _vp]),
    "detloss_sigmoid_focal_loss": (_i, [_vp, _vp, _sz, _f, _f, _i, _vp, _vp, _i, _vp]),
    "detloss_loss_boxes": (_i, [_i, _vp, _vp, _vp, _sz, _vp, _vp, _vp, _vp, _vp]),
    "detloss_loss_embedding": (_i, [_i, _vp, _vp, _vp, _vp, _vp, _sz, _sz, _vp, _vp, _vp, _vp,
                                    _vp, _vp]),
    "detloss_rpn_loss": (_i, [_vp, _sz, _vp, _vp, _vp, _vp]),
    "detloss_rpn_workspace_size": (_i, [_vp, _sz, ctypes.POINTER(_sz), _vp]),
    "detloss_retina_workspace_size": (_i, [_vp, _sz, _sz, ctypes.POINTER(_sz), _vp]),
    "detloss_retina_loss": (_i, [_vp, _sz, _sz, _vp, _vp, _vp, _vp]),
    "detloss_anchor_eval": (_i, [_vp, _vp, _vp, _vp, _vp, _vp]),
    "detloss_anchor_eval_ex": (_i, [_vp, _vp, _vp, _vp, _vp, _vp, _vp]),
    "detloss_eval_assigner_default": (EvalAssigner, []),
    "detloss_compute_json": (_i, [ctypes.c_char_p, _sz, ctypes.POINTER(ctypes.c_void_p),
                                  ctypes.POINTER(_sz), _vp, _vp]),
    "detloss_free": (None, [_vp]),
    "detloss_config_load": (_i, [ctypes.c_char_p, _vp, ctypes.POINTER(ctypes.POINTER(Config)),
                                 _vp]),
    "detloss_config_parse": (_i, [ctypes.c_char_p, _sz, ctypes.c_char_p, _vp,
                                  ctypes.POINTER(ctypes.POINTER(Config)), _vp]),
    "detloss_config_free": (None, [ctypes.POINTER(Config)]),
    "detloss_config_eval_anchors": (EvalAnchors, [ctypes.POINTER(Config)]),
    "detloss_config_describe": (_vp, []),
    "detloss_dataset_load": (_i, [ctypes.c_char_p, ctypes.POINTER(ctypes.POINTER(Dataset)), _vp]),
    "detloss_dataset_parse": (_i, [ctypes.c_char_p, _sz, ctypes.c_char_p,
                                   ctypes.POINTER(ctypes.POINTER(Dataset)), _vp]),
    "detloss_dataset_free": (None, [ctypes.POINTER(Dataset)]),
    "detloss_yolo_options_default": (YoloOptions, []),
    "detloss_dataset_load_yolo": (_i, [ctypes.c_char_p, _vp, _vp,
                                       ctypes.POINTER(ctypes.POINTER(Dataset)), _vp]),
    "detloss_dataset_view": (EvalDataset, [ctypes.POINTER(Dataset)]),
    # limits (NULL = the defaults; the plain calls above use the defaults)
    "detloss_json_limits_default": (JsonLimits, []),
    "detloss_config_load_ex": (_i, [ctypes.c_char_p, _vp, _vp,
                                    ctypes.POINTER(ctypes.POINTER(Config)), _vp]),
    "detloss_config_parse_ex": (_i, [ctypes.c_char_p, _sz, ctypes.c_char_p, _vp, _vp,
                                     ctypes.POINTER(ctypes.POINTER(Config)), _vp]),
    "detloss_dataset_load_ex": (_i, [ctypes.c_char_p, _vp,
                                     ctypes.POINTER(ctypes.POINTER(Dataset)), _vp]),
    "detloss_dataset_parse_ex": (_i, [ctypes.c_char_p, _sz, ctypes.c_char_p, _vp,
                                      ctypes.POINTER(ctypes.POINTER(Dataset)), _vp]),
    "detloss_eval_check_limits": (_i, [_vp, _vp, _vp, _vp, _vp]),
    # anchor fitting (detloss_fit_shapes, detloss_fit_metrics_of)
    "detloss_fit_options_default": (FitOptions, []),
    "detloss_fit_shapes": (_i, [_i, _vp, _sz, _sz, _vp, _sz, _vp, _vp, _vp, _vp]),
    "detloss_fit_metrics_of": (_i, [_vp, _sz, _vp, _sz, _f, _i, _vp, _vp]),
    # LEVELS: reached through `detloss fit CONFIG --method levels` (bound for completeness)
    "detloss_fit_levels": (_i, [_vp, _vp, _vp, _vp, _vp, _vp, _vp, _vp]),
    # the YOLOv8 loss (detloss.head_yolov8)
    "detloss_yolov8_options_default": (Yolov8Options, []),
    "detloss_yolov8_loss": (_i, [_sz, _sz, _sz, _vp, _sz, _vp, _vp, _vp]),
}

_funcs = {}


def fn(name):
    """The C function `name` with its signature set; DetlossError(UNSUPPORTED)
    when this libdetloss.so does not have it (an older build)."""
    f = _funcs.get(name)
    if f is None:
        try:
            f = getattr(lib, name)
        except AttributeError:
            raise DetlossError(ERR_UNSUPPORTED, name,
                               "this libdetloss (%s, %s) does not export %s; rebuild it"
                               % (library_path, version(), name))
        restype, argtypes = _SIGS[name]
        f.restype = restype
        f.argtypes = argtypes
        _funcs[name] = f
    return f


_tls = threading.local()


def use_workspace(opt, kind, images, n, num_classes=0):
    """Points opt.workspace at this thread's cached scratch buffer, grown to what the
    library asks for (detloss_*_workspace_size), so repeated head-loss calls (a training
    loop) do not fault in fresh pages every time. No-op with an older library."""
    try:
        if kind == "rpn":
            f, extra = fn("detloss_rpn_workspace_size"), ()
        else:
            f, extra = fn("detloss_retina_workspace_size"), (num_classes,)
    except DetlossError:
        return
    need = ctypes.c_size_t()
    err = Error()
    if f(images, n, *extra, ctypes.byref(need), ctypes.byref(err)) != 0:
        return  # the loss call itself reports the problem
    buf = getattr(_tls, "workspace", None)
    if buf is None or buf.nbytes < need.value:
        buf = np.empty(max(need.value, 1), np.uint8)
        _tls.workspace = buf
    opt.workspace, opt.workspace_size = buf.ctypes.data, buf.nbytes


def version():
    return lib.detloss_version().decode()


def has_openmp():
    return bool(lib.detloss_has_openmp())


def check(status, err):
    """Raises DetlossError for a non-zero status, with the library's where/msg."""
    if status != 0:
        raise DetlossError(status, err.where.decode("utf-8", "replace"),
                           err.msg.decode("utf-8", "replace"))


def call(name, *args):
    """Calls detloss function `name` with a fresh detloss_error as last argument."""
    err = Error()
    st = fn(name)(*args, ctypes.byref(err))
    check(st, err)


def names(set_name):
    """{name: enum value} of a detloss_name_set (NAME_SETS), in enum order, read from the
    library's name registry (src/registry.c); aliases are not listed."""
    k = NAME_SETS.index(set_name) if isinstance(set_name, str) else set_name
    rows = (fn("detloss_names_get")(k, i).contents for i in range(fn("detloss_names_count")(k)))
    return {r.name.decode(): r.value for r in rows}


OptionRow = collections.namedtuple(
    "OptionRow", "key field type offset lo hi lo_open hi_open names default doc")
OptionsTable = collections.namedtuple("OptionsTable", "name size fields")


def options_table(kind):
    """The library's descriptor table of an options struct (OPTIONS_KINDS): its C name,
    size and one OptionRow per settable field (JSON key, C field, type, offset, range,
    name set of an enum, default, doc)."""
    t = fn("detloss_options_info_get")(OPTIONS_KINDS.index(kind)).contents
    rows = []
    for i in range(t.num_fields):
        f = t.fields[i]
        rows.append(OptionRow(f.key.decode(), f.field.decode(), OPTION_TYPES[f.type], f.offset,
                              f.lo, f.hi, bool(f.lo_open), bool(f.hi_open),
                              NAME_SETS[f.names] if f.names >= 0 else None, f.default_value,
                              f.doc.decode()))
    return OptionsTable(t.name.decode(), t.size, tuple(rows))


def _bad(name, msg, status=ERR_SHAPE):
    return DetlossError(status, name, msg)


def _to_numpy(name, x):
    """numpy view of x without a copy where possible; torch tensors must be on the CPU."""
    if isinstance(x, np.ndarray):
        return x
    mod = type(x).__module__
    if mod.startswith("torch"):
        dev = getattr(x, "device", None)
        if dev is not None and dev.type != "cpu":
            raise DetlossError(ERR_UNSUPPORTED, name,
                               "tensor is on device %s; detloss computes on the CPU "
                               "(move it with .cpu())" % dev)
        if getattr(x, "is_sparse", False) or getattr(x, "layout", None) is not None and \
                str(x.layout) != "torch.strided":
            raise DetlossTypeError(ERR_TYPE, name, "sparse tensors are not supported")
        if x.is_complex():
            raise DetlossTypeError(ERR_TYPE, name, "complex tensors are not supported")
        x = x.detach()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        return x.numpy()
    if isinstance(x, (str, bytes)):
        raise DetlossTypeError(ERR_TYPE, name, "expected an array, got %s" % type(x).__name__)
    try:
        a = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise DetlossTypeError(ERR_TYPE, name, "cannot be read as an array: %s" % e)
    if a.dtype == object and a.ndim == 0:
        raise DetlossTypeError(ERR_TYPE, name, "expected an array, got %s" % type(x).__name__)
    return a


def _fmt_int(v):
    """2^64-1 style for the C types' bounds, decimal otherwise."""
    for k in (8, 16, 31, 32, 63, 64):
        for off, txt in ((0, ""), (-1, "-1")):
            if v == (1 << k) + off:
                return "2^%d%s" % (k, txt)
            if v == -(1 << k) + off and off == 0:
                return "-2^%d" % k
    return str(v)


_INT_BITS = 8 * ctypes.sizeof(ctypes.c_int)

# (lowest, highest) of the C integer types the binding passes
C_INT_RANGES = {
    "int": (-(1 << _INT_BITS - 1), (1 << _INT_BITS - 1) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint64": (0, (1 << 64) - 1),
    "size_t": (0, (1 << 8 * ctypes.sizeof(ctypes.c_size_t)) - 1),
    "uint8": (0, 255),
}
_NP_CTYPES = {np.dtype(np.int64): "int64", np.dtype(np.uint8): "uint8",
              np.dtype(np.uint64): "uint64", np.dtype(np.int32): "int"}


def _bounds(ctype, lo, hi):
    tlo, thi = C_INT_RANGES[ctype]
    return tlo if lo is None else max(lo, tlo), thi if hi is None else min(hi, thi)


def _range_error(name, value, lo, hi, ctype):
    kind = " (%s)" % ctype if (lo, hi) == C_INT_RANGES[ctype] else ""
    return DetlossError(ERR_RANGE, name, "must be an integer in [%s, %s]%s, got %s"
                        % (_fmt_int(lo), _fmt_int(hi), kind, value))


def integer(name, v, ctype="int64", lo=None, hi=None):
    """A scalar integer argument as a Python int, checked against the range of its C
    type (C_INT_RANGES) and the domain [lo, hi]. Accepted: int, numpy integer,
    objects with __index__ (a one-element integer tensor), integral floats (2.0).
    Refused: bool (True is almost surely a mistake where a count or index is
    expected), fractional floats (2.9 is not silently 2), anything else."""
    if v is None:
        raise DetlossTypeError(ERR_NULL, name, "is required (an integer), got None")
    if isinstance(v, (bool, np.bool_)):
        raise DetlossTypeError(ERR_TYPE, name, "must be an integer, got a bool (%r)" % (v,))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if f != f or f in (float("inf"), float("-inf")):
            raise DetlossError(ERR_NONFINITE, name, "must be a finite integer, got %r" % (v,))
        if f != int(f):
            raise DetlossTypeError(ERR_TYPE, name, "must be an integer, got the fractional "
                                   "value %r" % (v,))
        i = int(f)
    else:
        try:
            i = operator.index(v)
        except TypeError:
            raise DetlossTypeError(ERR_TYPE, name, "must be an integer, got %s"
                                   % type(v).__name__)
    lo, hi = _bounds(ctype, lo, hi)
    if i < lo or i > hi:
        raise _range_error(name, i, lo, hi, ctype)
    return i


def _object_ints(name, a):
    """An object array of Python ints (too large for numpy) -> range error; else None."""
    flat = a.reshape(-1)
    if flat.size and all(isinstance(v, int) and not isinstance(v, bool) for v in flat):
        return max(flat, key=abs)
    return None


def _int_array_values(name, a, want, lo, hi):
    """Checks an array about to become integer dtype `want`: no fractional or
    non-finite values, every value within the C type and [lo, hi], before the cast."""
    ctype = _NP_CTYPES[want]
    lo, hi = _bounds(ctype, lo, hi)
    if a.size == 0:
        return
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            raise DetlossError(ERR_NONFINITE, name, "non-finite value where an integer is expected")
        if not np.all(a == np.round(a)):
            raise DetlossTypeError(ERR_TYPE, name, "expected integers, got dtype %s with "
                                   "fractional values" % a.dtype)
        mn, mx = float(a.min()), float(a.max())  # compared exactly with the int bounds
        if mn < lo:
            raise _range_error(name, "%.17g" % mn, lo, hi, ctype)
        if mx > hi:
            raise _range_error(name, "%.17g" % mx, lo, hi, ctype)
        return
    mn, mx = int(a.min()), int(a.max())  # Python ints: exact for int64 and uint64
    if mn < lo:
        raise _range_error(name, mn, lo, hi, ctype)
    if mx > hi:
        raise _range_error(name, mx, lo, hi, ctype)


def array(name, x, dtype=np.float32, shape=None, allow_none=False, lo=None, hi=None):
    """x as a C-contiguous numpy array of dtype, shape checked.

    shape: a tuple of ints and None (any size); the returned array has exactly
    len(shape) dimensions. No copy when x already is C-contiguous `dtype`.
    Integer dtypes: values are checked (see integer()) against the type's range
    and the domain [lo, hi] before the cast; bool arrays are accepted for uint8
    flags. Float dtypes: any real input is converted (float64 rounded, float16 /
    integers widened).
    """
    if x is None:
        if allow_none:
            return None
        raise DetlossTypeError(ERR_NULL, name, "is required (an array), got None")
    want = np.dtype(dtype)
    a = _to_numpy(name, x)
    if a.dtype == np.bool_ and want == np.uint8:
        a = a.view(np.uint8)
    if a.dtype == object and want.kind in "iu":
        big = _object_ints(name, a)
        if big is not None:
            lo_, hi_ = _bounds(_NP_CTYPES[want], lo, hi)
            raise _range_error(name, big, lo_, hi_, _NP_CTYPES[want])
    if a.dtype.kind not in "fiu":
        raise DetlossTypeError(ERR_TYPE, name, "expected a real numeric array (%s), got dtype %s"
                               % (want.name, a.dtype))
    if want.kind in "iu":
        _int_array_values(name, a, want, lo, hi)
    if shape is not None:
        if a.ndim != len(shape):
            # an empty list [] for a [n][k] array is fine: n = 0
            if a.size == 0 and a.ndim == 1 and len(shape) >= 2 and all(
                    s is not None for s in shape[1:]):
                a = a.reshape((0,) + tuple(shape[1:]))
            else:
                raise _bad(name, "expected %d dimensions %s, got shape %s"
                           % (len(shape), _fmt_shape(shape), tuple(a.shape)))
        for k, (got, exp) in enumerate(zip(a.shape, shape)):
            if exp is not None and got != exp:
                raise _bad(name, "expected shape %s, got %s (dimension %d)"
                           % (_fmt_shape(shape), tuple(a.shape), k))
    if a.dtype != want or not a.flags.c_contiguous or not a.flags.aligned:
        with np.errstate(invalid="ignore", over="ignore"):
            a = np.ascontiguousarray(a, dtype=want)
    return a


def _fmt_shape(shape):
    return "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"


def out_array(name, out, shape, dtype=np.float32):
    """The caller's output array (checked, never copied) or a new one."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise DetlossTypeError(ERR_TYPE, name, "must be a numpy array")
    if out.dtype != np.dtype(dtype):
        raise DetlossTypeError(ERR_TYPE, name, "must have dtype %s, got %s"
                               % (np.dtype(dtype).name, out.dtype))
    if tuple(out.shape) != tuple(shape):
        raise _bad(name, "must have shape %s, got %s" % (tuple(shape), tuple(out.shape)))
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise _bad(name, "must be C-contiguous and writeable (outputs are never copied)")
    return out


def ptr(a):
    """Address of a numpy array's data (None for None)."""
    return None if a is None else a.ctypes.data


def threads(n):
    """num_threads: None or 0 = the OpenMP default; a C int >= 0."""
    if n is None:
        return 0
    return integer("num_threads", n, "int", lo=0)


REDUCTIONS = {"none": 0, "sum": 1, "mean": 2}


def reduction(r):
    try:
        return REDUCTIONS[r]
    except (KeyError, TypeError):
        raise DetlossError(ERR_RANGE, "reduction", "must be 'none', 'sum' or 'mean', got %r" % (r,))


def flag(name, v):
    """A yes/no option: a bool (or numpy bool, or the integers 0 / 1); anything else, a
    tensor or array among them, is a DetlossTypeError naming it (bool() of a tensor of
    several values would raise an unnamed RuntimeError, and of a string would be True)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)) and int(v) in (0, 1):
        return bool(v)
    raise DetlossTypeError(ERR_TYPE, name, "must be True or False, got %r" % (v,))


def scalar(name, v, lo=None, lo_open=False, allow_inf=False):
    """A float parameter; must be finite (or +Inf when allow_inf)."""
    if v is None:
        raise DetlossTypeError(ERR_NULL, name, "is required (a number), got None")
    if isinstance(v, (str, bytes)):
        raise DetlossTypeError(ERR_TYPE, name, "must be a number, got %r" % (v,))
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise DetlossTypeError(ERR_TYPE, name, "must be a number, got %r" % (v,))
    if f != f or (f in (float("inf"), float("-inf")) and not allow_inf):
        raise DetlossError(ERR_NONFINITE, name, "must be finite, got %r" % (v,))
    if lo is not None and (f < lo or (lo_open and f == lo)):
        raise DetlossError(ERR_RANGE, name, "must be %s %g, got %r" % (">" if lo_open else ">=", lo, v))
    return f


def compute_json(case):
    """Runs `detloss compute` cases in-process (detloss_compute_json): case is a
    JSON text, or a dict / list that is serialized; returns the parsed result."""
    import json
    if case is None:
        raise DetlossTypeError(ERR_NULL, "case", "is required (a dict, a list of cases or "
                               "JSON text), got None")
    if not isinstance(case, (str, bytes, dict, list, tuple)):
        raise DetlossTypeError(ERR_TYPE, "case", "must be a dict, a list of cases or JSON "
                               "text, got %s" % type(case).__name__)
    text = case if isinstance(case, (str, bytes)) else json.dumps(case)
    if isinstance(text, str):
        text = text.encode()
    out = ctypes.c_void_p()
    out_len = _sz()
    err = Error()
    st = fn("detloss_compute_json")(text, len(text), ctypes.byref(out), ctypes.byref(out_len),
                                     None, ctypes.byref(err))
    check(st, err)
    try:
        s = ctypes.string_at(out.value, out_len.value).decode()
    finally:
        fn("detloss_free")(out)
    return json.loads(s)
