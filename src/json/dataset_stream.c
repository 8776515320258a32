/*
 * dataset_stream.c - data sets read as a stream of JSON tokens (jstream.h):
 * the common format of data/ (README: xyxy pixels per image) and COCO
 * instances_*.json files. Only what a data set needs is kept (per image its
 * id and size, per box 4 floats and a crowd flag); everything else
 * (segmentation polygons and RLE, info, licenses, categories, file names) is
 * skipped token by token and never built, so memory grows with the boxes,
 * not with the file.
 *
 * The result and the error for a faulty file are those of the tree reader
 * (dataset.c, dl_dataset_read): the same checks with the same messages. The
 * tree reader checks in passes (all images, then all annotations, ...); a
 * stream meets the faults in file order, so each fault found is given the
 * rank (phase, index, step) it has in the tree reader's order and the
 * smallest one is reported. Since "annotations" may come after "images",
 * both readings are followed until the end, each with its own error slot.
 * A syntax fault anywhere comes first, then a key given twice (dlj_parse's
 * order), then the faults below.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/dataset_ids.h"
#include "json/dataset_stream.h"
#include "json/evalcfg.h"
#include "json/jread.h"
#include "json/jstream.h"

typedef struct slot {
  int set, phase, step;
  size_t index;
  detloss_status st;
  detloss_error e;
} slot;

/* Keeps the fault of smallest rank. */
static void note(slot *s, int phase, size_t index, int step, detloss_status st,
                 const detloss_error *e) {
  if (st == DETLOSS_OK) return;
  if (s->set && (s->phase < phase || (s->phase == phase && s->index < index) ||
                 (s->phase == phase && s->index == index && s->step <= step)))
    return;
  s->set = 1;
  s->phase = phase;
  s->index = index;
  s->step = step;
  s->st = st;
  s->e = *e;
}

/* Whether a fault of this rank would be kept (messages are built only then). */
static int wants(const slot *s, int phase, size_t index, int step) {
  return !s->set || s->phase > phase || (s->phase == phase && s->index > index) ||
         (s->phase == phase && s->index == index && s->step > step);
}

/* A scalar seen in the stream, enough to rebuild the tree reader's message. */
typedef struct sval {
  int type; /* cJSON_Number, ...; 0 when absent */
  double num;
} sval;

/* An integer in [-2^53, 2^53] (jread's dlj_int accepts it). */
static int int_ok(const sval *v) {
  return v->type == cJSON_Number && v->num == floor(v->num) && fabs(v->num) <= 9007199254740992.0;
}

static int cjson_type(dljs_kind k) {
  switch (k) {
    case DLJS_NUMBER: return cJSON_Number;
    case DLJS_STRING: return cJSON_String;
    case DLJS_TRUE: return cJSON_True;
    case DLJS_FALSE: return cJSON_False;
    case DLJS_NULL: return cJSON_NULL;
    case DLJS_BEGIN_ARRAY: return cJSON_Array;
    case DLJS_BEGIN_OBJECT: return cJSON_Object;
    default: return cJSON_Invalid;
  }
}

/* The current value as an sval; containers are skipped. 0 on a stream fault. */
static int take(dljs *j, sval *v) {
  v->type = cjson_type(j->kind);
  v->num = j->kind == DLJS_NUMBER ? dlj_stream_number(j) : 0.0;
  return dlj_stream_skip(j) != DLJS_ERROR;
}

/* A one-key cJSON object on the stack holding v, for jread's getters. */
typedef struct stub {
  cJSON obj, item;
} stub;

static const cJSON *mkstub(stub *s, const char *key, const sval *v) {
  memset(s, 0, sizeof *s);
  s->obj.type = cJSON_Object;
  if (v && v->type) {
    s->obj.child = &s->item;
    s->item.type = v->type;
    s->item.valuedouble = v->num;
    s->item.string = (char *)(uintptr_t)key;
    if (v->type == cJSON_String) s->item.valuestring = (char *)(uintptr_t) ""; /* never written */
  }
  return &s->obj;
}

/* jread.c's dlj_check_keys for one key. */
static detloss_status check_key(const char *key, const char *path, const char *const *allowed,
                                detloss_error *e) {
  for (size_t k = 0; allowed[k]; k++)
    if (strcmp(key, allowed[k]) == 0) return DETLOSS_OK;
  stub s;
  sval v = {cJSON_NULL, 0.0};
  return dlj_check_keys(mkstub(&s, key, &v), path, allowed, e);
}

