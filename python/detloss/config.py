"""Configs (configs/*.json) and data sets, read by the C library's JSON layer.

    cfg = detloss.load_config("torchvision_retinanet_r50_fpn")   # a name in configs/, or a path
    cfg.anchors(image_size=(800, 1344))                            # the config's anchors
    ds = detloss.load_dataset("data/coco_val_subset.json")        # detloss or COCO format
    cfg.evaluate(ds)                                               # detloss_anchor_eval
    detloss.rpn_loss(images, config=cfg)                           # the config's loss settings

Every error (unknown key with a suggestion, wrong type, missing file) raises
DetlossError with where = "<file>: <json path>".
"""
import ctypes
import difflib
import math
import os

import numpy as np

from . import _lib
from ._lib import DetlossError, DetlossTypeError

_HEADS = {0: "none", 1: "rpn", 2: "retinanet"}


def _s(b):
    return None if b is None else b.decode("utf-8", "replace")


def _data_dirs(extra=None):
    """The data directories (each with configs/, anchors/, data/), in search order, the
    same as the detloss command's: search_dirs given by the caller, $DETLOSS_DATA_DIR,
    the copy installed with this package (detloss/data), the source checkout this
    package sits in (python/detloss -> the repository), then the current directory.
    Directories that do not exist are left out."""
    here = os.path.dirname(os.path.abspath(__file__))
    dirs = [str(d) for d in (extra or [])]
    env = os.environ.get("DETLOSS_DATA_DIR")
    if env:
        dirs.append(env)
    dirs.append(os.path.join(here, "data"))                          # installed copy
    dirs.append(os.path.dirname(os.path.dirname(here)))              # source checkout
    out = []
    for d in dirs:
        if os.path.isdir(d) and d not in out:
            out.append(d)
    return out


def _search_dirs(extra):
    """The NULL-terminated list for the C library's relative names in a config ("anchors",
    "dataset"): each data directory and its data/, then the current directory."""
    dirs = []
    for d in _data_dirs(extra):
        dirs.append(d)
        if os.path.isdir(os.path.join(d, "data")):
            dirs.append(os.path.join(d, "data"))
    dirs.append(".")
    arr = (ctypes.c_char_p * (len(dirs) + 1))(*[os.fsencode(d) for d in dirs], None)
    return arr, dirs


def _is_preset_name(name):
    return bool(name) and name != "-" and "/" not in name and os.path.sep not in name \
        and not name.endswith(".json")


def _find_config(name, extra=None):
    """A path (a '/' or a .json ending) as given; a preset name NAME as configs/NAME.json
    of the first data directory that has it, then ./configs/NAME.json. An unknown preset
    raises DetlossError (status "not_found", where "path") with a suggestion and the presets."""
    if not _is_preset_name(name):
        return name
    for d in _data_dirs(extra) + ["."]:
        p = os.path.join(d, "configs", name + ".json")
        if os.path.isfile(p):
            return p
    names = config_presets(extra)
    hint = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
    if not hint:
        hint = [n for n in names if n.startswith(name)][:2]
        hint = hint if len(hint) == 1 else []
    msg = "unknown preset '%s'" % name
    if hint:
        msg += " (did you mean '%s'?)" % hint[0]
    msg += ("; presets: " + ", ".join(names)) if names else \
        "; no presets found: set DETLOSS_DATA_DIR to a directory with configs/, or give a path"
    raise DetlossError(_lib.ERR_NOT_FOUND, "path", msg)


def config_presets(search_dirs=None):
    """Names of the config presets found (configs/*.json of search_dirs, $DETLOSS_DATA_DIR,
    the copy installed with the package, the source checkout, the current directory)."""
    out = set()
    for d in _data_dirs(search_dirs) + ["."]:
        cdir = os.path.join(d, "configs")
        if os.path.isdir(cdir):
            out.update(os.path.splitext(f)[0] for f in os.listdir(cdir) if f.endswith(".json"))
    return sorted(out)


