/*
 * jread.h - reading typed values out of cJSON trees, with JSON-path errors.
 *
 * Every getter takes the parent object, the key, and the parent's path
 * ("" at the top level, "[2]" for the third case of an array, "images[1]"),
 * and on error fills err with where = "<path>.<key>[i]..." and a message
 * saying what was expected. required = 0 makes a missing key leave the
 * default in place (the out value is pre-set by the caller).
 * Arrays are malloc'ed by the getter; free them with free().
 */
#ifndef DETLOSS_JREAD_H
#define DETLOSS_JREAD_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

#include "detloss/detloss.h"
#include "internal.h" /* DL_PRINTF */

#define DLJ_MAX_DIMS 4

/* A dense float tensor read from nested JSON arrays. */
typedef struct dlj_tensor {
  float *data;  /* malloc'ed, count floats (NULL when count = 0) */
  size_t count; /* product of shape */
  int ndim;     /* 0 for a scalar number */
  size_t shape[DLJ_MAX_DIMS];
} dlj_tensor;

/* path + "." + key (or just key at the top level) into buf. */
void dlj_join(char *buf, size_t cap, const char *path, const char *key);
/* path + "[i]" into buf. */
void dlj_index(char *buf, size_t cap, const char *path, size_t i);
/* dl_fail() located at path + "." + key (dlj_join): the error of a field
 * of the object at path. Returns status. */
detloss_status dlj_fail_at(detloss_error *err, detloss_status status, const char *path,
                           const char *key, const char *fmt, ...) DL_PRINTF(5, 6);

/* A JSON path built as a reader descends: push a key or an index, read,
 * pop back to the mark the push returned. buf is always NUL-terminated; a
 * path longer than the buffer is cut as dlj_join cuts it. */
typedef struct dlj_path {
  size_t len;
  char buf[DETLOSS_WHERE_MAX];
} dlj_path;

/* p = root ("" at the top level, "[2]" for the third case). */
void dlj_path_init(dlj_path *p, const char *root);
/* Appends ".key" ("key" at the top level); returns the mark to pop to. */
size_t dlj_path_key(dlj_path *p, const char *key);
/* Appends "[i]"; returns the mark to pop to. */
size_t dlj_path_index(dlj_path *p, size_t i);
void dlj_path_pop(dlj_path *p, size_t mark);

/* Where a library call's argument came from: the library names the argument
 * (name, e.g. "pred", "logits", "gamma") in err->where, possibly with a flat
 * element index ("logits[7]"); key is the JSON key it was read from, relative
 * to the case ("input", "params.gamma"). With a shape (non-NULL, ndim >= 0) a
 * flat index becomes the tensor's index ("input[1][3]"; none for a scalar);
 * with shape NULL the suffix is kept. exact = 1 matches only a where equal
 * to name (a library name that also heads unrelated names). */
typedef struct dlj_arg {
  const char *name;
  const char *key;
  const size_t *shape;
  int ndim;
  int exact;
} dlj_arg;

/* Locates a library error in the case: the path at, then the key of the
 * first of args[0..n) whose name heads err->where (followed by nothing or
 * "["), with its index; a where that names no argument is pushed as it is
 * ("[2]" + "input[1]" -> "[2].input[1]"; an empty where gives at itself).
 * args may be NULL when n = 0; err may be NULL. */
void dlj_locate(detloss_error *err, const dlj_path *at, const dlj_arg *args, size_t n);

/* A malloc'ed copy of s (NULL for NULL, or when out of memory). */
char *dlj_dupstr(const char *s);

/* Object field lookup (case-sensitive). NULL if absent. */
const cJSON *dlj_field(const cJSON *obj, const char *key);

detloss_status dlj_number(const cJSON *obj, const char *key, const char *path, int required,
                          double *out, detloss_error *err);
/* A number that must fit in float and be finite. */
detloss_status dlj_float(const cJSON *obj, const char *key, const char *path, int required,
                         float *out, detloss_error *err);
/* The largest integer a JSON number (a double) holds exactly: 2^53. */
#define DLJ_MAX_EXACT_INT (1LL << 53)

/* An integer (a JSON number with no fractional part) in [lo, hi], the bounds
 * clamped to +-DLJ_MAX_EXACT_INT (beyond it a double is no longer exact, and
 * casting 2^63 to long long is undefined): any other number is
 * DETLOSS_ERR_RANGE (or _TYPE for a fraction), never a wrapped value. */
detloss_status dlj_int(const cJSON *obj, const char *key, const char *path, int required,
                       long long lo, long long hi, long long *out, detloss_error *err);
