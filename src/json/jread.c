/* jread.c - typed getters over cJSON trees with JSON-path errors (see jread.h). */
#include "json/jread.h"
#include "json/jstream.h"
#include "json/jtext.h"
#include "json/jtree.h"

#include <float.h>
#include <stdarg.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void dlj_join(char *buf, size_t cap, const char *path, const char *key) {
  if (!path || !path[0])
    snprintf(buf, cap, "%s", key);
  else
    snprintf(buf, cap, "%s.%s", path, key);
}

void dlj_index(char *buf, size_t cap, const char *path, size_t i) {
  snprintf(buf, cap, "%s[%zu]", path ? path : "", i);
}

detloss_status dlj_fail_at(detloss_error *err, detloss_status status, const char *path,
                           const char *key, const char *fmt, ...) {
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, key);
  va_list ap;
  va_start(ap, fmt);
  dl_vfail(err, status, where, fmt, ap);
  va_end(ap);
  return status;
}

void dlj_path_init(dlj_path *p, const char *root) {
  int w = snprintf(p->buf, sizeof p->buf, "%s", root ? root : "");
  p->len = w < 0 ? 0 : (size_t)w < sizeof p->buf ? (size_t)w : sizeof p->buf - 1;
}

/* Appends fmt's output, cut at the buffer's end. */
static size_t path_push(dlj_path *p, const char *sep, const char *key, size_t i, int index) {
  size_t mark = p->len, cap = sizeof p->buf - p->len;
  int w = index ? snprintf(p->buf + p->len, cap, "[%zu]", i)
                : snprintf(p->buf + p->len, cap, "%s%s", sep, key);
  if (w > 0) p->len += (size_t)w < cap ? (size_t)w : cap - 1;
  return mark;
}

size_t dlj_path_key(dlj_path *p, const char *key) {
  return path_push(p, p->len ? "." : "", key, 0, 0);
}

size_t dlj_path_index(dlj_path *p, size_t i) { return path_push(p, "", NULL, i, 1); }

void dlj_path_pop(dlj_path *p, size_t mark) {
  if (mark < p->len) {
    p->len = mark;
    p->buf[mark] = '\0';
  }
}

void dlj_locate(detloss_error *err, const dlj_path *at, const dlj_arg *args, size_t n) {
  if (!err) return;
  const char *w = err->where;
  dlj_path p = *at;
  size_t k = 0;
  for (; k < n; k++) {
    size_t len = strlen(args[k].name);
    if (strncmp(w, args[k].name, len) != 0 || (w[len] != '\0' && w[len] != '[')) continue;
    if (args[k].exact && w[len] != '\0') continue;
    dlj_path_key(&p, args[k].key);
    if (w[len] == '[' && args[k].shape) {
      /* the library's flat index -> the tensor's index, last dimension fastest */
      size_t flat = (size_t)strtoull(w + len + 1, NULL, 10), idx[DLJ_MAX_DIMS] = {0};
      int nd = args[k].ndim < 0 ? 0 : args[k].ndim < DLJ_MAX_DIMS ? args[k].ndim : DLJ_MAX_DIMS;
      for (int d = nd - 1; d >= 0; d--) {
        size_t s = args[k].shape[d] ? args[k].shape[d] : 1;
        idx[d] = flat % s;
        flat /= s;
      }
      for (int d = 0; d < nd; d++) dlj_path_index(&p, idx[d]);
    } else {
      path_push(&p, w + len, "", 0, 0);
    }
    break;
  }
  if (k == n && w[0]) dlj_path_key(&p, w);
  memcpy(err->where, p.buf, sizeof p.buf);
}

