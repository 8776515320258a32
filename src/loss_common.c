/* loss_common.c - placeholder until the losses module lands. */
#include "internal.h"
typedef int dl_placeholder_loss_common;