/* dataset.c's num_at. */
static detloss_status num_at(const sval *v, const char *where, double *out, detloss_error *e) {
  DL_RETURN_ERROR_IF(v->type != cJSON_Number, e, DETLOSS_ERR_TYPE, where, "expected a number");
  DL_RETURN_ERROR_IF(!isfinite(v->num) || fabs(v->num) > 3.0e38, e, DETLOSS_ERR_NONFINITE, where,
                     "expected a finite number");
  *out = v->num;
  return DETLOSS_OK;
}

/* dataset.c's image_side. */
static detloss_status image_side(const sval *v, const char *key, const char *path, float *out,
                                 detloss_error *e) {
  if (v->type == cJSON_Number && v->num > 0.0 && v->num < 1e7) {
    *out = (float)v->num;
    return DETLOSS_OK;
  }
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, key);
  DL_RETURN_ERROR_IF(!v->type, e, DETLOSS_ERR_MISSING, where,
                     "missing (expected the image %s in pixels)", key);
  double d = 0.0;
  DL_FORWARD_IF_ERROR(num_at(v, where, &d, e));
  DL_RETURN_ERROR_IF(!(d > 0.0 && d < 1e7), e, DETLOSS_ERR_RANGE, where,
                     "expected an image %s in (0, 1e7) pixels, got %g", key, d);
  *out = (float)d;
  return DETLOSS_OK;
}

/* A 0/1 flag (true/false or the numbers 0 and 1). */
static int flag_of(const sval *v, uint8_t *out) {
  if (v->type == cJSON_True || v->type == cJSON_False) {
    *out = v->type == cJSON_True;
    return 1;
  }
  if (v->type == cJSON_Number && (v->num == 0.0 || v->num == 1.0)) {
    *out = v->num == 1.0;
    return 1;
  }
  return 0;
}

static const char *const TOP_KEYS[] = {"name",  "source",     "license", "format",
                                       "notes", "categories", "images",  NULL};
static const char *const IMAGE_KEYS[] = {"id",     "file",    "width", "height", "boxes",
                                         "labels", "iscrowd", "split", NULL};
static const char *const COCO_TOP_KEYS[] = {"images",   "annotations", "info",
                                            "licenses", "categories",  NULL};
static const char *const COCO_IMAGE_KEYS[] = {"id",         "width",         "height",
                                              "file_name",  "license",       "coco_url",
                                              "flickr_url", "date_captured", NULL};
static const char *const COCO_ANN_KEYS[] = {"image_id",      "bbox", "iscrowd",      "id",
                                            "category_id",   "area", "segmentation", "keypoints",
                                            "num_keypoints", NULL};

/* Ranks: the tree reader's passes. */
enum {
  /* common format */
  C_ROOT = 1,  /* steps: name 1, source 2, license 3, keys 4, format 5 */
  C_IMAGE = 2, /* pass 1 per image: object 0, keys 1, boxes 2 */
  C_BOXES = 3, /* pass 2 per image: height 1, width 2, id 3, boxes 4, iscrowd 5-7 */
  /* COCO */
  K_ROOT = 1,  /* keys 1, annotations 2 */
  K_IMAGE = 2, /* object 0, keys 1, id 2, height 3, width 4 */
  K_DUP = 3,   /* duplicate image ids */
  K_ANN = 4,   /* object 0, keys 1, image_id 2, unknown image 3 */
  K_BBOX = 5   /* bbox 1-3, iscrowd 4 */
};

typedef struct rd {
  dljs *j;
  slot early, common, coco;
  int have_images, images_array, have_ann;
  char *name, *source, *license;
  /* images */
  size_t ni, cap_i;
  float *hw;
  int64_t *id;
  size_t *box_end; /* common: boxes[0, box_end[i]) belong to images 0..i */
  /* common boxes */
  size_t nb, cap_b;
  float *boxes;
  uint8_t *crowd;
  /* COCO annotations */
  size_t na, cap_a;
  float *abox;
  int64_t *aimg; /* image id, or INT64_MIN when not valid */
  uint8_t *acrowd;
  int nomem;
} rd;

/* Grows each of n arrays (elem[k] bytes per element) to hold need elements. */
static int grow_n(size_t *cap, size_t need, void **p[], const size_t *elem, int n) {
  if (need <= *cap) return 1;
  size_t c = *cap ? *cap : 1024;
  while (c < need) c *= 2;
  for (int k = 0; k < n; k++) {
    void *q = realloc(*p[k], c * elem[k]);
    if (!q) return 0;
    *p[k] = q;
  }
  *cap = c;
  return 1;
}

