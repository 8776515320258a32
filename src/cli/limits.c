/* limits.c - the CLI's side of detloss_json_limits: the environment variables
 * that raise (or lower) each limit, read here and only here (the library never
 * reads the environment), and the hint that names them in error messages. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

typedef struct limit_var {
  const char *env;   /* the variable */
  const char *field; /* detloss_json_limits field, as the library's messages name it */
  double max;        /* the largest value accepted */
} limit_var;

static const limit_var VARS[] = {
    {"DETLOSS_MAX_INPUT_BYTES", "max_input_bytes", 1e15},
    {"DETLOSS_MAX_OUTPUT_NUMBERS", "max_output_numbers", 1e15},
    {"DETLOSS_MAX_ANCHORS", "max_anchors", 1e15},
    {"DETLOSS_MAX_IMAGE_SIDE", "max_image_side", 1e9},
};
#define NUM_VARS (sizeof VARS / sizeof VARS[0])

int dl_cli_limits(detloss_json_limits *lim) {
  *lim = detloss_json_limits_default();
  for (size_t k = 0; k < NUM_VARS; k++) {
    const char *s = getenv(VARS[k].env);
    if (!s) continue;
    /* digits only: no sign, no exponent, no suffix, so what is set is what applies */
    int ok = s[0] != '\0' && strspn(s, "0123456789") == strlen(s) && strlen(s) <= 16;
    double v = 0.0;
    if (ok) {
      errno = 0;
      v = strtod(s, NULL);
      ok = errno == 0 && v >= 1.0 && v <= VARS[k].max;
    }
    if (!ok) {
      fprintf(stderr, "detloss: %s: expected a whole number from 1 to %.0f, got '%s'\n",
              VARS[k].env, VARS[k].max, s);
      return DL_EXIT_INPUT;
    }
    switch (k) {
      case 0: lim->max_input_bytes = (size_t)v; break;
      case 1: lim->max_output_numbers = (size_t)v; break;
      case 2: lim->max_anchors = (size_t)v; break;
      default: lim->max_image_side = v; break;
    }
  }
  return DL_EXIT_OK;
}

const char *dl_cli_limit_hint(const char *msg) {
  static const char *const HINTS[NUM_VARS] = {
      " (set DETLOSS_MAX_INPUT_BYTES to raise it)",
      " (set DETLOSS_MAX_OUTPUT_NUMBERS to raise it)",
      " (set DETLOSS_MAX_ANCHORS to raise it)",
      " (set DETLOSS_MAX_IMAGE_SIDE to raise it)",
  };
  const char *p = msg ? strstr(msg, "the limit ") : NULL;
  if (!p) return "";
  p += strlen("the limit ");
  for (size_t k = 0; k < NUM_VARS; k++) {
    size_t n = strlen(VARS[k].field);
    if (strncmp(p, VARS[k].field, n) == 0 && p[n] == ' ') return HINTS[k];
  }
  return "";
}
