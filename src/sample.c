/*
 * sample.c - balanced positive/negative sampling with a counter-based generator.
 *
 * Counts (torchvision BalancedPositiveNegativeSampler, models/detection/_utils.py;
 * detectron2 subsample_labels, modeling/sampling.py):
 *   n_pos = min(|pos|, int(B * f)),  n_neg = min(|neg|, B - n_pos).
 * Choice: every anchor a gets a 64-bit key, the output of splitmix64 (Steele, Lea,
 * Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014) at counter
 * a + 1 of a stream whose state is derived from (seed, image_index). The n chosen
 * elements of a class are those with the n smallest (key, a) pairs. The keys are
 * i.i.d. uniform for practical purposes, so every n-subset is equally likely, as
 * with randperm(|pos|)[:n]; the chosen set is a pure function of
 * (seed, image_index, a), hence the same for any thread count and platform.
 * The k-th smallest pair is found by a quickselect over the keys below a
 * threshold that holds about k + 4 sqrt(k) + 64 of them (falling back to all).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "parallel.h"

#define SAMPLE_BLOCK 8192

detloss_sample_options detloss_sample_options_default(void) {
  detloss_sample_options o = DETLOSS_SAMPLE_OPTIONS_INIT;
  return o;
}

/* splitmix64 output function (the mixing step of Steele et al.). */
static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
#define GOLDEN 0x9E3779B97F4A7C15ull

static uint64_t stream_state(uint64_t seed, uint64_t image) {
  return mix64(mix64(seed + GOLDEN) ^ (image * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull));
}
static inline uint64_t key_of(uint64_t state, size_t a) {
  return mix64(state + ((uint64_t)a + 1) * GOLDEN);
}

typedef struct kv {
  uint64_t key;
  size_t idx;
} kv;

static inline int kv_less(kv a, kv b) { return a.key < b.key || (a.key == b.key && a.idx < b.idx); }

/* k-th smallest (0-based) of v[0..n) by (key, idx); reorders v. Deterministic
 * quickselect with a median-of-three pivot and a three-way partition. */
static kv select_kth(kv *v, size_t n, size_t k) {
  size_t lo = 0, hi = n - 1;
  for (;;) {
    if (lo == hi) return v[lo];
    size_t mid = lo + (hi - lo) / 2;
    kv a = v[lo], b = v[mid], c = v[hi], p;
    if (kv_less(a, b))
      p = kv_less(b, c) ? b : (kv_less(a, c) ? c : a);
    else
      p = kv_less(a, c) ? a : (kv_less(b, c) ? c : b);
    /* [lo, lt) < p, [lt, gt) == p, [gt, hi] > p */
    size_t lt = lo, i = lo, gt = hi + 1;
    while (i < gt) {
      if (kv_less(v[i], p)) {
        kv t = v[lt];
        v[lt++] = v[i];
        v[i++] = t;
      } else if (kv_less(p, v[i])) {
        kv t = v[--gt];
        v[gt] = v[i];
        v[i] = t;
      } else {
        i++;
      }
    }
    if (k < lt)
      hi = lt - 1;
    else if (k >= gt)
      lo = gt;
    else
      return p;
  }
}

enum { PICK_NONE = 0, PICK_ALL = 1, PICK_UPTO = 2 };

typedef struct sctx {
  const int64_t *m;
  int8_t *out;
  uint64_t state;
  size_t *cnt;     /* per block: [2] pos, neg counts, or candidate counts */
  uint64_t thr[2]; /* candidate: key <= thr[cls] */
  kv *cand[2];
  size_t *offs; /* per block and class: write offsets */
  int mode[2];
  kv kth[2];
} sctx;

static inline int cls_of(int64_t v) { return v >= 0 ? 0 : (v == -1 ? 1 : -1); }