static int grow_images(rd *r) {
  void **p[] = {(void **)&r->hw, (void **)&r->id, (void **)&r->box_end};
  const size_t e[] = {2 * sizeof(float), sizeof(int64_t), sizeof(size_t)};
  return grow_n(&r->cap_i, r->ni + 1, p, e, 3);
}

static int grow_boxes(rd *r, size_t need) {
  void **p[] = {(void **)&r->boxes, (void **)&r->crowd};
  const size_t e[] = {4 * sizeof(float), 1};
  return grow_n(&r->cap_b, need, p, e, 2);
}

static int grow_anns(rd *r) {
  void **p[] = {(void **)&r->abox, (void **)&r->aimg, (void **)&r->acrowd};
  const size_t e[] = {4 * sizeof(float), sizeof(int64_t), 1};
  return grow_n(&r->cap_a, r->na + 1, p, e, 3);
}

/* One row [x1, y1, x2, y2] of a common-format image (current token: its
 * first). Returns 0 on a stream fault or out of memory. */
static int read_row(rd *r, size_t i, const char *bpath, size_t row) {
  dljs *j = r->j;
  char sub[DETLOSS_WHERE_MAX];
  detloss_error e;
  dlj_index(sub, sizeof sub, bpath, row);
  if (!grow_boxes(r, r->nb + 1)) return r->nomem = 1, 0;
  float *out = r->boxes + 4 * r->nb;
  r->crowd[r->nb] = 0;
  r->nb++;
  memset(out, 0, 4 * sizeof(float));
  if (j->kind != DLJS_BEGIN_ARRAY) {
    note(&r->common, C_BOXES, i, 4,
         dl_fail(&e, DETLOSS_ERR_TYPE, sub, "expected 4 numbers [x1, y1, x2, y2]"), &e);
    return dlj_stream_skip(j) != DLJS_ERROR;
  }
  int len = 0, bad = 0;
  detloss_error first;
  memset(&first, 0, sizeof first);
  detloss_status fst = DETLOSS_OK;
  for (;;) {
    dljs_kind k = dlj_stream_next(j);
    if (k == DLJS_ERROR) return 0;
    if (k == DLJS_END_ARRAY) break;
    sval v;
    if (!take(j, &v)) return 0;
    double d = 0.0;
    if (!bad && v.type == cJSON_Number && isfinite(v.num) && fabs(v.num) <= 3.0e38) {
      if (len < 4) out[len] = (float)v.num;
    } else if (!bad) {
      char s2[DETLOSS_WHERE_MAX];
      dlj_index(s2, sizeof s2, sub, (size_t)len);
      fst = num_at(&v, s2, &d, &first);
      bad = fst != DETLOSS_OK;
    }
    if (len < INT32_MAX) len++;
  }
  if (len != 4)
    note(&r->common, C_BOXES, i, 4,
         dl_fail(&e, DETLOSS_ERR_SHAPE, sub, "expected 4 numbers, got %d", len), &e);
  else if (bad)
    note(&r->common, C_BOXES, i, 4, fst, &first);
  else if (out[2] < out[0] || out[3] < out[1])
    /* an inverted box is a fault of the file, not a box to leave out (issue 18) */
    note(&r->common, C_BOXES, i, 4,
         dl_fail(&e, DETLOSS_ERR_RANGE, sub,
                 "%s: a box is [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2, got [%g, %g, %g, %g]",
                 out[2] < out[0] ? "x2 < x1" : "y2 < y1", (double)out[0], (double)out[1],
                 (double)out[2], (double)out[3]),
         &e);
  return 1;
}