char *dlj_dupstr(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

const cJSON *dlj_field(const cJSON *obj, const char *key) {
  if (!obj || !cJSON_IsObject(obj)) return NULL;
  return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static const char *type_name(const cJSON *v) {
  if (!v) return "nothing";
  if (dlj_packed(v)) return "an array";
  if (cJSON_IsNumber(v)) return "a number";
  if (cJSON_IsString(v)) return "a string";
  if (cJSON_IsBool(v)) return "a boolean";
  if (cJSON_IsNull(v)) return "null";
  if (cJSON_IsArray(v)) return "an array";
  if (cJSON_IsObject(v)) return "an object";
  return "an invalid value";
}

/* Looks the key up; fills where. Returns 1 if present, 0 if absent (an
 * error when required). */
static int lookup(const cJSON *obj, const char *key, const char *path, int required,
                  const cJSON **val, char *where, size_t cap, detloss_status *st,
                  detloss_error *err, const char *expected) {
  dlj_join(where, cap, path, key);
  *val = dlj_field(obj, key);
  *st = DETLOSS_OK;
  if (*val) return 1;
  if (required) *st = dl_fail(err, DETLOSS_ERR_MISSING, where, "missing (expected %s)", expected);
  return 0;
}

static detloss_status number_value(const cJSON *v, const char *where, double *out,
                                   detloss_error *err) {
  DL_RETURN_ERROR_IF(!cJSON_IsNumber(v), err, DETLOSS_ERR_TYPE, where, "expected a number, got %s",
                     type_name(v));
  DL_RETURN_ERROR_IF(!isfinite(v->valuedouble), err, DETLOSS_ERR_NONFINITE, where,
                     "expected a finite number");
  *out = v->valuedouble;
  return DETLOSS_OK;
}

/* float_value's checks of a number d already known to be one. */
static detloss_status float_check(double d, const char *where, float *out, detloss_error *err) {
  DL_RETURN_ERROR_IF(!isfinite(d), err, DETLOSS_ERR_NONFINITE, where, "expected a finite number");
  DL_RETURN_ERROR_IF(fabs(d) > (double)FLT_MAX, err, DETLOSS_ERR_NONFINITE, where,
                     "%g does not fit in a float", d);
  *out = (float)d;
  return DETLOSS_OK;
}

static detloss_status float_value(const cJSON *v, const char *where, float *out,
                                  detloss_error *err) {
  double d = 0.0;
  DL_FORWARD_IF_ERROR(number_value(v, where, &d, err));
  return float_check(d, where, out, err);
}

/* The JSON path of value i of pack p under base: base[i0][i1]... */
static void pack_where(char *buf, size_t cap, const char *base, const dlj_pack *p, size_t flat) {
  size_t idx[DLJ_MAX_DIMS] = {0};
  for (int d = p->ndim - 1; d >= 0; d--) {
    idx[d] = flat % p->shape[d];
    flat /= p->shape[d];
  }
  dlj_path w;
  dlj_path_init(&w, base);
  for (int d = 0; d < p->ndim; d++) dlj_path_index(&w, idx[d]);
  snprintf(buf, cap, "%s", w.buf);
}

/* A released pack (dlj_release) read again: a handler's bug, never input. */
static detloss_status pack_live(const dlj_pack *p, const char *where, detloss_error *err) {
  DL_RETURN_ERROR_IF(!p->v, err, DETLOSS_ERR_UNSUPPORTED, where,
                     "internal: the array was read after it was handed over");
  return DETLOSS_OK;
}

/* Values [0, n) of pack p as floats into out, with float_value's checks in
 * order (a where is built only for a fault). */
static detloss_status pack_floats(const dlj_pack *p, size_t n, const char *base, float *out,
                                  detloss_error *err) {
  for (size_t i = 0; i < n; i++) {
    double d = p->v[i];
    if (isfinite(d) && fabs(d) <= (double)FLT_MAX) {
      out[i] = (float)d;
      continue;
    }
    char where[DETLOSS_WHERE_MAX];
    pack_where(where, sizeof where, base, p, i);
    return float_check(d, where, &out[i], err);
  }
  return DETLOSS_OK;
}

detloss_status dlj_number(const cJSON *obj, const char *key, const char *path, int required,
                          double *out, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  const cJSON *v;
  detloss_status st;
  if (!lookup(obj, key, path, required, &v, where, sizeof where, &st, err, "a number")) return st;
  return number_value(v, where, out, err);
}

detloss_status dlj_float(const cJSON *obj, const char *key, const char *path, int required,
                         float *out, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  const cJSON *v;
  detloss_status st;
  if (!lookup(obj, key, path, required, &v, where, sizeof where, &st, err, "a number")) return st;
  return float_value(v, where, out, err);
}

static detloss_status int_check(double d, const char *where, long long lo, long long hi,
                                long long *out, detloss_error *err) {
  DL_RETURN_ERROR_IF(!isfinite(d), err, DETLOSS_ERR_NONFINITE, where, "expected a finite number");
  DL_RETURN_ERROR_IF(d != floor(d), err, DETLOSS_ERR_TYPE, where, "expected an integer, got %g", d);
  /* A JSON number is a double: integers beyond 2^53 in magnitude were
   * already rounded by the parser (2^63 + 1 reads as 2^63), and a double of
   * 2^63 or more cast to long long is undefined behaviour. So the bounds are
   * clamped to +-2^53 and compared in double before the (then exact) cast. */
  if (lo < -DLJ_MAX_EXACT_INT) lo = -DLJ_MAX_EXACT_INT;
  if (hi > DLJ_MAX_EXACT_INT) hi = DLJ_MAX_EXACT_INT;
  DL_RETURN_ERROR_IF(!(d >= (double)lo && d <= (double)hi), err, DETLOSS_ERR_RANGE, where,
                     "%.15g is outside [%lld, %lld]", d, lo, hi);
  *out = (long long)d;
  return DETLOSS_OK;
}

static detloss_status int_value(const cJSON *v, const char *where, long long lo, long long hi,
                                long long *out, detloss_error *err) {
  double d = 0.0;
  DL_FORWARD_IF_ERROR(number_value(v, where, &d, err));
  return int_check(d, where, lo, hi, out, err);
}

detloss_status dlj_int(const cJSON *obj, const char *key, const char *path, int required,
                       long long lo, long long hi, long long *out, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  const cJSON *v;
  detloss_status st;
  if (!lookup(obj, key, path, required, &v, where, sizeof where, &st, err, "an integer")) return st;
  return int_value(v, where, lo, hi, out, err);
}

detloss_status dlj_bool(const cJSON *obj, const char *key, const char *path, int required, int *out,
                        detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  const cJSON *v;
  detloss_status st;
  if (!lookup(obj, key, path, required, &v, where, sizeof where, &st, err, "true or false"))
    return st;
  DL_RETURN_ERROR_IF(!cJSON_IsBool(v), err, DETLOSS_ERR_TYPE, where,
                     "expected true or false, got %s", type_name(v));
  *out = cJSON_IsTrue(v) ? 1 : 0;
  return DETLOSS_OK;
}

detloss_status dlj_string(const cJSON *obj, const char *key, const char *path, int required,
                          const char **out, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  const cJSON *v;
  detloss_status st;
  if (!lookup(obj, key, path, required, &v, where, sizeof where, &st, err, "a string")) return st;
  DL_RETURN_ERROR_IF(!cJSON_IsString(v) || !v->valuestring, err, DETLOSS_ERR_TYPE, where,
                     "expected a string, got %s", type_name(v));
  *out = v->valuestring;
  return DETLOSS_OK;
}

void dlj_tensor_free(dlj_tensor *t) {
  free(t->data);
  t->data = NULL;
  t->count = 0;
}

/* Fills t from v recursively, checking each level against the shape found
 * along the first elements. */
static detloss_status fill_rec(const cJSON *v, const char *where, const dlj_tensor *t, int level,
                               size_t *pos, detloss_error *err) {
  v = dlj_tree(v); /* a packed element of a plain array (rare): as nodes */
  if (level == t->ndim) return float_value(v, where, &t->data[(*pos)++], err);
  DL_RETURN_ERROR_IF(!cJSON_IsArray(v), err, DETLOSS_ERR_TYPE, where,
                     "expected an array of %zu elements, got %s", t->shape[level], type_name(v));
  size_t len = (size_t)cJSON_GetArraySize(v);
  DL_RETURN_ERROR_IF(len != t->shape[level], err, DETLOSS_ERR_SHAPE, where,
                     "expected %zu %s, got %zu", t->shape[level],
                     level + 1 == t->ndim ? "numbers" : "elements", len);
  size_t i = 0;
  for (const cJSON *e = v->child; e; e = e->next, i++) {
    char sub[DETLOSS_WHERE_MAX];
    dlj_index(sub, sizeof sub, where, i);
    DL_FORWARD_IF_ERROR(fill_rec(e, sub, t, level + 1, pos, err));
  }
  return DETLOSS_OK;
}

detloss_status dlj_tensor_from(const cJSON *val, const char *where, dlj_tensor *out,
                               detloss_error *err) {
  dlj_tensor t;
  memset(&t, 0, sizeof t);
  const dlj_pack *p = dlj_packed(val);
  if (p) { /* rectangular and at most DLJ_MAX_DIMS deep by construction */
    DL_FORWARD_IF_ERROR(pack_live(p, where, err));
    t.ndim = p->ndim;
    memcpy(t.shape, p->shape, sizeof t.shape);
    t.count = p->count;
    t.data = malloc(t.count * sizeof(float));
    DL_RETURN_ERROR_IF(!t.data, err, DETLOSS_ERR_NOMEM, where, "cannot allocate %zu floats",
                       t.count);
    detloss_status st = pack_floats(p, t.count, where, t.data, err);
    if (st != DETLOSS_OK) {
      free(t.data);
      return st;
    }
    *out = t;
    return DETLOSS_OK;
  }
  /* Shape along the first elements. */
  const cJSON *v = val;
  while (cJSON_IsArray(v = dlj_tree(v))) {
    DL_RETURN_ERROR_IF(t.ndim == DLJ_MAX_DIMS, err, DETLOSS_ERR_SHAPE, where,
                       "arrays nested deeper than %d levels", DLJ_MAX_DIMS);
    t.shape[t.ndim++] = (size_t)cJSON_GetArraySize(v);
    v = v->child;
    if (!v) break;
  }
  size_t count = 1;
  for (int k = 0; k < t.ndim; k++)
    DL_RETURN_ERROR_IF(dl_mul_overflow(count, t.shape[k], &count), err, DETLOSS_ERR_SHAPE, where,
                       "too many elements");
  t.count = count;
  if (count > 0) {
    t.data = malloc(count * sizeof(float));
    DL_RETURN_ERROR_IF(!t.data, err, DETLOSS_ERR_NOMEM, where, "cannot allocate %zu floats", count);
  }
  /* Every element is checked against the shape, also when the tensor is empty
   * ([[], 5] and [[], [1]] are errors, not a [2][0] tensor): with a zero
   * dimension no number is reached, so data may be NULL. */
  size_t pos = 0;
  detloss_status st = fill_rec(val, where, &t, 0, &pos, err);
  if (st != DETLOSS_OK) {
    free(t.data);
    return st;
  }
  *out = t;
  return DETLOSS_OK;
}

detloss_status dlj_tensor_get(const cJSON *obj, const char *key, const char *path, int required,
                              dlj_tensor *out, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  const cJSON *v;
  detloss_status st;
  if (!lookup(obj, key, path, required, &v, where, sizeof where, &st, err,
              "a number or an array of numbers")) {
    if (st == DETLOSS_OK) {
      memset(out, 0, sizeof *out);
      out->ndim = -1;
    }
    return st;
  }
  return dlj_tensor_from(v, where, out, err);
}

detloss_status dlj_rows(const cJSON *obj, const char *key, const char *path, int required,
                        size_t width, float **out, size_t *n, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  const cJSON *v;
  detloss_status st;
  if (!lookup(obj, key, path, required, &v, where, sizeof where, &st, err, "an array of rows")) {
    if (st == DETLOSS_OK) {
      *out = NULL;
      *n = 0;
    }
    return st;
  }
  const dlj_pack *p = dlj_packed(v);
  DL_RETURN_ERROR_IF(!cJSON_IsArray(v) && !p, err, DETLOSS_ERR_TYPE, where,
                     "expected an array of rows of %zu numbers, got %s", width, type_name(v));
  if (p) DL_FORWARD_IF_ERROR(pack_live(p, where, err));
  size_t rows = p ? p->shape[0] : (size_t)cJSON_GetArraySize(v);
  float *data = NULL;
  if (rows > 0) {
    size_t bytes;
    DL_RETURN_ERROR_IF(dl_mul_overflow(rows, width * sizeof(float), &bytes), err, DETLOSS_ERR_SHAPE,
                       where, "too many rows");
    data = malloc(bytes);
    DL_RETURN_ERROR_IF(!data, err, DETLOSS_ERR_NOMEM, where, "cannot allocate %zu rows", rows);
  }
  if (p) {
    /* the first row shows any fault of shape (all rows are alike), then the
     * values in order */
    char sub[DETLOSS_WHERE_MAX], sub2[DETLOSS_WHERE_MAX];
    dlj_index(sub, sizeof sub, where, 0);
    if (p->ndim == 1)
      st = dl_fail(err, DETLOSS_ERR_TYPE, sub, "expected %zu numbers, got a number", width);
    else if (p->shape[1] != width)
      st =
          dl_fail(err, DETLOSS_ERR_SHAPE, sub, "expected %zu numbers, got %zu", width, p->shape[1]);
    else if (p->ndim > 2) {
      dlj_index(sub2, sizeof sub2, sub, 0);
      st = dl_fail(err, DETLOSS_ERR_TYPE, sub2, "expected a number, got an array");
    } else {
      st = pack_floats(p, p->count, where, data, err);
    }
    if (st != DETLOSS_OK) {
      free(data);
      return st;
    }
    *out = data;
    *n = rows;
    return DETLOSS_OK;
  }
  size_t i = 0;
  for (const cJSON *r = v->child; r; r = r->next, i++) {
    char sub[DETLOSS_WHERE_MAX];
    dlj_index(sub, sizeof sub, where, i);
    const cJSON *row = dlj_tree(r);
    if (!cJSON_IsArray(row)) {
      free(data);
      return dl_fail(err, DETLOSS_ERR_TYPE, sub, "expected %zu numbers, got %s", width,
                     type_name(row));
    }
    size_t len = (size_t)cJSON_GetArraySize(row);
    if (len != width) {
      free(data);
      return dl_fail(err, DETLOSS_ERR_SHAPE, sub, "expected %zu numbers, got %zu", width, len);
    }
    size_t k = 0;
    for (const cJSON *e = row->child; e; e = e->next, k++) {
      char sub2[DETLOSS_WHERE_MAX];
      dlj_index(sub2, sizeof sub2, sub, k);
      st = float_value(e, sub2, &data[i * width + k], err);
      if (st != DETLOSS_OK) {
        free(data);
        return st;
      }
    }
  }
  *out = data;
  *n = rows;
  return DETLOSS_OK;
}

detloss_status dlj_boxes(const cJSON *obj, const char *key, const char *path, int required,
                         float **out, size_t *n, detloss_error *err) {
  return dlj_rows(obj, key, path, required, 4, out, n, err);
}

detloss_status dlj_boxes_take(const cJSON *obj, const char *key, const char *path, int required,
                              float **out, size_t *n, detloss_error *err) {
  detloss_status st = dlj_rows(obj, key, path, required, 4, out, n, err);
  if (st == DETLOSS_OK) dlj_release(dlj_field(obj, key));
  return st;
}

detloss_status dlj_int_array(const cJSON *obj, const char *key, const char *path, int required,
                             long long lo, long long hi, int64_t **out, size_t *n,
                             detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  const cJSON *v;
  detloss_status st;
  if (!lookup(obj, key, path, required, &v, where, sizeof where, &st, err,
              "an array of integers")) {
    if (st == DETLOSS_OK) {
      *out = NULL;
      *n = 0;
    }
    return st;
  }
  const dlj_pack *p = dlj_packed(v);
  DL_RETURN_ERROR_IF(!cJSON_IsArray(v) && !p, err, DETLOSS_ERR_TYPE, where,
                     "expected an array of integers, got %s", type_name(v));
  if (p) DL_FORWARD_IF_ERROR(pack_live(p, where, err));
  size_t len = p ? p->shape[0] : (size_t)cJSON_GetArraySize(v);
  int64_t *data = NULL;
  if (len > 0) {
    data = malloc(len * sizeof *data);
    DL_RETURN_ERROR_IF(!data, err, DETLOSS_ERR_NOMEM, where, "cannot allocate %zu integers", len);
  }
  if (p) {
    for (size_t i = 0; i < len; i++) {
      char sub[DETLOSS_WHERE_MAX];
      long long x = 0;
      double d = p->ndim == 1 ? p->v[i] : 0.0;
      if (p->ndim == 1 && isfinite(d) && d == floor(d) && d >= (double)lo && d <= (double)hi &&
          fabs(d) <= (double)DLJ_MAX_EXACT_INT) {
        data[i] = (int64_t)d;
        continue;
      }
      dlj_index(sub, sizeof sub, where, i);
      st = p->ndim == 1 ? int_check(d, sub, lo, hi, &x, err)
                        : dl_fail(err, DETLOSS_ERR_TYPE, sub, "expected a number, got an array");
      if (st == DETLOSS_OK) {
        data[i] = (int64_t)x;
        continue;
      }
      free(data);
      return st;
    }
    *out = data;
    *n = len;
    return DETLOSS_OK;
  }
  size_t i = 0;
  for (const cJSON *e = v->child; e; e = e->next, i++) {
    char sub[DETLOSS_WHERE_MAX];
    long long x = 0;
    dlj_index(sub, sizeof sub, where, i);
    st = int_value(e, sub, lo, hi, &x, err);
    if (st != DETLOSS_OK) {
      free(data);
      return st;
    }
    data[i] = (int64_t)x;
  }
  *out = data;
  *n = len;
  return DETLOSS_OK;
}

detloss_status dlj_check_keys(const cJSON *obj, const char *path, const char *const *allowed,
                              detloss_error *err) {
  if (!cJSON_IsObject(obj)) return DETLOSS_OK;
  size_t count = 0;
  while (allowed[count]) count++;
  for (const cJSON *e = obj->child; e; e = e->next) {
    int ok = 0;
    for (size_t k = 0; k < count && !ok; k++) ok = strcmp(e->string, allowed[k]) == 0;
    if (ok) continue;
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, e->string);
    const char *hint = dl_suggest(e->string, allowed, count);
    if (hint)
      return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "unknown key (did you mean '%s'?)", hint);
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "unknown key");
  }
  return DETLOSS_OK;
}

