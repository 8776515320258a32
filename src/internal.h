/*
 * internal.h - helpers shared by the library's source files (not installed).
 * Internal functions shared between files are prefixed dl_ and hidden
 * (C_VISIBILITY_PRESET hidden); file-local ones are static and unprefixed.
 */
#ifndef DETLOSS_INTERNAL_H
#define DETLOSS_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "detloss/detloss.h"

#if defined(__GNUC__)
#  define DL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define DL_PRINTF(f, a)
#endif

/* Fills *err (if err != NULL) and returns status. where is the argument name
 * or JSON path; msg is a printf format. */
detloss_status dl_fail(detloss_error *err, detloss_status status, const char *where,
                       const char *fmt, ...) DL_PRINTF(4, 5);
detloss_status dl_vfail(detloss_error *err, detloss_status status, const char *where,
                        const char *fmt, va_list ap);

/* The one checking macro (zstd's RETURN_ERROR_IF): if cond, fill err and return. */
#define DL_RETURN_ERROR_IF(cond, err, status, where, ...)                                      \
  do {                                                                                         \
    if (cond) return dl_fail((err), (status), (where), __VA_ARGS__);                           \
  } while (0)

/* The one forwarding macro: return the status of expr if it is an error. */
#define DL_FORWARD_IF_ERROR(expr)                                                              \
  do {                                                                                         \
    detloss_status dl_fwd_st_ = (expr);                                                        \
    if (dl_fwd_st_ != DETLOSS_OK) return dl_fwd_st_;                                           \
  } while (0)

/* Invariant assertions: compiled in with -DDETLOSS_ASSERTS=ON (CI), never
 * used for input validation. */
#ifdef DETLOSS_ENABLE_ASSERTS
#  include <stdio.h>
#  include <stdlib.h>
#  define DL_ASSERT(x)                                                                         \
    do {                                                                                       \
      if (!(x)) {                                                                              \
        fprintf(stderr, "detloss: internal assertion failed: %s (%s:%d)\n", #x, __FILE__,      \
                __LINE__);                                                                     \
        abort();                                                                               \
      }                                                                                        \
    } while (0)
#else
#  define DL_ASSERT(x) ((void)0)
#endif

/* Overflow-checked size arithmetic: returns 0 and sets *out on success, 1 on overflow. */
static inline int dl_mul_overflow(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a) return 1;
  *out = a * b;
  return 0;
}
static inline int dl_add_overflow(size_t a, size_t b, size_t *out) {
  if (b > SIZE_MAX - a) return 1;
  *out = a + b;
  return 0;
}

/* Largest element count any array argument may have: arrays of float need
 * count * sizeof(float) bytes to be addressable, and some loops index with
 * (i * 4 + k). */
#define DL_MAX_ELEMS (SIZE_MAX / 16)

/* Checks that ptr is non-NULL when count > 0 (a NULL pointer with count 0 is
 * allowed everywhere). */
detloss_status dl_check_ptr(const void *ptr, size_t count, const char *name,
                            detloss_error *err);

/* Checks that the n boxes (4 floats each) are finite; names the first bad
 * one as "name[i]". Also rejects n > DL_MAX_ELEMS / 4. */
detloss_status dl_check_boxes(const float *boxes, size_t n, const char *name,
                              detloss_error *err);

/* Checks that n floats are finite; names the first bad one as "name[i]". */
detloss_status dl_check_finite(const float *x, size_t n, const char *name,
                               detloss_error *err);

/* The candidate closest to name by edit distance (at most 2 edits, or a
 * prefix relation), for "did you mean" hints; NULL if none is close. */
const char *dl_suggest(const char *name, const char *const *candidates, size_t count);

#endif /* DETLOSS_INTERNAL_H */
