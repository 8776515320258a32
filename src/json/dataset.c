/*
 * dataset.c - data sets of ground-truth boxes: the common format of the
 * bundled data (data/README.md: xyxy pixels per image) and COCO instances_*.json files.
 * Boxes are read as they are; detloss_anchor_eval() clips, skips and counts.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "json/dataset_ids.h"
#include "json/dataset_stream.h"
#include "json/evalcfg.h"
#include "json/jread.h"
#include "json/jtree.h"

void dl_dataset_clear(detloss_dataset *ds) {
  free(ds->path);
  free(ds->name);
  free(ds->source);
  free(ds->license);
  free(ds->image_hw);
  free(ds->box_start);
  free(ds->boxes);
  free(ds->is_crowd);
  free(ds->image_id);
  memset(ds, 0, sizeof *ds);
}

void detloss_dataset_free(detloss_dataset *ds) {
  if (!ds) return;
  dl_dataset_clear(ds);
  free(ds);
}

detloss_eval_dataset detloss_dataset_view(const detloss_dataset *ds) {
  detloss_eval_dataset v;
  memset(&v, 0, sizeof v);
  if (!ds) return v;
  v.num_images = ds->num_images;
  v.image_hw = ds->image_hw;
  v.box_start = ds->box_start;
  v.boxes = ds->boxes;
  v.is_crowd = ds->is_crowd;
  return v;
}

static detloss_status num_at(const cJSON *v, const char *where, double *out, detloss_error *err) {
  DL_RETURN_ERROR_IF(!cJSON_IsNumber(v), err, DETLOSS_ERR_TYPE, where, "expected a number");
  DL_RETURN_ERROR_IF(!isfinite(v->valuedouble) || fabs(v->valuedouble) > 3.0e38, err,
                     DETLOSS_ERR_NONFINITE, where, "expected a finite number");
  *out = v->valuedouble;
  return DETLOSS_OK;
}

/* Image size "width"/"height": a finite number > 0. */
static detloss_status image_side(const cJSON *img, const char *key, const char *path, float *out,
                                 detloss_error *err) {
  char where[DETLOSS_WHERE_MAX];
  dlj_join(where, sizeof where, path, key);
  const cJSON *v = dlj_plain(img, key);
  DL_RETURN_ERROR_IF(!v, err, DETLOSS_ERR_MISSING, where,
                     "missing (expected the image %s in pixels)", key);
  double d = 0.0;
  DL_FORWARD_IF_ERROR(num_at(v, where, &d, err));
  DL_RETURN_ERROR_IF(!(d > 0.0 && d < 1e7), err, DETLOSS_ERR_RANGE, where,
                     "expected an image %s in (0, 1e7) pixels, got %g", key, d);
  *out = (float)d;
  return DETLOSS_OK;
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

/* The keys of each object (detloss_json.h documents them). The common format
 * is fully strict; "categories", "labels", "file", "split" and "notes" are part
 * of it but not read here. */
static const char *const TOP_KEYS[] = {"name",  "source",     "license", "format",
                                       "notes", "categories", "images",  NULL};
static const char *const IMAGE_KEYS[] = {"id",     "file",    "width", "height", "boxes",
                                         "labels", "iscrowd", "split", NULL};
/* COCO instances files: the keys read, then the standard COCO keys that are
 * skipped without being looked at (info, licenses and categories whole). Any
 * other key is an error, as in the common format. */
static const char *const COCO_TOP_KEYS[] = {"images",   "annotations", "info",
                                            "licenses", "categories",  NULL};
static const char *const COCO_IMAGE_KEYS[] = {"id",         "width",         "height",
                                              "file_name",  "license",       "coco_url",
                                              "flickr_url", "date_captured", NULL};
static const char *const COCO_ANN_KEYS[] = {"image_id",      "bbox", "iscrowd",      "id",
                                            "category_id",   "area", "segmentation", "keypoints",
                                            "num_keypoints", NULL};

static detloss_status read_common(const cJSON *root, detloss_dataset *ds, detloss_error *err) {
  DL_FORWARD_IF_ERROR(dlj_check_keys(root, "", TOP_KEYS, err));
  const char *fmt = NULL;
  DL_FORWARD_IF_ERROR(dlj_string(root, "format", "", 0, &fmt, err));
  DL_RETURN_ERROR_IF(fmt && strcmp(fmt, "xyxy_pixels") != 0, err, DETLOSS_ERR_UNKNOWN, "format",
                     "unknown box format '%s' (expected \"xyxy_pixels\")", fmt);
  const cJSON *imgs = dlj_plain(root, "images");
  size_t ni = (size_t)cJSON_GetArraySize(imgs), nb = 0, i = 0;
  /* Pass 1: shapes and counts. */
  for (const cJSON *im = imgs->child; im; im = im->next, i++) {
    char path[DETLOSS_WHERE_MAX], where[DETLOSS_WHERE_MAX];
    dlj_index(path, sizeof path, "images", i);
    DL_RETURN_ERROR_IF(!cJSON_IsObject(im), err, DETLOSS_ERR_TYPE, path,
                       "expected an image object");
    DL_FORWARD_IF_ERROR(dlj_check_keys(im, path, IMAGE_KEYS, err));
    const cJSON *b = dlj_plain(im, "boxes");
    dlj_join(where, sizeof where, path, "boxes");
    DL_RETURN_ERROR_IF(!b, err, DETLOSS_ERR_MISSING, where,
                       "missing (expected an array of [x1, y1, x2, y2], [] for none)");
    DL_RETURN_ERROR_IF(!cJSON_IsArray(b), err, DETLOSS_ERR_TYPE, where,
                       "expected an array of [x1, y1, x2, y2]");
    nb += (size_t)cJSON_GetArraySize(b);
  }
  DL_FORWARD_IF_ERROR(alloc_all(ds, ni, nb, err));
  size_t r = 0;
  i = 0;
  ds->box_start[0] = 0;
  for (const cJSON *im = imgs->child; im; im = im->next, i++) {
    char path[DETLOSS_WHERE_MAX], where[DETLOSS_WHERE_MAX];
    dlj_index(path, sizeof path, "images", i);
    DL_FORWARD_IF_ERROR(image_side(im, "height", path, &ds->image_hw[2 * i], err));
    DL_FORWARD_IF_ERROR(image_side(im, "width", path, &ds->image_hw[2 * i + 1], err));
    long long id = (long long)i;
    DL_FORWARD_IF_ERROR(dlj_int(im, "id", path, 0, -(1LL << 53), 1LL << 53, &id, err));
    ds->image_id[i] = (int64_t)id;
    const cJSON *b = dlj_plain(im, "boxes");
    size_t j = 0, r0 = r;
    dlj_join(where, sizeof where, path, "boxes");
    for (const cJSON *row = b->child; row; row = row->next, j++, r++) {
      char sub[DETLOSS_WHERE_MAX];
      dlj_index(sub, sizeof sub, where, j);
      DL_RETURN_ERROR_IF(!cJSON_IsArray(row), err, DETLOSS_ERR_TYPE, sub,
                         "expected 4 numbers [x1, y1, x2, y2]");
      int len = cJSON_GetArraySize(row);
      DL_RETURN_ERROR_IF(len != 4, err, DETLOSS_ERR_SHAPE, sub, "expected 4 numbers, got %d", len);
      int k = 0;
      for (const cJSON *e = row->child; e; e = e->next, k++) {
        char s2[DETLOSS_WHERE_MAX];
        double v = 0.0;
        dlj_index(s2, sizeof s2, sub, (size_t)k);
        DL_FORWARD_IF_ERROR(num_at(e, s2, &v, err));
        ds->boxes[4 * r + (size_t)k] = (float)v;
      }
    }
    const cJSON *cr = dlj_plain(im, "iscrowd");
    if (cr) {
      dlj_join(where, sizeof where, path, "iscrowd");
      DL_RETURN_ERROR_IF(!cJSON_IsArray(cr), err, DETLOSS_ERR_TYPE, where,
                         "expected an array of 0/1, one per box");
      DL_RETURN_ERROR_IF((size_t)cJSON_GetArraySize(cr) != r - r0, err, DETLOSS_ERR_SHAPE, where,
                         "expected %zu flags (one per box), got %d", r - r0,
                         cJSON_GetArraySize(cr));
      size_t q = 0;
      for (const cJSON *e = cr->child; e; e = e->next, q++) {
        char sub[DETLOSS_WHERE_MAX];
        dlj_index(sub, sizeof sub, where, q);
        int flag;
        if (cJSON_IsBool(e))
          flag = cJSON_IsTrue(e);
        else if (cJSON_IsNumber(e) && (e->valuedouble == 0.0 || e->valuedouble == 1.0))
          flag = e->valuedouble == 1.0;
        else
          return dl_fail(err, DETLOSS_ERR_TYPE, sub, "expected 0 or 1");
        ds->is_crowd[r0 + q] = (uint8_t)flag;
      }
    }
    ds->box_start[i + 1] = r;
  }
  return DETLOSS_OK;
}

/* COCO instances: images [{id, width, height}], annotations [{image_id, bbox, iscrowd}]. */
static detloss_status read_coco(const cJSON *root, detloss_dataset *ds, detloss_error *err) {
  ds->is_coco = 1;
  DL_FORWARD_IF_ERROR(dlj_check_keys(root, "", COCO_TOP_KEYS, err));
  const cJSON *imgs = dlj_plain(root, "images"), *anns = dlj_plain(root, "annotations");
  DL_RETURN_ERROR_IF(!cJSON_IsArray(anns), err, DETLOSS_ERR_TYPE, "annotations",
                     "expected an array of annotation objects");
  size_t ni = (size_t)cJSON_GetArraySize(imgs), na = (size_t)cJSON_GetArraySize(anns);
  DL_FORWARD_IF_ERROR(alloc_all(ds, ni, na, err));
  dl_idpair *ids = malloc(ni * sizeof *ids);
  size_t *img_of = malloc((na ? na : 1) * sizeof *img_of);
  size_t *fill = calloc(ni + 1, sizeof *fill);
  detloss_status st = DETLOSS_OK;
  if (!ids || !img_of || !fill) st = dl_fail(err, DETLOSS_ERR_NOMEM, "images", "out of memory");
  size_t i = 0;
  for (const cJSON *im = imgs->child; st == DETLOSS_OK && im; im = im->next, i++) {
    char path[DETLOSS_WHERE_MAX];
    dlj_index(path, sizeof path, "images", i);
    if (!cJSON_IsObject(im)) {
      st = dl_fail(err, DETLOSS_ERR_TYPE, path, "expected an image object");
      break;
    }
    long long id = 0;
    st = dlj_check_keys(im, path, COCO_IMAGE_KEYS, err);
    if (st == DETLOSS_OK) st = dlj_int(im, "id", path, 1, -(1LL << 53), 1LL << 53, &id, err);
    if (st == DETLOSS_OK) st = image_side(im, "height", path, &ds->image_hw[2 * i], err);
    if (st == DETLOSS_OK) st = image_side(im, "width", path, &ds->image_hw[2 * i + 1], err);
    ds->image_id[i] = (int64_t)id;
    if (ids) {
      ids[i].id = (int64_t)id;
      ids[i].idx = i;
    }
  }
  if (st == DETLOSS_OK) {
    qsort(ids, ni, sizeof *ids, dl_idpair_cmp);
    for (size_t q = 1; q < ni; q++)
      if (ids[q].id == ids[q - 1].id) {
        char path[DETLOSS_WHERE_MAX];
        dlj_index(path, sizeof path, "images",
                  ids[q].idx > ids[q - 1].idx ? ids[q].idx : ids[q - 1].idx);
        st = dl_fail(err, DETLOSS_ERR_RANGE, path, "duplicate image id %lld", (long long)ids[q].id);
        break;
      }
  }
  size_t a = 0;
  for (const cJSON *an = anns ? anns->child : NULL; st == DETLOSS_OK && an; an = an->next, a++) {
    char path[DETLOSS_WHERE_MAX], where[DETLOSS_WHERE_MAX];
    dlj_index(path, sizeof path, "annotations", a);
    if (!cJSON_IsObject(an)) {
      st = dl_fail(err, DETLOSS_ERR_TYPE, path, "expected an annotation object");
      break;
    }
    long long id = 0;
    st = dlj_check_keys(an, path, COCO_ANN_KEYS, err);
    if (st == DETLOSS_OK) st = dlj_int(an, "image_id", path, 1, -(1LL << 53), 1LL << 53, &id, err);
    if (st != DETLOSS_OK) break;
    size_t im = dl_idpair_find(ids, ni, (int64_t)id);
    if (im == SIZE_MAX) {
      dlj_join(where, sizeof where, path, "image_id");
      st = dl_fail(err, DETLOSS_ERR_RANGE, where, "no image has id %lld", id);
      break;
    }
    img_of[a] = im;
    fill[im + 1]++;
  }
  if (st == DETLOSS_OK) {
    ds->box_start[0] = 0;
    for (size_t q = 0; q < ni; q++) ds->box_start[q + 1] = ds->box_start[q] + fill[q + 1];
    for (size_t q = 0; q < ni; q++) fill[q] = ds->box_start[q];
  }
  a = 0;
  for (const cJSON *an = anns ? anns->child : NULL; st == DETLOSS_OK && an; an = an->next, a++) {
    char path[DETLOSS_WHERE_MAX], where[DETLOSS_WHERE_MAX];
    dlj_index(path, sizeof path, "annotations", a);
    dlj_join(where, sizeof where, path, "bbox");
    const cJSON *bb = dlj_plain(an, "bbox");
    if (!bb) {
      st = dl_fail(err, DETLOSS_ERR_MISSING, where, "missing (expected [x, y, w, h])");
      break;
    }
    if (!cJSON_IsArray(bb) || cJSON_GetArraySize(bb) != 4) {
      st = dl_fail(err, cJSON_IsArray(bb) ? DETLOSS_ERR_SHAPE : DETLOSS_ERR_TYPE, where,
                   "expected 4 numbers [x, y, w, h]");
      break;
    }
    double v[4];
    int k = 0;
    for (const cJSON *e = bb->child; e && st == DETLOSS_OK; e = e->next, k++) {
      char sub[DETLOSS_WHERE_MAX];
      dlj_index(sub, sizeof sub, where, (size_t)k);
      st = num_at(e, sub, &v[k], err);
    }
    if (st != DETLOSS_OK) break;
    size_t r = fill[img_of[a]]++;
    /* COCO bbox [x, y, w, h] -> [x, y, x + w, y + h] (sums in double, one rounding). */
    ds->boxes[4 * r + 0] = (float)v[0];
    ds->boxes[4 * r + 1] = (float)v[1];
    ds->boxes[4 * r + 2] = (float)(v[0] + v[2]);
    ds->boxes[4 * r + 3] = (float)(v[1] + v[3]);
    const cJSON *cr = dlj_plain(an, "iscrowd");
    if (cr) {
      dlj_join(where, sizeof where, path, "iscrowd");
      if (cJSON_IsBool(cr))
        ds->is_crowd[r] = (uint8_t)cJSON_IsTrue(cr);
      else if (cJSON_IsNumber(cr) && (cr->valuedouble == 0.0 || cr->valuedouble == 1.0))
        ds->is_crowd[r] = cr->valuedouble == 1.0;
      else
        st = dl_fail(err, DETLOSS_ERR_TYPE, where, "expected 0 or 1");
    }
  }
  free(ids);
  free(img_of);
  free(fill);
  return st;
}

detloss_status dl_dataset_read(const cJSON *root, const char *path, detloss_dataset *ds,
                               detloss_error *err) {
  memset(ds, 0, sizeof *ds);
  detloss_status st = DETLOSS_OK;
  char where[DETLOSS_WHERE_MAX];
  if (!cJSON_IsObject(root)) {
    st = dl_fail(err, DETLOSS_ERR_TYPE, path[0] ? path : "(root)",
                 "expected a data set object with \"images\"");
    return st;
  }
  const cJSON *imgs = dlj_plain(root, "images");
  dlj_join(where, sizeof where, path, "images");
  if (!imgs)
    return dl_fail(err, DETLOSS_ERR_MISSING, where, "missing (expected an array of images)");
  if (!cJSON_IsArray(imgs))
    return dl_fail(err, DETLOSS_ERR_TYPE, where, "expected an array of images");
  if (cJSON_GetArraySize(imgs) == 0)
    return dl_fail(err, DETLOSS_ERR_SHAPE, where, "the data set has no images");
  if (dlj_plain(root, "annotations")) {
    st = read_coco(root, ds, err);
  } else {
    const char *s = NULL;
    if (st == DETLOSS_OK) st = dlj_string(root, "name", "", 0, &s, err);
    if (st == DETLOSS_OK) ds->name = dlj_dupstr(s);
    s = NULL;
    if (st == DETLOSS_OK) st = dlj_string(root, "source", "", 0, &s, err);
    if (st == DETLOSS_OK) ds->source = dlj_dupstr(s);
    s = NULL;
    if (st == DETLOSS_OK) st = dlj_string(root, "license", "", 0, &s, err);
    if (st == DETLOSS_OK) ds->license = dlj_dupstr(s);
    if (st == DETLOSS_OK) st = read_common(root, ds, err);
  }
  if (st != DETLOSS_OK) {
    dlj_path at;
    dlj_path_init(&at, path);
    dlj_locate(err, &at, NULL, 0);
    dl_dataset_clear(ds);
  }
  return st;
}

detloss_status detloss_dataset_parse(const char *text, size_t len, const char *path,
                                     detloss_dataset **out, detloss_error *err) {
  return detloss_dataset_parse_ex(text, len, path, NULL, out, err);
}

/* Every image side at most lim->max_image_side (images keep their order in
 * both formats, so images[i] names the image in the file). */
static detloss_status check_sides(const detloss_dataset *ds, const detloss_json_limits *lim,
                                  detloss_error *err) {
  for (size_t i = 0; i < 2 * ds->num_images; i++) {
    char where[DETLOSS_WHERE_MAX];
    snprintf(where, sizeof where, "images[%zu].%s", i / 2, i % 2 ? "width" : "height");
    DL_FORWARD_IF_ERROR(dl_check_side(lim, (double)ds->image_hw[i], where, err));
  }
  return DETLOSS_OK;
}

/* The stream's result checked against the limits; errors name the file. */
static detloss_status read_stream(dljs *j, const char *file, const detloss_json_limits *lim,
                                  detloss_dataset **out, detloss_error *err) {
  detloss_dataset *ds = malloc(sizeof *ds);
  if (!ds) return dl_fail(err, DETLOSS_ERR_NOMEM, file, "out of memory");
  detloss_status st = dl_dataset_stream(j, ds, err);
  if (st == DETLOSS_OK) {
    st = check_sides(ds, lim, err);
    if (st != DETLOSS_OK) {
      dl_dataset_clear(ds);
      dl_where_file(err, file);
    }
  }
  if (st == DETLOSS_OK) {
    ds->path = dlj_dupstr(file);
    if (!ds->path) {
      dl_dataset_clear(ds);
      st = dl_fail(err, DETLOSS_ERR_NOMEM, file, "out of memory");
    }
  }
  if (st != DETLOSS_OK) {
    free(ds);
    return st;
  }
  *out = ds;
  return DETLOSS_OK;
}

/* Both entry points read the text as a stream of tokens (dataset_stream.c):
 * no tree is built, so memory grows with the boxes, not with the file. */
detloss_status detloss_dataset_parse_ex(const char *text, size_t len, const char *path,
                                        const detloss_json_limits *limits, detloss_dataset **out,
                                        detloss_error *err) {
  DL_RETURN_ERROR_IF(!text || !out, err, DETLOSS_ERR_NULL, !text ? "text" : "out", "is NULL");
  const char *file = path ? path : "(text)";
  detloss_json_limits lim = dl_json_limits(limits);
  DL_RETURN_ERROR_IF(len > lim.max_input_bytes, err, DETLOSS_ERR_RANGE, file,
                     "the input is larger than the limit max_input_bytes = %zu",
                     lim.max_input_bytes);
  dljs j;
  DL_FORWARD_IF_ERROR(dlj_stream_open_mem(&j, text, len, file, err));
  detloss_status st = read_stream(&j, file, &lim, out, err);
  dlj_stream_close(&j);
  return st;
}

detloss_status detloss_dataset_load(const char *path, detloss_dataset **out, detloss_error *err) {
  return detloss_dataset_load_ex(path, NULL, out, err);
}

detloss_status detloss_dataset_load_ex(const char *path, const detloss_json_limits *limits,
                                       detloss_dataset **out, detloss_error *err) {
  DL_RETURN_ERROR_IF(!path || !out, err, DETLOSS_ERR_NULL, !path ? "path" : "out", "is NULL");
  detloss_json_limits lim = dl_json_limits(limits);
  struct stat sb;
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
    return detloss_dataset_load_yolo(path, NULL, &lim, out, err);
  FILE *f = fopen(path, "rb");
  if (!f)
    return dl_fail(err,
                   errno == ENOENT || errno == ENOTDIR ? DETLOSS_ERR_NOT_FOUND : DETLOSS_ERR_IO,
                   path, "cannot open: %s", strerror(errno));
  dljs j;
  detloss_status st = dlj_stream_open_file(&j, f, path, lim.max_input_bytes, err);
  if (st == DETLOSS_OK) {
    st = read_stream(&j, path, &lim, out, err);
    dlj_stream_close(&j);
  }
  fclose(f);
  return st;
}