detloss_status dlj_read_stream(FILE *f, const char *name, size_t max_bytes, char **text,
                               size_t *len, detloss_error *err) {
  /* At most max_bytes + 1 bytes are ever read (the one extra byte tells "exactly
   * max_bytes" from "more"), so /dev/zero or an endless pipe stops at the limit;
   * the buffer grows by doubling up to max_bytes + 2 (+1 for the NUL). */
  if (max_bytes > SIZE_MAX - 2) max_bytes = SIZE_MAX - 2;
  size_t want = max_bytes + 2;
  size_t cap = want < ((size_t)1 << 16) ? want : (size_t)1 << 16, n = 0;
  char *buf = malloc(cap);
  if (!buf) return dl_fail(err, DETLOSS_ERR_NOMEM, name, "out of memory reading the input");
  for (;;) {
    if (n > max_bytes) {
      free(buf);
      return dl_fail(err, DETLOSS_ERR_RANGE, name,
                     "the input is larger than the limit max_input_bytes = %zu", max_bytes);
    }
    if (n + 1 >= cap) {
      size_t cap2 = cap > want / 2 ? want : cap * 2;
      char *p = realloc(buf, cap2);
      if (!p) {
        free(buf);
        return dl_fail(err, DETLOSS_ERR_NOMEM, name, "out of memory reading the input");
      }
      buf = p;
      cap = cap2;
    }
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0) break;
  }
  if (ferror(f)) {
    free(buf);
    return dl_fail(err, DETLOSS_ERR_IO, name, "read error");
  }
  buf[n] = '\0';
  *text = buf;
  *len = n;
  return DETLOSS_OK;
}

