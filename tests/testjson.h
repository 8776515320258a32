/*
 * testjson.h - reading the reference fixtures under tests/fixtures/ in the C tests.
 * Header-only; the tests link cJSON through detloss_json.
 */
#ifndef DETLOSS_TESTJSON_H
#define DETLOSS_TESTJSON_H

#include <cjson/cJSON.h>
#include <string.h>

#include "detloss/detloss.h"

/* Copies a JSON array of numbers (width 0) or of rows of `width` numbers into
 * f (float) and/or d (double), either may be NULL; returns the row count. */
static inline size_t dl_json_rows(const cJSON *a, size_t width, float *f, double *d) {
  size_t n = 0;
  const cJSON *row;
  cJSON_ArrayForEach(row, a) {
    if (width == 0) {
      if (f) f[n] = (float)row->valuedouble;
      if (d) d[n] = row->valuedouble;
    } else {
      for (size_t k = 0; k < width; k++) {
        double v = cJSON_GetArrayItem(row, (int)k)->valuedouble;
        if (f) f[n * width + k] = (float)v;
        if (d) d[n * width + k] = v;
      }
    }
    n++;
  }
  return n;
}

/* "none" | "sum" | anything else (the fixtures' "mean") */
static inline detloss_reduction dl_json_reduction(const char *s) {
  if (strcmp(s, "none") == 0) return DETLOSS_REDUCTION_NONE;
  if (strcmp(s, "sum") == 0) return DETLOSS_REDUCTION_SUM;
  return DETLOSS_REDUCTION_MEAN;
}

#endif /* DETLOSS_TESTJSON_H */
