/*
 * cmd_fit.c - `detloss fit CONFIG [--dataset FILE] [--method kmeans|evolve|levels] [-n K]
 * [--seed S] [-o ANCHORS.json] [--plot FIT.svg] [--json]`: fit a new anchor set to a
 * data set (detloss_fit_shapes, detloss_fit_levels) and report before / after
 * (detloss_anchor_eval with the config's own settings).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "detloss/detloss_json.h"
#include "json/evalcfg.h"
#include "json/jwrite.h"

static const char HELP[] =
    "usage: detloss fit CONFIG [--dataset FILE] [--method kmeans|evolve|levels] [-n K]\n"
    "                   [--seed S] [-o ANCHORS.json] [--plot FIT.svg] [--json]\n"
    "                   [--threads N] [--generations G] [--evals E]\n"
    "\n"
    "Fits a new anchor set to the gt boxes of a data set (after the config's resize)\n"
    "and reports the config's evaluation (detloss eval) before and after.\n"
    "\n"
    "methods:\n"
    "  kmeans  k-means of the gt (w, h) with distance 1 - IoU of corner-aligned boxes\n"
    "          (darknet calc_anchors), k-means++ seeding, 10 restarts; objective:\n"
    "          mean best IoU (darknet's avg IoU)\n"
    "  evolve  YOLOv5 AutoAnchor: k-means of whitened (w, h), then 1000 generations of\n"
    "          mutation (probability 0.9, sigma 0.1) keeping a mutant that raises the\n"
    "          fitness mean(best r * [best r > 1/thr]), thr = the config's ratio_thresh\n"
    "          (4.0); reports best possible recall (BPR) and anchors above threshold\n"
    "  levels  FPN / RetinaNet grids: strides kept; per-level sizes, shared scales and\n"
    "          shared aspect ratios optimised (Nelder-Mead with restarts) for the\n"
    "          config's matcher: share of gts with >= 1 positive, then mean best IoU\n"
    "Default: evolve for a wh_ratio config, levels for a grid of sizes and ratios,\n"
    "kmeans otherwise. kmeans and evolve write shapes sorted by area, split evenly\n"
    "over the config's levels (smallest on the first level), so K must be a\n"
    "multiple of the number of levels.\n"
    "\n"
    "options:\n"
    "  --dataset FILE   the data set (as detloss eval); default: the config's\n"
    "  --method M       kmeans, evolve or levels (see above)\n"
    "  -n K             shapes to fit (kmeans, evolve); default: the config's count\n"
    "  --seed S         seed of every random draw (0 to 2^64-1, default 0); the same\n"
    "                   seed gives the same bits for any --threads\n"
    "  -o ANCHORS.json  write the new anchor set (the anchors/ format, with a \"source\"\n"
    "                   naming the data set, method, seed and objective)\n"
    "  --plot FIT.svg   write an SVG of the gt (w, h) cloud with the old and new shapes\n"
    "  --json           print the report as JSON instead of the table\n"
    "  --threads N      threads (0 = OpenMP default); results are identical for any N\n"
    "  --generations G  evolve: generations (default 1000)\n"
    "  --evals E        levels: evaluations of the objective (default 150)\n"
    "  -h, --help       show this help\n"
    "\n"
    "Output files are written in full to temporary files and renamed over the\n"
    "targets only when all are complete (as detloss eval does). A progress bar is\n"
    "drawn on stderr when it is a terminal and the run takes more than a second.\n"
    "\n" DL_CLI_DATA_DIRS_HELP
    "\n"
    "example:\n"
    "  detloss fit yolov5_autoanchor --method evolve --seed 1 -o my_anchors.json\n"
    "\n" DL_EXIT_HELP;

static const char *const METHODS[] = {"kmeans", "evolve", "levels"};

static int parse_size(const char *opt, const char *v, unsigned long long lo, unsigned long long hi,
                      unsigned long long *out) {
  char *end;
  errno = 0;
  if (v[0] == '-') errno = ERANGE;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || end == v || *end || x < lo || x > hi) {
    fprintf(stderr, "detloss: %s: expected a whole number from %llu to %llu, got '%s'\n", opt, lo,
            hi, v);
    return DL_EXIT_INPUT;
  }
  *out = x;
  return DL_EXIT_OK;
}

/* The new anchor set: levels with shapes (kmeans/evolve on a grid), levels
 * with sizes and ratios (levels), or flat shapes. */