/* cJSON's nesting limit (CJSON_NESTING_LIMIT in cJSON.h, 1000 in Debian's). */
#define NESTING_LIMIT 1000
/* Longest number token: cJSON 1.7.15 copies a number into a 64-byte buffer
 * and fails on longer ones, which would look like an allocation failure. */
#define NUMBER_MAX_CHARS 63

/* Where a scan stopped and why (msg NULL: the text is valid). */
typedef struct scan_state {
  const char *s;
  size_t n;
  size_t pos;      /* error position (byte offset) */
  const char *msg; /* error detail */
} scan_state;

static int scan_fail(scan_state *sc, size_t pos, const char *msg) {
  sc->pos = pos;
  sc->msg = msg;
  return 0;
}

static size_t skip_ws(const char *s, size_t n, size_t i) {
  while (i < n && dlj_is_ws(s[i])) i++;
  return i;
}

/* A JSON string starting at s[i] == '"': returns the index after it, or 0
 * with the error in sc. Besides RFC 8259 it rejects what cJSON cannot
 * represent or would turn into invalid text: invalid UTF-8, unpaired UTF-16
 * surrogate escapes, and \u0000 (cJSON's strings end at a NUL). */
static size_t scan_string(scan_state *sc, size_t i) {
  const char *s = sc->s;
  size_t n = sc->n;
  for (i++; i < n;) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"') return i + 1;
    if (ch == '\0') return scan_fail(sc, i, "NUL byte in the input"), 0;
    if (ch < 0x20) return scan_fail(sc, i, "control character in a string (escape it)"), 0;
    if (ch >= 0x80) {
      size_t len = dlj_utf8_len((const unsigned char *)s, n, i);
      if (!len) return scan_fail(sc, i, "invalid UTF-8 in a string"), 0;
      i += len;
      continue;
    }
    if (ch != '\\') {
      i++;
      continue;
    }
    if (i + 1 >= n) break;
    char e = s[i + 1];
    if (e == '\0') return scan_fail(sc, i + 1, "NUL byte in the input"), 0;
    if (e != 'u') {
      if (!strchr("\"\\/bfnrt", e)) return scan_fail(sc, i, "invalid escape in a string"), 0;
      i += 2;
      continue;
    }
    long cp = dlj_hex4(s, n, i + 1);
    if (cp < 0) {
      size_t k = 0;
      while (k < 4 && i + 2 + k < n && dlj_hex_value(s[i + 2 + k]) >= 0) k++;
      if (k < 4 && i + 2 + k >= n) break; /* the text ends inside the escape */
      return scan_fail(sc, i, "invalid \\u escape (expected 4 hex digits)"), 0;
    }
    if (cp == 0) return scan_fail(sc, i, "\\u0000 (NUL) is not supported in strings"), 0;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
      return scan_fail(sc, i, "unpaired UTF-16 surrogate (a low surrogate first)"), 0;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      long lo = n - i >= 8 && s[i + 6] == '\\' && s[i + 7] == 'u' ? dlj_hex4(s, n, i + 7) : -1;
      if (lo < 0xDC00 || lo > 0xDFFF)
        return scan_fail(sc, i, "unpaired UTF-16 surrogate (a high surrogate without a low one)"),
               0;
      i += 12;
      continue;
    }
    i += 6;
  }
  return scan_fail(sc, n, "unexpected end of input"), 0;
}