/* One element of "images" (current token: its first). */
static int read_image(rd *r) {
  dljs *j = r->j;
  size_t i = r->ni;
  if (!grow_images(r)) return r->nomem = 1, 0;
  r->ni++;
  char path[DETLOSS_WHERE_MAX];
  detloss_error e;
  dlj_index(path, sizeof path, "images", i);
  r->hw[2 * i] = r->hw[2 * i + 1] = 0.0f;
  r->id[i] = (int64_t)i;
  size_t r0 = r->nb;
  if (j->kind != DLJS_BEGIN_OBJECT) {
    dl_fail(&e, DETLOSS_ERR_TYPE, path, "expected an image object");
    note(&r->common, C_IMAGE, i, 0, e.status, &e);
    note(&r->coco, K_IMAGE, i, 0, e.status, &e);
    r->box_end[i] = r->nb;
    return dlj_stream_skip(j) != DLJS_ERROR;
  }
  sval id = {0, 0.0}, w = {0, 0.0}, h = {0, 0.0};
  int have_boxes = 0, boxes_array = 0, have_crowd = 0, crowd_array = 0;
  uint8_t *flags = NULL;
  size_t nflags = 0, cap_flags = 0, bad_flag = SIZE_MAX;
  int ok = 1;
  for (;;) {
    dljs_kind k = dlj_stream_next(j);
    if (k == DLJS_ERROR) {
      ok = 0;
      break;
    }
    if (k == DLJS_END_OBJECT) break;
    const char *key = j->key;
    if (wants(&r->common, C_IMAGE, i, 1))
      note(&r->common, C_IMAGE, i, 1, check_key(key, path, IMAGE_KEYS, &e), &e);
    if (wants(&r->coco, K_IMAGE, i, 1))
      note(&r->coco, K_IMAGE, i, 1, check_key(key, path, COCO_IMAGE_KEYS, &e), &e);
    int which = strcmp(key, "id") == 0        ? 1
                : strcmp(key, "width") == 0   ? 2
                : strcmp(key, "height") == 0  ? 3
                : strcmp(key, "boxes") == 0   ? 4
                : strcmp(key, "iscrowd") == 0 ? 5
                                              : 0;
    k = dlj_stream_next(j);
    if (k == DLJS_ERROR) {
      ok = 0;
      break;
    }
    if (which >= 1 && which <= 3) {
      if (!take(j, which == 1 ? &id : which == 2 ? &w : &h)) {
        ok = 0;
        break;
      }
    } else if (which == 4 && k == DLJS_BEGIN_ARRAY) {
      have_boxes = boxes_array = 1;
      char bpath[DETLOSS_WHERE_MAX];
      dlj_join(bpath, sizeof bpath, path, "boxes");
      size_t row = 0;
      for (;;) {
        k = dlj_stream_next(j);
        if (k == DLJS_ERROR || k == DLJS_END_ARRAY) break;
        if (!read_row(r, i, bpath, row++)) {
          k = DLJS_ERROR;
          break;
        }
      }
      if (k == DLJS_ERROR) {
        ok = 0;
        break;
      }
    } else if (which == 5 && k == DLJS_BEGIN_ARRAY) {
      have_crowd = crowd_array = 1;
      for (;;) {
        k = dlj_stream_next(j);
        if (k == DLJS_ERROR || k == DLJS_END_ARRAY) break;
        sval v;
        if (!take(j, &v)) {
          k = DLJS_ERROR;
          break;
        }
        if (nflags == cap_flags) {
          size_t c = cap_flags ? 2 * cap_flags : 64;
          uint8_t *p = realloc(flags, c);
          if (!p) {
            r->nomem = 1;
            k = DLJS_ERROR;
            break;
          }
          flags = p;
          cap_flags = c;
        }
        if (!flag_of(&v, &flags[nflags]) && bad_flag == SIZE_MAX) bad_flag = nflags;
        nflags++;
      }
      if (k == DLJS_ERROR) {
        ok = 0;
        break;
      }
    } else {
      if (which == 4) have_boxes = 1;
      if (which == 5) have_crowd = 1;
      if (dlj_stream_skip(j) == DLJS_ERROR) {
        ok = 0;
        break;
      }
    }
  }
  if (ok) {
    char where[DETLOSS_WHERE_MAX];
    detloss_status st;
    /* common, pass 1: boxes present and an array */
    dlj_join(where, sizeof where, path, "boxes");
    if (!have_boxes)
      note(&r->common, C_IMAGE, i, 2,
           dl_fail(&e, DETLOSS_ERR_MISSING, where,
                   "missing (expected an array of [x1, y1, x2, y2], [] for none)"),
           &e);
    else if (!boxes_array)
      note(&r->common, C_IMAGE, i, 2,
           dl_fail(&e, DETLOSS_ERR_TYPE, where, "expected an array of [x1, y1, x2, y2]"), &e);
    /* sizes: the same check in both readings */
    st = image_side(&h, "height", path, &r->hw[2 * i], &e);
    note(&r->common, C_BOXES, i, 1, st, &e);
    note(&r->coco, K_IMAGE, i, 3, st, &e);
    st = image_side(&w, "width", path, &r->hw[2 * i + 1], &e);
    note(&r->common, C_BOXES, i, 2, st, &e);
    note(&r->coco, K_IMAGE, i, 4, st, &e);
    /* id: optional (default: the index) in the common format, required in COCO */
    if (int_ok(&id)) {
      r->id[i] = (int64_t)id.num; /* a valid id is the same in both readings */
    } else {
      stub s;
      long long v = (long long)i;
      st = dlj_int(mkstub(&s, "id", &id), "id", path, 0, -(1LL << 53), 1LL << 53, &v, &e);
      note(&r->common, C_BOXES, i, 3, st, &e);
      st = dlj_int(mkstub(&s, "id", &id), "id", path, 1, -(1LL << 53), 1LL << 53, &v, &e);
      note(&r->coco, K_IMAGE, i, 2, st, &e);
    }
    /* iscrowd of the common format: one flag per box */
    if (have_crowd) {
      dlj_join(where, sizeof where, path, "iscrowd");
      size_t nbox = r->nb - r0;
      if (!crowd_array) {
        note(&r->common, C_BOXES, i, 5,
             dl_fail(&e, DETLOSS_ERR_TYPE, where, "expected an array of 0/1, one per box"), &e);
      } else if (nflags != nbox) {
        note(&r->common, C_BOXES, i, 6,
             dl_fail(&e, DETLOSS_ERR_SHAPE, where, "expected %zu flags (one per box), got %d", nbox,
                     nflags > INT32_MAX ? INT32_MAX : (int)nflags),
             &e);
      } else if (bad_flag != SIZE_MAX) {
        char sub[DETLOSS_WHERE_MAX];
        dlj_index(sub, sizeof sub, where, bad_flag);
        note(&r->common, C_BOXES, i, 7, dl_fail(&e, DETLOSS_ERR_TYPE, sub, "expected 0 or 1"), &e);
      } else if (nflags) {
        memcpy(r->crowd + r0, flags, nflags);
      }
    }
  }
  free(flags);
  r->box_end[i] = r->nb;
  return ok;
}

