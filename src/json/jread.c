/* jread.c - typed getters over cJSON trees with JSON-path errors (see jread.h). */
#include "json/jread.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void dlj_join(char *buf, size_t cap, const char *path, const char *key) {
  if (!path || !path[0]) snprintf(buf, cap, "%s", key);
  else snprintf(buf, cap, "%s.%s", path, key);
}

void dlj_index(char *buf, size_t cap, const char *path, size_t i) {
  snprintf(buf, cap, "%s[%zu]", path ? path : "", i);
}

const cJSON *dlj_field(const cJSON *obj, const char *key) {
  if (!obj || !cJSON_IsObject(obj)) return NULL;
  return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static const char *type_name(const cJSON *v) {
  if (!v) return "nothing";
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
  DL_RETURN_ERROR_IF(!cJSON_IsNumber(v), err, DETLOSS_ERR_TYPE, where,
                     "expected a number, got %s", type_name(v));
  DL_RETURN_ERROR_IF(!isfinite(v->valuedouble), err, DETLOSS_ERR_NONFINITE, where,
                     "expected a finite number");
  *out = v->valuedouble;
  return DETLOSS_OK;
}

static detloss_status float_value(const cJSON *v, const char *where, float *out,
                                  detloss_error *err) {
  double d = 0.0;
  DL_FORWARD_IF_ERROR(number_value(v, where, &d, err));
  DL_RETURN_ERROR_IF(fabs(d) > (double)FLT_MAX, err, DETLOSS_ERR_NONFINITE, where,
                     "%g does not fit in a float", d);
  *out = (float)d;
  return DETLOSS_OK;
}

detloss_status dlj_number(const cJSON *obj, const char *key, const char *path, int required,
                          double *out, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  const cJSON *v;
  detloss_status st;
  if (!lookup(obj, key, path, required, &v, where, sizeof where, &st, err, "a number"))
    return st;
  return number_value(v, where, out, err);
}

detloss_status dlj_float(const cJSON *obj, const char *key, const char *path, int required,
                         float *out, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  const cJSON *v;
  detloss_status st;
  if (!lookup(obj, key, path, required, &v, where, sizeof where, &st, err, "a number"))
    return st;
  return float_value(v, where, out, err);
}

static detloss_status int_value(const cJSON *v, const char *where, long long lo, long long hi,
                                long long *out, detloss_error *err) {
  double d = 0.0;
  DL_FORWARD_IF_ERROR(number_value(v, where, &d, err));
  DL_RETURN_ERROR_IF(d != floor(d), err, DETLOSS_ERR_TYPE, where, "expected an integer, got %g",
                     d);
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

detloss_status dlj_int(const cJSON *obj, const char *key, const char *path, int required,
                       long long lo, long long hi, long long *out, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  const cJSON *v;
  detloss_status st;
  if (!lookup(obj, key, path, required, &v, where, sizeof where, &st, err, "an integer"))
    return st;
  return int_value(v, where, lo, hi, out, err);
}

detloss_status dlj_bool(const cJSON *obj, const char *key, const char *path, int required,
                        int *out, detloss_error *err) {
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
  if (!lookup(obj, key, path, required, &v, where, sizeof where, &st, err, "a string"))
    return st;
  DL_RETURN_ERROR_IF(!cJSON_IsString(v) || !v->valuestring, err, DETLOSS_ERR_TYPE, where,
                     "expected a string, got %s", type_name(v));
  *out = v->valuestring;
  return DETLOSS_OK;
}

/* ------------------------------------------------------------------------ */
/* Tensors                                                                   */
/* ------------------------------------------------------------------------ */

void dlj_tensor_free(dlj_tensor *t) {
  free(t->data);
  t->data = NULL;
  t->count = 0;
}

/* Fills t from v recursively, checking each level against the shape found
 * along the first elements. */
static detloss_status fill_rec(const cJSON *v, const char *where, const dlj_tensor *t, int level,
                               size_t *pos, detloss_error *err) {
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
  /* Shape along the first elements. */
  const cJSON *v = val;
  while (cJSON_IsArray(v)) {
    DL_RETURN_ERROR_IF(t.ndim == DLJ_MAX_DIMS, err, DETLOSS_ERR_SHAPE, where,
                       "arrays nested deeper than %d levels", DLJ_MAX_DIMS);
    t.shape[t.ndim++] = (size_t)cJSON_GetArraySize(v);
    v = v->child;
    if (!v) break;
  }
  size_t count = 1;
  for (int k = 0; k < t.ndim; k++)
    DL_RETURN_ERROR_IF(dl_mul_overflow(count, t.shape[k], &count), err, DETLOSS_ERR_SHAPE,
                       where, "too many elements");
  t.count = count;
  if (count > 0) {
    t.data = malloc(count * sizeof(float));
    DL_RETURN_ERROR_IF(!t.data, err, DETLOSS_ERR_NOMEM, where, "cannot allocate %zu floats",
                       count);
  }
  size_t pos = 0;
  detloss_status st = count > 0 || t.ndim == 0 ? fill_rec(val, where, &t, 0, &pos, err)
                                                : DETLOSS_OK;
  if (st == DETLOSS_OK && count == 0 && t.ndim > 0) {
    /* An empty tensor: still check that it is not ragged in a way that
     * hides values, e.g. [[], [1]]. */
    size_t i = 0;
    for (const cJSON *e = val->child; e; e = e->next, i++) {
      if (cJSON_IsArray(e) && cJSON_GetArraySize(e) != 0) {
        char sub[DETLOSS_WHERE_MAX];
        dlj_index(sub, sizeof sub, where, i);
        st = dl_fail(err, DETLOSS_ERR_SHAPE, sub, "expected 0 elements, got %d",
                     cJSON_GetArraySize(e));
        break;
      }
    }
  }
  if (st != DETLOSS_OK) {
    free(t.data);
    return st;
  }
  *out = t;
  return DETLOSS_OK;
}

detloss_status dlj_tensor_get(const cJSON *obj, const char *key, const char *path,
                              int required, dlj_tensor *out, detloss_error *err) {
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
  DL_RETURN_ERROR_IF(!cJSON_IsArray(v), err, DETLOSS_ERR_TYPE, where,
                     "expected an array of rows of %zu numbers, got %s", width, type_name(v));
  size_t rows = (size_t)cJSON_GetArraySize(v);
  float *data = NULL;
  if (rows > 0) {
    size_t bytes;
    DL_RETURN_ERROR_IF(dl_mul_overflow(rows, width * sizeof(float), &bytes), err,
                       DETLOSS_ERR_SHAPE, where, "too many rows");
    data = malloc(bytes);
    DL_RETURN_ERROR_IF(!data, err, DETLOSS_ERR_NOMEM, where, "cannot allocate %zu rows", rows);
  }
  size_t i = 0;
  for (const cJSON *r = v->child; r; r = r->next, i++) {
    char sub[DETLOSS_WHERE_MAX];
    dlj_index(sub, sizeof sub, where, i);
    if (!cJSON_IsArray(r)) {
      free(data);
      return dl_fail(err, DETLOSS_ERR_TYPE, sub, "expected %zu numbers, got %s", width,
                     type_name(r));
    }
    size_t len = (size_t)cJSON_GetArraySize(r);
    if (len != width) {
      free(data);
      return dl_fail(err, DETLOSS_ERR_SHAPE, sub, "expected %zu numbers, got %zu", width, len);
    }
    size_t k = 0;
    for (const cJSON *e = r->child; e; e = e->next, k++) {
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
  DL_RETURN_ERROR_IF(!cJSON_IsArray(v), err, DETLOSS_ERR_TYPE, where,
                     "expected an array of integers, got %s", type_name(v));
  size_t len = (size_t)cJSON_GetArraySize(v);
  int64_t *data = NULL;
  if (len > 0) {
    data = malloc(len * sizeof *data);
    DL_RETURN_ERROR_IF(!data, err, DETLOSS_ERR_NOMEM, where, "cannot allocate %zu integers",
                       len);
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

void dlj_prefix_where(detloss_error *err, const char *path) {
  if (!err || !path || !path[0]) return;
  char tmp[DETLOSS_WHERE_MAX];
  if (err->where[0]) snprintf(tmp, sizeof tmp, "%s.%s", path, err->where);
  else snprintf(tmp, sizeof tmp, "%s", path);
  memcpy(err->where, tmp, sizeof tmp);
}

/* ---- reading ---- */

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

/* ---- parsing with line/column errors ---- */

/* cJSON's nesting limit (CJSON_NESTING_LIMIT in cJSON.h, 1000 in Debian's). */
#define NESTING_LIMIT 1000

static size_t skip_ws(const char *s, size_t n, size_t i) {
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
  return i;
}

/* A JSON string starting at s[i] == '"'; returns the index after it, or 0. */
static size_t scan_string(const char *s, size_t n, size_t i) {
  for (i++; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"') return i + 1;
    if (ch < 0x20) return 0;
    if (ch == '\\') {
      if (++i >= n) return 0;
      if (s[i] == 'u') {
        for (int k = 0; k < 4; k++)
          if (++i >= n || !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
                            (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
      } else if (!strchr("\"\\/bfnrt", s[i])) {
        return 0;
      }
    }
  }
  return 0;
}

/* A JSON number (RFC 8259) at s[i]; returns the index after it, or 0. */
static size_t scan_number(const char *s, size_t n, size_t i) {
  size_t j = i;
  if (j < n && s[j] == '-') j++;
  if (j < n && s[j] == '0') {
    j++;
  } else if (j < n && s[j] >= '1' && s[j] <= '9') {
    while (j < n && s[j] >= '0' && s[j] <= '9') j++;
  } else {
    return 0;
  }
  if (j < n && s[j] == '.') {
    size_t k = ++j;
    while (j < n && s[j] >= '0' && s[j] <= '9') j++;
    if (j == k) return 0;
  }
  if (j < n && (s[j] == 'e' || s[j] == 'E')) {
    j++;
    if (j < n && (s[j] == '+' || s[j] == '-')) j++;
    size_t k = j;
    while (j < n && s[j] >= '0' && s[j] <= '9') j++;
    if (j == k) return 0;
  }
  return j;
}

/* 1 if text is one syntactically valid JSON value (surrounded by white space)
 * within cJSON's nesting limit. Iterative, allocation-free: it tells an
 * allocation failure inside cJSON (valid text, NULL tree) from a syntax error,
 * which cJSON does not distinguish. */
static int json_syntax_ok(const char *s, size_t n) {
  char stack[NESTING_LIMIT];
  int depth = 0;
  enum { VALUE, VALUE_OR_END, KEY, KEY_OR_END, COLON, AFTER } st = VALUE;
  size_t i = 0;
  for (;;) {
    i = skip_ws(s, n, i);
    if (st == AFTER && depth == 0) return skip_ws(s, n, i) == n || s[i] == '\0';
    if (i >= n) return 0;
    char ch = s[i];
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
          if (depth == NESTING_LIMIT) return 0;
          stack[depth++] = ch;
          i++;
          st = ch == '{' ? KEY_OR_END : VALUE_OR_END;
        } else if (ch == '"') {
          if (!(i = scan_string(s, n, i))) return 0;
          st = AFTER;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
          if (!(i = scan_number(s, n, i))) return 0;
          st = AFTER;
        } else if (n - i >= 4 && (!strncmp(s + i, "true", 4) || !strncmp(s + i, "null", 4))) {
          i += 4;
          st = AFTER;
        } else if (n - i >= 5 && !strncmp(s + i, "false", 5)) {
          i += 5;
          st = AFTER;
        } else {
          return 0;
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
        if (ch != '"' || !(i = scan_string(s, n, i))) return 0;
        st = COLON;
        break;
      case COLON:
        if (ch != ':') return 0;
        i++;
        st = VALUE;
        break;
      case AFTER:
        if (ch == ',') {
          i++;
          st = stack[depth - 1] == '[' ? VALUE : KEY;
        } else if ((ch == ']' && stack[depth - 1] == '[') || (ch == '}' && stack[depth - 1] == '{')) {
          depth--;
          i++;
        } else {
          return 0;
        }
        break;
    }
  }
}

/* 1 if the text ends inside a string or with unclosed brackets. */
static int truncated(const char *text, size_t len) {
  long depth = 0;
  int in_str = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = text[i];
    if (in_str) {
      if (ch == '\\') i++;
      else if (ch == '"') in_str = 0;
    } else if (ch == '"') {
      in_str = 1;
    } else if (ch == '[' || ch == '{') {
      depth++;
    } else if (ch == ']' || ch == '}') {
      depth--;
    }
  }
  return in_str || depth > 0;
}

detloss_status dlj_parse(const char *text, size_t len, const char *file, cJSON **root,
                         detloss_error *err) {
  const char *end = NULL;
  cJSON *r = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  size_t pos = 0;
  const char *what = NULL;
  if (!r && json_syntax_ok(text, len)) {
    /* Valid text but no tree: cJSON ran out of memory. */
    return dl_fail(err, DETLOSS_ERR_NOMEM, file ? file : "(input)",
                   "out of memory while parsing %zu bytes of JSON", len);
  }
  if (!r) {
    pos = end && end >= text ? (size_t)(end - text) : 0;
    if (pos + 1 >= len && truncated(text, len)) {
      /* cJSON stops on the last byte: report the end of the input */
      pos = len;
      what = "JSON syntax error: unexpected end of input";
    } else {
      what = "JSON syntax error";
    }
  } else if (end) {
    pos = (size_t)(end - text);
    while (pos < len && (text[pos] == ' ' || text[pos] == '\n' || text[pos] == '\r' ||
                         text[pos] == '\t'))
      pos++;
    if (pos < len && text[pos] != '\0') what = "JSON syntax error: unexpected text after the value";
  }
  if (what) {
    cJSON_Delete(r);
    if (pos > len) pos = len;
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos; i++) {
      if (text[i] == '\n') {
        line++;
        col = 1;
      } else {
        col++;
      }
    }
    char where[DETLOSS_WHERE_MAX];
    if (file) snprintf(where, sizeof where, "%s: line %zu, column %zu", file, line, col);
    else snprintf(where, sizeof where, "line %zu, column %zu", line, col);
    return dl_fail(err, DETLOSS_ERR_PARSE, where, "%s", what);
  }
  *root = r;
  return DETLOSS_OK;
}


/* ---- finding non-finite numbers in written JSON ---- */

/* Appends the path of the first null under v to buf; 1 if found. */
static int null_path(const cJSON *v, char *buf, size_t cap) {
  if (cJSON_IsNull(v)) return 1;
  size_t i = 0;
  for (const cJSON *e = v ? v->child : NULL; e; e = e->next, i++) {
    if (!cJSON_IsNull(e) && !cJSON_IsArray(e) && !cJSON_IsObject(e)) continue;
    char sub[DETLOSS_WHERE_MAX];
    if (cJSON_IsObject(v)) dlj_join(sub, sizeof sub, buf, e->string ? e->string : "");
    else dlj_index(sub, sizeof sub, buf, i);
    if (null_path(e, sub, sizeof sub)) {
      snprintf(buf, cap, "%s", sub);
      return 1;
    }
  }
  return 0;
}

int dlj_find_nonfinite(const char *text, size_t len, char *where, size_t cap) {
  int in_str = 0, found = 0;
  for (size_t i = 0; i < len && !found; i++) {
    char ch = text[i];
    if (in_str) {
      if (ch == '\\') i++;
      else if (ch == '"') in_str = 0;
    } else if (ch == '"') {
      in_str = 1;
    } else if (ch == 'n' && len - i >= 4 && strncmp(text + i, "null", 4) == 0) {
      found = 1;
    }
  }
  if (!found) return 0;
  if (cap > 0) where[0] = '\0';
  cJSON *root = cJSON_ParseWithLength(text, len);
  if (root) {
    char buf[DETLOSS_WHERE_MAX] = "";
    if (null_path(root, buf, sizeof buf) && cap > 0) snprintf(where, cap, "%s", buf);
    cJSON_Delete(root);
  }
  return 1;
}