/* A JSON number (RFC 8259) at s[i]: the index after it, or 0 with sc set. */
static size_t scan_number(scan_state *sc, size_t i) {
  const char *s = sc->s;
  size_t n = sc->n, j = i;
  if (j < n && s[j] == '-') j++;
  if (j < n && s[j] == '0') {
    j++;
  } else if (j < n && s[j] >= '1' && s[j] <= '9') {
    while (j < n && s[j] >= '0' && s[j] <= '9') j++;
  } else {
    return scan_fail(sc, j < n ? j : n, j < n ? "invalid number" : "unexpected end of input"), 0;
  }
  if (j < n && s[j] == '.') {
    size_t k = ++j;
    while (j < n && s[j] >= '0' && s[j] <= '9') j++;
    if (j == k) return scan_fail(sc, j, j < n ? "invalid number" : "unexpected end of input"), 0;
  }
  if (j < n && (s[j] == 'e' || s[j] == 'E')) {
    j++;
    if (j < n && (s[j] == '+' || s[j] == '-')) j++;
    size_t k = j;
    while (j < n && s[j] >= '0' && s[j] <= '9') j++;
    if (j == k) return scan_fail(sc, j, j < n ? "invalid number" : "unexpected end of input"), 0;
  }
  if (j - i > NUMBER_MAX_CHARS) return scan_fail(sc, i, "number longer than 63 characters"), 0;
  return j;
}

