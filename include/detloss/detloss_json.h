/*
 * detloss_json.h - the optional JSON layer: compute cases (and, later,
 * configs and data sets). Links cJSON; the numeric core (detloss.h) does not.
 */
#ifndef DETLOSS_JSON_H
#define DETLOSS_JSON_H

#include "detloss/detloss.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct detloss_compute_options {
  int num_threads; /* passed to every library call; 0 = OpenMP default */
} detloss_compute_options;

#define DETLOSS_COMPUTE_OPTIONS_INIT {0}

/*
 * detloss_compute_json() - run `detloss compute` cases (../shared/spec/compute-cases.md).
 * text [len]: one JSON case object or an array of them. On success *out is a
 * malloc'ed, NUL-terminated JSON text (one result object, or an array in the
 * same order) ending in a newline, *out_len its length; free it with
 * detloss_free(). On error *out is left untouched and err names the JSON path
 * of the fault ("[1].boxes1[2]", "images[0].gt[3]"), or "line L, column C"
 * for a syntax error. Returns DETLOSS_OK or the status of the first fault
 * (DETLOSS_ERR_PARSE, _TYPE, _MISSING, _UNKNOWN, _SHAPE, _RANGE, _NONFINITE,
 * _NOMEM). Thread-safe.
 */
DETLOSS_API detloss_status detloss_compute_json(const char *text, size_t len, char **out,
                                                size_t *out_len,
                                                const detloss_compute_options *opt,
                                                detloss_error *err);

/* Frees memory returned by the JSON layer. */
DETLOSS_API void detloss_free(void *p);

/* @@SECTION configs-datasets BEGIN (configs, data sets) */
/* @@SECTION configs-datasets END */

#ifdef __cplusplus
}
#endif

#endif /* DETLOSS_JSON_H */
