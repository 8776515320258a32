/* cmd_eval.c - placeholder until its subcommand lands. */
#include "cli/cli.h"
typedef int dl_placeholder_cmd_eval;