class Config:
    """A parsed detloss config (owns the C detloss_config; freed with the object)."""

    def __init__(self, ptr, dirs):
        self._p = ptr
        self._dirs = dirs
        self._free = _lib.fn("detloss_config_free")

    @classmethod
    def load(cls, path, search_dirs=None):
        arr, _ = _search_dirs(search_dirs)
        p = ctypes.POINTER(_lib.Config)()
        _lib.call("detloss_config_load", os.fsencode(_find_config(os.fspath(path), search_dirs)),
                  arr, ctypes.byref(p))
        c = cls(p, arr)
        return c

    @classmethod
    def parse(cls, text, path="(text)", search_dirs=None):
        arr, _ = _search_dirs(search_dirs)
        if isinstance(text, str):
            text = text.encode()
        p = ctypes.POINTER(_lib.Config)()
        _lib.call("detloss_config_parse", text, len(text), path.encode(), arr, ctypes.byref(p))
        return cls(p, arr)

    def __del__(self):
        p = getattr(self, "_p", None)
        if p:
            self._free(p)
            self._p = None

    @property
    def c(self):
        """The C struct (detloss_config), read only."""
        return self._p.contents

    path = property(lambda self: _s(self.c.path))
    name = property(lambda self: _s(self.c.name))
    source = property(lambda self: _s(self.c.source))
    notes = property(lambda self: _s(self.c.notes))
    head = property(lambda self: _HEADS.get(self.c.head, self.c.head))
    anchors_path = property(lambda self: _s(self.c.anchors_path))
    dataset_path = property(lambda self: _s(self.c.dataset_path))

    @property
    def image_size(self):
        h, w = self.c.image_size
        return None if h == 0 else (h, w)

    @property
    def kind(self):
        """"grid", "anchors" or "shapes": the kind of anchor set; "none" for a config
        without one (a point-based or dynamic assigner)."""
        c = self.c
        if not (c.grid.num_levels or c.num_anchors or c.num_shapes):
            return "none"
        return "grid" if c.grid.num_levels else ("anchors" if c.num_anchors else "shapes")

    @property
    def assigner(self):
        """The "assigner" method: "max_iou" (the matcher; the default), "atss", "fcos",
        "simota", "task_aligned" or "hungarian"."""
        return _lib.EVAL_METHODS[self.c.assigner.method]

    @property
    def point_strides(self):
        """The "points" strides (a list; empty when the config has no points)."""
        c = self.c
        return [c.point_strides[l] for l in range(c.num_point_levels)]

    @property
    def shapes(self):
        c = self.c
        if not c.num_shapes:
            return None
        return np.ctypeslib.as_array((ctypes.c_float * (2 * c.num_shapes)).from_address(
            c.shapes)).reshape(-1, 2).copy()

    def anchors(self, image_size=None):
        """The config's anchors [A, 4]: for a grid, for an image of image_size (H, W)
        (default: the anchor set's own image_size) with ceil(H / stride) x
        ceil(W / stride) cells per level, as detloss_anchor_eval sizes them; explicit
        anchors as given."""
        c = self.c
        if c.num_anchors:
            return np.ctypeslib.as_array((ctypes.c_float * (4 * c.num_anchors)).from_address(
                c.anchors)).reshape(-1, 4).copy()
        if not c.grid.num_levels:
            raise DetlossError(_lib.ERR_RANGE, "anchors", "this config has shapes only (see "
                               ".shapes)")
        size = image_size if image_size is not None else self.image_size
        if size is None:
            raise DetlossError(_lib.ERR_MISSING, "image_size", "the config's anchor set has no "
                               "image_size: pass one")
        n = c.grid.num_levels
        levels = (_lib.AnchorLevel * n)()
        for l in range(n):
            ctypes.pointer(levels[l])[0] = c.grid.levels[l]
            levels[l].feat_h = math.ceil(float(size[0]) / levels[l].stride_h)
            levels[l].feat_w = math.ceil(float(size[1]) / levels[l].stride_w)
        cfg = _lib.AnchorConfig(levels, n, c.grid.convention, c.grid.offset)
        cnt = ctypes.c_size_t()
        _lib.call("detloss_anchors_count", ctypes.byref(cfg), ctypes.byref(cnt))
        out = np.empty((cnt.value, 4), np.float32)
        _lib.call("detloss_anchors_generate", ctypes.byref(cfg), out.ctypes.data, cnt.value)
        return out

    def evaluate(self, dataset=None, *, return_per_gt=False, num_worst=None, num_threads=None,
                 progress=None):
        """detloss_anchor_eval_ex of the config's anchors, assigner (positives: the
        matcher, ATSS, or FCOS on the config's points) and eval options on a data set (a
        Dataset, a path, or a list of image dicts as ops.anchor_eval takes; default: the
        config's own "dataset"). With FCOS, num_anchors counts points, best is a
        positive's best centerness, anchors_per_gt the points inside a gt, recall the
        share of gts with a positive, num_out_of_range the gts outside every level's
        regress range (docs/configs.md). Configs whose assigner eval cannot run
        (simota, task_aligned, hungarian) raise DetlossError at "assigner.method"."""
        from . import ops
        if dataset is None:
            if not self.dataset_path:
                raise DetlossError(_lib.ERR_MISSING, "dataset", "the config names no data set")
            dataset = self.dataset_path
        if isinstance(dataset, (str, os.PathLike)):
            dataset = Dataset.load(dataset)
        src = _lib.fn("detloss_config_eval_anchors")(self._p)
        o = _lib.EvalOptions()
        ctypes.pointer(o)[0] = self.c.eval
        if num_worst is not None:
            o.num_worst = int(num_worst)
        if num_threads is not None:
            o.num_threads = _lib.threads(num_threads)
        asg = _lib.EvalAssigner()
        ctypes.pointer(asg)[0] = self.c.assigner
        return ops._run_eval(dataset, src, o, return_per_gt, progress, keep=[self],
                             assigner=asg)

    def describe(self):
        return {"path": self.path, "name": self.name, "head": self.head, "kind": self.kind,
                "assigner": self.assigner, "point_strides": self.point_strides,
                "anchors_path": self.anchors_path, "dataset_path": self.dataset_path,
                "image_size": self.image_size}

    def __repr__(self):
        return "detloss.Config(%r, head=%r, anchors=%s)" % (self.name or self.path, self.head,
                                                             self.kind)


