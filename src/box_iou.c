/* box_iou.c - being written. */
#include "internal.h"
typedef int dl_placeholder_box_iou;
