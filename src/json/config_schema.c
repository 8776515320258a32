/*
 * config_schema.c - the descriptor tables of a run config's option sections
 * (matcher, sampler, box_coder, loss, eval, resize), the reader that fills an
 * options struct through a table, and detloss_config_describe().
 *
 * House style (STYLE.md "Options, buffers, threads"): one descriptor table
 * per options struct (JSON key, type, offset, range, doc); the default is
 * read from the struct's own _default() value, so it is written once. The
 * reader, the range checks and detloss_config_describe() (--help-config and
 * docs) all read the tables.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/config_internal.h"
#include "json/evalcfg.h"
#include "json/jread.h"
#include "json/names.h"

typedef enum dtype {
  DT_F32,  /* float */
  DT_F64,  /* double */
  DT_BOOL, /* int, 0 or 1 */
  DT_I64,  /* int64_t */
  DT_U64,  /* uint64_t */
  DT_SIZE, /* size_t */
  DT_ENUM, /* an enum (int-sized), by name */
  DT_F32X4 /* float[4] */
} dtype;

typedef struct desc {
  const char *key;
  dtype type;
  size_t offset;
  double lo, hi; /* range (inclusive unless the open flags say otherwise) */
  int lo_open, hi_open;
  const char *const *names; /* DT_ENUM: names in enum order, NULL-terminated */
  const char *doc;
} desc;

#define INF_ HUGE_VAL
#define SEMANTICS dlj_semantics_names
static const char *const METRICS[] = {"iou", "wh_ratio", NULL};
#define RPN_CONV dlj_rpn_convention_names
#define BOX_LOSS dlj_box_loss_names
#define RETINA_NORM dlj_normalizer_names

