/*
 * dataset_yolo.c - YOLO label directories as data sets (detloss_json.h,
 * detloss_dataset_load_yolo): one text file per image, one box per line
 * "class cx cy w h" with the centre and size normalized by the image's width
 * and height (the YOLOv5 / YOLOv8 label format, docs.ultralytics.com
 * "datasets/detect"). Image sizes come from the header of the image file
 * beside each label file (labels/ <-> images/, as YOLOv5's img2label_paths
 * maps them) or from the options (one size for every image).
 */
#define _POSIX_C_SOURCE 200809L /* getline, strtok_r, opendir */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "json/evalcfg.h"
#include "json/jread.h"

detloss_yolo_options detloss_yolo_options_default(void) {
  detloss_yolo_options o = DETLOSS_YOLO_OPTIONS_INIT;
  return o;
}

static int is_dir(const char *path) {
  struct stat st;
  return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A growing list of malloc'ed relative paths. */
typedef struct names {
  char **v;
  size_t n, cap;
} names;

static void names_free(names *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
}

static int names_add(names *l, const char *s) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 256;
    char **p = realloc(l->v, cap * sizeof *p);
    if (!p) return 0;
    l->v = p;
    l->cap = cap;
  }
  if (!(l->v[l->n] = dlj_dupstr(s))) return 0;
  l->n++;
  return 1;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int ends_with(const char *s, const char *suf) {
  size_t n = strlen(s), k = strlen(suf);
  return n >= k && strcmp(s + n - k, suf) == 0;
}

/* The *.txt files under root/rel (recursively, at most 16 levels), relative to root. */
static detloss_status walk(const char *root, const char *rel, int depth, names *out,
                           detloss_error *err) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s%s%s", root, rel[0] ? "/" : "", rel);
  DIR *d = opendir(dir);
  if (!d)
    return dl_fail(err, DETLOSS_ERR_IO, dir, "cannot read the directory: %s", strerror(errno));
  detloss_status st = DETLOSS_OK;
  struct dirent *e;
  while (st == DETLOSS_OK && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue; /* ., .., hidden files and caches */
    char sub[4096], full[4096];
    snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
    snprintf(full, sizeof full, "%s/%s", root, sub);
    if (is_dir(full)) {
      if (depth < 16) st = walk(root, sub, depth + 1, out, err);
    } else if (ends_with(e->d_name, ".txt")) {
      if (!names_add(out, sub)) st = dl_fail(err, DETLOSS_ERR_NOMEM, dir, "out of memory");
    }
  }
  closedir(d);
  return st;
}

static unsigned be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }
static unsigned long be32(const unsigned char *p) {
  return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
}

/* Width and height from a PNG's IHDR chunk (PNG spec, section 11.2.2: the
 * 8-byte signature, then the IHDR chunk: length, "IHDR", width, height as
 * 4-byte big-endian numbers) or a JPEG's start-of-frame segment (ITU T.81,
 * B.2.2: SOFn = FFC0..FFCF except C4 DHT, C8 JPG, CC DAC; after the 2-byte
 * length, 1 byte precision, 2 bytes height, 2 bytes width). EXIF
 * orientation is not applied: the sizes are those of the stored pixels. */
static detloss_status image_size(const char *file, double *w, double *h, detloss_error *err) {
  FILE *f = fopen(file, "rb");
  if (!f) return dl_fail(err, DETLOSS_ERR_IO, file, "cannot open: %s", strerror(errno));
  unsigned char b[32];
  detloss_status st = DETLOSS_OK;
  size_t got = fread(b, 1, 24, f);
  if (got >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) {
    if (got < 24 || memcmp(b + 12, "IHDR", 4) != 0)
      st = dl_fail(err, DETLOSS_ERR_PARSE, file, "cannot read the image size: no PNG IHDR chunk");
    else {
      *w = (double)be32(b + 16);
      *h = (double)be32(b + 20);
    }
  } else if (got >= 2 && b[0] == 0xFF && b[1] == 0xD8) {
    long pos = 2;
    st = DETLOSS_ERR_PARSE;
    for (int seg = 0; seg < 100000; seg++) {
      if (fseek(f, pos, SEEK_SET) != 0 || fread(b, 1, 2, f) != 2 || b[0] != 0xFF) break;
      unsigned m = b[1];
      while (m == 0xFF) { /* fill bytes */
        if (fread(b + 1, 1, 1, f) != 1) break;
        m = b[1];
        pos++;
      }
      if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { /* no length */
        pos += 2;
        continue;
      }
      if (m == 0xD9 || m == 0xDA) break; /* end of image or scan before a frame */
      if (fread(b + 2, 1, 2, f) != 2) break;
      unsigned len = be16(b + 2);
      if (len < 2) break;
      if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
        if (len < 7 || fread(b + 4, 1, 5, f) != 5) break;
        *h = (double)be16(b + 5);
        *w = (double)be16(b + 7);
        st = DETLOSS_OK;
        break;
      }
      pos += 2 + (long)len;
    }
    if (st != DETLOSS_OK)
      st = dl_fail(err, DETLOSS_ERR_PARSE, file,
                   "cannot read the image size: no JPEG start-of-frame marker before the data");
  } else {
    st =
        dl_fail(err, DETLOSS_ERR_PARSE, file, "cannot read the image size: not a PNG or JPEG file");
  }
  fclose(f);
  if (st == DETLOSS_OK && !(*w > 0.0 && *h > 0.0))
    st = dl_fail(err, DETLOSS_ERR_RANGE, file, "the image header gives a size of %.0f x %.0f", *w,
                 *h);
  return st;
}