static void count_blk(void *vc, size_t i0, size_t i1, size_t b) {
  sctx *c = vc;
  size_t n[2] = {0, 0};
  for (size_t a = i0; a < i1; a++) {
    int k = cls_of(c->m[a]);
    if (k >= 0) n[k]++;
  }
  c->cnt[2 * b] = n[0];
  c->cnt[2 * b + 1] = n[1];
}

static void cand_count_blk(void *vc, size_t i0, size_t i1, size_t b) {
  sctx *c = vc;
  size_t n[2] = {0, 0};
  for (size_t a = i0; a < i1; a++) {
    int k = cls_of(c->m[a]);
    if (k < 0 || c->mode[k] != PICK_UPTO) continue;
    if (key_of(c->state, a) <= c->thr[k]) n[k]++;
  }
  c->cnt[2 * b] = n[0];
  c->cnt[2 * b + 1] = n[1];
}

static void cand_fill_blk(void *vc, size_t i0, size_t i1, size_t b) {
  sctx *c = vc;
  size_t o[2] = {c->offs[2 * b], c->offs[2 * b + 1]};
  for (size_t a = i0; a < i1; a++) {
    int k = cls_of(c->m[a]);
    if (k < 0 || c->mode[k] != PICK_UPTO) continue;
    uint64_t key = key_of(c->state, a);
    if (key <= c->thr[k]) {
      c->cand[k][o[k]].key = key;
      c->cand[k][o[k]].idx = a;
      o[k]++;
    }
  }
}

static void write_blk(void *vc, size_t i0, size_t i1, size_t b) {
  sctx *c = vc;
  (void)b;
  for (size_t a = i0; a < i1; a++) {
    int k = cls_of(c->m[a]);
    int8_t r = -1;
    if (k >= 0 && c->mode[k] != PICK_NONE) {
      int take = c->mode[k] == PICK_ALL;
      if (!take) {
        kv me = {key_of(c->state, a), a};
        take = !kv_less(c->kth[k], me);
      }
      if (take) r = k == 0 ? 1 : 0;
    }
    c->out[a] = r;
  }
}