#define OFF(T, f) offsetof(T, f)
static const desc MATCH_DESC[] = {
    {"high", DT_F32, OFF(detloss_match_options, high), 0, 1, 0, 0, NULL, "IoU >= high: positive"},
    {"low", DT_F32, OFF(detloss_match_options, low), 0, 1, 0, 0, NULL,
     "IoU < low: negative; between low and high: ignored (<= high)"},
    {"allow_low_quality", DT_BOOL, OFF(detloss_match_options, allow_low_quality), 0, 1, 0, 0, NULL,
     "each gt's best anchors become positives (torchvision allow_low_quality_matches)"},
    {"low_quality_min_iou", DT_F32, OFF(detloss_match_options, low_quality_min_iou), 0, 1, 0, 0,
     NULL, "promote a gt's best anchors only if their IoU >= this (mmdet min_pos_iou)"},
    {"semantics", DT_ENUM, OFF(detloss_match_options, semantics), 0, 0, 0, 0, SEMANTICS,
     "matcher semantics: torchvision, detectron2 or mmdet"},
    {"gt_max_assign_all", DT_BOOL, OFF(detloss_match_options, gt_max_assign_all), 0, 1, 0, 0, NULL,
     "mmdet: promote all tied best anchors (else the first)"},
    {"crowd_ioa_thresh", DT_F32, OFF(detloss_match_options, crowd_ioa_thresh), -INF_, 1, 1, 0, NULL,
     "anchors covered by a crowd box more than this are ignored (< 0: never)"},
    {"allowed_border", DT_F32, OFF(detloss_match_options, allowed_border), -INF_, INF_, 1, 1, NULL,
     "ignore anchors more than this outside the image (py-faster-rcnn; < 0: off)"},
};
static const desc SAMPLE_DESC[] = {
    {"batch_size_per_image", DT_I64, OFF(detloss_sample_options, batch_size_per_image), 0, 1e9, 0,
     0, NULL, "anchors sampled per image"},
    {"positive_fraction", DT_F64, OFF(detloss_sample_options, positive_fraction), 0, 1, 0, 0, NULL,
     "at most this fraction of the sample is positive"},
    {"seed", DT_U64, OFF(detloss_sample_options, seed), 0, 1.8e19, 0, 0, NULL,
     "seed of the counter-based sampler"},
};
static const desc CODER_DESC[] = {
    {"weights", DT_F32X4, OFF(detloss_coder_options, weights), 0, INF_, 1, 1, NULL,
     "(wx, wy, ww, wh) delta weights"},
    {"clip", DT_F32, OFF(detloss_coder_options, clip), 0, INF_, 1, 1, NULL,
     "decode: dw, dh clamped to at most this (ln(1000/16))"},
};
static const desc RPN_DESC[] = {
    {"convention", DT_ENUM, OFF(detloss_rpn_options, convention), 0, 0, 0, 0, RPN_CONV,
     "normalizer convention; also selects that library's defaults (detloss_rpn_options_preset)"},
    {"box_loss", DT_ENUM, OFF(detloss_rpn_options, box_loss), 0, 0, 0, 0, BOX_LOSS,
     "box regression loss"},
    {"smooth_l1_beta", DT_F32, OFF(detloss_rpn_options, smooth_l1_beta), 0, INF_, 0, 1, NULL,
     "smooth-L1 beta (0 = L1)"},
};
static const desc RETINA_DESC[] = {
    {"alpha", DT_F32, OFF(detloss_retina_options, alpha), -INF_, 1, 1, 0, NULL,
     "focal alpha (< 0 disables the weighting)"},
    {"gamma", DT_F32, OFF(detloss_retina_options, gamma), 0, INF_, 0, 1, NULL, "focal gamma"},
    {"box_loss", DT_ENUM, OFF(detloss_retina_options, box_loss), 0, 0, 0, 0, BOX_LOSS,
     "box regression loss"},
    {"smooth_l1_beta", DT_F32, OFF(detloss_retina_options, smooth_l1_beta), 0, INF_, 0, 1, NULL,
     "smooth-L1 beta (0 = L1)"},
    {"normalizer", DT_ENUM, OFF(detloss_retina_options, normalizer), 0, 0, 0, 0, RETINA_NORM,
     "per-image max(1, positives) (torchvision), detectron2's EMA, or the caller's number"},
    {"ema_momentum", DT_F32, OFF(detloss_retina_options, ema_momentum), 0, 1, 0, 0, NULL,
     "detectron2_ema momentum"},
    {"caller_normalizer", DT_F64, OFF(detloss_retina_options, caller_normalizer), 0, INF_, 1, 1,
     NULL, "caller: the batch sums are divided by this (e.g. the positives of all workers)"},
};
static const desc EVAL_DESC[] = {
    {"metric", DT_ENUM, OFF(detloss_eval_options, metric), 0, 0, 0, 0, METRICS,
     "iou, or wh_ratio (YOLOv5 autoanchor shape ratio)"},
    {"iou_thresh", DT_F32, OFF(detloss_eval_options, iou_thresh), 0, 1, 1, 0, NULL,
     "an anchor fits a gt when IoU >= this"},
    {"ratio_thresh", DT_F32, OFF(detloss_eval_options, ratio_thresh), 1, INF_, 0, 1, NULL,
     "wh_ratio: fits when r > 1/ratio_thresh (YOLOv5 anchor_t)"},
    {"positives", DT_BOOL, OFF(detloss_eval_options, count_positives), 0, 1, 0, 0, NULL,
     "count each gt's positives under the matcher"},
    {"worst", DT_SIZE, OFF(detloss_eval_options, num_worst), 0, DETLOSS_EVAL_MAX_WORST, 0, 0, NULL,
     "worst-covered gts to list"},
};
static const desc RESIZE_DESC[] = {
    {"min_size", DT_F32, OFF(detloss_eval_options, resize_min_size), 0, 1e6, 0, 0, NULL,
     "short side target (with max_size: torchvision min(min/short, max/long)); 0 = off"},
    {"max_size", DT_F32, OFF(detloss_eval_options, resize_max_size), 0, 1e6, 0, 0, NULL,
     "long side target (alone: the long side becomes exactly this, YOLO imgsz); 0 = off"},
};
#define NDESC(t) (sizeof t / sizeof t[0])

struct dlj_table {
  const desc *t;
  size_t n;
};
const dlj_table dlj_match_table = {MATCH_DESC, NDESC(MATCH_DESC)};
const dlj_table dlj_sample_table = {SAMPLE_DESC, NDESC(SAMPLE_DESC)};
const dlj_table dlj_coder_table = {CODER_DESC, NDESC(CODER_DESC)};
const dlj_table dlj_rpn_table = {RPN_DESC, NDESC(RPN_DESC)};
const dlj_table dlj_retina_table = {RETINA_DESC, NDESC(RETINA_DESC)};
const dlj_table dlj_eval_table = {EVAL_DESC, NDESC(EVAL_DESC)};
const dlj_table dlj_resize_table = {RESIZE_DESC, NDESC(RESIZE_DESC)};

static const char *type_doc(const desc *d, char *buf, size_t cap) {
  switch (d->type) {
    case DT_BOOL: return "true|false";
    case DT_ENUM: {
      size_t n = 0;
      buf[0] = '\0';
      for (size_t i = 0; d->names[i]; i++) {
        n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s", i ? "|" : "", d->names[i]);
        if (n >= cap) break;
      }
      return buf;
    }
    case DT_F32X4:
      snprintf(buf, cap, "[4 numbers in %s%g, %g%s]", d->lo_open ? "(" : "[", d->lo, d->hi,
               d->hi_open ? ")" : "]");
      return buf;
    case DT_I64:
    case DT_U64:
    case DT_SIZE: snprintf(buf, cap, "integer in [%g, %g]", d->lo, d->hi); return buf;
    default:
      snprintf(buf, cap, "number in %s%g, %g%s", d->lo_open ? "(" : "[", d->lo, d->hi,
               d->hi_open ? ")" : "]");
      return buf;
  }
}