/* One element of "annotations". */
static int read_ann(rd *r) {
  dljs *j = r->j;
  size_t a = r->na;
  if (!grow_anns(r)) return r->nomem = 1, 0;
  r->na++;
  r->aimg[a] = INT64_MIN;
  r->acrowd[a] = 0;
  memset(r->abox + 4 * a, 0, 4 * sizeof(float));
  char path[DETLOSS_WHERE_MAX], where[DETLOSS_WHERE_MAX];
  detloss_error e;
  dlj_index(path, sizeof path, "annotations", a);
  if (j->kind != DLJS_BEGIN_OBJECT) {
    note(&r->coco, K_ANN, a, 0,
         dl_fail(&e, DETLOSS_ERR_TYPE, path, "expected an annotation object"), &e);
    return dlj_stream_skip(j) != DLJS_ERROR;
  }
  sval img = {0, 0.0}, crowd = {0, 0.0};
  int have_bbox = 0, bbox_shape = 0; /* bbox_shape: 1 = 4 numbers, -1 = array of other size */
  double v[4] = {0, 0, 0, 0};
  detloss_status bst = DETLOSS_OK;
  detloss_error be;
  memset(&be, 0, sizeof be);
  for (;;) {
    dljs_kind k = dlj_stream_next(j);
    if (k == DLJS_ERROR) return 0;
    if (k == DLJS_END_OBJECT) break;
    const char *key = j->key;
    if (wants(&r->coco, K_ANN, a, 1))
      note(&r->coco, K_ANN, a, 1, check_key(key, path, COCO_ANN_KEYS, &e), &e);
    int which = strcmp(key, "image_id") == 0  ? 1
                : strcmp(key, "bbox") == 0    ? 2
                : strcmp(key, "iscrowd") == 0 ? 3
                                              : 0;
    k = dlj_stream_next(j);
    if (k == DLJS_ERROR) return 0;
    if (which == 1) {
      if (!take(j, &img)) return 0;
    } else if (which == 3) {
      if (!take(j, &crowd)) return 0;
    } else if (which == 2) {
      have_bbox = 1;
      if (k != DLJS_BEGIN_ARRAY) {
        bbox_shape = 0;
        if (dlj_stream_skip(j) == DLJS_ERROR) return 0;
        continue;
      }
      size_t n = 0;
      bst = DETLOSS_OK;
      for (;;) {
        k = dlj_stream_next(j);
        if (k == DLJS_ERROR) return 0;
        if (k == DLJS_END_ARRAY) break;
        sval x;
        if (!take(j, &x)) return 0;
        if (n < 4 && bst == DETLOSS_OK) {
          if (x.type == cJSON_Number && isfinite(x.num) && fabs(x.num) <= 3.0e38) {
            v[n] = x.num;
          } else {
            char sub[DETLOSS_WHERE_MAX];
            dlj_join(where, sizeof where, path, "bbox");
            dlj_index(sub, sizeof sub, where, n);
            bst = num_at(&x, sub, &v[n], &be);
          }
        }
        n++;
      }
      bbox_shape = n == 4 ? 1 : -1;
    } else if (dlj_stream_skip(j) == DLJS_ERROR) {
      return 0; /* segmentation, area, ...: skipped token by token */
    }
  }
  if (int_ok(&img)) {
    r->aimg[a] = (int64_t)img.num;
  } else {
    stub s;
    long long id = 0;
    note(&r->coco, K_ANN, a, 2,
         dlj_int(mkstub(&s, "image_id", &img), "image_id", path, 1, -(1LL << 53), 1LL << 53, &id,
                 &e),
         &e);
  }
  if (have_bbox && bbox_shape == 1 && bst == DETLOSS_OK && v[2] >= 0.0 && v[3] >= 0.0) {
    /* the common case: nothing to report */
  } else if (dlj_join(where, sizeof where, path, "bbox"), !have_bbox)
    note(&r->coco, K_BBOX, a, 1,
         dl_fail(&e, DETLOSS_ERR_MISSING, where, "missing (expected [x, y, w, h])"), &e);
  else if (bbox_shape != 1)
    note(&r->coco, K_BBOX, a, 2,
         dl_fail(&e, bbox_shape ? DETLOSS_ERR_SHAPE : DETLOSS_ERR_TYPE, where,
                 "expected 4 numbers [x, y, w, h]"),
         &e);
  else if (bst != DETLOSS_OK)
    note(&r->coco, K_BBOX, a, 3, bst, &be);
  else if (v[2] < 0.0 || v[3] < 0.0)
    note(&r->coco, K_BBOX, a, 3,
         dl_fail(&e, DETLOSS_ERR_RANGE, where,
                 "negative %s: a bbox is [x, y, w, h] with w, h >= 0, got [%g, %g, %g, %g]",
                 v[2] < 0.0 ? "width" : "height", v[0], v[1], v[2], v[3]),
         &e);
  float *b = r->abox + 4 * a;
  /* COCO bbox [x, y, w, h] -> [x, y, x + w, y + h] (sums in double, one rounding). */
  b[0] = (float)v[0];
  b[1] = (float)v[1];
  b[2] = (float)(v[0] + v[2]);
  b[3] = (float)(v[1] + v[3]);
  if (crowd.type) {
    dlj_join(where, sizeof where, path, "iscrowd");
    if (!flag_of(&crowd, &r->acrowd[a]))
      note(&r->coco, K_BBOX, a, 4, dl_fail(&e, DETLOSS_ERR_TYPE, where, "expected 0 or 1"), &e);
  }
  return 1;
}