/* images_dir/stem.{jpg,jpeg,png,...}: the first that exists, into out. */
static int find_image(const char *images, const char *rel_txt, char *out, size_t cap) {
  static const char *const EXT[] = {".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"};
  size_t stem = strlen(rel_txt) - 4;
  for (size_t k = 0; k < sizeof EXT / sizeof *EXT; k++) {
    int n = snprintf(out, cap, "%s/%.*s%s", images, (int)stem, rel_txt, EXT[k]);
    if (n < 0 || (size_t)n >= cap) continue;
    FILE *f = fopen(out, "rb");
    if (f) {
      fclose(f);
      return 1;
    }
  }
  snprintf(out, cap, "%s/%.*s.jpg", images, (int)stem, rel_txt);
  return 0;
}

/* The labels and images directories of dir: dir/labels and dir/images when
 * dir has a labels/ subdirectory; else dir itself and the path with its last
 * "labels" component replaced by "images" (YOLOv5's img2label_paths, read
 * backwards). */
static void layout(const char *dir, char *labels, char *images, size_t cap) {
  char probe[4096];
  snprintf(probe, sizeof probe, "%s/labels", dir);
  if (is_dir(probe)) {
    snprintf(labels, cap, "%s/labels", dir);
    snprintf(images, cap, "%s/images", dir);
    return;
  }
  snprintf(labels, cap, "%s", dir);
  snprintf(images, cap, "%s", dir);
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/') n--;
  for (size_t i = n; i >= 6; i--) {
    if (strncmp(dir + i - 6, "labels", 6) == 0 && (i == 6 || dir[i - 7] == '/') &&
        (i == n || dir[i] == '/')) {
      snprintf(images, cap, "%.*simages%s", (int)(i - 6), dir, dir + i);
      return;
    }
  }
}

/* Parses one label line; 0 columns for a blank line. */
static int split(char *line, char **col, int max) {
  int n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(line, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
    if (n < max) col[n] = tok;
    n++;
  }
  return n;
}