static void value_doc(const desc *d, const void *base, char *buf, size_t cap) {
  const char *p = (const char *)base + d->offset;
  switch (d->type) {
    case DT_F32: {
      float v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%g", (double)v);
      break;
    }
    case DT_F64: {
      double v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%.9g", v);
      break;
    }
    case DT_BOOL: {
      int v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%s", v ? "true" : "false");
      break;
    }
    case DT_I64: {
      int64_t v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%lld", (long long)v);
      break;
    }
    case DT_U64: {
      uint64_t v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%llu", (unsigned long long)v);
      break;
    }
    case DT_SIZE: {
      size_t v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%zu", v);
      break;
    }
    case DT_ENUM: {
      int v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "\"%s\"", d->names[v]);
      break;
    }
    case DT_F32X4: {
      float v[4];
      memcpy(v, p, sizeof v);
      snprintf(buf, cap, "[%g, %g, %g, %g]", (double)v[0], (double)v[1], (double)v[2],
               (double)v[3]);
      break;
    }
  }
}

static detloss_status check_range(const desc *d, double v, const char *where, detloss_error *err) {
  int ok = (d->lo_open ? v > d->lo : v >= d->lo) && (d->hi_open ? v < d->hi : v <= d->hi);
  if (ok) return DETLOSS_OK;
  char t[160];
  return dl_fail(err, DETLOSS_ERR_RANGE, where, "expected a %s, got %g", type_doc(d, t, sizeof t),
                 v);
}

static detloss_status finite_number(const cJSON *v, const char *where, const char *what,
                                    double *out, detloss_error *err) {
  DL_RETURN_ERROR_IF(!cJSON_IsNumber(v), err, DETLOSS_ERR_TYPE, where, "expected a %s", what);
  DL_RETURN_ERROR_IF(!isfinite(v->valuedouble), err, DETLOSS_ERR_NONFINITE, where,
                     "expected a finite number");
  *out = v->valuedouble;
  return DETLOSS_OK;
}

/* Reads obj (at JSON path `path`) into the struct at dst through the table. */
static detloss_status read_table(const cJSON *obj, const char *path, const desc *t, size_t n,
                                 void *dst, detloss_error *err) {
  DL_RETURN_ERROR_IF(!cJSON_IsObject(obj), err, DETLOSS_ERR_TYPE, path, "expected an object");
  const char *keys[32];
  for (size_t i = 0; i < n; i++) keys[i] = t[i].key;
  keys[n] = NULL;
  DL_FORWARD_IF_ERROR(dlj_check_keys(obj, path, keys, err));
  for (size_t i = 0; i < n; i++) {
    const desc *d = &t[i];
    const cJSON *v = dlj_field(obj, d->key);
    if (!v) continue;
    char where[DETLOSS_WHERE_MAX], tdoc[160];
    dlj_join(where, sizeof where, path, d->key);
    char *p = (char *)dst + d->offset;
    double x = 0.0;
    switch (d->type) {
      case DT_BOOL: {
        DL_RETURN_ERROR_IF(!cJSON_IsBool(v), err, DETLOSS_ERR_TYPE, where,
                           "expected true or false");
        int b = cJSON_IsTrue(v) ? 1 : 0;
        memcpy(p, &b, sizeof b);
        break;
      }
      case DT_ENUM: {
        DL_RETURN_ERROR_IF(!cJSON_IsString(v), err, DETLOSS_ERR_TYPE, where, "expected one of %s",
                           type_doc(d, tdoc, sizeof tdoc));
        int found = dlj_name_index(d->names, v->valuestring);
        int cnt = (int)dlj_name_count(d->names);
        if (found < 0) {
          const char *hint = dl_suggest(v->valuestring, d->names, (size_t)cnt);
          if (hint)
            return dl_fail(err, DETLOSS_ERR_UNKNOWN, where,
                           "unknown name '%s' (did you mean '%s'?)", v->valuestring, hint);
          return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "unknown name '%s' (expected %s)",
                         v->valuestring, type_doc(d, tdoc, sizeof tdoc));
        }
        memcpy(p, &found, sizeof found);
        break;
      }
      case DT_F32X4: {
        DL_RETURN_ERROR_IF(!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 4, err,
                           cJSON_IsArray(v) ? DETLOSS_ERR_SHAPE : DETLOSS_ERR_TYPE, where,
                           "expected 4 numbers");
        float w[4];
        int k = 0;
        for (const cJSON *e = v->child; e; e = e->next, k++) {
          char sub[DETLOSS_WHERE_MAX];
          dlj_index(sub, sizeof sub, where, (size_t)k);
          DL_FORWARD_IF_ERROR(finite_number(e, sub, "number", &x, err));
          DL_FORWARD_IF_ERROR(check_range(d, x, sub, err));
          w[k] = (float)x;
        }
        memcpy(p, w, sizeof w);
        break;
      }
      default: {
        DL_FORWARD_IF_ERROR(finite_number(v, where, type_doc(d, tdoc, sizeof tdoc), &x, err));
        DL_FORWARD_IF_ERROR(check_range(d, x, where, err));
        if (d->type == DT_F32) {
          float f = (float)x;
          memcpy(p, &f, sizeof f);
        } else if (d->type == DT_F64) {
          memcpy(p, &x, sizeof x);
        } else {
          DL_RETURN_ERROR_IF(x != floor(x), err, DETLOSS_ERR_TYPE, where,
                             "expected an integer, got %g", x);
          if (d->type == DT_I64) {
            int64_t q = (int64_t)x;
            memcpy(p, &q, sizeof q);
          } else if (d->type == DT_U64) {
            uint64_t q = (uint64_t)x;
            memcpy(p, &q, sizeof q);
          } else {
            size_t q = (size_t)x;
            memcpy(p, &q, sizeof q);
          }
        }
      }
    }
  }
  return DETLOSS_OK;
}

