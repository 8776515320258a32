/* jwrite.c - JSON writer into a growable buffer (see jwrite.h). */
#include "json/jwrite.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dlj_buf_init(dlj_buf *b) { memset(b, 0, sizeof *b); }

void dlj_buf_free(dlj_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* Makes room for n more bytes and a NUL; 0 (and oom set) when impossible. */
static int reserve(dlj_buf *b, size_t n) {
  if (b->oom) return 0;
  if (n > ((size_t)-1) / 2 - b->len) {
    b->oom = 1;
    return 0;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return 0;
    }
    b->p = p;
    b->cap = cap;
  }
  return 1;
}

static void put(dlj_buf *b, const char *s, size_t n) {
  if (!reserve(b, n)) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void dlj_raw(dlj_buf *b, const char *s) { put(b, s, strlen(s)); }
void dlj_rawn(dlj_buf *b, const char *s, size_t n) { put(b, s, n); }

void dlj_printf(dlj_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap); /* the length of the whole text */
  va_end(ap);
  if (n < 0) { /* an encoding error: the text cannot be written */
    b->oom = 1;
    return;
  }
  if (!reserve(b, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* A value is about to be written at the current level: add a comma unless it
 * is the first, except right after a key (keys set need_comma themselves). */
static void before_value(dlj_buf *b) {
  if (b->depth > 0 && b->need_comma[b->depth - 1] == 1) put(b, ",", 1);
  if (b->depth > 0) b->need_comma[b->depth - 1] = 1;
}

/* 0 (and the buffer marked failed) when one more level would pass
 * DLJ_MAX_DEPTH: need_comma[] has a slot per level, no more. */
static int can_open(dlj_buf *b) {
  if (b->depth >= DLJ_MAX_DEPTH) b->oom = 1;
  return !b->oom;
}

static void open_level(dlj_buf *b, const char *s) {
  if (!can_open(b)) return;
  before_value(b);
  put(b, s, 1);
  b->need_comma[b->depth] = 0;
  b->depth++;
}

static void close_level(dlj_buf *b, const char *s) {
  if (b->oom) return; /* a refused level was never opened: keep depth in step */
  if (b->depth > 0) b->depth--;
  put(b, s, 1);
}

static void put_string(dlj_buf *b, const char *s) {
  put(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char esc[8];
    if (*p == '"' || *p == '\\') {
      esc[0] = '\\';
      esc[1] = (char)*p;
      put(b, esc, 2);
    } else if (*p < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", *p);
      put(b, esc, 6);
    } else {
      put(b, (const char *)p, 1);
    }
  }
  put(b, "\"", 1);
}

void dlj_quoted(dlj_buf *b, const char *s) { put_string(b, s); }

void dlj_key(dlj_buf *b, const char *key) {
  if (b->depth > 0 && b->need_comma[b->depth - 1]) put(b, ",", 1);
  put_string(b, key);
  put(b, ":", 1);
  /* the value that follows must not add a comma; the next key must */
  if (b->depth > 0) b->need_comma[b->depth - 1] = 2;
}

/* After a value written right after a key, the marker 2 becomes 1. */
static void after_key_value(dlj_buf *b) {
  if (b->depth > 0 && b->need_comma[b->depth - 1] == 2) b->need_comma[b->depth - 1] = 1;
}

static void scalar(dlj_buf *b, const char *s) {
  int after_key = b->depth > 0 && b->need_comma[b->depth - 1] == 2;
  if (!after_key) before_value(b);
  put(b, s, strlen(s));
  after_key_value(b);
}

static void num_text(char *buf, size_t cap, double v) {
  if (!isfinite(v)) {
    snprintf(buf, cap, "null");
  } else if (v == 0.0) {
    snprintf(buf, cap, "0"); /* no "-0" */
  } else {
    snprintf(buf, cap, "%.9g", v);
  }
}

void dlj_num(dlj_buf *b, double v) {
  char t[40];
  num_text(t, sizeof t, v);
  scalar(b, t);
}

void dlj_intval(dlj_buf *b, long long v) {
  char t[32];
  snprintf(t, sizeof t, "%lld", v);
  scalar(b, t);
}

void dlj_boolval(dlj_buf *b, int v) { scalar(b, v ? "true" : "false"); }
void dlj_null(dlj_buf *b) { scalar(b, "null"); }

void dlj_str(dlj_buf *b, const char *s) {
  int after_key = b->depth > 0 && b->need_comma[b->depth - 1] == 2;
  if (!after_key) before_value(b);
  put_string(b, s);
  after_key_value(b);
}

/* Arrays and objects opened right after a key must not emit a comma either. */
static void open_after_key(dlj_buf *b, const char *s) {
  int after_key = b->depth > 0 && b->need_comma[b->depth - 1] == 2;
  if (after_key) {
    if (!can_open(b)) return;
    after_key_value(b);
    put(b, s, 1);
    b->need_comma[b->depth] = 0;
    b->depth++;
  } else {
    open_level(b, s);
  }
}

void dlj_obj_begin(dlj_buf *b) { open_after_key(b, "{"); }
void dlj_obj_end(dlj_buf *b) { close_level(b, "}"); }
void dlj_arr_begin(dlj_buf *b) { open_after_key(b, "["); }
void dlj_arr_end(dlj_buf *b) { close_level(b, "]"); }

static void tensor_rec(dlj_buf *b, const float *f, const int64_t *q, const size_t *shape, int ndim,
                       size_t *pos) {
  if (ndim == 0) {
    if (f)
      dlj_num(b, (double)f[*pos]);
    else
      dlj_intval(b, (long long)q[*pos]);
    (*pos)++;
    return;
  }
  open_after_key(b, "[");
  for (size_t i = 0; i < shape[0]; i++) tensor_rec(b, f, q, shape + 1, ndim - 1, pos);
  close_level(b, "]");
}

void dlj_float_tensor(dlj_buf *b, const float *data, const size_t *shape, int ndim) {
  size_t pos = 0;
  tensor_rec(b, data, NULL, shape, ndim, &pos);
}

void dlj_int64_tensor(dlj_buf *b, const int64_t *data, const size_t *shape, int ndim) {
  size_t pos = 0;
  tensor_rec(b, NULL, data, shape, ndim, &pos);
}

void dlj_kv_num(dlj_buf *b, const char *key, double v) {
  dlj_key(b, key);
  dlj_num(b, v);
}
void dlj_kv_int(dlj_buf *b, const char *key, long long v) {
  dlj_key(b, key);
  dlj_intval(b, v);
}
void dlj_kv_str(dlj_buf *b, const char *key, const char *s) {
  dlj_key(b, key);
  dlj_str(b, s);
}
void dlj_kv_rows(dlj_buf *b, const char *key, const float *data, size_t n, size_t width) {
  size_t shape[2] = {n, width};
  dlj_key(b, key);
  dlj_float_tensor(b, data, shape, 2);
}