/* A string of the common format's root ("name", "source", "license"). */
static int read_root_string(rd *r, const char *key, int step, char **out) {
  dljs *j = r->j;
  if (j->kind == DLJS_STRING) {
    const char *s = dlj_stream_string(j);
    if (!s) return 0;
    free(*out);
    *out = dlj_dupstr(s);
    if (!*out) return r->nomem = 1, 0;
    return 1;
  }
  sval v;
  if (!take(j, &v)) return 0;
  stub st;
  const char *dummy = NULL;
  detloss_error e;
  note(&r->common, C_ROOT, 0, step, dlj_string(mkstub(&st, key, &v), key, "", 1, &dummy, &e), &e);
  return 1;
}

/* The root object's members. 0 on a stream fault. */
static int read_root(rd *r, char **format) {
  dljs *j = r->j;
  detloss_error e;
  for (;;) {
    dljs_kind k = dlj_stream_next(j);
    if (k == DLJS_ERROR) return 0;
    if (k == DLJS_END_OBJECT) return 1;
    char key[16];
    snprintf(key, sizeof key, "%s", j->key);
    int known = strlen(j->key) < sizeof key - 1;
    note(&r->common, C_ROOT, 0, 4, check_key(j->key, "", TOP_KEYS, &e), &e);
    note(&r->coco, K_ROOT, 0, 1, check_key(j->key, "", COCO_TOP_KEYS, &e), &e);
    if (!known) key[0] = '\0';
    k = dlj_stream_next(j);
    if (k == DLJS_ERROR) return 0;
    int ok = 1;
    if (strcmp(key, "images") == 0) {
      r->have_images = 1;
      r->images_array = k == DLJS_BEGIN_ARRAY;
      if (k != DLJS_BEGIN_ARRAY) {
        ok = dlj_stream_skip(j) != DLJS_ERROR;
      } else {
        for (;;) {
          k = dlj_stream_next(j);
          if (k == DLJS_ERROR) return 0;
          if (k == DLJS_END_ARRAY) break;
          if (!read_image(r)) return 0;
        }
      }
    } else if (strcmp(key, "annotations") == 0) {
      r->have_ann = 1;
      if (k != DLJS_BEGIN_ARRAY) {
        note(&r->coco, K_ROOT, 0, 2,
             dl_fail(&e, DETLOSS_ERR_TYPE, "annotations",
                     "expected an array of annotation objects"),
             &e);
        ok = dlj_stream_skip(j) != DLJS_ERROR;
      } else {
        for (;;) {
          k = dlj_stream_next(j);
          if (k == DLJS_ERROR) return 0;
          if (k == DLJS_END_ARRAY) break;
          if (!read_ann(r)) return 0;
        }
      }
    } else if (strcmp(key, "name") == 0) {
      ok = read_root_string(r, "name", 1, &r->name);
    } else if (strcmp(key, "source") == 0) {
      ok = read_root_string(r, "source", 2, &r->source);
    } else if (strcmp(key, "license") == 0) {
      ok = read_root_string(r, "license", 3, &r->license);
    } else if (strcmp(key, "format") == 0) {
      ok = read_root_string(r, "format", 5, format);
    } else {
      ok = dlj_stream_skip(j) != DLJS_ERROR;
    }
    if (!ok) return 0;
  }
}

