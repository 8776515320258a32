"""detloss.assign - the assigners of the assign interface on numpy arrays, one module
each, re-exported here:

    task_aligned_assign, task_aligned_assign_batch      # assign_task_aligned.py (TOOD, YOLOv8)
    linear_sum_assignment, hungarian_cost, hungarian_match, hungarian_match_batch
                                                        # assign_hungarian.py (DETR)
    atss_assign, fcos_targets, fcos_out_of_range (AssignResult, FcosTargets)
                                                        # assign_atss.py (ATSS, FCOS)
    simota_assign, simota_assign_torch (SimOTAAssignResult)
                                                        # assign_simota.py (YOLOX, mmdet)
"""
from .assign_hungarian import *  # noqa: F401,F403
from .assign_hungarian import HungarianOptions  # noqa: F401
from .assign_hungarian import __all__ as _hungarian_all
from .assign_task_aligned import *  # noqa: F401,F403
from .assign_task_aligned import __all__ as _task_aligned_all

from .assign_atss import AssignResult, FcosTargets, atss_assign, fcos_targets  # noqa: F401
from .assign_atss import fcos_out_of_range  # noqa: F401

from .assign_simota import SimOTAAssignResult, simota_assign, simota_assign_torch  # noqa: F401

__all__ = list(_task_aligned_all) + list(_hungarian_all) + [
    "AssignResult", "FcosTargets", "atss_assign", "fcos_targets", "fcos_out_of_range",
    "SimOTAAssignResult",
    "simota_assign", "simota_assign_torch"]