detloss_status dlj_read_table(const cJSON *obj, const char *path, const dlj_table *t, void *dst,
                              detloss_error *err) {
  return read_table(obj, path, t->t, t->n, dst, err);
}

typedef struct table_ref {
  const char *path;
  const desc *t;
  size_t n;
  const void *def_a; /* default value (first head) */
  const void *def_b; /* a second default where heads differ, or NULL */
  const char *name_a, *name_b;
} table_ref;

char *detloss_config_describe(void) {
  detloss_rpn_options rpn = detloss_rpn_options_default();
  detloss_retina_options ret = detloss_retina_options_default();
  detloss_match_options none_match = detloss_match_options_default();
  detloss_sample_options smp = detloss_sample_options_default();
  detloss_coder_options cod = detloss_coder_options_default();
  detloss_eval_options ev = detloss_eval_options_default();
  (void)none_match;
  const table_ref refs[] = {
      {"eval", EVAL_DESC, NDESC(EVAL_DESC), &ev, NULL, NULL, NULL},
      {"resize", RESIZE_DESC, NDESC(RESIZE_DESC), &ev, NULL, NULL, NULL},
      {"matcher", MATCH_DESC, NDESC(MATCH_DESC), &rpn.match, &ret.match, "rpn", "retinanet"},
      {"sampler", SAMPLE_DESC, NDESC(SAMPLE_DESC), &smp, NULL, NULL, NULL},
      {"box_coder", CODER_DESC, NDESC(CODER_DESC), &cod, NULL, NULL, NULL},
      {"loss (head rpn)", RPN_DESC, NDESC(RPN_DESC), &rpn, NULL, NULL, NULL},
      {"loss (head retinanet)", RETINA_DESC, NDESC(RETINA_DESC), &ret, NULL, NULL, NULL},
  };
  dlj_buf b;
  dlj_buf_init(&b);
  dlj_raw(&b,
          "config keys (all optional except \"anchors\"; unknown keys are errors):\n"
          "  name, source, notes            strings\n"
          "  head                           \"rpn\" (default) | \"retinanet\" | \"none\": which "
          "defaults apply\n"
          "  anchors                        file name (anchors/) or an inline anchor set\n"
          "  dataset                        default data set file (relative to the config)\n");
  for (size_t r = 0; r < sizeof refs / sizeof refs[0]; r++) {
    char line[512];
    snprintf(line, sizeof line, "%s:\n", refs[r].path);
    dlj_raw(&b, line);
    for (size_t i = 0; i < refs[r].n; i++) {
      const desc *d = &refs[r].t[i];
      char t[160], da[64], db[64], dflt[160];
      value_doc(d, refs[r].def_a, da, sizeof da);
      if (refs[r].def_b) {
        value_doc(d, refs[r].def_b, db, sizeof db);
        if (strcmp(da, db) != 0)
          snprintf(dflt, sizeof dflt, "%s (%s), %s (%s)", da, refs[r].name_a, db, refs[r].name_b);
        else
          snprintf(dflt, sizeof dflt, "%s", da);
      } else {
        snprintf(dflt, sizeof dflt, "%s", da);
      }
      snprintf(line, sizeof line, "  %-22s %-34s default %s\n  %-22s %s\n", d->key,
               type_doc(d, t, sizeof t), dflt, "", d->doc);
      dlj_raw(&b, line);
    }
  }
  if (b.oom) {
    dlj_buf_free(&b);
    return NULL;
  }
  return b.p;
}