detloss_status dlj_bool(const cJSON *obj, const char *key, const char *path, int required, int *out,
                        detloss_error *err);
/* A string; *out points into the cJSON tree (do not free). */
detloss_status dlj_string(const cJSON *obj, const char *key, const char *path, int required,
                          const char **out, detloss_error *err);

/* A tensor of finite numbers of any rank up to DLJ_MAX_DIMS (a bare number
 * gives ndim 0). Ragged arrays are an error naming the first bad element.
 * A missing optional key gives count 0, ndim -1. */
detloss_status dlj_tensor_get(const cJSON *obj, const char *key, const char *path, int required,
                              dlj_tensor *out, detloss_error *err);
/* Same, from a value (not a key). */
detloss_status dlj_tensor_from(const cJSON *val, const char *where, dlj_tensor *out,
                               detloss_error *err);
void dlj_tensor_free(dlj_tensor *t);

/* An array of rows of `width` finite numbers: [[...width...], ...], n rows
 * (n may be 0). The error for a bad row says "expected 4 numbers, got 3". */
detloss_status dlj_rows(const cJSON *obj, const char *key, const char *path, int required,
                        size_t width, float **out, size_t *n, detloss_error *err);
/* Boxes: dlj_rows with width 4. */
detloss_status dlj_boxes(const cJSON *obj, const char *key, const char *path, int required,
                         float **out, size_t *n, detloss_error *err);
/* dlj_boxes for the one read of a large array: on success the tree's packed
 * copy of the values is freed (jtree.h dlj_release), so that a case of
 * millions of boxes is held once, as floats, while it runs. The key must not
 * be read again. */
detloss_status dlj_boxes_take(const cJSON *obj, const char *key, const char *path, int required,
                              float **out, size_t *n, detloss_error *err);
/* A flat array of integers in [lo, hi] (malloc'ed int64_t). */
detloss_status dlj_int_array(const cJSON *obj, const char *key, const char *path, int required,
                             long long lo, long long hi, int64_t **out, size_t *n,
                             detloss_error *err);

/* Rejects keys of obj that are not in allowed (NULL-terminated), with a
 * did-you-mean suggestion: DETLOSS_ERR_UNKNOWN, where = path.key, msg
 * "unknown key (did you mean 'x'?)". Every object of a compute case, config
 * and data set is checked (data sets: see dataset.c for the COCO keys that are
 * skipped). A non-object obj is left to the caller's type check. */
detloss_status dlj_check_keys(const cJSON *obj, const char *path, const char *const *allowed,
                              detloss_error *err);

/* Reads all of f into a malloc'ed, NUL-terminated buffer (*text, *len).
 * name is used in messages (err->where). Errors: DETLOSS_ERR_RANGE (more than
 * max_bytes: "input larger than N bytes"), _NOMEM, _IO ("read error");
 * nothing is returned then. The caller opens and closes f. */
detloss_status dlj_read_stream(FILE *f, const char *name, size_t max_bytes, char **text,
                               size_t *len, detloss_error *err);

/* Whether the JSON text [len] holds a null (the writer's form of a non-finite
 * number; no result writes null otherwise). Returns 1 and the JSON path of
 * the first one relative to the text's root in where ("anchors[3][2]", ""
 * if it cannot be located), else 0. */
int dlj_find_nonfinite(const char *text, size_t len, char *where, size_t cap);

/* Parses JSON text (len bytes; a NUL byte inside them is an error). The text
 * is first checked by a validating scanner, so that every fault of the text is
 * DETLOSS_ERR_PARSE with where = "[file: ]line L, column C" (1-based; columns
 * count UTF-8 characters) and msg "JSON syntax error: <what>": invalid syntax
 * (RFC 8259), "unexpected end of input", "unexpected text after the value",
 * "NUL byte in the input", invalid UTF-8 in a string (overlong forms, encoded
 * surrogates, truncated sequences, bytes 0xF5..0xFF), unpaired UTF-16
 * surrogate escapes, \u0000, a number longer than 63 characters, nesting
 * deeper than 1000 levels (cJSON's CJSON_NESTING_LIMIT). A leading UTF-8
 * byte-order mark is skipped. A key given twice in one object is
 * DETLOSS_ERR_PARSE with where = "[file: ]<JSON path of the second one>" and
 * msg "duplicate key". DETLOSS_ERR_NOMEM only when cJSON (or the duplicate
 * check) cannot allocate: a NULL tree after a valid scan. */
detloss_status dlj_parse(const char *text, size_t len, const char *file, cJSON **root,
                         detloss_error *err);

#endif /* DETLOSS_JREAD_H */