typedef struct newset {
  detloss_anchor_level lv[DETLOSS_EVAL_MAX_LEVELS];
  detloss_anchor_config grid;
  const float *shapes; /* flat [k][2] */
  size_t k;
  const float *sizes, *ratios;
  size_t S, R;
} newset;

static void write_levels(dlj_buf *b, const detloss_config *cfg, const newset *ns) {
  dlj_key(b, "levels");
  dlj_arr_begin(b);
  for (size_t l = 0; l < ns->grid.num_levels; l++) {
    const detloss_anchor_level *v = &ns->lv[l];
    dlj_obj_begin(b);
    dlj_key(b, "stride");
    if (v->stride_h == v->stride_w) {
      dlj_num(b, (double)v->stride_w);
    } else {
      dlj_arr_begin(b);
      dlj_num(b, (double)v->stride_h);
      dlj_num(b, (double)v->stride_w);
      dlj_arr_end(b);
    }
    if (v->num_shapes) {
      dlj_kv_rows(b, "shapes", v->shapes, v->num_shapes, 2);
    } else {
      dlj_key(b, "sizes");
      dlj_arr_begin(b);
      for (size_t j = 0; j < v->num_sizes; j++) dlj_num(b, (double)v->sizes[j]);
      dlj_arr_end(b);
      dlj_key(b, "aspect_ratios");
      dlj_arr_begin(b);
      for (size_t j = 0; j < v->num_ratios; j++) dlj_num(b, (double)v->ratios[j]);
      dlj_arr_end(b);
    }
    dlj_obj_end(b);
  }
  dlj_arr_end(b);
  (void)cfg;
}

static void write_set(dlj_buf *b, const detloss_config *cfg, const newset *ns, const char *name,
                      const char *source) {
  dlj_obj_begin(b);
  dlj_kv_str(b, "name", name);
  dlj_kv_str(b, "source", source);
  if (ns->grid.num_levels) {
    dlj_kv_str(b, "convention",
               cfg->grid.convention == DETLOSS_ANCHORS_DETECTRON2 ? "detectron2" : "torchvision");
    dlj_kv_num(b, "offset", (double)cfg->grid.offset);
    write_levels(b, cfg, ns);
  } else {
    dlj_kv_rows(b, "shapes", ns->shapes, ns->k, 2);
  }
  dlj_obj_end(b);
}

static void stats_json(dlj_buf *b, const char *key, const detloss_eval_report *r) {
  dlj_key(b, key);
  dlj_obj_begin(b);
  for (int s = -1; s < 3; s++) {
    const detloss_eval_stats *st = s < 0 ? &r->all : &r->by_size[s];
    dlj_key(b, s < 0 ? "all" : detloss_eval_size_name((detloss_eval_size)s));
    dlj_obj_begin(b);
    dlj_kv_int(b, "num_gt", (long long)st->num_gt);
    dlj_kv_num(b, "recall", st->recall);
    dlj_kv_num(b, "mean_best", st->mean_best);
    dlj_kv_num(b, "anchors_per_gt", st->anchors_per_gt);
    dlj_kv_num(b, "positives_per_gt", st->positives_per_gt);
    dlj_kv_int(b, "gts_without_positive", (long long)st->pos_hist[0]);
    dlj_obj_end(b);
  }
  dlj_obj_end(b);
}

static void metrics_json(dlj_buf *b, const char *key, const detloss_fit_metrics *m) {
  dlj_key(b, key);
  dlj_obj_begin(b);
  dlj_kv_num(b, "mean_iou", m->mean_iou);
  dlj_kv_num(b, "fitness", m->fitness);
  dlj_kv_num(b, "bpr", m->bpr);
  dlj_kv_num(b, "aat", m->aat);
  dlj_obj_end(b);
}