def load_config(path, search_dirs=None):
    """Read a config: a path (it has a '/' or ends in .json), or a preset name
    ("torchvision_retinanet_r50_fpn" -> configs/NAME.json of the first data directory that
    has it: search_dirs, $DETLOSS_DATA_DIR, the copy installed with the package, the source
    checkout, the current directory). The anchor file and data set a config names are
    looked up next to it, then in the same directories (anchors/ and data/ first)."""
    return Config.load(path, search_dirs)


def config_describe():
    """Every config key with its type, range, default and doc (one per line)."""
    p = _lib.fn("detloss_config_describe")()
    if not p:
        raise DetlossError(_lib.ERR_NOMEM, "describe", "out of memory")
    try:
        return ctypes.string_at(p).decode()
    finally:
        _lib.fn("detloss_free")(p)


class Dataset:
    """A data set of gt boxes (detloss JSON or COCO instances), owned by the C library."""

    def __init__(self, ptr):
        self._p = ptr
        self._free = _lib.fn("detloss_dataset_free")

    @classmethod
    def load(cls, path, image_size=None, tolerance=None):
        """A data set file (detloss's format, COCO instances_*.json) or a YOLO label
        directory (labels/*.txt; image sizes from the PNG/JPEG headers in images/, or
        image_size=(w, h) for all; box edges may leave [0, 1] by tolerance, 0.01)."""
        p = ctypes.POINTER(_lib.Dataset)()
        if image_size is None and tolerance is None:
            _lib.call("detloss_dataset_load", os.fsencode(os.fspath(path)), ctypes.byref(p))
            return cls(p)
        o = _lib.fn("detloss_yolo_options_default")()
        if image_size is not None:
            if isinstance(image_size, (str, bytes)) or len(image_size) != 2:
                raise DetlossTypeError(_lib.ERR_TYPE, "image_size", "must be (width, height)")
            o.image_w = _lib.scalar("image_size", image_size[0])
            o.image_h = _lib.scalar("image_size", image_size[1])
        if tolerance is not None:
            o.tolerance = _lib.scalar("tolerance", tolerance)
        _lib.call("detloss_dataset_load_yolo", os.fsencode(os.fspath(path)), ctypes.byref(o),
                  None, ctypes.byref(p))
        return cls(p)

    @classmethod
    def parse(cls, text, path="(text)"):
        if isinstance(text, str):
            text = text.encode()
        p = ctypes.POINTER(_lib.Dataset)()
        _lib.call("detloss_dataset_parse", text, len(text), path.encode(), ctypes.byref(p))
        return cls(p)

    def __del__(self):
        p = getattr(self, "_p", None)
        if p:
            self._free(p)
            self._p = None

    @property
    def c(self):
        return self._p.contents

    def view(self):
        """The detloss_eval_dataset of this data set (pointers into it)."""
        return _lib.fn("detloss_dataset_view")(self._p)

    path = property(lambda self: _s(self.c.path))
    name = property(lambda self: _s(self.c.name))
    is_coco = property(lambda self: bool(self.c.is_coco))
    num_images = property(lambda self: self.c.num_images)
    num_boxes = property(lambda self: self.c.num_boxes)

    def _arr(self, addr, ctype, n, shape, dtype):
        if n == 0 or not addr:
            return np.zeros(shape, dtype)
        return np.ctypeslib.as_array((ctype * n).from_address(addr)).reshape(shape).astype(
            dtype, copy=True)

    @property
    def image_hw(self):
        return self._arr(self.c.image_hw, ctypes.c_float, 2 * self.num_images,
                         (self.num_images, 2), np.float32)

    @property
    def box_start(self):
        return self._arr(self.c.box_start, ctypes.c_size_t, self.num_images + 1,
                         (self.num_images + 1,), np.int64)

    @property
    def boxes(self):
        return self._arr(self.c.boxes, ctypes.c_float, 4 * self.num_boxes, (self.num_boxes, 4),
                         np.float32)

    @property
    def is_crowd(self):
        return self._arr(self.c.is_crowd, ctypes.c_uint8, self.num_boxes, (self.num_boxes,),
                         np.uint8)

    def images(self):
        """The data set as a list of {"height", "width", "boxes", "is_crowd"} dicts."""
        hw, st, b, cr = self.image_hw, self.box_start, self.boxes, self.is_crowd
        return [{"height": float(hw[i, 0]), "width": float(hw[i, 1]),
                 "boxes": b[st[i]:st[i + 1]], "is_crowd": cr[st[i]:st[i + 1]]}
                for i in range(self.num_images)]

    def __len__(self):
        return self.num_images

    def __repr__(self):
        return "detloss.Dataset(%r, %d images, %d boxes)" % (self.name or self.path,
                                                              self.num_images, self.num_boxes)


def load_dataset(path, image_size=None, tolerance=None):
    """Read a data set: a file (detloss's format or COCO instances_*.json) or a YOLO label
    directory (image_size=(w, h) and tolerance apply to YOLO directories; docs/datasets.md)."""
    return Dataset.load(path, image_size, tolerance)
