/* loss_box.c - placeholder until its module lands. */
#include "internal.h"
typedef int dl_placeholder_loss_box;