/* 1 if s[0..n) is one valid JSON value (RFC 8259, UTF-8, optional leading
 * byte-order mark, surrounded by white space) within cJSON's nesting limit
 * and the restrictions of scan_string/scan_number; else 0 with the position
 * and reason in sc. Iterative and allocation-free, so that a NULL tree from
 * cJSON after a valid scan can only be an allocation failure. */
static int scan_json(scan_state *sc) {
  const char *s = sc->s;
  size_t n = sc->n;
  char stack[NESTING_LIMIT];
  int depth = 0;
  enum { VALUE, VALUE_OR_END, KEY, KEY_OR_END, COLON, AFTER } st = VALUE;
  size_t i = 0;
  sc->msg = NULL;
  if (n >= 3 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
      (unsigned char)s[2] == 0xBF)
    i = 3; /* a UTF-8 byte-order mark, which cJSON skips too */
  for (;;) {
    i = skip_ws(s, n, i);
    if (st == AFTER && depth == 0) {
      if (i == n) return 1;
      return scan_fail(sc, i,
                       s[i] == '\0' ? "NUL byte in the input" : "unexpected text after the value");
    }
    if (i >= n) return scan_fail(sc, n, "unexpected end of input");
    char ch = s[i];
    if (ch == '\0') return scan_fail(sc, i, "NUL byte in the input");
    switch (st) {
      case VALUE_OR_END:
        if (ch == ']') {
          depth--;
          i++;
          st = AFTER;
          continue;
        }
        st = VALUE;
        /* fall through */
      case VALUE:
        if (ch == '{' || ch == '[') {
          if (depth == NESTING_LIMIT) return scan_fail(sc, i, "nested deeper than 1000 levels");
          stack[depth++] = ch;
          i++;
          st = ch == '{' ? KEY_OR_END : VALUE_OR_END;
        } else if (ch == '"') {
          if (!(i = scan_string(sc, i))) return 0;
          st = AFTER;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
          if (!(i = scan_number(sc, i))) return 0;
          st = AFTER;
        } else {
          static const char *const lits[] = {"true", "false", "null"};
          size_t k = 0, len = 0;
          for (; k < 3; k++) {
            len = strlen(lits[k]);
            if (n - i >= len && strncmp(s + i, lits[k], len) == 0) break;
          }
          if (k == 3) {
            /* a prefix of a literal at the end of the text is a truncation */
            for (k = 0; k < 3; k++)
              if (n - i < strlen(lits[k]) && strncmp(s + i, lits[k], n - i) == 0)
                return scan_fail(sc, n, "unexpected end of input");
            return scan_fail(sc, i, "expected a value");
          }
          i += len;
          st = AFTER;
        }
        break;
      case KEY_OR_END:
        if (ch == '}') {
          depth--;
          i++;
          st = AFTER;
          continue;
        }
        /* fall through */
      case KEY:
        if (ch != '"')
          return scan_fail(sc, i,
                           st == KEY ? "expected a string key" : "expected a string key or '}'");
        if (!(i = scan_string(sc, i))) return 0;
        st = COLON;
        break;
      case COLON:
        if (ch != ':') return scan_fail(sc, i, "expected ':'");
        i++;
        st = VALUE;
        break;
      case AFTER:
        if (ch == ',') {
          i++;
          st = stack[depth - 1] == '[' ? VALUE : KEY;
        } else if ((ch == ']' && stack[depth - 1] == '[') ||
                   (ch == '}' && stack[depth - 1] == '{')) {
          depth--;
          i++;
        } else {
          return scan_fail(sc, i,
                           stack[depth - 1] == '[' ? "expected ',' or ']'" : "expected ',' or '}'");
        }
        break;
    }
  }
}

