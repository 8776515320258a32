/* anchor_eval.c - placeholder until its module lands. */
#include "internal.h"
typedef int dl_placeholder_anchor_eval;
