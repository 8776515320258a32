/* status.c - status strings, error filling and the shared argument checks. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *detloss_status_str(detloss_status status) {
  switch (status) {
    case DETLOSS_OK: return "ok";
    case DETLOSS_ERR_NULL: return "null pointer";
    case DETLOSS_ERR_SHAPE: return "shape mismatch";
    case DETLOSS_ERR_NONFINITE: return "non-finite number";
    case DETLOSS_ERR_RANGE: return "value out of range";
    case DETLOSS_ERR_NOMEM: return "out of memory";
    case DETLOSS_ERR_PARSE: return "syntax error";
    case DETLOSS_ERR_TYPE: return "wrong type";
    case DETLOSS_ERR_MISSING: return "missing field";
    case DETLOSS_ERR_UNKNOWN: return "unknown name";
    case DETLOSS_ERR_IO: return "i/o error";
    case DETLOSS_ERR_UNSUPPORTED: return "unsupported";
    case DETLOSS_ERR_NOT_FOUND: return "not found";
  }
  return "unknown status";
}

const char *detloss_version(void) { return DETLOSS_VERSION_STRING; }

int detloss_has_openmp(void) {
#ifdef DETLOSS_HAVE_OPENMP
  return 1;
#else
  return 0;
#endif
}

/* Makes s safe to print on one line: control characters (a "\n" or an
 * escape sequence decoded from a JSON string that a message quotes) become
 * '?', and a UTF-8 sequence cut by the buffer's end is dropped. */
static void printable(char *s) {
  size_t n = 0;
  for (; s[n]; n++)
    if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] == 0x7F) s[n] = '?';
  size_t k = n;
  while (k > 0 && ((unsigned char)s[k - 1] & 0xC0) == 0x80 && n - k < 3) k--;
  if (k > 0 && (unsigned char)s[k - 1] >= 0xC0) {
    unsigned char lead = (unsigned char)s[k - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (n - (k - 1) < need) s[k - 1] = '\0';
  }
}

detloss_status dl_vfail(detloss_error *err, detloss_status status, const char *where,
                        const char *fmt, va_list ap) {
  if (err) {
    err->status = status;
    snprintf(err->where, sizeof err->where, "%s", where ? where : "");
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    printable(err->where);
    printable(err->msg);
  }
  return status;
}

detloss_status dl_fail(detloss_error *err, detloss_status status, const char *where,
                       const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  dl_vfail(err, status, where, fmt, ap);
  va_end(ap);
  return status;
}

detloss_status dl_check_ptr(const void *ptr, size_t count, const char *name, detloss_error *err) {
  DL_RETURN_ERROR_IF(count > 0 && ptr == NULL, err, DETLOSS_ERR_NULL, name,
                     "is NULL but %zu elements were requested", count);
  return DETLOSS_OK;
}

detloss_status dl_check_finite(const float *x, size_t n, const char *name, detloss_error *err) {
  DL_FORWARD_IF_ERROR(dl_check_ptr(x, n, name, err));
  DL_RETURN_ERROR_IF(n > DL_MAX_ELEMS, err, DETLOSS_ERR_SHAPE, name,
                     "%zu elements is more than can be addressed", n);
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(x[i])) {
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "%s[%zu]", name, i);
      return dl_fail(err, DETLOSS_ERR_NONFINITE, where, "is %s, expected a finite number",
                     isnan(x[i]) ? "NaN" : "infinite");
    }
  }
  return DETLOSS_OK;
}

detloss_status dl_check_boxes(const float *boxes, size_t n, const char *name, detloss_error *err) {
  DL_FORWARD_IF_ERROR(dl_check_ptr(boxes, n, name, err));
  DL_RETURN_ERROR_IF(n > DL_MAX_ELEMS / 4, err, DETLOSS_ERR_SHAPE, name,
                     "%zu boxes is more than can be addressed", n);
  for (size_t i = 0; i < n; i++) {
    const float *b = boxes + 4 * i;
    if (!(isfinite(b[0]) && isfinite(b[1]) && isfinite(b[2]) && isfinite(b[3]))) {
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "%s[%zu]", name, i);
      return dl_fail(err, DETLOSS_ERR_NONFINITE, where,
                     "has a non-finite coordinate (%g, %g, %g, %g)", (double)b[0], (double)b[1],
                     (double)b[2], (double)b[3]);
    }
  }
  return DETLOSS_OK;
}

/* Levenshtein distance, capped: stops counting above cap. Names are short. */
static size_t edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return 99;
  size_t prev[64], cur[64];
  for (size_t j = 0; j <= lb; j++) prev[j] = j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
      size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
      size_t m = sub < del ? sub : del;
      cur[j] = m < ins ? m : ins;
    }
    memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
  }
  return prev[lb];
}

const char *dl_suggest(const char *name, const char *const *candidates, size_t count) {
  /* Score: twice the edit distance, plus one when the first letters differ
   * (a typo rarely hits the first letter), so "t" suggests "tt" over "a". */
  const char *best = NULL;
  size_t best_score = 2 * 3;
  for (size_t k = 0; k < count; k++) {
    if (!candidates[k]) continue;
    size_t d = edit_distance(name, candidates[k]);
    if (d > 2) continue;
    size_t score = 2 * d + (name[0] != candidates[k][0]);
    if (score < best_score) {
      best_score = score;
      best = candidates[k];
    }
  }
  return best;
}

