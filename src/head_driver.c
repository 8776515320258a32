/*
 * head_driver.c - the one per-batch pipeline of the detector heads
 * (head_internal.h): per image assign -> (sample) -> box loss of the positives;
 * then the normalizer; then per image the classification pass and the gradients;
 * then the batch reduction. A head is a dl_head_spec (head_rpn.c, head_retina.c).
 *
 * Images run in parallel (one image per block, every call inside it serial) when
 * there are at least as many images as threads, else one image after the other
 * with the threads inside. Every call is bitwise invariant to its thread count, so
 * both schedules give the same bits; the batch sums are taken serially in image
 * order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "head_internal.h"
#include "vec.h"

detloss_status dl_head_workspace_size(const detloss_head_image *images, size_t num_images,
                                      size_t per_block, int sampled, size_t *bytes,
                                      detloss_error *err) {
  size_t total = 0;
  for (size_t i = 0; i < num_images; i++) {
    size_t A = images[i].num_anchors;
    if (A > DL_MAX_ELEMS / 4) {
      char where[DETLOSS_WHERE_MAX];
      dl_head_where(where, sizeof where, i, ".num_anchors");
      return dl_fail(err, DETLOSS_ERR_SHAPE, where, "%zu anchors is more than can be addressed", A);
    }
    size_t b = 8 * A + 8 * (dl_num_blocks(A, per_block) + 1);
    if (sampled) b += (A + 7) & ~(size_t)7;
    DL_RETURN_ERROR_IF(dl_add_overflow(total, b, &total), err, DETLOSS_ERR_SHAPE, "images",
                       "the batch is too large to address");
  }
  *bytes = total;
  return DETLOSS_OK;
}

/* counts[0..2] = number of matches >= 0, == -1, and the rest (-2). Compiled
 * for AVX2/AVX-512 too (64-bit compares do not vectorize on baseline SSE2). */
DL_VEC_CLONES static void count_matches(const int64_t *m, size_t n, size_t counts[3]) {
  size_t np = 0, nn = 0;
  for (size_t a = 0; a < n; a++) {
    np += m[a] >= 0;
    nn += m[a] == -1;
  }
  counts[0] = np;
  counts[1] = nn;
  counts[2] = n - np - nn;
}

/* Assigns image i with the spec's assigner into w->matches and counts the result.
 * The options were checked before the images (dl_head_run), so an error here is
 * the image's ("images[i].gt[3]"). */
static detloss_status assign_image(const dl_head_spec *s, const detloss_head_image *im, size_t i,
                                   int num_threads, dl_head_work *w, detloss_error *err) {
  dl_assign_input in;
  memset(&in, 0, sizeof in);
  in.num_anchors = im->num_anchors;
  in.anchors = im->anchor_config != NULL ? NULL : im->anchors;
  in.anchor_config = im->anchor_config;
  in.num_gt = im->num_gt;
  in.gt = im->gt;
  in.gt_is_crowd = im->gt_is_crowd;
  in.image_h = im->image_h;
  in.image_w = im->image_w;
  in.num_threads = num_threads;
  dl_assign_result out = {.gt_index = w->matches};
  detloss_status st = s->assigner->fn(&in, s->assign_options, &out, err);
  if (st != DETLOSS_OK) {
    dl_head_prefix(err, i);
    return st;
  }
  count_matches(w->matches, im->num_anchors, w->counts);
  return DETLOSS_OK;
}

/* Samples image i (s->sample) into w->sampled, w->s_pos, w->s_neg. The sample
 * options were checked by the head's entry point ("sample.positive_fraction"),
 * so an error here is the image's. */
static detloss_status sample_image(const dl_head_spec *s, size_t i, size_t A, int num_threads,
                                   dl_head_work *w, detloss_error *err) {
  detloss_sample_options so = *s->sample;
  so.num_threads = num_threads;
  detloss_status st = detloss_sample_balanced(w->matches, A, (uint64_t)i, w->sampled, &w->s_pos,
                                              &w->s_neg, &so, err);
  if (st != DETLOSS_OK) dl_head_prefix(err, i);
  return st;
}

typedef struct run_ctx {
  const dl_head_spec *s;
  const detloss_head_image *images;
  dl_head_work *w;
  int inner_threads; /* threads of the calls inside one image */
} run_ctx;

static void free_work(dl_head_work *w, size_t n) {
  if (w == NULL) return;
  for (size_t i = 0; i < n; i++) {
    if (!w[i].borrowed) {
      free(w[i].matches);
      free(w[i].sampled);
      free(w[i].partials);
    }
    dl_head_box_free(&w[i].box);
  }
  free(w);
}

