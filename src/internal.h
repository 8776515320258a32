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
#define DL_RETURN_ERROR_IF(cond, err, status, where, ...)                                          \
  do {                                                                                             \
    if (cond) return dl_fail((err), (status), (where), __VA_ARGS__);                               \
  } while (0)

/* The one forwarding macro: return the status of expr if it is an error. */
#define DL_FORWARD_IF_ERROR(expr)                                                                  \
  do {                                                                                             \
    detloss_status dl_fwd_st_ = (expr);                                                            \
    if (dl_fwd_st_ != DETLOSS_OK) return dl_fwd_st_;                                               \
  } while (0)

/* Invariant assertions: compiled in with -DDETLOSS_ASSERTS=ON (CI), never
 * used for input validation. */
#ifdef DETLOSS_ENABLE_ASSERTS
#  include <stdio.h>
#  include <stdlib.h>
#  define DL_ASSERT(x)                                                                             \
    do {                                                                                           \
      if (!(x)) {                                                                                  \
        fprintf(stderr, "detloss: internal assertion failed: %s (%s:%d)\n", #x, __FILE__,          \
                __LINE__);                                                                         \
        abort();                                                                                   \
      }                                                                                            \
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
detloss_status dl_check_ptr(const void *ptr, size_t count, const char *name, detloss_error *err);

/* Checks that the n boxes (4 floats each) are finite; names the first bad
 * one as "name[i]". Also rejects n > DL_MAX_ELEMS / 4. */
detloss_status dl_check_boxes(const float *boxes, size_t n, const char *name, detloss_error *err);

/* Checks that n floats are finite; names the first bad one as "name[i]". */
detloss_status dl_check_finite(const float *x, size_t n, const char *name, detloss_error *err);

/* Largest coordinate magnitude of a box that goes into an IoU (the IoU family,
 * the matcher, anchor evaluation, generated anchors): |c| <= 1e18 gives
 * w <= 2e18, w*h <= 4e36 and w^2 + h^2 <= 8e36, all below FLT_MAX = 3.4e38,
 * so no area or diagonal can overflow to Inf (and no IoU become Inf/Inf = NaN). */
#define DL_COORD_MAX 1e18f

/* dl_check_boxes plus the bound |c| <= DL_COORD_MAX: DETLOSS_ERR_RANGE naming
 * "name[i]" for a larger coordinate. */
detloss_status dl_check_coords(const float *boxes, size_t n, const char *name, detloss_error *err);

/*
 * Aliasing. A dl_span is one buffer argument of a call: its bytes, its name
 * for err->where ("max_iou", or "images[3].grad_deltas" with image = 3 and
 * name = "grad_deltas"), and whether the call writes it. dl_check_overlaps()
 * fails with DETLOSS_ERR_SHAPE, where = the output, msg "overlaps <other>"
 * when an output's byte range intersects any other span's (input or output).
 * An output that coincides exactly (same start, same size) with an input
 * marked inplace is allowed: the call documents that it works in place.
 * Empty or NULL spans never overlap. O(outputs x spans), no allocation.
 */
#define DL_NO_IMAGE SIZE_MAX
typedef struct dl_span {
  const void *p;
  size_t bytes;
  const char *name;
  size_t image; /* DL_NO_IMAGE, or the image index for "images[i].name" */
  int out;      /* 1: written by the call */
  int inplace;  /* input only: an output may equal it exactly */
} dl_span;

/* Span of count elements of elem bytes (count * elem saturates at SIZE_MAX:
 * the sizes were checked before, this only has to be conservative). */
static inline dl_span dl_span_of(const void *p, size_t count, size_t elem, const char *name,
                                 int out) {
  dl_span s;
  s.p = p;
  s.bytes = (elem != 0 && count > SIZE_MAX / elem) ? SIZE_MAX : count * elem;
  s.name = name;
  s.image = DL_NO_IMAGE;
  s.out = out;
  s.inplace = 0;
  return s;
}

detloss_status dl_check_overlaps(const dl_span *spans, size_t n, detloss_error *err);

/* The same over n spans produced on demand by get(ctx, k, &span), for calls
 * whose number of buffers is not fixed (the detector heads: several per image). */
typedef void (*dl_span_fn)(const void *ctx, size_t k, dl_span *span);
detloss_status dl_check_overlaps_fn(size_t n, dl_span_fn get, const void *ctx, detloss_error *err);

/* Spans of a grid config's own memory (the struct, its levels array and
 * every level's sizes, ratios, shapes and base arrays) checked against the
 * outputs among spans[0..n): DETLOSS_ERR_SHAPE "<output> overlaps
 * <prefix>levels[l].sizes" and so on. prefix is "" or e.g. "grid.". */
detloss_status dl_check_grid_overlaps(const detloss_anchor_config *cfg, const char *prefix,
                                      const dl_span *spans, size_t n, size_t image,
                                      detloss_error *err);

/* The candidate closest to name by edit distance (at most 2 edits, or a
 * prefix relation), for "did you mean" hints; NULL if none is close. */
const char *dl_suggest(const char *name, const char *const *candidates, size_t count);

/* The registry's loss names into buf, in kind order: all (form < 0) or those
 * of one detloss_loss_form, separated by ", " and last_sep before the last
 * ("a, b or c"). Truncated to cap. */
void dl_loss_list_names(char *buf, size_t cap, int form, const char *last_sep);

#endif /* DETLOSS_INTERNAL_H */