detloss_status detloss_sample_balanced(const int64_t *matches, size_t num_anchors,
                                       uint64_t image_index, int8_t *sampled, size_t *num_pos,
                                       size_t *num_neg, const detloss_sample_options *opt,
                                       detloss_error *err) {
  detloss_sample_options o = opt ? *opt : detloss_sample_options_default();
  DL_RETURN_ERROR_IF(o.batch_size_per_image < 0, err, DETLOSS_ERR_RANGE, "batch_size_per_image",
                     "must be >= 0, got %lld", (long long)o.batch_size_per_image);
  DL_RETURN_ERROR_IF(!(o.positive_fraction >= 0.0 && o.positive_fraction <= 1.0), err,
                     DETLOSS_ERR_RANGE, "positive_fraction", "must be in [0, 1], got %g",
                     o.positive_fraction);
  DL_FORWARD_IF_ERROR(dl_check_ptr(matches, num_anchors, "matches", err));
  DL_FORWARD_IF_ERROR(dl_check_ptr(sampled, num_anchors, "sampled", err));
  DL_RETURN_ERROR_IF(num_anchors > DL_MAX_ELEMS, err, DETLOSS_ERR_SHAPE, "matches",
                     "%zu elements is more than can be addressed", num_anchors);
  dl_span sp[4] = {dl_span_of(matches, num_anchors, sizeof(int64_t), "matches", 0),
                   dl_span_of(sampled, num_anchors, sizeof(int8_t), "sampled", 1),
                   dl_span_of(num_pos, 1, sizeof(size_t), "num_pos", 1),
                   dl_span_of(num_neg, 1, sizeof(size_t), "num_neg", 1)};
  DL_FORWARD_IF_ERROR(dl_check_overlaps(sp, 4, err));
  for (size_t a = 0; a < num_anchors; a++) {
    if (matches[a] < -2) {
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "matches[%zu]", a);
      return dl_fail(err, DETLOSS_ERR_RANGE, where, "is %lld, expected >= -2",
                     (long long)matches[a]);
    }
  }
  sctx c;
  memset(&c, 0, sizeof c);
  c.m = matches;
  c.out = sampled;
  c.state = stream_state(o.seed, image_index);
  size_t nb = dl_num_blocks(num_anchors, SAMPLE_BLOCK);
  c.cnt = malloc((nb ? 2 * nb : 2) * sizeof(size_t));
  c.offs = malloc((nb ? 2 * nb : 2) * sizeof(size_t));
  if (!c.cnt || !c.offs) {
    free(c.cnt);
    free(c.offs);
    return dl_fail(err, DETLOSS_ERR_NOMEM, "sampled", "out of memory");
  }
  dl_parallel_blocks(num_anchors, SAMPLE_BLOCK, o.num_threads, count_blk, &c);
  size_t tot[2] = {0, 0};
  for (size_t b = 0; b < nb; b++) {
    tot[0] += c.cnt[2 * b];
    tot[1] += c.cnt[2 * b + 1];
  }
  /* torchvision: int(batch_size_per_image * positive_fraction), Python float product */
  double bf = (double)o.batch_size_per_image * o.positive_fraction;
  size_t budget_pos = (size_t)floor(bf);
  size_t B = (size_t)o.batch_size_per_image;
  size_t want[2];
  want[0] = tot[0] < budget_pos ? tot[0] : budget_pos;
  want[1] = tot[1] < B - want[0] ? tot[1] : B - want[0];
  for (int k = 0; k < 2; k++) {
    c.mode[k] = want[k] == 0 ? PICK_NONE : (want[k] == tot[k] ? PICK_ALL : PICK_UPTO);
    if (c.mode[k] == PICK_UPTO) {
      double frac = ((double)want[k] + 4.0 * sqrt((double)want[k]) + 64.0) / (double)tot[k];
      c.thr[k] = frac >= 1.0 ? UINT64_MAX : (uint64_t)(frac * 18446744073709551616.0);
    }
  }
  detloss_status st = DETLOSS_OK;
  for (int attempt = 0; attempt < 2 && (c.mode[0] == PICK_UPTO || c.mode[1] == PICK_UPTO);
       attempt++) {
    dl_parallel_blocks(num_anchors, SAMPLE_BLOCK, o.num_threads, cand_count_blk, &c);
    size_t n[2] = {0, 0};
    for (size_t b = 0; b < nb; b++)
      for (int k = 0; k < 2; k++) {
        c.offs[2 * b + k] = n[k];
        n[k] += c.cnt[2 * b + k];
      }
    int retry = 0;
    for (int k = 0; k < 2; k++)
      if (c.mode[k] == PICK_UPTO && n[k] < want[k]) {
        c.thr[k] = UINT64_MAX; /* too few below the threshold: take every candidate */
        retry = 1;
      }
    if (retry) continue;
    for (int k = 0; k < 2; k++) {
      c.cand[k] = NULL;
      if (c.mode[k] == PICK_UPTO) c.cand[k] = malloc(n[k] * sizeof(kv));
    }
    if ((c.mode[0] == PICK_UPTO && !c.cand[0]) || (c.mode[1] == PICK_UPTO && !c.cand[1])) {
      st = dl_fail(err, DETLOSS_ERR_NOMEM, "sampled", "out of memory");
    } else {
      dl_parallel_blocks(num_anchors, SAMPLE_BLOCK, o.num_threads, cand_fill_blk, &c);
      for (int k = 0; k < 2; k++)
        if (c.mode[k] == PICK_UPTO) c.kth[k] = select_kth(c.cand[k], n[k], want[k] - 1);
    }
    free(c.cand[0]);
    free(c.cand[1]);
    break;
  }
  if (st == DETLOSS_OK) {
    dl_parallel_blocks(num_anchors, SAMPLE_BLOCK, o.num_threads, write_blk, &c);
    if (num_pos) *num_pos = want[0];
    if (num_neg) *num_neg = want[1];
  }
  free(c.cnt);
  free(c.offs);
  return st;
}