/* SVG: the gt (w, h) cloud (grey), old shapes (black crosses), new (red diamonds). */
static void svg_plot(dlj_buf *b, const float *wh, size_t n, const float *olds, size_t nold,
                     const float *news, size_t nnew, const char *title) {
  double lo = 1e30, hi = 0.0;
  for (size_t i = 0; i < n + nold + nnew; i++) {
    const float *p = i < n          ? wh + 2 * i
                     : i < n + nold ? olds + 2 * (i - n)
                                    : news + 2 * (i - n - nold);
    for (int c = 0; c < 2; c++) {
      double v = (double)p[c];
      if (v > 0.0 && v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (!(hi > 0.0)) {
    lo = 1.0;
    hi = 1024.0;
  }
  double l2lo = floor(log2(fmax(lo, 0.5))), l2hi = ceil(log2(hi));
  if (l2hi <= l2lo) l2hi = l2lo + 1.0;
  const double X0 = 80, X1 = 640, Y0 = 70, Y1 = 630, W = 820, H = 700;
#define PX(v) (X0 + (X1 - X0) * (log2(v) - l2lo) / (l2hi - l2lo))
#define PY(v) (Y1 - (Y1 - Y0) * (log2(v) - l2lo) / (l2hi - l2lo))
  dlj_printf(b,
             "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 "
             "%g %g\" font-family=\"sans-serif\" font-size=\"12\">\n"
             "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
             "<text x=\"80\" y=\"24\" font-size=\"15\" font-weight=\"bold\">",
             W, H, W, H);
  dl_cli_svg_escape(b, title, SIZE_MAX);
  dlj_printf(b,
             "</text>\n<text x=\"80\" y=\"44\" fill=\"#555\">gt size after resizing (log scale), "
             "%zu gts; black crosses: old anchor shapes, red diamonds: fitted</text>\n"
             "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#333\"/>\n",
             n, X0, Y0, X1 - X0, Y1 - Y0);
  for (double e = l2lo; e <= l2hi + 1e-9; e += 1.0) {
    double v = exp2(e);
    dlj_printf(b,
               "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#eee\"/>"
               "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#eee\"/>"
               "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%g</text>"
               "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
               PX(v), Y0, PX(v), Y1, X0, PY(v), X1, PY(v), PX(v), Y1 + 16, v, X0 - 6, PY(v) + 4, v);
  }
  dlj_printf(b,
             "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">gt width (px)</text>\n"
             "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\" transform=\"rotate(-90 %g %g)\">gt "
             "height (px)</text>\n<g fill=\"#4a7ab5\" fill-opacity=\"0.35\">\n",
             (X0 + X1) / 2, Y1 + 36, X0 - 48, (Y0 + Y1) / 2, X0 - 48, (Y0 + Y1) / 2);
  size_t step = n > 40000 ? (n + 39999) / 40000 : 1;
  for (size_t i = 0; i < n; i += step)
    dlj_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\"/>\n",
               PX(fmax((double)wh[2 * i], exp2(l2lo))),
               PY(fmax((double)wh[2 * i + 1], exp2(l2lo))));
  dlj_raw(b, "</g>\n");
  for (size_t q = 0; q < nold; q++)
    dlj_printf(b,
               "<path d=\"M%.1f %.1fl10 10m0 -10l-10 10\" stroke=\"black\" stroke-width=\"2.2\"/>"
               "<title>old %g x %g</title>\n",
               PX((double)olds[2 * q]) - 5, PY((double)olds[2 * q + 1]) - 5, (double)olds[2 * q],
               (double)olds[2 * q + 1]);
  for (size_t q = 0; q < nnew; q++)
    dlj_printf(b,
               "<path d=\"M%.1f %.1fl6 6l-6 6l-6 -6z\" fill=\"#d7191c\" stroke=\"black\"/>"
               "<title>new %.1f x %.1f</title>\n",
               PX((double)news[2 * q]), PY((double)news[2 * q + 1]) - 6, (double)news[2 * q],
               (double)news[2 * q + 1]);
  dlj_printf(b,
             "<path d=\"M680 80l10 10m0 -10l-10 10\" stroke=\"black\" stroke-width=\"2.2\"/>"
             "<text x=\"698\" y=\"90\">old shape</text>"
             "<path d=\"M685 104l6 6l-6 6l-6 -6z\" fill=\"#d7191c\" stroke=\"black\"/>"
             "<text x=\"698\" y=\"114\">fitted shape</text>"
             "<circle cx=\"685\" cy=\"134\" r=\"3\" fill=\"#4a7ab5\"/>"
             "<text x=\"698\" y=\"138\">gt box</text>\n</svg>\n");
#undef PX
#undef PY
}

static void row(dlj_buf *b, const char *name, const detloss_eval_stats *s0,
                const detloss_eval_stats *s1, int pos) {
  dlj_printf(b, "%-8s %7zu  %6.3f %6.3f  %6.3f %6.3f  %7.2f %7.2f", name, s0->num_gt, s0->recall,
             s1->recall, s0->mean_best, s1->mean_best, s0->anchors_per_gt, s1->anchors_per_gt);
  if (pos)
    dlj_printf(b, "  %7.2f %7.2f  %6zu %6zu", s0->positives_per_gt, s1->positives_per_gt,
               s0->pos_hist[0], s1->pos_hist[0]);
  dlj_raw(b, "\n");
}

int dl_cmd_fit(int argc, char **argv) {
  dl_cli_progress prog;
  dl_cli_progress_start(&prog, "fit", "");
  const char *cfg_path = NULL, *ds_path = NULL, *plot = NULL, *out = NULL, *method_s = NULL;
  int json = 0, threads = 0;
  unsigned long long k_arg = 0, seed = 0, gens = 0, evals = 0;
  int have_k = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(HELP, stdout);
      return DL_EXIT_OK;
    } else if (strcmp(a, "--json") == 0) {
      json = 1;
    } else if (strcmp(a, "--dataset") == 0 || strcmp(a, "--plot") == 0 || strcmp(a, "-o") == 0 ||
               strcmp(a, "--threads") == 0 || strcmp(a, "--method") == 0 || strcmp(a, "-n") == 0 ||
               strcmp(a, "--seed") == 0 || strcmp(a, "--generations") == 0 ||
               strcmp(a, "--evals") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "detloss: fit: %s needs a value (see detloss fit --help)\n", a);
        return DL_EXIT_INPUT;
      }
      const char *v = argv[++i];
      int rc = DL_EXIT_OK;
      if (strcmp(a, "--dataset") == 0)
        ds_path = v;
      else if (strcmp(a, "--plot") == 0)
        plot = v;
      else if (strcmp(a, "-o") == 0)
        out = v;
      else if (strcmp(a, "--method") == 0)
        method_s = v;
      else if (strcmp(a, "--threads") == 0) {
        if ((threads = dl_cli_parse_threads(v)) < 0) {
          fprintf(stderr, "detloss: --threads: expected a whole number from 0 to 4096\n");
          return DL_EXIT_INPUT;
        }
      } else if (strcmp(a, "-n") == 0) {
        rc = parse_size("-n", v, 1, 1000000, &k_arg);
        have_k = 1;
      } else if (strcmp(a, "--seed") == 0)
        rc = parse_size("--seed", v, 0, UINT64_MAX, &seed);
      else if (strcmp(a, "--generations") == 0)
        rc = parse_size("--generations", v, 0, 100000000, &gens);
      else
        rc = parse_size("--evals", v, 1, 100000000, &evals);
      if (rc != DL_EXIT_OK) return rc;
    } else if (a[0] == '-' && a[1] != '\0') {
      fprintf(stderr, "detloss: fit: unknown option '%s' (see detloss fit --help)\n", a);
      return DL_EXIT_INPUT;
    } else if (!cfg_path) {
      cfg_path = a;
    } else {
      fprintf(stderr, "detloss: fit: expected one CONFIG, got a second: '%s'\n", a);
      return DL_EXIT_INPUT;
    }
  }
  if (!cfg_path) {
    fprintf(stderr, "detloss: fit: missing CONFIG (see detloss fit --help)\n");
    return DL_EXIT_INPUT;
  }
  int method = -1;
  if (method_s) {
    for (int m = 0; m < 3; m++)
      if (strcmp(method_s, METHODS[m]) == 0) method = m;
    if (method < 0) {
      fprintf(stderr, "detloss: --method: unknown method '%s' (kmeans, evolve or levels)\n",
              method_s);
      return DL_EXIT_INPUT;
    }
  }
  int prc = dl_cli_check_plot_output("fit", plot, out);
  if (prc != DL_EXIT_OK) return prc;
  detloss_json_limits lim;
  int rc = dl_cli_limits(&lim);
  if (rc != DL_EXIT_OK) return rc;
  dl_data_dirs dirs;
  char cfg_file[DL_PATH_CAP];
  dl_cli_data_dirs(&dirs);
  rc = dl_cli_config_path(cfg_path, &dirs, cfg_file, sizeof cfg_file);
  if (rc != DL_EXIT_OK) return rc;
  detloss_config *cfg = NULL;
  detloss_dataset *ds = NULL;
  detloss_error err;
  detloss_status st = detloss_config_load_ex(cfg_file, dirs.search, &lim, &cfg, &err);
  if (st != DETLOSS_OK) return dl_cli_load_error(&err, st);
  if (cfg->grid.num_levels == 0 && cfg->num_anchors == 0 && cfg->num_shapes == 0) {
    /* A point-based or dynamic-assigner preset (fcos, simota, ...): nothing to show or fit. */
    fprintf(stderr, "detloss: %s: anchors: this config has no anchor set (its assigner uses %s)\n",
            cfg->path, cfg->num_point_levels ? "points" : "predictions");
    detloss_config_free(cfg);
    return DL_EXIT_INPUT;
  }
  if (!ds_path) ds_path = cfg->dataset_path;
  if (!ds_path) {
    fprintf(stderr, "detloss: fit: no data set: give --dataset FILE or \"dataset\" in %s\n",
            cfg->path);
    detloss_config_free(cfg);
    return DL_EXIT_INPUT;
  }
  st = detloss_dataset_load_ex(ds_path, &lim, &ds, &err);
  if (st != DETLOSS_OK) {
    detloss_config_free(cfg);
    return dl_cli_load_error(&err, st);
  }
  /* everything allocated below is freed at `done` */
  float *olds = NULL, *wh = NULL, *news = NULL, *sizes = NULL;
  size_t *oldl = NULL, nold = 0;
  detloss_eval_gt *gt = NULL;
  detloss_eval_report *rep0 = NULL, *rep1 = NULL;
  dlj_buf b, set, svg;
  dlj_buf_init(&b);
  dlj_buf_init(&set);
  dlj_buf_init(&svg);
  newset ns;
  memset(&ns, 0, sizeof ns);
  int is_grid = cfg->grid.num_levels > 0;
  size_t L = is_grid ? cfg->grid.num_levels : 1;
  if (!is_grid && cfg->num_anchors) {
    fprintf(stderr,
            "detloss: %s: anchors: fit needs a grid or a shapes anchor set, not explicit boxes\n",
            cfg->path);
    rc = DL_EXIT_INPUT;
    goto done;
  }
  if (L > DETLOSS_EVAL_MAX_LEVELS) {
    fprintf(stderr, "detloss: %s: anchors.levels: at most %d levels\n", cfg->path,
            DETLOSS_EVAL_MAX_LEVELS);
    rc = DL_EXIT_INPUT;
    goto done;
  }
  int grid_sr = is_grid; /* every level: sizes and ratios */
  for (size_t l = 0; is_grid && l < L; l++)
    grid_sr &= cfg->grid.levels[l].num_base == 0 && cfg->grid.levels[l].num_shapes == 0;
  if (method < 0) method = cfg->eval.metric == DETLOSS_EVAL_WH_RATIO ? 1 : (grid_sr ? 2 : 0);
  if (method == 2 && (!grid_sr || cfg->eval.metric != DETLOSS_EVAL_IOU)) {
    fprintf(stderr,
            "detloss: --method: levels fits the sizes and aspect ratios of a grid config with "
            "the iou metric; %s has %s (use kmeans or evolve)\n",
            cfg->path, !grid_sr ? "shapes or explicit anchors" : "the wh_ratio metric");
    rc = DL_EXIT_INPUT;
    goto done;
  }
  if (method == 2 && have_k) {
    fprintf(stderr,
            "detloss: -n: levels keeps the config's sizes and ratios per level; -n is "
            "for kmeans and evolve\n");
    rc = DL_EXIT_INPUT;
    goto done;
  }
  if (dl_cli_anchor_shapes(cfg, &olds, &nold, &oldl) != DL_EXIT_OK) goto oom;
  detloss_eval_options eo = cfg->eval;
  eo.num_threads = threads;
  eo.num_worst = 0;
  gt = malloc((ds->num_boxes ? ds->num_boxes : 1) * sizeof *gt);
  rep0 = malloc(sizeof *rep0);
  rep1 = malloc(sizeof *rep1);
  wh = malloc((ds->num_boxes ? ds->num_boxes : 1) * 2 * sizeof(float));
  if (!gt || !rep0 || !rep1 || !wh) goto oom;
  detloss_eval_dataset view = detloss_dataset_view(ds);
  detloss_eval_anchors src0 = detloss_config_eval_anchors(cfg);
  st = detloss_eval_check_limits(&view, &src0, &eo, &lim, &err);
  if (st == DETLOSS_OK) st = detloss_anchor_eval(&view, &src0, gt, rep0, &eo, &err);
  if (st != DETLOSS_OK) {
    dl_where_file(&err, strncmp(err.where, "data", 4) == 0 ? ds->path : cfg->path);
    rc = dl_cli_report(&err, st);
    goto done;
  }
  size_t n = 0;
  for (size_t i = 0; i < ds->num_boxes; i++)
    if (gt[i].status == DETLOSS_EVAL_GT_OK) {
      wh[2 * n] = gt[i].w;
      wh[2 * n + 1] = gt[i].h;
      n++;
    }
  if (n == 0) {
    fprintf(stderr,
            "detloss: %s: a data set without boxes to fit (%zu boxes: %zu crowd, %zu zero-area)\n",
            ds->path, rep0->num_boxes, rep0->num_crowd, rep0->num_degenerate);
    rc = DL_EXIT_INPUT;
    goto done;
  }
  detloss_fit_options fo = detloss_fit_options_default();
  fo.seed = seed;
  fo.num_threads = threads;
  fo.ratio_thresh = cfg->eval.ratio_thresh;
  if (gens || method == 1) fo.generations = gens ? (size_t)gens : fo.generations;
  if (evals) fo.max_evals = (size_t)evals;
  if (isatty(STDERR_FILENO)) {
    fo.progress = dl_cli_progress_cb;
    fo.progress_user = &prog;
  }
  detloss_fit_report fr;
  detloss_fit_levels_report lr;
  memset(&fr, 0, sizeof fr);
  memset(&lr, 0, sizeof lr);
  char objective[128];
  size_t K = 0;
  if (method < 2) {
    K = have_k ? (size_t)k_arg : (nold ? nold : 9);
    if (is_grid && K % L != 0) {
      fprintf(stderr,
              "detloss: -n: %zu shapes do not split evenly over the config's %zu levels; give a "
              "multiple of %zu\n",
              K, L, L);
      rc = DL_EXIT_INPUT;
      goto done;
    }
    if (K > n) {
      fprintf(stderr,
              "detloss: -n: %zu shapes from %zu gt boxes: K must be at most the number "
              "of boxes\n",
              K, n);
      rc = DL_EXIT_INPUT;
      goto done;
    }
    news = malloc(K * 2 * sizeof(float));
    if (!news) goto oom;
    st = detloss_fit_shapes(method == 0 ? DETLOSS_FIT_KMEANS : DETLOSS_FIT_EVOLVE, wh, n, K, olds,
                            nold, news, &fr, &fo, &err);
    if (st != DETLOSS_OK) {
      if (strcmp(err.where, "k") == 0) snprintf(err.where, sizeof err.where, "-n");
      rc = dl_cli_report(&err, st);
      goto done;
    }
    if (method == 0)
      snprintf(objective, sizeof objective, "mean best IoU of corner-aligned boxes");
    else
      snprintf(objective, sizeof objective, "YOLOv5 fitness, thr %g, %zu generations",
               (double)fo.ratio_thresh, fo.generations);
    ns.shapes = news;
    ns.k = K;
    if (is_grid) {
      size_t per = K / L;
      for (size_t l = 0; l < L; l++) {
        detloss_anchor_level v;
        memset(&v, 0, sizeof v);
        v.stride_h = cfg->grid.levels[l].stride_h;
        v.stride_w = cfg->grid.levels[l].stride_w;
        v.shapes = news + 2 * l * per;
        v.num_shapes = per;
        ns.lv[l] = v;
      }
    }
  } else {
    size_t S = cfg->grid.levels[0].num_sizes, R = cfg->grid.levels[0].num_ratios;
    sizes = malloc((L * S + R) * sizeof(float));
    if (!sizes) goto oom;
    st = detloss_fit_levels(&view, &cfg->grid, &eo, sizes, sizes + L * S, &lr, &fo, &err);
    if (st != DETLOSS_OK) {
      dl_where_file(&err, strncmp(err.where, "data", 4) == 0 ? ds->path : cfg->path);
      rc = dl_cli_report(&err, st);
      goto done;
    }
    snprintf(objective, sizeof objective,
             "share of gts with >= 1 positive, then mean best IoU (%zu evaluations)",
             lr.evaluations);
    ns.S = S;
    ns.R = R;
    ns.sizes = sizes;
    ns.ratios = sizes + L * S;
    for (size_t l = 0; l < L; l++) {
      detloss_anchor_level v = cfg->grid.levels[l];
      v.feat_h = v.feat_w = 0;
      v.sizes = sizes + l * S;
      v.ratios = sizes + L * S;
      ns.lv[l] = v;
    }
  }
  ns.grid = cfg->grid;
  ns.grid.levels = ns.lv;
  ns.grid.num_levels = is_grid ? L : 0;
  detloss_eval_anchors src1;
  memset(&src1, 0, sizeof src1);
  if (is_grid)
    src1.grid = &ns.grid;
  else {
    src1.shapes = news;
    src1.num_shapes = K;
  }
  st = detloss_eval_check_limits(&view, &src1, &eo, &lim, &err);
  if (st == DETLOSS_OK) st = detloss_anchor_eval(&view, &src1, NULL, rep1, &eo, &err);
  if (st != DETLOSS_OK) {
    rc = dl_cli_report(&err, st);
    goto done;
  }
  /* the anchor set */
  char source[1024], name[512];
  snprintf(source, sizeof source,
           "detloss fit --method %s --seed %llu on %s (%zu gt boxes after the resize of %s); "
           "objective: %s",
           METHODS[method], seed, ds->path, n, cfg->path, objective);
  snprintf(name, sizeof name, "%s anchors fitted to %s", METHODS[method],
           ds->name ? ds->name : ds->path);
  write_set(&set, cfg, &ns, name, source);
  dlj_raw(&set, "\n");
  /* the report */
  int pos = eo.metric == DETLOSS_EVAL_IOU && eo.count_positives;
  if (json) {
    dlj_obj_begin(&b);
    dlj_kv_str(&b, "config", cfg->path);
    dlj_kv_str(&b, "dataset", ds->path);
    dlj_kv_str(&b, "method", METHODS[method]);
    dlj_key(&b, "seed");
    dlj_printf(&b, "%llu", seed);
    dlj_kv_str(&b, "objective", objective);
    dlj_kv_int(&b, "num_gt", (long long)n);
    if (method < 2) {
      dlj_kv_int(&b, "k", (long long)K);
      dlj_kv_int(&b, "num_used", (long long)fr.num_used);
      dlj_kv_int(&b, "iterations", (long long)fr.iterations);
      metrics_json(&b, "shape_metrics_before", &fr.before);
      metrics_json(&b, "shape_metrics_after", &fr.after);
    } else {
      dlj_kv_int(&b, "evaluations", (long long)lr.evaluations);
    }
    stats_json(&b, "before", rep0);
    stats_json(&b, "after", rep1);
    dlj_key(&b, "anchors");
    write_set(&b, cfg, &ns, name, source);
    dlj_obj_end(&b);
    dlj_raw(&b, "\n");
  } else {
    dlj_printf(&b, "config   %s%s%s\n", cfg->path, cfg->name ? ": " : "",
               cfg->name ? cfg->name : "");
    dlj_printf(&b, "data     %s: %zu gt boxes after resizing (%zu crowd, %zu zero-area left out)\n",
               ds->path, n, rep0->num_crowd, rep0->num_degenerate);
    dlj_printf(&b, "method   %s, seed %llu; objective: %s\n", METHODS[method], seed, objective);
    if (method < 2) {
      dlj_printf(&b, "         %zu shapes from %zu boxes, %zu %s\n\n", K, fr.num_used,
                 fr.iterations, method == 0 ? "Lloyd steps" : "accepted mutations");
      dlj_printf(&b, "shapes (thr %g)          before     after\n", (double)fo.ratio_thresh);
      dlj_printf(&b, "mean best IoU          %8.4f  %8.4f\n", fr.before.mean_iou,
                 fr.after.mean_iou);
      dlj_printf(&b, "fitness (YOLOv5)       %8.4f  %8.4f\n", fr.before.fitness, fr.after.fitness);
      dlj_printf(&b, "best possible recall   %8.4f  %8.4f\n", fr.before.bpr, fr.after.bpr);
      dlj_printf(&b, "anchors above thr      %8.3f  %8.3f\n", fr.before.aat, fr.after.aat);
    } else {
      dlj_printf(&b, "         %zu evaluations of the config's matcher\n", lr.evaluations);
    }
    dlj_printf(&b, "\nconfig's evaluation (%s), before -> after\n",
               eo.metric == DETLOSS_EVAL_IOU ? "IoU and matcher" : "shape ratio");
    dlj_raw(&b, "size         gts  recall          mean best      anchors/gt");
    dlj_raw(&b, pos ? "        positives/gt     0 positives\n" : "\n");
    row(&b, "all", &rep0->all, &rep1->all, pos);
    for (int s = 0; s < 3; s++)
      row(&b, detloss_eval_size_name((detloss_eval_size)s), &rep0->by_size[s], &rep1->by_size[s],
          pos);
    dlj_raw(&b, "\nnew anchors:\n");
    if (is_grid) {
      for (size_t l = 0; l < L; l++) {
        const detloss_anchor_level *v = &ns.lv[l];
        dlj_printf(&b, "  level %zu stride %g:", l, (double)v->stride_w);
        if (v->num_shapes)
          for (size_t q = 0; q < v->num_shapes; q++)
            dlj_printf(&b, " %.1fx%.1f", (double)v->shapes[2 * q], (double)v->shapes[2 * q + 1]);
        else {
          dlj_raw(&b, " sizes");
          for (size_t j = 0; j < v->num_sizes; j++) dlj_printf(&b, " %.1f", (double)v->sizes[j]);
          dlj_raw(&b, "; ratios");
          for (size_t j = 0; j < v->num_ratios; j++) dlj_printf(&b, " %.3f", (double)v->ratios[j]);
        }
        dlj_raw(&b, "\n");
      }
    } else {
      dlj_raw(&b, " ");
      for (size_t q = 0; q < K; q++)
        dlj_printf(&b, " %.1fx%.1f", (double)news[2 * q], (double)news[2 * q + 1]);
      dlj_raw(&b, "\n");
    }
  }
  if (plot) {
    /* the new shapes at network scale */
    size_t nn = 0;
    float *nsh = NULL;
    if (method < 2) {
      nsh = news;
      nn = K;
    } else {
      for (size_t l = 0; l < L; l++) nn += ns.S * ns.R;
      nsh = malloc(nn * 2 * sizeof(float));
      float *base = malloc(nn * 4 * sizeof(float) + 1);
      if (!nsh || !base) {
        free(nsh);
        free(base);
        goto oom;
      }
      size_t at = 0;
      for (size_t l = 0; l < L; l++) {
        size_t kk = 0;
        detloss_anchors_level_base(&ns.grid, l, base, nn, &kk, NULL);
        for (size_t q = 0; q < kk; q++, at++) {
          nsh[2 * at] = base[4 * q + 2] - base[4 * q];
          nsh[2 * at + 1] = base[4 * q + 3] - base[4 * q + 1];
        }
      }
      free(base);
    }
    char title[256];
    snprintf(title, sizeof title, "detloss fit --method %s --seed %llu: %s", METHODS[method], seed,
             ds->name ? ds->name : ds->path);
    svg_plot(&svg, wh, n, olds, nold, nsh, nn, title);
    if (nsh != news) free(nsh);
  }
  if (b.oom || set.oom || svg.oom) goto oom;
  dl_cli_output files[2];
  size_t nf = 0;
  if (plot) files[nf++] = (dl_cli_output){plot, svg.p, svg.len};
  if (out) files[nf++] = (dl_cli_output){out, set.p, set.len};
  rc = dl_cli_write_outputs(files, nf);
  if (rc == DL_EXIT_OK) rc = dl_cli_write_stdout(b.p, b.len);
  if (rc == DL_EXIT_OK && plot) fprintf(stderr, "detloss: wrote plot %s\n", plot);
  goto done;
oom:
  fprintf(stderr, "detloss: fit: out of memory\n");
  rc = DL_EXIT_RUNTIME;
done:
  dl_cli_progress_clear(&prog);
  dlj_buf_free(&b);
  dlj_buf_free(&set);
  dlj_buf_free(&svg);
  free(olds);
  free(oldl);
  free(wh);
  free(news);
  free(sizes);
  free(gt);
  free(rep0);
  free(rep1);
  detloss_dataset_free(ds);
  detloss_config_free(cfg);
  return rc;
}
