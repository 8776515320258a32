/*
 * detloss_json.h - the optional JSON layer: compute cases (and, later,
 * configs and data sets). Links cJSON; the numeric core (detloss.h) does not.
 */
#ifndef DETLOSS_JSON_H
#define DETLOSS_JSON_H

#include <stdio.h>

#include "detloss/detloss.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * detloss_json_limits - bounds on the work and memory one call of the JSON
 * layer may ask for, checked BEFORE any of that work starts. Hostile or
 * mistaken input (a stride of 0.001, an image of 9.9e6 px, resize.max_size
 * 1e6, a 100-byte compute case asking for a gigabyte of output, /dev/zero as
 * input) is then a DETLOSS_ERR_RANGE error naming the field and the limit,
 * never a run that does not end or an allocation the OS kills the process
 * for. The message ends in "... the limit <field> = <value>", so a caller
 * can say how to raise it: the `detloss` command reads the environment
 * variables in brackets below (the library itself never reads the
 * environment); a library caller passes its own struct.
 *
 *   max_input_bytes     1 GiB (2^30)    [DETLOSS_MAX_INPUT_BYTES]
 *       size of one JSON text: a compute input, a config, an anchor file,
 *       a data set (COCO's instances_train2017.json is 448 MB).
 *   max_output_numbers  2^24 = 16777216 [DETLOSS_MAX_OUTPUT_NUMBERS]
 *       numbers one compute case may return, estimated from its fields
 *       before it runs (iou N x M, anchors 4 x count, gradients, ...); also
 *       the anchors `detloss anchors -o` writes (4 per anchor). 2^24 numbers
 *       are 64 MiB as float32 and ~200 MB of JSON text; the largest real
 *       test vector (the 267069 anchors of an 800 x 1333 FPN) has 1.07 M.
 *   max_anchors         2^27 = 134217728 [DETLOSS_MAX_ANCHORS]
 *       anchors a grid anchor set may generate for ONE image (config with
 *       an image_size, `detloss anchors --image-size`, each image of
 *       `detloss eval` after resizing, compute ops anchors and
 *       anchor_eval). Real pyramids need far fewer: 267069 for 800 x 1333
 *       at strides 4..64, ~2 M for the largest benchmark, ~20 M for a
 *       4000 x 8000 px image at stride 4 with 9 anchors per cell.
 *   max_image_side      100000 px       [DETLOSS_MAX_IMAGE_SIDE]
 *       height or width of an image: data-set images, image_size fields,
 *       --image-size, resize.min_size / resize.max_size and every image
 *       after resizing.
 * A field of 0 means "the default" (so a zeroed struct is the defaults).
 */
typedef struct detloss_json_limits {
  size_t max_input_bytes;
  size_t max_output_numbers;
  size_t max_anchors;
  double max_image_side;
} detloss_json_limits;

#define DETLOSS_DEFAULT_MAX_INPUT_BYTES ((size_t)1 << 30)
#define DETLOSS_DEFAULT_MAX_OUTPUT_NUMBERS ((size_t)1 << 24)
#define DETLOSS_DEFAULT_MAX_ANCHORS ((size_t)1 << 27)
#define DETLOSS_DEFAULT_MAX_IMAGE_SIDE 100000.0

#define DETLOSS_JSON_LIMITS_INIT                                                                   \
  {                                                                                                \
    DETLOSS_DEFAULT_MAX_INPUT_BYTES, DETLOSS_DEFAULT_MAX_OUTPUT_NUMBERS,                           \
        DETLOSS_DEFAULT_MAX_ANCHORS, DETLOSS_DEFAULT_MAX_IMAGE_SIDE                                \
  }

/* The defaults above (the same as DETLOSS_JSON_LIMITS_INIT). Thread-safe. */
DETLOSS_API detloss_json_limits detloss_json_limits_default(void);

typedef struct detloss_compute_options {
  int num_threads;                   /* passed to every library call; 0 = OpenMP default */
  const detloss_json_limits *limits; /* NULL = detloss_json_limits_default() */
} detloss_compute_options;

#define DETLOSS_COMPUTE_OPTIONS_INIT                                                               \
  { 0, NULL }

/*
 * detloss_compute_json() - run `detloss compute` cases (docs/compute-cases.md).
 * text [len]: one JSON case object or an array of them, UTF-8; len counts
 * the text only (a NUL byte within len is an error). On success *out is a
 * malloc'ed, NUL-terminated JSON text (one result object, or an array in the
 * same order) ending in a newline, *out_len its length; free it with
 * detloss_free(). On error *out is left untouched and err names the JSON path
 * of the fault ("[1].boxes1[2]", "images[0].gt[3]"), or "line L, column C"
 * for a fault of the text. Input is strict: an unknown key in any object of a
 * case is DETLOSS_ERR_UNKNOWN ("[0].kidn", msg "unknown key (did you mean
 * 'kind'?)"); a key given twice is DETLOSS_ERR_PARSE naming its path
 * ("params.gamma", "duplicate key"); invalid JSON (also: text after the value
 * or after a NUL byte, invalid UTF-8, unpaired surrogate escapes, \u0000,
 * numbers over 63 characters, nesting over 1000 levels) is DETLOSS_ERR_PARSE
 * at its line and column, never _NOMEM, which means a failed allocation only.
 * Ragged or mixed arrays are _SHAPE/_TYPE at the first bad element.
 * Returns DETLOSS_OK or the status of the first fault (DETLOSS_ERR_PARSE,
 * _TYPE, _MISSING, _UNKNOWN, _SHAPE, _RANGE, _NONFINITE, _NOMEM).
 * Limits (opt->limits, detloss_json_limits): text longer than
 * max_input_bytes, a case whose output would exceed max_output_numbers, an
 * image side above max_image_side or more than max_anchors anchors for one
 * image are DETLOSS_ERR_RANGE before the case runs. A result that is not
 * finite although the input was (a float32 overflow: anchor sizes of 3e38)
 * is DETLOSS_ERR_RANGE with where = the result element
 * ("[1].anchors[3][2]") and msg "result is not finite (op anchors)": the
 * output never holds null. Thread-safe.
 */
DETLOSS_API detloss_status detloss_compute_json(const char *text, size_t len, char **out,
                                                size_t *out_len, const detloss_compute_options *opt,
                                                detloss_error *err);

/*
 * detloss_compute_json_file() - detloss_compute_json() on the text read from
 * an open file (the caller opens and closes it; stdin works), as a stream:
 * the text itself is never held whole, and arrays of numbers take 8 bytes a
 * number while the cases run (not a tree node each), so a case of 40 M
 * numbers needs about 0.3 GB besides its result. name (NULL: "(input)") is
 * the where of a read error (DETLOSS_ERR_IO, "read error") and of an input
 * longer than limits->max_input_bytes (DETLOSS_ERR_RANGE, "the input is
 * larger than the limit max_input_bytes = N", whatever else is wrong with
 * it); every other fault, and the output, are those of
 * detloss_compute_json() for the same text. Thread-safe (one file per call).
 */
DETLOSS_API detloss_status detloss_compute_json_file(FILE *in, const char *name, char **out,
                                                     size_t *out_len,
                                                     const detloss_compute_options *opt,
                                                     detloss_error *err);

/* Frees memory returned by the JSON layer. */
DETLOSS_API void detloss_free(void *p);

/*
 * Configs and data sets (the files `detloss anchors` and `detloss eval` read).
 *
 * A config is one JSON object describing everything a run needs; every key
 * is optional except "anchors", unknown keys are errors (with a did-you-mean
 * suggestion), and every error names the file, the JSON path and what was
 * expected ("configs/x.json: matcher.hihg: unknown key (did you mean 'high'?)").
 * The keys, types, ranges, defaults and one-line docs of every options
 * object come from one descriptor table per options struct (config_schema.c);
 * detloss_config_describe() prints them (`detloss eval --help-config`).
 *
 *   {"name": str, "source": str, "notes": str,
 *    "head": "rpn" | "retinanet" | "none"      which defaults apply (default "rpn"),
 *    "anchors": "file.json" | {anchor set},      a file of anchors/ or inline (below),
 *    "dataset": "path.json",                     the default data set,
 *    "resize": {"min_size", "max_size"},        detloss_eval_options resize_*,
 *    "eval": {"metric", "iou_thresh", "ratio_thresh", "positives", "worst"},
 *    "matcher": {detloss_match_options},         on top of the head's defaults,
 *    "sampler": {detloss_sample_options},        rpn only,
 *    "box_coder": {"weights", "clip"},           detloss_coder_options (and the head's
 *                                                box_weights),
 *    "loss": {detloss_rpn_options | detloss_retina_options fields}}
 * An anchor set (the format of the files in anchors/) is one of:
 *   {"convention": "torchvision"|"detectron2", "offset": o, "image_size": [H, W],
 *    "levels": [{"stride": s | [sh, sw], "sizes": [...], "aspect_ratios": [...]
 *                | "shapes": [[w, h], ...] | "base": [[x1, y1, x2, y2], ...]}, ...]}
 *   {"strides": [...], "sizes": [[...] per level], "aspect_ratios": [[...] per level
 *    or one list for all]}                       (compute-cases.md anchor_config)
 *   {"boxes": [[x1, y1, x2, y2], ...]}           explicit anchors, same for every image
 *   {"shapes": [[w, h], ...]}                    shapes only (metric wh_ratio)
 * plus "name", "source", "notes" (and the documentation-only level keys
 * "base_plus_one", "shapes_grid", "feature_map"). Unknown keys are errors in
 * every object (the config, its option objects, the anchor set, each level),
 * and so are keys the chosen form does not use: "sizes"/"aspect_ratios" next
 * to "base" or "shapes" in a level, or at the top of a set without "strides".
 * The JSON text is checked as for detloss_compute_json(): syntax faults are
 * DETLOSS_ERR_PARSE at "<file>: line L, column C", duplicate keys
 * DETLOSS_ERR_PARSE at "<file>: <json path>".
 * Relative paths ("anchors", "dataset") are resolved against the config's
 * directory (anchor files: its ../anchors/ first), then each of search_dirs
 * (anchor files: search_dir/anchors/ first).
 */

typedef enum detloss_config_head {
  DETLOSS_CONFIG_HEAD_NONE = 0,     /* anchors only (e.g. a YOLO shape check) */
  DETLOSS_CONFIG_HEAD_RPN = 1,      /* detloss_rpn_options defaults */
  DETLOSS_CONFIG_HEAD_RETINANET = 2 /* detloss_retina_options defaults */
} detloss_config_head;

/* A parsed config. All memory is owned by it; free with detloss_config_free(). */
typedef struct detloss_config {
  char *path;                          /* the config file as given ("-" or "(text)" for text) */
  char *name, *source, *notes;         /* NULL when absent */
  char *anchors_path;                  /* resolved anchors file, NULL when inline */
  char *anchors_name, *anchors_source; /* from the anchor set, NULL when absent */
  char *dataset_path;                  /* resolved default data set, NULL when absent */
  detloss_config_head head;
  /* The anchor set: exactly one of grid (num_levels > 0), anchors, shapes. */
  detloss_anchor_config grid; /* levels' feat_h/feat_w are 0 unless image_size is given */
  float image_size[2];        /* the anchor set's nominal [H, W], 0 when absent */
  float *anchors;             /* [num_anchors][4] */
  size_t num_anchors;
  float *shapes; /* [num_shapes][2] */
  size_t num_shapes;
  detloss_eval_options eval; /* eval.match is the head's matcher */
  detloss_coder_options coder;
  detloss_rpn_options rpn;       /* head rpn: the loss settings (match, sample, coder weights
                                    copied in) */
  detloss_retina_options retina; /* head retinanet: likewise */
  void *storage;                 /* internal */
  /* "assigner": who counts the positives in detloss eval (absent: method
   * MAX_IOU, the matcher above); see detloss_anchor_eval_ex. */
  detloss_eval_assigner assigner;
  /* "points" (point-based detectors: FCOS, YOLOX, YOLOv8): the strides of the
   * point levels and the offset of a point in its cell (centre at
   * (x + point_offset) * stride); num_point_levels = 0 when absent. */
  size_t num_point_levels;
  float point_strides[DETLOSS_EVAL_MAX_LEVELS];
  float point_offset;
} detloss_config;

/*
 * detloss_config_load() - read and validate a config file.
 * search_dirs: NULL-terminated list of extra directories for relative paths
 * (the detloss command passes its data directories, see `detloss eval --help`),
 * or NULL. On success *out is a new config.
 * Errors (err->where = "<file>: <json path>" or "<file>: line L, column C"):
 * DETLOSS_ERR_NOT_FOUND (the config, or the anchors or data set file it
 * names, does not exist), _IO (a file exists but cannot be read), _PARSE,
 * _TYPE, _MISSING, _UNKNOWN (unknown key, with a suggestion; unknown enum
 * name), _RANGE, _NONFINITE, _SHAPE, _NOMEM. Thread-safe.
 */
DETLOSS_API detloss_status detloss_config_load(const char *path, const char *const *search_dirs,
                                               detloss_config **out, detloss_error *err);
/* The same from text; path is used for messages and relative paths (its directory). */
DETLOSS_API detloss_status detloss_config_parse(const char *text, size_t len, const char *path,
                                                const char *const *search_dirs,
                                                detloss_config **out, detloss_error *err);
/*
 * detloss_config_load_ex(), detloss_config_parse_ex() - the same with limits
 * (NULL = detloss_json_limits_default(); the plain calls use the defaults):
 * the config and the anchor file it names are at most max_input_bytes;
 * anchors.image_size, resize.min_size and resize.max_size at most
 * max_image_side; a grid anchor set with an image_size generates at most
 * max_anchors anchors for that image (where = "anchors.levels[l].stride" or
 * "anchors.strides[l]" of the level with the most anchors). Each is
 * DETLOSS_ERR_RANGE naming the limit.
 */
DETLOSS_API detloss_status detloss_config_load_ex(const char *path, const char *const *search_dirs,
                                                  const detloss_json_limits *limits,
                                                  detloss_config **out, detloss_error *err);
DETLOSS_API detloss_status detloss_config_parse_ex(const char *text, size_t len, const char *path,
                                                   const char *const *search_dirs,
                                                   const detloss_json_limits *limits,
                                                   detloss_config **out, detloss_error *err);
DETLOSS_API void detloss_config_free(detloss_config *cfg);
/* The config's anchors as a detloss_anchor_eval() source (pointers into cfg). */
DETLOSS_API detloss_eval_anchors detloss_config_eval_anchors(const detloss_config *cfg);
/* Every config key: JSON path, type, range, default and doc, one per line
 * (malloc'ed, free with detloss_free), or NULL when out of memory. */
DETLOSS_API char *detloss_config_describe(void);

/*
 * A data set of gt boxes: the common format of data/ (data/README.md)
 *   {"name", "source", "license", "format": "xyxy_pixels", "notes", "categories",
 *    "images": [{"id", "file", "width", "height", "boxes": [[x1,y1,x2,y2], ...],
 *                "labels": [...], "iscrowd": [0/1, ...], "split"}, ...]}
 * or a COCO instances_*.json ({"images": [{"id", "width", "height", ...}],
 * "annotations": [{"image_id", "bbox": [x, y, w, h], "iscrowd", ...}], ...}),
 * recognised by its "annotations" array: bbox becomes [x, y, x + w, y + h],
 * images keep the order of "images", annotations the file order.
 * Boxes are not clipped or filtered here (detloss_anchor_eval does, and
 * counts them). A file without images is an error (DETLOSS_ERR_SHAPE).
 * Keys are strict: the common format accepts exactly the keys above (an
 * unknown one is DETLOSS_ERR_UNKNOWN naming its path, with a did-you-mean).
 * COCO files may carry exactly these keys that are skipped unread, any other
 * is DETLOSS_ERR_UNKNOWN:
 *   top level:       info, licenses, categories (whole values, not inspected)
 *   images[i]:       file_name, license, coco_url, flickr_url, date_captured
 *   annotations[j]:  id, category_id, area, segmentation, keypoints, num_keypoints
 * (read: images[i] id, width, height; annotations[j] image_id, bbox, iscrowd).
 */
typedef struct detloss_dataset {
  char *path;
  char *name, *source, *license; /* NULL when absent */
  int is_coco;                   /* read from a COCO instances file */
  size_t num_images, num_boxes;
  float *image_hw;   /* [num_images][2] height, width */
  size_t *box_start; /* [num_images + 1] */
  float *boxes;      /* [num_boxes][4] xyxy pixels */
  uint8_t *is_crowd; /* [num_boxes] */
  int64_t *image_id; /* [num_images] ("id", else the index) */
} detloss_dataset;

/* Errors as detloss_config_load (where = "<file>: images[3].boxes[2]"). */
DETLOSS_API detloss_status detloss_dataset_load(const char *path, detloss_dataset **out,
                                                detloss_error *err);
DETLOSS_API detloss_status detloss_dataset_parse(const char *text, size_t len, const char *path,
                                                 detloss_dataset **out, detloss_error *err);
/* The same with limits (NULL = defaults): the file is at most max_input_bytes
 * (a directory is read as YOLO labels, detloss_dataset_load_yolo)
 * and every image's height and width at most max_image_side (where =
 * "<file>: images[i].width"); DETLOSS_ERR_RANGE naming the limit. */
DETLOSS_API detloss_status detloss_dataset_load_ex(const char *path,
                                                   const detloss_json_limits *limits,
                                                   detloss_dataset **out, detloss_error *err);
DETLOSS_API detloss_status detloss_dataset_parse_ex(const char *text, size_t len, const char *path,
                                                    const detloss_json_limits *limits,
                                                    detloss_dataset **out, detloss_error *err);
/*
 * YOLO label directories (YOLOv5 / YOLOv8 layout): one "<stem>.txt" per image
 * under labels/ (subdirectories such as labels/train2017/ included, files in
 * byte order of their relative paths), one box per line "class cx cy w h",
 * centre and size normalized by the image's width and height. Blank lines
 * are skipped; an image is a label file (an image without one is not seen).
 * dir is either a data-set root holding labels/ and images/, or a labels
 * directory, whose images are found by replacing its last "labels" path
 * component with "images" (datasets/coco/labels/val2017 ->
 * datasets/coco/images/val2017). Each image's size comes from the header of
 * images/<stem>.jpg (.jpeg, .png, and the same in capitals; PNG IHDR, JPEG
 * SOFn; EXIF orientation is not applied), or from options image_w / image_h
 * for every image (no image file is opened then). Boxes become xyxy pixels:
 * x1 = (cx - w/2) W, y1 = (cy - h/2) H, x2 = (cx + w/2) W, y2 = (cy + h/2) H
 * (in double, rounded once to float); image ids are the indices; no crowd flags.
 * Errors (nothing returned): a line without exactly 5 columns
 * (DETLOSS_ERR_SHAPE), a column that is not a finite number (_TYPE), a class
 * that is not a whole number >= 0, a box with w <= 0 or h <= 0, or a box whose
 * edges leave [0, 1] by more than options tolerance (_RANGE), each with where
 * = "<label file>: line N"; no image beside a label file (_NOT_FOUND), an
 * image header that cannot be read (_PARSE or _IO, where = the image file);
 * no label file at all (_SHAPE); an image side above limits->max_image_side
 * (_RANGE). Thread-safe.
 */
typedef struct detloss_yolo_options {
  float image_w, image_h; /* > 0: every image has this size; 0 (default): from the image files */
  double tolerance;       /* box edges may leave [0, 1] by this much; default 0.01 (1 %) */
} detloss_yolo_options;
#define DETLOSS_YOLO_OPTIONS_INIT                                                                  \
  { 0.0f, 0.0f, 0.01 }
DETLOSS_API detloss_yolo_options detloss_yolo_options_default(void);
/* opt and limits NULL = defaults. detloss_dataset_load(_ex) on a directory
 * calls this with default options. */
DETLOSS_API detloss_status detloss_dataset_load_yolo(const char *dir,
                                                     const detloss_yolo_options *opt,
                                                     const detloss_json_limits *limits,
                                                     detloss_dataset **out, detloss_error *err);
DETLOSS_API void detloss_dataset_free(detloss_dataset *ds);
/* The data set as a detloss_anchor_eval() input (pointers into ds). */
DETLOSS_API detloss_eval_dataset detloss_dataset_view(const detloss_dataset *ds);

/*
 * detloss_eval_check_limits() - bounds detloss_anchor_eval()'s work before it
 * starts: every image side (where "data.image_hw[i]") and, after the resize
 * of opt, every resized side (where "resize_max_size" or "resize_min_size")
 * at most limits->max_image_side; resize_max_size / resize_min_size
 * themselves likewise; for a grid source, the anchors of each resized image
 * (sum over levels of ceil(h / stride) * ceil(w / stride) * per cell) at most
 * limits->max_anchors (where "data.image_hw[i]", the message naming the
 * level with the most). limits NULL = defaults. Returns DETLOSS_OK or
 * DETLOSS_ERR_RANGE (_NULL for NULL data or src); other faults of the input
 * are left to detloss_anchor_eval(). `detloss eval` and the compute op
 * anchor_eval call it first. Thread-safe.
 */
DETLOSS_API detloss_status detloss_eval_check_limits(const detloss_eval_dataset *data,
                                                     const detloss_eval_anchors *src,
                                                     const detloss_eval_options *opt,
                                                     const detloss_json_limits *limits,
                                                     detloss_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DETLOSS_JSON_H */