detloss_status dl_check_coords(const float *boxes, size_t n, const char *name, detloss_error *err) {
  DL_FORWARD_IF_ERROR(dl_check_boxes(boxes, n, name, err));
  for (size_t i = 0; i < 4 * n; i++) {
    if (fabsf(boxes[i]) > DL_COORD_MAX) {
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "%s[%zu]", name, i / 4);
      return dl_fail(err, DETLOSS_ERR_RANGE, where,
                     "coordinate %g is larger in magnitude than 1e18", (double)boxes[i]);
    }
  }
  return DETLOSS_OK;
}

/* Byte ranges compared as integers (relational operators on pointers into
 * different objects are undefined in C). */
static int spans_overlap(const dl_span *a, const dl_span *b) {
  if (a->p == NULL || b->p == NULL || a->bytes == 0 || b->bytes == 0) return 0;
  uintptr_t a0 = (uintptr_t)a->p, b0 = (uintptr_t)b->p;
  uintptr_t a1 = a->bytes > UINTPTR_MAX - a0 ? UINTPTR_MAX : a0 + a->bytes;
  uintptr_t b1 = b->bytes > UINTPTR_MAX - b0 ? UINTPTR_MAX : b0 + b->bytes;
  return a0 < b1 && b0 < a1;
}

static void span_name(char *buf, size_t cap, const dl_span *s) {
  if (s->image == DL_NO_IMAGE)
    snprintf(buf, cap, "%s", s->name);
  else
    snprintf(buf, cap, "images[%zu].%s", s->image, s->name);
}

static detloss_status fail_overlap(const dl_span *out, const dl_span *other, detloss_error *err) {
  char where[DETLOSS_WHERE_MAX], what[DETLOSS_WHERE_MAX];
  span_name(where, sizeof where, out);
  span_name(what, sizeof what, other);
  return dl_fail(err, DETLOSS_ERR_SHAPE, where,
                 "overlaps %s (outputs may not share memory with an input or another output)",
                 what);
}

detloss_status dl_check_overlaps_fn(size_t n, dl_span_fn get, const void *ctx, detloss_error *err) {
  for (size_t i = 0; i < n; i++) {
    dl_span si;
    get(ctx, i, &si);
    if (!si.out || si.p == NULL || si.bytes == 0) continue;
    for (size_t j = 0; j < n; j++) {
      if (j == i) continue;
      dl_span sj;
      get(ctx, j, &sj);
      if (sj.out && j < i) continue; /* output pairs once */
      if (!spans_overlap(&si, &sj)) continue;
      if (!sj.out && sj.inplace && sj.p == si.p && sj.bytes == si.bytes) continue;
      /* name the later output of an output pair (the earlier one was valid alone) */
      return sj.out ? fail_overlap(&sj, &si, err) : fail_overlap(&si, &sj, err);
    }
  }
  return DETLOSS_OK;
}

static void array_span(const void *ctx, size_t k, dl_span *span) {
  *span = ((const dl_span *)ctx)[k];
}

detloss_status dl_check_overlaps(const dl_span *spans, size_t n, detloss_error *err) {
  return dl_check_overlaps_fn(n, array_span, spans, err);
}

detloss_status dl_check_grid_overlaps(const detloss_anchor_config *cfg, const char *prefix,
                                      const dl_span *spans, size_t n, size_t image,
                                      detloss_error *err) {
  if (cfg == NULL) return DETLOSS_OK;
  char nm[5][DETLOSS_WHERE_MAX];
  dl_span g[6];
  snprintf(nm[0], sizeof nm[0], "%s", prefix[0] ? prefix : "cfg");
  if (prefix[0]) {
    size_t len = strlen(nm[0]);
    if (len > 0 && nm[0][len - 1] == '.') nm[0][len - 1] = '\0'; /* "grid." -> "grid" */
  }
  snprintf(nm[1], sizeof nm[1], "%slevels", prefix);
  g[0] = dl_span_of(cfg, 1, sizeof *cfg, nm[0], 0);
  g[1] = dl_span_of(cfg->levels, cfg->num_levels, sizeof *cfg->levels, nm[1], 0);
  g[0].image = g[1].image = image;
  for (size_t i = 0; i < n; i++) {
    if (!spans[i].out) continue;
    for (int k = 0; k < 2; k++)
      if (spans_overlap(&spans[i], &g[k])) return fail_overlap(&spans[i], &g[k], err);
  }
  for (size_t l = 0; l < cfg->num_levels; l++) {
    const detloss_anchor_level *lv = &cfg->levels[l];
    snprintf(nm[1], sizeof nm[1], "%slevels[%zu].sizes", prefix, l);
    snprintf(nm[2], sizeof nm[2], "%slevels[%zu].ratios", prefix, l);
    snprintf(nm[3], sizeof nm[3], "%slevels[%zu].shapes", prefix, l);
    snprintf(nm[4], sizeof nm[4], "%slevels[%zu].base", prefix, l);
    g[1] = dl_span_of(lv->sizes, lv->num_sizes, sizeof(float), nm[1], 0);
    g[2] = dl_span_of(lv->ratios, lv->num_ratios, sizeof(float), nm[2], 0);
    g[3] = dl_span_of(lv->shapes, lv->num_shapes, 2 * sizeof(float), nm[3], 0);
    g[4] = dl_span_of(lv->base, lv->num_base, 4 * sizeof(float), nm[4], 0);
    for (int k = 1; k < 5; k++) g[k].image = image;
    for (size_t i = 0; i < n; i++) {
      if (!spans[i].out) continue;
      for (int k = 1; k < 5; k++)
        if (spans_overlap(&spans[i], &g[k])) return fail_overlap(&spans[i], &g[k], err);
    }
  }
  return DETLOSS_OK;
}
