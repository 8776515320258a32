/*
 * fuzz_compute.c - libFuzzer target: arbitrary bytes through
 * detloss_compute_json, the `detloss compute` contract. Every op's parser and
 * kernel is reachable. Oracle: no crash, leak, hang or sanitizer report; a
 * success yields NUL-terminated JSON that cJSON parses back; a failure leaves
 * the output pointer untouched and names a place (err.where or err.msg set).
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "detloss/detloss_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20)) return 0;
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  char sentinel = 0;
  char *out = &sentinel;
  size_t len = 0;
  detloss_error err;
  memset(&err, 0, sizeof err);
  detloss_compute_options opt = DETLOSS_COMPUTE_OPTIONS_INIT;
  opt.num_threads = 1;
  detloss_status st = detloss_compute_json(text, size, &out, &len, &opt, &err);
  if (st == DETLOSS_OK) {
    if (out == &sentinel || strlen(out) != len) abort();
    cJSON *back = cJSON_Parse(out);
    if (!back) abort(); /* our own output must be valid JSON */
    cJSON_Delete(back);
    detloss_free(out);
  } else {
    if (out != &sentinel) abort();          /* nothing half-written */
    if (!err.msg[0]) abort();               /* every error says something */
    if (err.status != st) abort();
  }
  free(text);
  return 0;
}