static detloss_status alloc_all(detloss_dataset *ds, size_t ni, size_t nb, detloss_error *err) {
  ds->num_images = ni;
  ds->num_boxes = nb;
  ds->image_hw = malloc(2 * ni * sizeof(float));
  ds->box_start = malloc((ni + 1) * sizeof(size_t));
  ds->boxes = malloc((nb ? nb : 1) * 4 * sizeof(float));
  ds->is_crowd = calloc(nb ? nb : 1, 1);
  ds->image_id = malloc(ni * sizeof(int64_t));
  DL_RETURN_ERROR_IF(!ds->image_hw || !ds->box_start || !ds->boxes || !ds->is_crowd ||
                         !ds->image_id,
                     err, DETLOSS_ERR_NOMEM, "images", "out of memory");
  return DETLOSS_OK;
}

static detloss_status from_slot(const slot *s, detloss_error *err) {
  if (err) *err = s->e;
  return s->st;
}

/* COCO: duplicate ids, annotation -> image, boxes grouped by image in file order. */
static detloss_status build_coco(rd *r, detloss_dataset *ds, detloss_error *err) {
  size_t ni = r->ni, na = r->na;
  dl_idpair *ids = malloc((ni ? ni : 1) * sizeof *ids);
  size_t *img_of = malloc((na ? na : 1) * sizeof *img_of);
  size_t *fill = calloc(ni + 1, sizeof *fill);
  detloss_status st = DETLOSS_OK;
  detloss_error e;
  if (!ids || !img_of || !fill) st = dl_fail(err, DETLOSS_ERR_NOMEM, "images", "out of memory");
  if (st == DETLOSS_OK) {
    for (size_t i = 0; i < ni; i++) ids[i] = (dl_idpair){r->id[i], i};
    qsort(ids, ni, sizeof *ids, dl_idpair_cmp);
    for (size_t q = 1; q < ni; q++)
      if (ids[q].id == ids[q - 1].id) {
        char path[DETLOSS_WHERE_MAX];
        dlj_index(path, sizeof path, "images", ids[q].idx);
        note(&r->coco, K_DUP, 0, 0,
             dl_fail(&e, DETLOSS_ERR_RANGE, path, "duplicate image id %lld", (long long)ids[q].id),
             &e);
        break;
      }
    for (size_t a = 0; a < na; a++) {
      img_of[a] = SIZE_MAX;
      if (r->aimg[a] == INT64_MIN) continue;
      size_t im = dl_idpair_find(ids, ni, r->aimg[a]);
      if (im == SIZE_MAX) {
        char where[DETLOSS_WHERE_MAX];
        snprintf(where, sizeof where, "annotations[%zu].image_id", a);
        note(&r->coco, K_ANN, a, 3,
             dl_fail(&e, DETLOSS_ERR_RANGE, where, "no image has id %lld", (long long)r->aimg[a]),
             &e);
        continue;
      }
      img_of[a] = im;
      fill[im + 1]++;
    }
    if (r->coco.set) st = from_slot(&r->coco, err);
  }
  if (st == DETLOSS_OK) st = alloc_all(ds, ni, na, err);
  if (st == DETLOSS_OK) {
    ds->box_start[0] = 0;
    for (size_t q = 0; q < ni; q++) ds->box_start[q + 1] = ds->box_start[q] + fill[q + 1];
    for (size_t q = 0; q < ni; q++) fill[q] = ds->box_start[q];
    memcpy(ds->image_hw, r->hw, 2 * ni * sizeof(float));
    memcpy(ds->image_id, r->id, ni * sizeof(int64_t));
    for (size_t a = 0; a < na; a++) {
      size_t q = fill[img_of[a]]++;
      memcpy(ds->boxes + 4 * q, r->abox + 4 * a, 4 * sizeof(float));
      ds->is_crowd[q] = r->acrowd[a];
    }
  }
  free(ids);
  free(img_of);
  free(fill);
  return st;
}