static int cmp_key(const void *a, const void *b) {
  const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
  int c = strcmp(x->string, y->string);
  if (c != 0) return c;
  return (x > y) - (x < y); /* ties: any fixed order; the later one is found below */
}

/* The later of two items with the same key in object v, or NULL. Objects of
 * up to 16 keys are compared pairwise, larger ones sorted (n log n, so a
 * hostile object of 10^6 keys stays cheap). *nomem set when the sort buffer
 * cannot be allocated. */
static const cJSON *object_duplicate(const cJSON *v, int *nomem) {
  size_t n = 0;
  for (const cJSON *e = v->child; e; e = e->next) n++;
  if (n <= 16) {
    for (const cJSON *a = v->child; a; a = a->next)
      for (const cJSON *b = v->child; b != a; b = b->next)
        if (strcmp(a->string, b->string) == 0) return a;
    return NULL;
  }
  const cJSON **items = malloc(n * sizeof *items);
  if (!items) {
    *nomem = 1;
    return NULL;
  }
  size_t k = 0;
  for (const cJSON *e = v->child; e; e = e->next) items[k++] = e;
  qsort(items, n, sizeof *items, cmp_key);
  const char *key = NULL;
  for (k = 1; k < n && !key; k++)
    if (strcmp(items[k]->string, items[k - 1]->string) == 0) key = items[k]->string;
  free(items);
  if (!key) return NULL;
  /* the second occurrence in file order */
  const cJSON *first = NULL;
  for (const cJSON *e = v->child; e; e = e->next)
    if (strcmp(e->string, key) == 0) {
      if (first) return e;
      first = e;
    }
  return NULL;
}