/* Phase 2 of images [i0, i1): assign, sample, box loss of the (sampled) positives. */
static void phase2(void *vr, size_t i0, size_t i1, size_t blk) {
  const run_ctx *r = (const run_ctx *)vr;
  const dl_head_spec *s = r->s;
  (void)blk;
  for (size_t i = i0; i < i1; i++) {
    const detloss_head_image *im = &r->images[i];
    dl_head_work *w = &r->w[i];
    size_t A = im->num_anchors;
    detloss_error *err = &w->err;
    if (!w->borrowed) {
      w->matches = malloc((A ? A : 1) * sizeof(int64_t));
      if (s->sample != NULL) w->sampled = malloc(A ? A : 1);
      w->partials = malloc((dl_num_blocks(A, s->per_block) + 1) * sizeof(double));
    }
    if (!w->matches || (s->sample != NULL && !w->sampled) || !w->partials) {
      w->st = dl_fail(err, DETLOSS_ERR_NOMEM, "workspace", "out of memory");
      continue;
    }
    w->st = assign_image(s, im, i, r->inner_threads, w, err);
    if (w->st != DETLOSS_OK) continue;
    if (s->sample != NULL) {
      w->st = sample_image(s, i, A, r->inner_threads, w, err);
      if (w->st != DETLOSS_OK) continue;
    } else {
      w->s_pos = w->counts[0];
      w->s_neg = w->counts[1];
    }
    dl_head_box_params bp = s->box;
    bp.num_threads = r->inner_threads;
    bp.coder.num_threads = r->inner_threads;
    w->st = dl_head_box_eval(&bp, im, i, w->matches, w->sampled, w->s_pos, &w->box, err);
  }
}

/* Phase 3 of images [i0, i1): the classification pass and the gradients. */
static void phase3(void *vr, size_t i0, size_t i1, size_t blk) {
  const run_ctx *r = (const run_ctx *)vr;
  (void)blk;
  for (size_t i = i0; i < i1; i++) {
    const detloss_head_image *im = &r->images[i];
    dl_head_work *w = &r->w[i];
    w->cls_sum = r->s->cls_pass(r->s, im, w, (float)w->scale, r->inner_threads);
    dl_head_box_scatter(&w->box, w->scale, im->grad_deltas, im->num_anchors);
  }
}

/* Sets every image's scale from the normalizer; returns the batch normalizer that
 * the result reports, and the new EMA state in *ema_new. */
static double normalize(const dl_head_spec *s, dl_head_work *w, size_t n, float *ema_new) {
  size_t P = 0, sampled = 0;
  for (size_t i = 0; i < n; i++) {
    P += w[i].counts[0];
    sampled += w[i].s_pos + w[i].s_neg;
  }
  double Z = 0.0;
  switch (s->norm) {
    case DL_HEAD_NORM_SAMPLED: Z = (double)sampled; break;
    case DL_HEAD_NORM_FIXED:
    case DL_HEAD_NORM_CALLER: Z = s->normalizer; break;
    case DL_HEAD_NORM_EMA: {
      /* detectron2 DenseDetector._ema_update: n = m n + (1 - m) max(P, 1), in
       * Python floats (double); the state is kept as float here. */
      double m = (double)s->ema_momentum;
      Z = m * (double)*s->ema_state + (1.0 - m) * (double)(P > 0 ? P : 1);
      *ema_new = (float)Z;
      break;
    }
    case DL_HEAD_NORM_PER_IMAGE_FG:
      /* torchvision RetinaNet: sum_i (S_i / max(1, fg_i)) / num_images */
      for (size_t i = 0; i < n; i++) {
        size_t fg = w[i].counts[0];
        w[i].scale = 1.0 / ((double)n * (double)(fg > 0 ? fg : 1));
      }
      return (double)n;
  }
  /* Z = 0 (nothing sampled anywhere, or B = 0): losses 0, gradients 0
   * (torchvision would divide 0 by 0). */
  double inv = Z > 0.0 ? 1.0 / Z : 0.0;
  for (size_t i = 0; i < n; i++) w[i].scale = inv;
  return Z;
}

/* Scratch of every image: in the caller's workspace (layout of
 * dl_head_workspace_size) or allocated by phase 2. NULL when out of memory. */
static dl_head_work *alloc_work(const dl_head_spec *s, const detloss_head_image *images, size_t n) {
  dl_head_work *w = calloc(n, sizeof *w);
  if (w == NULL || s->workspace == NULL) return w;
  char *p = (char *)s->workspace;
  for (size_t i = 0; i < n; i++) {
    size_t A = images[i].num_anchors;
    w[i].borrowed = 1;
    w[i].matches = (int64_t *)(void *)p;
    p += 8 * A;
    w[i].partials = (double *)(void *)p;
    p += 8 * (dl_num_blocks(A, s->per_block) + 1);
    if (s->sample != NULL) {
      w[i].sampled = (int8_t *)p;
      p += (A + 7) & ~(size_t)7;
    }
  }
  return w;
}

