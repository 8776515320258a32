/* head_rpn.c - placeholder until its module lands. */
#include "internal.h"
typedef int dl_placeholder_head_rpn;
