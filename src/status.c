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

detloss_status dl_check_ptr(const void *ptr, size_t count, const char *name,
                            detloss_error *err) {
  DL_RETURN_ERROR_IF(count > 0 && ptr == NULL, err, DETLOSS_ERR_NULL, name,
                     "is NULL but %zu elements were requested", count);
  return DETLOSS_OK;
}

detloss_status dl_check_finite(const float *x, size_t n, const char *name,
                               detloss_error *err) {
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

detloss_status dl_check_boxes(const float *boxes, size_t n, const char *name,
                              detloss_error *err) {
  DL_FORWARD_IF_ERROR(dl_check_ptr(boxes, n, name, err));
  DL_RETURN_ERROR_IF(n > DL_MAX_ELEMS / 4, err, DETLOSS_ERR_SHAPE, name,
                     "%zu boxes is more than can be addressed", n);
  for (size_t i = 0; i < n; i++) {
    const float *b = boxes + 4 * i;
    if (!(isfinite(b[0]) && isfinite(b[1]) && isfinite(b[2]) && isfinite(b[3]))) {
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "%s[%zu]", name, i);
      return dl_fail(err, DETLOSS_ERR_NONFINITE, where,
                     "has a non-finite coordinate (%g, %g, %g, %g)", (double)b[0],
                     (double)b[1], (double)b[2], (double)b[3]);
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
