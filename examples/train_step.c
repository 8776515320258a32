/*
 * train_step.c - the loss call of one training step of a detector written in C.
 *
 * A RetinaNet-style detector on 256 x 256 images: anchors from a 3-level grid
 * (strides 8, 16, 32; 3 sizes x 3 ratios per cell), two images with their
 * ground truth, and the head's outputs (class logits [A][C] and box deltas
 * [A][4] per image). One call to detloss_retina_loss() matches anchors to the
 * ground truth and returns the loss terms and the gradients with respect to
 * the head's outputs, which the detector's backward pass then consumes. The
 * RPN of a two-stage detector is called the same way (detloss_rpn_loss, with
 * objectness [A] instead of class logits).
 *
 * Here the "network" is just a bias per class and a zero regression; the step
 * applies the gradients to the outputs directly, and the loss goes down.
 * Exits 0 when it does (run as a ctest test).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detloss/detloss.h"

#define NUM_IMAGES 2
#define NUM_CLASSES 4

int main(void) {
  /* 1. Anchors: the detector's anchor grid, generated once. */
  const float sizes[3][3] = {{16, 20, 25}, {32, 40, 50}, {64, 80, 101}};
  const float ratios[3] = {0.5f, 1.0f, 2.0f};
  detloss_anchor_level levels[3];
  memset(levels, 0, sizeof levels);
  for (int l = 0; l < 3; l++) {
    levels[l].feat_h = levels[l].feat_w = (size_t)(32 >> l); /* 256 / stride */
    levels[l].stride_h = levels[l].stride_w = (float)(8 << l);
    levels[l].sizes = sizes[l];
    levels[l].num_sizes = 3;
    levels[l].ratios = ratios;
    levels[l].num_ratios = 3;
  }
  detloss_anchor_config grid = {levels, 3, DETLOSS_ANCHORS_TORCHVISION, 0.0f};
  detloss_error err = {DETLOSS_OK, "malloc", "out of memory"};
  size_t A;
  if (detloss_anchors_count(&grid, &A, &err) != DETLOSS_OK) goto fail;
  float *anchors = malloc(A * 4 * sizeof(float));
  if (!anchors || detloss_anchors_generate(&grid, anchors, A, &err) != DETLOSS_OK) goto fail;

  /* 2. Ground truth of the batch (image 1 has no object: all anchors negative). */
  const float gt0[2][4] = {{30, 40, 90, 120}, {150, 20, 230, 70}};
  const int64_t labels0[2] = {1, 3};

  /* 3. The head's outputs and, caller-owned, their gradients. */
  float *logits = malloc(NUM_IMAGES * A * NUM_CLASSES * sizeof(float));
  float *deltas = calloc(NUM_IMAGES * A * 4, sizeof(float));
  float *g_logits = malloc(NUM_IMAGES * A * NUM_CLASSES * sizeof(float));
  float *g_deltas = malloc(NUM_IMAGES * A * 4 * sizeof(float));
  if (!logits || !deltas || !g_logits || !g_deltas) goto fail;
  for (size_t k = 0; k < NUM_IMAGES * A * NUM_CLASSES; k++)
    logits[k] = -4.6f; /* prior 0.01 (RetinaNet's bias init) */

  detloss_head_image images[NUM_IMAGES];
  memset(images, 0, sizeof images);
  for (int i = 0; i < NUM_IMAGES; i++) {
    images[i].anchors = anchors;
    images[i].anchor_config = &grid; /* optional: faster matching on the grid */
    images[i].num_anchors = A;
    images[i].num_predictions = A;
    images[i].gt = i == 0 ? &gt0[0][0] : NULL;
    images[i].num_gt = i == 0 ? 2 : 0;
    images[i].labels = i == 0 ? labels0 : NULL;
    images[i].cls_logits = logits + (size_t)i * A * NUM_CLASSES;
    images[i].deltas = deltas + (size_t)i * A * 4;
    images[i].grad_cls_logits = g_logits + (size_t)i * A * NUM_CLASSES;
    images[i].grad_deltas = g_deltas + (size_t)i * A * 4;
  }

  /* 4. The loss call: torchvision semantics by default; here GIoU box loss. */
  detloss_retina_options opt = detloss_retina_options_default();
  opt.box_loss = DETLOSS_HEAD_BOX_GIOU;
  opt.num_threads = 2;
  float first = 0.0f, last = 0.0f;
  for (int step = 0; step < 20; step++) {
    detloss_head_result res;
    if (detloss_retina_loss(images, NUM_IMAGES, NUM_CLASSES, &res, NULL, &opt, &err) != DETLOSS_OK)
      goto fail;
    if (res.nonfinite) {
      fprintf(stderr, "train_step: non-finite loss, skipping the step\n");
      continue;
    }
    float loss = res.loss_cls + res.loss_box_reg;
    if (step == 0) {
      first = loss;
      printf("anchors %zu per image, positives %zu, negatives %zu, ignored %zu\n", A, res.num_pos,
             res.num_neg, res.num_ignored);
    }
    last = loss;
    if (step % 5 == 0)
      printf("step %2d  loss_cls %.6f  loss_box_reg %.6f\n", step, (double)res.loss_cls,
             (double)res.loss_box_reg);
    /* 5. Backward: here the outputs are the parameters; SGD on them. */
    for (size_t k = 0; k < NUM_IMAGES * A * NUM_CLASSES; k++) logits[k] -= 20.0f * g_logits[k];
    for (size_t k = 0; k < NUM_IMAGES * A * 4; k++) deltas[k] -= 2.0f * g_deltas[k];
  }
  printf("loss %.6f -> %.6f\n", (double)first, (double)last);
  free(anchors);
  free(logits);
  free(deltas);
  free(g_logits);
  free(g_deltas);
  return last < first ? 0 : 1;
fail:
  fprintf(stderr, "train_step: %s: %s\n", err.where, err.msg);
  return 1;
}