/* Depth-first search for a key given twice in one object; path (cap bytes,
 * holding the JSON path of v) gets the path of the duplicate. Recursion depth
 * is bounded by the nesting limit. Returns 1 when found. */
static int find_duplicate(const cJSON *v, char *path, size_t cap, int *nomem) {
  size_t len = strlen(path);
  int obj = cJSON_IsObject(v);
  if (obj) {
    const cJSON *d = object_duplicate(v, nomem);
    if (*nomem) return 0;
    if (d) {
      snprintf(path + len, cap - len, "%s%s", len ? "." : "", d->string);
      return 1;
    }
  }
  size_t i = 0;
  for (const cJSON *e = v->child; e; e = e->next, i++) {
    if (!e->child) continue;
    if (obj)
      snprintf(path + len, cap - len, "%s%s", len ? "." : "", e->string);
    else
      snprintf(path + len, cap - len, "[%zu]", i);
    if (find_duplicate(e, path, cap, nomem)) return 1;
    if (*nomem) return 0;
    path[len] = '\0';
  }
  return 0;
}

detloss_status dlj_parse(const char *text, size_t len, const char *file, cJSON **root,
                         detloss_error *err) {
  DL_RETURN_ERROR_IF(!text && len > 0, err, DETLOSS_ERR_NULL, "text", "is NULL");
  scan_state sc = {text ? text : "", text ? len : 0, 0, NULL};
  cJSON *r = NULL;
  if (scan_json(&sc)) {
    /* The scanner accepts a leading UTF-8 byte-order mark; cJSON skips one
     * only when at least two more bytes follow it, so it is skipped here. */
    size_t bom = len >= 3 && (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
                         (unsigned char)text[2] == 0xBF
                     ? 3
                     : 0;
    r = cJSON_ParseWithLengthOpts(text + bom, len - bom, NULL, 0);
    /* The scan accepted the text, so a NULL tree is cJSON's allocation failing. */
    if (!r)
      return dl_fail(err, DETLOSS_ERR_NOMEM, file ? file : "(input)",
                     "out of memory while parsing %zu bytes of JSON", len);
    char path[DETLOSS_WHERE_MAX] = "";
    int nomem = 0;
    int found = find_duplicate(r, path, sizeof path, &nomem);
    if (nomem || found) {
      cJSON_Delete(r);
      if (nomem)
        return dl_fail(err, DETLOSS_ERR_NOMEM, file ? file : "(input)",
                       "out of memory while checking %zu bytes of JSON", len);
      char where[DETLOSS_WHERE_MAX];
      if (file)
        snprintf(where, sizeof where, "%s: %s", file, path);
      else
        snprintf(where, sizeof where, "%s", path);
      return dl_fail(err, DETLOSS_ERR_PARSE, where, "duplicate key");
    }
    *root = r;
    return DETLOSS_OK;
  }
  size_t line = 1, col = 1;
  for (size_t i = 0; i < sc.pos && i < len; i++) {
    if (text[i] == '\n') {
      line++;
      col = 1;
    } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
      col++; /* columns count characters: UTF-8 continuation bytes add none */
    }
  }
  char where[DETLOSS_WHERE_MAX];
  if (file)
    snprintf(where, sizeof where, "%s: line %zu, column %zu", file, line, col);
  else
    snprintf(where, sizeof where, "line %zu, column %zu", line, col);
  return dl_fail(err, DETLOSS_ERR_PARSE, where, "JSON syntax error: %s", sc.msg);
}

int dlj_find_nonfinite(const char *text, size_t len, char *where, size_t cap) {
  int in_str = 0, found = 0;
  for (size_t i = 0; i < len && !found; i++) {
    char ch = text[i];
    if (in_str) {
      if (ch == '\\')
        i++;
      else if (ch == '"')
        in_str = 0;
    } else if (ch == '"') {
      in_str = 1;
    } else if (ch == 'n' && len - i >= 4 && strncmp(text + i, "null", 4) == 0) {
      found = 1;
    }
  }
  if (!found) return 0;
  if (cap > 0) where[0] = '\0';
  /* The path from the stream reader: no tree of a result of millions of
   * numbers is built to name one element. */
  dljs j;
  if (dlj_stream_open_mem(&j, text, len, NULL, NULL) == DETLOSS_OK) {
    dljs_kind k;
    while ((k = dlj_stream_next(&j)) != DLJS_ERROR && k != DLJS_EOF && k != DLJS_NULL) {
    }
    if (k == DLJS_NULL && cap > 0) snprintf(where, cap, "%s", dlj_stream_path(&j));
    dlj_stream_close(&j);
  }
  return 1;
}