detloss_status dl_head_run(const dl_head_spec *s, const detloss_head_image *images,
                           size_t num_images, detloss_head_result *result,
                           detloss_head_image_stats *per_image, detloss_error *err) {
  /* Phase 1: the batch. */
  for (size_t i = 0; i < num_images; i++) {
    DL_FORWARD_IF_ERROR(dl_head_check_image(&images[i], i, s->needs_image_size, err));
    DL_FORWARD_IF_ERROR(s->check_image(s, &images[i], i, err));
  }
  size_t need = 0;
  DL_FORWARD_IF_ERROR(
      dl_head_workspace_size(images, num_images, s->per_block, s->sample != NULL, &need, err));
  if (s->workspace != NULL) {
    DL_RETURN_ERROR_IF(s->workspace_size < need, err, DETLOSS_ERR_SHAPE, "workspace_size",
                       "is %zu bytes, this batch needs %zu (%s)", s->workspace_size, need,
                       s->workspace_fn);
    DL_RETURN_ERROR_IF(((uintptr_t)s->workspace & 7u) != 0, err, DETLOSS_ERR_RANGE, "workspace",
                       "must be 8-byte aligned");
  }
  DL_FORWARD_IF_ERROR(
      dl_head_check_overlaps(images, num_images, s->num_classes, result, per_image, s->workspace,
                             need, s->norm == DL_HEAD_NORM_EMA ? s->ema_state : NULL, err));
  dl_head_work *w = alloc_work(s, images, num_images);
  DL_RETURN_ERROR_IF(w == NULL, err, DETLOSS_ERR_NOMEM, "workspace", "out of memory");
  run_ctx run;
  run.s = s;
  run.images = images;
  run.w = w;
  int nt = dl_thread_count(s->num_threads);
  int outer = nt > 1 && num_images >= (size_t)nt;
  int outer_threads = outer ? s->num_threads : 1;
  run.inner_threads = outer ? 1 : s->num_threads;

  /* Phase 2: assign, sample, box loss (scratch only). The assigner's options
   * first, where they are: every image would fail on them alike. */
  if (num_images > 0 && s->assigner->check_options != NULL) {
    detloss_status st = s->assigner->check_options(s->assign_options, s->assign_options_at, err);
    if (st != DETLOSS_OK) {
      free_work(w, num_images);
      return st;
    }
  }
  dl_parallel_blocks(num_images, 1, outer_threads, phase2, &run);
  for (size_t i = 0; i < num_images; i++) {
    if (w[i].st != DETLOSS_OK) {
      detloss_status st = w[i].st;
      if (err) *err = w[i].err;
      free_work(w, num_images);
      return st;
    }
  }

  /* Phase 3: the normalizer, the classification pass and the gradients. */
  float ema_new = 0.0f;
  double Z = normalize(s, w, num_images, &ema_new);
  dl_parallel_blocks(num_images, 1, outer_threads, phase3, &run);
  detloss_head_result r;
  memset(&r, 0, sizeof r);
  double cls_total = 0.0, box_total = 0.0;
  for (size_t i = 0; i < num_images; i++) {
    double cls_i = w[i].cls_sum * w[i].scale, box_i = w[i].box.sum * w[i].scale;
    cls_total += s->sum_then_scale ? w[i].cls_sum : cls_i;
    box_total += s->sum_then_scale ? w[i].box.sum : box_i;
    r.num_pos += w[i].counts[0];
    r.num_neg += w[i].counts[1];
    r.num_ignored += w[i].counts[2];
    r.num_sampled_pos += w[i].s_pos;
    r.num_sampled_neg += w[i].s_neg;
    if (per_image) {
      detloss_head_image_stats *st = &per_image[i];
      st->num_pos = w[i].counts[0];
      st->num_neg = w[i].counts[1];
      st->num_ignored = w[i].counts[2];
      st->num_sampled_pos = w[i].s_pos;
      st->num_sampled_neg = w[i].s_neg;
      st->loss_cls = (float)cls_i;
      st->loss_box_reg = (float)box_i;
    }
  }
  if (s->sum_then_scale && num_images > 0) { /* one scale for the whole batch */
    cls_total *= w[0].scale;
    box_total *= w[0].scale;
  }
  r.loss_cls = (float)cls_total;
  r.loss_box_reg = (float)box_total;
  r.normalizer = Z;
  r.nonfinite = !isfinite(r.loss_cls) || !isfinite(r.loss_box_reg);
  *result = r;
  if (s->norm == DL_HEAD_NORM_EMA) *s->ema_state = ema_new;
  free_work(w, num_images);
  return DETLOSS_OK;
}