static detloss_status build_common(rd *r, detloss_dataset *ds, detloss_error *err) {
  DL_FORWARD_IF_ERROR(alloc_all(ds, r->ni, r->nb, err));
  memcpy(ds->image_hw, r->hw, 2 * r->ni * sizeof(float));
  memcpy(ds->image_id, r->id, r->ni * sizeof(int64_t));
  ds->box_start[0] = 0;
  memcpy(ds->box_start + 1, r->box_end, r->ni * sizeof(size_t));
  if (r->nb) {
    memcpy(ds->boxes, r->boxes, 4 * r->nb * sizeof(float));
    memcpy(ds->is_crowd, r->crowd, r->nb);
  }
  ds->name = r->name;
  ds->source = r->source;
  ds->license = r->license;
  r->name = r->source = r->license = NULL;
  return DETLOSS_OK;
}

static void rd_free(rd *r) {
  free(r->name);
  free(r->source);
  free(r->license);
  free(r->hw);
  free(r->id);
  free(r->box_end);
  free(r->boxes);
  free(r->crowd);
  free(r->abox);
  free(r->aimg);
  free(r->acrowd);
}

detloss_status dl_dataset_stream(dljs *j, detloss_dataset *ds, detloss_error *err) {
  memset(ds, 0, sizeof *ds);
  rd r;
  memset(&r, 0, sizeof r);
  r.j = j;
  char *format = NULL;
  detloss_error e;
  dljs_kind k = dlj_stream_next(j);
  int streamed = 1;
  if (k == DLJS_BEGIN_OBJECT) {
    streamed = read_root(&r, &format);
  } else if (k != DLJS_ERROR) {
    note(&r.early, 0, 0, 0,
         dl_fail(&e, DETLOSS_ERR_TYPE, "(root)", "expected a data set object with \"images\""), &e);
  }
  detloss_status st = DETLOSS_OK;
  if (r.nomem) {
    st = dl_fail(err, DETLOSS_ERR_NOMEM, j->file, "out of memory");
  } else {
    (void)streamed;
    st = dlj_stream_finish(j, err); /* syntax, then duplicate keys, come first */
  }
  int located = st != DETLOSS_OK; /* the stream's errors name the file already */
  if (st == DETLOSS_OK && !r.early.set) {
    if (!r.have_images)
      note(&r.early, 0, 0, 1,
           dl_fail(&e, DETLOSS_ERR_MISSING, "images", "missing (expected an array of images)"), &e);
    else if (!r.images_array)
      note(&r.early, 0, 0, 1,
           dl_fail(&e, DETLOSS_ERR_TYPE, "images", "expected an array of images"), &e);
    else if (r.ni == 0)
      note(&r.early, 0, 0, 1,
           dl_fail(&e, DETLOSS_ERR_SHAPE, "images", "the data set has no images"), &e);
  }
  if (st == DETLOSS_OK && r.early.set) st = from_slot(&r.early, err);
  if (st == DETLOSS_OK && r.have_ann) {
    ds->is_coco = 1;
    st = build_coco(&r, ds, err);
  } else if (st == DETLOSS_OK) {
    if (format && strcmp(format, "xyxy_pixels") != 0)
      note(&r.common, C_ROOT, 0, 6,
           dl_fail(&e, DETLOSS_ERR_UNKNOWN, "format",
                   "unknown box format '%s' (expected \"xyxy_pixels\")", format),
           &e);
    if (r.common.set)
      st = from_slot(&r.common, err);
    else
      st = build_common(&r, ds, err);
  }
  free(format);
  rd_free(&r);
  if (st != DETLOSS_OK) {
    if (!located) dl_where_file(err, j->file);
    dl_dataset_clear(ds);
  }
  return st;
}
