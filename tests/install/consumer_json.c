/* consumer_json.c - links the installed detloss JSON layer (detloss_compute_json)
 * and checks one value: the shared library or libdetloss_json.a + cJSON. */
#include <detloss/detloss.h>
#include <detloss/detloss_json.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  /* [0,0,10,10] vs [5,5,15,15]: IoU = 25 / (100 + 100 - 25) = 1/7 = 0.142857143. */
  static const char CASE[] =
      "{\"op\": \"iou\", \"kind\": \"iou\", \"boxes1\": [[0, 0, 10, 10]], \"boxes2\": [[5, 5, 15, "
      "15]]}";
  char *out = NULL;
  size_t len = 0;
  detloss_error err;
  detloss_status st = detloss_compute_json(CASE, strlen(CASE), &out, &len, NULL, &err);
  if (st != DETLOSS_OK) {
    fprintf(stderr, "consumer_json: %s: %s\n", err.where, err.msg);
    return 1;
  }
  int ok = strstr(out, "0.142857") != NULL;
  if (!ok)
    fprintf(stderr, "consumer_json: expected IoU 0.142857 in %s", out);
  else
    printf("consumer_json: detloss %s JSON layer linked, IoU = 1/7\n", detloss_version());
  detloss_free(out);
  return ok ? 0 : 1;
}
