"""detloss.torch_assign - torch drop-ins for the assigners, one module each, re-exported
here:

    from detloss.torch_assign import TaskAlignedAssigner   # ultralytics.utils.tal
    from detloss.torch_assign import HungarianMatcher      # DETR models/matcher.py
"""
from .torch_hungarian import HungarianMatcher  # noqa: F401
from .torch_task_aligned import TaskAlignedAssigner  # noqa: F401

__all__ = ["TaskAlignedAssigner", "HungarianMatcher"]
