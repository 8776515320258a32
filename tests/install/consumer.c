/* consumer.c - links the installed detloss and checks one value. */
#include <detloss/detloss.h>
#include <math.h>
#include <stdio.h>

int main(void) {
  /* [0,0,10,10] vs [5,5,15,15]: IoU = 25 / 175 = 1/7. */
  const float a[4] = {0, 0, 10, 10}, b[4] = {5, 5, 15, 15};
  float iou = 0;
  detloss_error err;
  if (detloss_iou_matrix(DETLOSS_IOU, a, 1, b, 1, &iou, NULL, &err) != DETLOSS_OK) {
    fprintf(stderr, "consumer: %s: %s\n", err.where, err.msg);
    return 1;
  }
  if (fabs((double)iou - 1.0 / 7.0) > 1e-7) {
    fprintf(stderr, "consumer: IoU %.9g, expected 1/7\n", (double)iou);
    return 1;
  }
  printf("consumer: detloss %s linked, IoU = %.7f\n", detloss_version(), (double)iou);
  return 0;
}