static int parse_num(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

typedef struct acc {
  float *boxes;
  size_t nb, cap;
} acc;

static detloss_status read_labels(const char *file, double W, double H, double tol, acc *a,
                                  detloss_error *err) {
  FILE *f = fopen(file, "rb");
  if (!f) return dl_fail(err, DETLOSS_ERR_IO, file, "cannot open: %s", strerror(errno));
  char *line = NULL;
  size_t cap = 0, lineno = 0;
  detloss_status st = DETLOSS_OK;
  while (st == DETLOSS_OK && getline(&line, &cap, f) >= 0) {
    lineno++;
    char where[DETLOSS_WHERE_MAX];
    snprintf(where, sizeof where, "%s: line %zu", file, lineno);
    char *col[5];
    int n = split(line, col, 5);
    if (n == 0) continue;
    if (n != 5) {
      st =
          dl_fail(err, DETLOSS_ERR_SHAPE, where, "expected 5 columns (class cx cy w h), got %d", n);
      break;
    }
    double v[5];
    for (int k = 0; k < 5 && st == DETLOSS_OK; k++)
      if (!parse_num(col[k], &v[k]))
        st = dl_fail(err, DETLOSS_ERR_TYPE, where, "column %d: expected a finite number, got '%s'",
                     k + 1, col[k]);
    if (st != DETLOSS_OK) break;
    if (!(v[0] >= 0.0 && v[0] == floor(v[0]) && v[0] < 1e9)) {
      st = dl_fail(err, DETLOSS_ERR_RANGE, where, "class %g: expected a whole number >= 0", v[0]);
      break;
    }
    if (!(v[3] > 0.0 && v[4] > 0.0)) {
      st = dl_fail(err, DETLOSS_ERR_RANGE, where, "box with a non-positive size (w = %g, h = %g)",
                   v[3], v[4]);
      break;
    }
    double x1 = v[1] - 0.5 * v[3], x2 = v[1] + 0.5 * v[3];
    double y1 = v[2] - 0.5 * v[4], y2 = v[2] + 0.5 * v[4];
    if (!(x1 >= -tol && y1 >= -tol && x2 <= 1.0 + tol && y2 <= 1.0 + tol)) {
      st = dl_fail(err, DETLOSS_ERR_RANGE, where,
                   "box [%g, %g, %g, %g] (xyxy, normalized) is outside [0, 1] by more than %g", x1,
                   y1, x2, y2, tol);
      break;
    }
    if (a->nb == a->cap) {
      size_t c = a->cap ? 2 * a->cap : 4096;
      float *p = realloc(a->boxes, c * 4 * sizeof *p);
      if (!p) {
        st = dl_fail(err, DETLOSS_ERR_NOMEM, file, "out of memory");
        break;
      }
      a->boxes = p;
      a->cap = c;
    }
    float *b = a->boxes + 4 * a->nb++;
    b[0] = (float)(x1 * W);
    b[1] = (float)(y1 * H);
    b[2] = (float)(x2 * W);
    b[3] = (float)(y2 * H);
  }
  if (st == DETLOSS_OK && ferror(f)) st = dl_fail(err, DETLOSS_ERR_IO, file, "read error");
  free(line);
  fclose(f);
  return st;
}

detloss_status detloss_dataset_load_yolo(const char *dir, const detloss_yolo_options *opt,
                                         const detloss_json_limits *limits, detloss_dataset **out,
                                         detloss_error *err) {
  DL_RETURN_ERROR_IF(!dir || !out, err, DETLOSS_ERR_NULL, !dir ? "dir" : "out", "is NULL");
  detloss_yolo_options o = opt ? *opt : detloss_yolo_options_default();
  detloss_json_limits lim = dl_json_limits(limits);
  int given = o.image_w > 0.0f || o.image_h > 0.0f;
  DL_RETURN_ERROR_IF(given && !(o.image_w > 0.0f && o.image_h > 0.0f && isfinite(o.image_w) &&
                                isfinite(o.image_h)),
                     err, DETLOSS_ERR_RANGE, "image_size", "expected a width and a height > 0");
  DL_RETURN_ERROR_IF(!(o.tolerance >= 0.0 && o.tolerance <= 1.0), err, DETLOSS_ERR_RANGE,
                     "tolerance", "expected a number in [0, 1], got %g", o.tolerance);
  char labels[4096], images[4096];
  layout(dir, labels, images, sizeof labels);
  DL_RETURN_ERROR_IF(!is_dir(labels), err, DETLOSS_ERR_NOT_FOUND, dir,
                     "not a directory of YOLO label files");
  names files = {NULL, 0, 0};
  detloss_status st = walk(labels, "", 0, &files, err);
  if (st == DETLOSS_OK && files.n == 0)
    st = dl_fail(err, DETLOSS_ERR_SHAPE, labels,
                 "no label files (*.txt): the data set has no images");
  if (st == DETLOSS_OK) qsort(files.v, files.n, sizeof *files.v, cmp_str);
  detloss_dataset *ds = calloc(1, sizeof *ds);
  acc a = {NULL, 0, 0};
  if (st == DETLOSS_OK && !ds) st = dl_fail(err, DETLOSS_ERR_NOMEM, dir, "out of memory");
  if (st == DETLOSS_OK) {
    ds->num_images = files.n;
    ds->image_hw = malloc(2 * files.n * sizeof(float));
    ds->box_start = malloc((files.n + 1) * sizeof(size_t));
    ds->image_id = malloc(files.n * sizeof(int64_t));
    if (!ds->image_hw || !ds->box_start || !ds->image_id)
      st = dl_fail(err, DETLOSS_ERR_NOMEM, dir, "out of memory");
    else
      ds->box_start[0] = 0;
  }
  for (size_t i = 0; st == DETLOSS_OK && i < files.n; i++) {
    char lab[8192], img[8192];
    snprintf(lab, sizeof lab, "%s/%s", labels, files.v[i]);
    double W = o.image_w, H = o.image_h;
    if (!given) {
      if (!find_image(images, files.v[i], img, sizeof img)) {
        st = dl_fail(err, DETLOSS_ERR_NOT_FOUND, lab,
                     "no image beside the label file (looked for %s and .jpeg, .png; or give "
                     "the image size)",
                     img);
        break;
      }
      st = image_size(img, &W, &H, err);
      if (st != DETLOSS_OK) break;
    }
    char where[DETLOSS_WHERE_MAX];
    snprintf(where, sizeof where, "%s: height", given ? "image_size" : img);
    st = dl_check_side(&lim, H, where, err);
    if (st == DETLOSS_OK) {
      snprintf(where, sizeof where, "%s: width", given ? "image_size" : img);
      st = dl_check_side(&lim, W, where, err);
    }
    if (st != DETLOSS_OK) break;
    ds->image_hw[2 * i] = (float)H;
    ds->image_hw[2 * i + 1] = (float)W;
    ds->image_id[i] = (int64_t)i;
    st = read_labels(lab, W, H, o.tolerance, &a, err);
    ds->box_start[i + 1] = a.nb;
  }
  if (st == DETLOSS_OK) {
    ds->num_boxes = a.nb;
    ds->boxes = a.boxes ? a.boxes : malloc(4 * sizeof(float));
    a.boxes = NULL;
    ds->is_crowd = calloc(a.nb ? a.nb : 1, 1);
    ds->path = dlj_dupstr(dir);
    if (!ds->boxes || !ds->is_crowd || !ds->path)
      st = dl_fail(err, DETLOSS_ERR_NOMEM, dir, "out of memory");
  }
  free(a.boxes);
  names_free(&files);
  if (st != DETLOSS_OK) {
    detloss_dataset_free(ds);
    return st;
  }
  *out = ds;
  return DETLOSS_OK;
}
