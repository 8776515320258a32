/* jread.c - being written. */
#include "internal.h"
typedef int dl_placeholder_jread;
