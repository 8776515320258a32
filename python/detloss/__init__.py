"""detloss: anchors, IoU matching, sampling, box coding and detection losses with
gradients, from the detloss C library (loaded with ctypes; no compiler needed).

    import detloss
    detloss.box_iou(boxes1, boxes2)                       # numpy in, numpy out
    from detloss.torch import sigmoid_focal_loss          # torch autograd drop-in

The numpy API is detloss.ops (re-exported here); the PyTorch autograd functions
are detloss.torch (imported on demand: torch is optional). Errors raise
detloss.DetlossError (a ValueError) carrying .status, .where and .message.
"""
from ._lib import DetlossError, DetlossTypeError, has_openmp, library_path
from ._lib import version as library_version
from .ops import *  # noqa: F401,F403
from .ops import __all__ as _ops_all
from .assign import *  # noqa: F401,F403  (task_aligned_assign, linear_sum_assignment, ...)
from .assign import __all__ as _assign_all
from .head_fcos import fcos_loss, grid_points
from .head_yolov8 import Yolov8LossResult, yolov8_loss
from .config import Config, Dataset, config_describe, config_presets, load_config, load_dataset

_config_all = ["SimOTAAssignResult", "simota_assign", "simota_assign_torch", "Config", "Dataset", "config_describe", "config_presets", "load_config",
               "load_dataset"]

# The library's version (CMakeLists.txt's project(VERSION), compiled into libdetloss),
# read at run time: the package has no version of its own to drift.
__version__ = library_version()

__all__ = ["DetlossError", "DetlossTypeError", "has_openmp", "library_path", "library_version",
           "__version__", "fcos_loss", "grid_points"] + list(_ops_all) + _config_all + list(_assign_all)
__all__ += ["yolov8_loss", "Yolov8LossResult"]

# DETR's set-prediction loss (numpy); the torch drop-in is detloss.torch_detr.SetCriterion
from .head_detr import detr_loss, DetrLossResult  # noqa: E402
__all__ += ["detr_loss", "DetrLossResult"]
