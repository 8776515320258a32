/*
 * train_step_fcos.c - training steps of an anchor-free (FCOS) head written in C.
 *
 * A tiny FCOS head on synthetic features: 2 images of 128 x 128, three levels
 * (strides 8, 16, 32), a D-dimensional feature per point, and a linear head
 *   cls_logits = f W_cls + b_cls [C],  bbox_pred = exp(f W_box + b_box) [4],
 *   centerness = f w_ctr + b_ctr,
 * as FCOS's exp() regression branch. Each step calls detloss_fcos_loss() once
 * (targets, the three losses and the gradients w.r.t. the head's outputs),
 * back-propagates through the linear layers by hand and takes an SGD step.
 * Exits 0 when the total loss goes down (run as a ctest test).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detloss/detloss.h"

#define B 2
#define C 3
#define D 8
#define L 3

static float frand(unsigned *s) {
  *s = *s * 1103515245u + 12345u;
  return (float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f;
}

int main(void) {
  const size_t fm[2 * L] = {16, 16, 8, 8, 4, 4};
  const float strides[L] = {8, 16, 32};
  const float ranges[2 * L] = {-1, 32, 32, 64, 64, 1e8f};
  size_t lc[L], P = 0;
  for (int l = 0; l < L; l++) P += lc[l] = fm[2 * l] * fm[2 * l + 1];
  float *points = malloc(P * 2 * sizeof(float));
  if (!points || detloss_grid_points(fm, strides, L, 0.5f, points, NULL) != DETLOSS_OK) return 1;

  /* ground truth */
  const float gt0[2 * 4] = {10, 12, 50, 60, 60, 40, 120, 110};
  const int64_t lab0[2] = {0, 2};
  const float gt1[1 * 4] = {30, 20, 100, 90};
  const int64_t lab1[1] = {1};

  /* synthetic features: a fixed random vector per point and image */
  unsigned seed = 7;
  float *feat = malloc((size_t)B * P * D * sizeof(float));
  float *cls = malloc((size_t)B * P * C * sizeof(float)), *gcls = malloc((size_t)B * P * C * 4);
  float *box = malloc((size_t)B * P * 4 * 4), *gbox = malloc((size_t)B * P * 4 * 4);
  float *ctr = malloc((size_t)B * P * 4), *gctr = malloc((size_t)B * P * 4);
  if (!feat || !cls || !gcls || !box || !gbox || !ctr || !gctr) return 1;
  for (size_t k = 0; k < (size_t)B * P * D; k++) feat[k] = frand(&seed);

  /* the head's parameters */
  float wc[D][C], bc[C], wb[D][4], bb[4], wt[D], bt = 0.0f;
  for (int d = 0; d < D; d++) {
    for (int c = 0; c < C; c++) wc[d][c] = 0.1f * frand(&seed);
    for (int k = 0; k < 4; k++) wb[d][k] = 0.1f * frand(&seed);
    wt[d] = 0.1f * frand(&seed);
  }
  for (int c = 0; c < C; c++) bc[c] = -4.6f; /* prior 0.01, as FCOS initialises it */
  for (int k = 0; k < 4; k++) bb[k] = 0.0f;

  detloss_fcos_loss_options o = detloss_fcos_loss_options_default();
  o.regress_ranges = ranges;
  const float lr = 0.5f;
  double first = 0.0, last = 0.0;
  for (int step = 0; step < 30; step++) {
    /* forward */
    for (size_t i = 0; i < (size_t)B * P; i++) {
      const float *f = feat + i * D;
      for (int c = 0; c < C; c++) {
        float z = bc[c];
        for (int d = 0; d < D; d++) z += f[d] * wc[d][c];
        cls[i * C + (size_t)c] = z;
      }
      for (int k = 0; k < 4; k++) {
        float z = bb[k];
        for (int d = 0; d < D; d++) z += f[d] * wb[d][k];
        box[i * 4 + (size_t)k] = expf(z);
      }
      float z = bt;
      for (int d = 0; d < D; d++) z += f[d] * wt[d];
      ctr[i] = z;
    }
    /* the loss and the gradients w.r.t. the head's outputs */
    detloss_fcos_image im[B] = {
        {2, gt0, lab0, cls, box, ctr, gcls, gbox, gctr, NULL},
        {1, gt1, lab1, cls + P * C, box + P * 4, ctr + P, gcls + P * C, gbox + P * 4, gctr + P,
         NULL},
    };
    detloss_fcos_result r;
    detloss_error err;
    if (detloss_fcos_loss(points, P, lc, strides, L, C, im, B, &r, &o, &err) != DETLOSS_OK) {
      fprintf(stderr, "detloss_fcos_loss: %s: %s\n", err.where, err.msg);
      return 1;
    }
    double total = (double)r.loss_cls + (double)r.loss_bbox + (double)r.loss_centerness;
    if (step == 0) first = total;
    last = total;
    if (step % 10 == 0 || step == 29)
      printf("step %2d: loss_cls %.4f loss_bbox %.4f loss_centerness %.4f (%zu positives)\n", step,
             (double)r.loss_cls, (double)r.loss_bbox, (double)r.loss_centerness, r.num_pos);
    /* backward through the linear layers (exp: d/dz = d/dpred * pred) and SGD */
    float dwc[D][C] = {{0}}, dbc[C] = {0}, dwb[D][4] = {{0}}, dbb[4] = {0}, dwt[D] = {0}, dbt = 0;
    for (size_t i = 0; i < (size_t)B * P; i++) {
      const float *f = feat + i * D;
      for (int c = 0; c < C; c++) {
        float g = gcls[i * C + (size_t)c];
        dbc[c] += g;
        for (int d = 0; d < D; d++) dwc[d][c] += f[d] * g;
      }
      for (int k = 0; k < 4; k++) {
        float g = gbox[i * 4 + (size_t)k] * box[i * 4 + (size_t)k];
        dbb[k] += g;
        for (int d = 0; d < D; d++) dwb[d][k] += f[d] * g;
      }
      dbt += gctr[i];
      for (int d = 0; d < D; d++) dwt[d] += f[d] * gctr[i];
    }
    for (int d = 0; d < D; d++) {
      for (int c = 0; c < C; c++) wc[d][c] -= lr * dwc[d][c];
      for (int k = 0; k < 4; k++) wb[d][k] -= lr * dwb[d][k];
      wt[d] -= lr * dwt[d];
    }
    for (int c = 0; c < C; c++) bc[c] -= lr * dbc[c];
    for (int k = 0; k < 4; k++) bb[k] -= lr * dbb[k];
    bt -= lr * dbt;
  }
  free(points);
  free(feat);
  free(cls);
  free(gcls);
  free(box);
  free(gbox);
  free(ctr);
  free(gctr);
  printf("total loss %.4f -> %.4f\n", first, last);
  return last < 0.8 * first ? 0 : 1;
}
