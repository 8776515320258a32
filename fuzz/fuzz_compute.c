/*
 * fuzz_compute.c - libFuzzer target: arbitrary bytes through
 * detloss_compute_json, the `detloss compute` contract. Every op's parser and
 * kernel is reachable. Oracle (fuzz_oracle.h for the status classes):
 *   - no crash, leak, hang or sanitizer report;
 *   - the status is OK or an input-fault class (never NOMEM, IO, UNSUPPORTED);
 *   - a success yields NUL-terminated text of the reported length that cJSON
 *     parses back and that holds no non-finite number: the writer prints a
 *     non-finite value as null and the compute contract has no null values,
 *     so any null (or a nan/inf token, which would not parse) is a
 *     non-finite result reported with status OK;
 *   - a failure leaves the output pointer and length untouched and fills err
 *     (NUL-terminated where and msg, non-empty msg, err.status == status);
 *   - the packed reader (src/json/jtree.h) changes nothing: with every array
 *     of numbers packed (pack_min 1) and with none (pack_min 0) the status,
 *     where, msg and output bytes equal those of detloss_compute_json.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "detloss/detloss_json.h"
#include "fuzz_oracle.h"
#include "json/cases.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts if v or anything under it is null or a non-finite number. */
static void check_finite_tree(const cJSON *v, int depth) {
  if (cJSON_IsNull(v))
    fuzz_fail("fuzz_compute", "status OK with a null (non-finite) value in the output");
  if (cJSON_IsNumber(v) && !isfinite(v->valuedouble))
    fuzz_fail("fuzz_compute", "status OK with a non-finite number in the output");
  if (depth > 10000) return;
  for (const cJSON *c = v->child; c; c = c->next) check_finite_tree(c, depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20)) return 0;
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  char sentinel = 0;
  char *out = &sentinel;
  const size_t len_sentinel = (size_t)-7;
  size_t len = len_sentinel;
  detloss_error err;
  fuzz_error_init(&err);
  detloss_compute_options opt = DETLOSS_COMPUTE_OPTIONS_INIT;
  opt.num_threads = 1;
  detloss_status st = detloss_compute_json(text, size, &out, &len, &opt, &err);
  fuzz_check_status("fuzz_compute", "detloss_compute_json", st, &err, 0);
  for (size_t pack_min = 0; pack_min < 2; pack_min++) {
    char *o2 = NULL;
    size_t l2 = 0;
    detloss_error e2;
    detloss_status s2 = dl_compute_json_packed(text, size, pack_min, &o2, &l2, &opt, &e2);
    if (s2 != st)
      fuzz_fail("fuzz_compute", "pack_min %zu: status %d, default %d", pack_min, (int)s2, (int)st);
    if (st != DETLOSS_OK && (strcmp(e2.where, err.where) != 0 || strcmp(e2.msg, err.msg) != 0))
      fuzz_fail("fuzz_compute", "pack_min %zu: error '%s: %s', default '%s: %s'", pack_min,
                e2.where, e2.msg, err.where, err.msg);
    if (st == DETLOSS_OK && (l2 != len || memcmp(o2, out, len) != 0))
      fuzz_fail("fuzz_compute", "pack_min %zu: output differs from the default's", pack_min);
    if (s2 == DETLOSS_OK) detloss_free(o2);
  }
  if (st == DETLOSS_OK) {
    if (out == &sentinel || out == NULL) fuzz_fail("fuzz_compute", "status OK without output");
    if (strlen(out) != len)
      fuzz_fail("fuzz_compute", "output length %zu but strlen %zu", len, strlen(out));
    const char *end = NULL;
    cJSON *back = cJSON_ParseWithOpts(out, &end, 1); /* nothing after the value */
    if (!back) fuzz_fail("fuzz_compute", "status OK but the output is not valid JSON");
    check_finite_tree(back, 0);
    cJSON_Delete(back);
    detloss_free(out);
  } else {
    if (out != &sentinel) fuzz_fail("fuzz_compute", "output pointer written on error");
    if (len != len_sentinel) fuzz_fail("fuzz_compute", "output length written on error");
  }
  free(text);
  return 0;
}
