/*
 * jwrite.h - a small JSON writer into a growable buffer.
 *
 * Numbers are written with %.9g (a float32 round-trips); integers as
 * integers; a non-finite number as null (JSON has no NaN). Commas are
 * inserted automatically inside objects and arrays: call dlj_key() before
 * each value in an object. On allocation failure, or nesting deeper than
 * DLJ_MAX_DEPTH, the buffer is marked (oom = 1) and later writes are no-ops;
 * check it once at the end. No write ever truncates or overruns: the buffer
 * grows to hold whatever is appended.
 */
#ifndef DETLOSS_JWRITE_H
#define DETLOSS_JWRITE_H

#include <stddef.h>
#include <stdint.h>

#define DLJ_MAX_DEPTH 64

typedef struct dlj_buf {
  char *p;
  size_t len, cap;
  int oom;
  int depth;
  unsigned char need_comma[DLJ_MAX_DEPTH];
} dlj_buf;

void dlj_buf_init(dlj_buf *b);
void dlj_buf_free(dlj_buf *b);
void dlj_raw(dlj_buf *b, const char *s);            /* verbatim, no comma logic */
void dlj_rawn(dlj_buf *b, const char *s, size_t n); /* n bytes verbatim */

/* printf-style append, verbatim (no comma logic): the buffer grows to hold the
 * whole text, however long; nothing is truncated. Text output (tables, SVG)
 * is built with this instead of fixed-size line buffers. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void dlj_printf(dlj_buf *b, const char *fmt, ...);

void dlj_obj_begin(dlj_buf *b);
void dlj_obj_end(dlj_buf *b);
void dlj_arr_begin(dlj_buf *b);
void dlj_arr_end(dlj_buf *b);
void dlj_key(dlj_buf *b, const char *key); /* "key": (with a comma if needed) */

void dlj_num(dlj_buf *b, double v);
void dlj_intval(dlj_buf *b, long long v);
void dlj_boolval(dlj_buf *b, int v);
void dlj_str(dlj_buf *b, const char *s);
/* s as a quoted, escaped JSON string, verbatim (no comma logic). */
void dlj_quoted(dlj_buf *b, const char *s);
void dlj_null(dlj_buf *b);

/* Nested arrays of the given shape (ndim 0 writes a bare number). */
void dlj_float_tensor(dlj_buf *b, const float *data, const size_t *shape, int ndim);
void dlj_int64_tensor(dlj_buf *b, const int64_t *data, const size_t *shape, int ndim);

/* Convenience: "key": value. */
void dlj_kv_num(dlj_buf *b, const char *key, double v);
void dlj_kv_int(dlj_buf *b, const char *key, long long v);
void dlj_kv_str(dlj_buf *b, const char *key, const char *s);
void dlj_kv_rows(dlj_buf *b, const char *key, const float *data, size_t n, size_t width);

#endif /* DETLOSS_JWRITE_H */
