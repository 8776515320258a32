/*
 * cmd_eval.c - `detloss eval CONFIG [--dataset FILE] [--json] [--plot FILE.svg] [-o FILE]`:
 * evaluate a config's anchor set on a data set of gt boxes (detloss_anchor_eval).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "detloss/detloss_json.h"
#include "json/evalcfg.h"
#include "json/jread.h"
#include "json/jwrite.h"

static const char HELP[] =
    "usage: detloss eval CONFIG [--dataset FILE] [--json] [--plot FILE.svg] [-o FILE]\n"
    "                    [--threads N] [--worst N] [--image-size W,H]\n"
    "       detloss eval --help-config\n"
    "\n"
    "Evaluates the anchor set of CONFIG on a data set of ground-truth boxes, before\n"
    "any training: which objects does some anchor cover, and how many positives\n"
    "does the config's matcher give each of them?\n"
    "\n"
    "Per gt box (after resizing the image as the config says; boxes poking out of\n"
    "their image are clipped, zero-area and crowd boxes are left out, all counted):\n"
    "  best      best IoU over the image's anchors (metric iou), or the YOLOv5\n"
    "            shape ratio r = min(w/aw, aw/w, h/ah, ah/h) (metric wh_ratio)\n"
    "  fit       anchors with IoU >= iou_thresh (r > 1/ratio_thresh)\n"
    "  positives anchors the matcher assigns to it (torchvision Matcher semantics\n"
    "            by default, low-quality matches included), or the config's\n"
    "            \"assigner\": atss on the anchors, fcos on \"points\" (docs/configs.md)\n"
    "Reported: recall (share of gts whose best anchor fits), mean best, anchors\n"
    "per gt, positives per gt and their distribution (0, 1, 2-4, 5+), all split by\n"
    "COCO size (small < 32^2, medium, large >= 96^2 px^2, after resizing); per\n"
    "level the share of gts it serves best and its share of positives; the\n"
    "worst-covered gts. Anchors are generated per image on feature maps of\n"
    "ceil(H / stride) x ceil(W / stride) cells.\n"
    "\n"
    "options:\n"
    "  --dataset FILE  the data set: the common format of detloss's data/ files\n"
    "                  ({\"images\": [{\"width\", \"height\", \"boxes\": [[x1,y1,x2,y2]]}]})\n"
    "                  a COCO instances_*.json or a YOLO labels/ directory (sizes\n"
    "                  from images/); default: the config's \"dataset\"\n"
    "  --image-size W,H  every image of a YOLO directory is W x H px\n"
    "  --json          print the report as JSON (for machines) instead of the table\n"
    "  --plot FILE.svg write an SVG of the gt sizes (log w vs log h) coloured by best\n"
    "                  IoU, with the anchor shapes overlaid; the name must end in\n"
    "                  .svg (any case) or have no extension (/dev/stdout, a FIFO).\n"
    "                  Where it was written is said on stderr.\n"
    "  -o FILE         write the report (table or JSON) to FILE instead of stdout\n"
    "  --threads N     threads (0 = OpenMP default); results are identical for any N\n"
    "  --worst N       list the N worst-covered gts (0-100, default: the config's, 20)\n"
    "  --help-config   list every config key with its type, range and default\n"
    "  -h, --help      show this help\n"
    "\n"
    "Output files (-o, --plot) are written in full to temporary files beside them\n"
    "and renamed over them only when every output is complete: a failure replaces\n"
    "nothing. A symbolic link is followed (its target is replaced, the link stays),\n"
    "an existing file keeps its permissions, and a FIFO or device (/dev/stdout) is\n"
    "written directly. A progress bar is drawn on stderr when it is a terminal and\n"
    "the run takes more than a second.\n"
    "\n" DL_CLI_DATA_DIRS_HELP
    "\n"
    "limits (environment; docs/limits.md): DETLOSS_MAX_INPUT_BYTES (1 GiB per\n"
    "file), DETLOSS_MAX_ANCHORS (134217728 per image), DETLOSS_MAX_IMAGE_SIDE\n"
    "(100000 px, also after resizing). Past one: exit 2 before any work.\n"
    "\n"
    "example:\n"
    "  detloss eval torchvision_fasterrcnn_fpn_rpn --plot coverage.svg\n"
    "\n" DL_EXIT_HELP;

static void stats_row(dlj_buf *b, const char *name, const detloss_eval_stats *s, int pos) {
  if (pos)
    dlj_printf(b, "%-8s %7zu  %6.3f  %9.3f  %10.2f  %12.2f  %6zu %6zu %6zu %6zu\n", name, s->num_gt,
               s->recall, s->mean_best, s->anchors_per_gt, s->positives_per_gt, s->pos_hist[0],
               s->pos_hist[1], s->pos_hist[2], s->pos_hist[3]);
  else
    dlj_printf(b, "%-8s %7zu  %6.3f  %9.3f  %10.2f\n", name, s->num_gt, s->recall, s->mean_best,
               s->anchors_per_gt);
}

static void text_report(dlj_buf *b, const detloss_config *cfg, const detloss_dataset *ds,
                        const detloss_eval_report *r, const detloss_eval_options *o) {
  int iou = o->metric == DETLOSS_EVAL_IOU, pos = iou && o->count_positives;
  dlj_printf(b, "config   %s%s%s\n", cfg->path, cfg->name ? ": " : "", cfg->name ? cfg->name : "");
  const int fcos = cfg->assigner.method == DETLOSS_EVAL_METHOD_FCOS;
  if (fcos) {
    dlj_raw(b, "points   strides");
    for (size_t l = 0; l < cfg->assigner.num_point_levels; l++)
      dlj_printf(b, "%s %g", l ? "," : "", (double)cfg->assigner.point_strides[l]);
    dlj_printf(b, ", offset %g\n", (double)cfg->assigner.point_offset);
  } else {
    dlj_printf(b, "anchors  %s%s%s\n", cfg->anchors_path ? cfg->anchors_path : "(inline)",
               cfg->anchors_name ? ": " : "", cfg->anchors_name ? cfg->anchors_name : "");
  }
  dlj_printf(b, "data     %s%s%s\n", ds->path, ds->name ? ": " : "", ds->name ? ds->name : "");
  dlj_printf(b,
             "         %zu images (%zu without gt), %zu boxes: %zu crowd and %zu zero-area left "
             "out, "
             "%zu clipped to their image\n",
             r->num_images, r->num_images_empty, r->num_boxes, r->num_crowd, r->num_degenerate,
             r->num_clipped);
  if (o->resize_min_size > 0.0f && o->resize_max_size > 0.0f)
    dlj_printf(b, "resize   short side %g, long side at most %g (torchvision)\n",
               (double)o->resize_min_size, (double)o->resize_max_size);
  else if (o->resize_max_size > 0.0f)
    dlj_printf(b, "resize   long side %g\n", (double)o->resize_max_size);
  else if (o->resize_min_size > 0.0f)
    dlj_printf(b, "resize   short side %g\n", (double)o->resize_min_size);
  else
    dlj_printf(b, "resize   none (original pixels)\n");
  if (fcos) {
    const detloss_fcos_options *f = &cfg->assigner.fcos;
    dlj_printf(b, "assigner FCOS (%s), centre sampling %s",
               f->semantics == DETLOSS_FCOS_ORIGINAL ? "original" : "mmdet",
               f->center_sampling ? "on" : "off");
    if (f->center_sampling) dlj_printf(b, " (radius %g strides)", (double)f->center_sample_radius);
    dlj_raw(b, ", ranges");
    static const float FCOS_RANGES[10] = {-1, 64, 64, 128, 128, 256, 256, 512, 512, 1e8f};
    const float *rg = cfg->assigner.num_ranges ? cfg->assigner.regress_ranges : FCOS_RANGES;
    for (size_t l = 0; l < cfg->assigner.num_point_levels; l++)
      dlj_printf(b, "%s [%g, %g]", l ? "," : "", (double)rg[2 * l], (double)rg[2 * l + 1]);
    dlj_printf(b,
               "; %zu points in all images\n"
               "metric   best = highest centerness of a positive point (0: none), fit = points "
               "inside the box,\n"
               "         recall = share of gts with a positive point\n",
               r->num_anchors);
  } else if (iou && cfg->assigner.method == DETLOSS_EVAL_METHOD_ATSS) {
    const detloss_atss_options *a = &cfg->assigner.atss;
    dlj_printf(b,
               "metric   IoU, an anchor fits when IoU >= %g; %zu anchors in all images\n"
               "assigner ATSS (%s), topk %lld per level, positives: IoU >= mean + std of the "
               "candidates, centre inside the gt\n",
               (double)o->iou_thresh, r->num_anchors,
               a->semantics == DETLOSS_ATSS_ORIGINAL ? "original" : "mmdet",
               (long long)(a->semantics == DETLOSS_ATSS_ORIGINAL ? a->topk * a->anchors_per_location
                                                                 : a->topk));
  } else if (iou) {
    const detloss_match_options *m = &o->match;
    dlj_printf(b,
               "metric   IoU, an anchor fits when IoU >= %g; %zu anchors in all images\n"
               "matcher  %s, positive >= %g, negative < %g, low-quality matches %s\n",
               (double)o->iou_thresh, r->num_anchors,
               detloss_names_get(DETLOSS_NAMES_MATCH_SEMANTICS, m->semantics)->name,
               (double)m->high, (double)m->low, m->allow_low_quality ? "on" : "off");
  } else {
    dlj_printf(b,
               "metric   shape ratio r = min(w/aw, aw/w, h/ah, ah/h), fits when r > 1/%g "
               "(YOLOv5 autoanchor); %zu shapes\n",
               (double)o->ratio_thresh, r->num_anchors);
  }
  dlj_raw(b, "\n");
  if (pos && fcos)
    dlj_raw(b,
            "size         gts  recall  mean best   points/gt  positives/gt   0 pos  1 pos  2-4 "
            "pos  5+ pos\n");
  else if (pos)
    dlj_raw(b,
            "size         gts  recall  mean best  anchors/gt  positives/gt   0 pos  1 pos  2-4 "
            "pos  5+ pos\n");
  else
    dlj_raw(b, "size         gts  recall  mean best  anchors/gt\n");
  stats_row(b, "all", &r->all, pos);
  for (int s = 0; s < 3; s++)
    stats_row(b, detloss_eval_size_name((detloss_eval_size)s), &r->by_size[s], pos);
  if (pos && (fcos || cfg->assigner.method == DETLOSS_EVAL_METHOD_ATSS)) {
    /* The question of a static assigner: which gts does it never train on? */
    const detloss_eval_stats *a = &r->all;
    dlj_printf(b, "\ngts with >= 1 positive: %zu of %zu (%.3f)", a->num_gt - a->pos_hist[0],
               a->num_gt, a->num_gt ? 1.0 - (double)a->pos_hist[0] / (double)a->num_gt : 0.0);
    for (int s = 0; s < 3; s++)
      dlj_printf(b, "%s %s %zu of %zu", s ? "," : ";", detloss_eval_size_name((detloss_eval_size)s),
                 r->by_size[s].num_gt - r->by_size[s].pos_hist[0], r->by_size[s].num_gt);
    dlj_raw(b, "\n");
    if (fcos)
      dlj_printf(b,
                 "gts outside every level's regress range (max side outside every (lo, 2 hi]): "
                 "%zu\n",
                 r->num_out_of_range);
  }
  if (cfg->grid.num_levels > 0 || fcos) {
    size_t tp = 0;
    for (size_t l = 0; l < r->num_levels; l++) tp += r->level_pos[l];
    dlj_raw(b, pos ? "\nlevel  stride  best for gts  share  positives  share\n"
                   : "\nlevel  stride  best for gts  share\n");
    for (size_t l = 0; l < r->num_levels; l++) {
      double share = r->all.num_gt ? (double)r->level_best[l] / (double)r->all.num_gt : 0.0;
      double stride =
          fcos ? (double)cfg->assigner.point_strides[l] : (double)cfg->grid.levels[l].stride_w;
      if (pos)
        dlj_printf(b, "%-6zu %-7g %12zu  %5.3f  %9zu  %5.3f\n", l, stride, r->level_best[l], share,
                   r->level_pos[l], tp ? (double)r->level_pos[l] / (double)tp : 0.0);
      else
        dlj_printf(b, "%-6zu %-7g %12zu  %5.3f\n", l, stride, r->level_best[l], share);
    }
  }
  if (r->num_worst > 0) {
    dlj_printf(b, "\nworst-covered gts (best %s; w x h after resizing):\n",
               fcos  ? "centerness of a positive"
               : iou ? "IoU"
                     : "r");
    dlj_raw(b, "   best        w x h       h/w   image id  box\n");
    for (size_t i = 0; i < r->num_worst; i++) {
      const detloss_eval_worst *w = &r->worst[i];
      char wh[64];
      snprintf(wh, sizeof wh, "%.1f x %.1f", (double)w->w, (double)w->h);
      dlj_printf(b, "  %5.3f  %14s  %6.2f  %9lld  %3zu\n", (double)w->best, wh,
                 w->w > 0.0f ? (double)w->h / (double)w->w : 0.0, (long long)ds->image_id[w->image],
                 w->box);
    }
  }
}

/* Colour of a best value: red (0) -> orange -> yellow (at the fit threshold) -> green (1). */
static void colour(double v, double thr, char *buf, size_t cap) {
  double r, g, bl;
  if (v < thr) {
    double t = thr > 0.0 ? v / thr : 0.0;
    r = 215 + (253 - 215) * t;
    g = 25 + (224 - 25) * t;
    bl = 28 + (80 - 28) * t;
  } else {
    double t = thr < 1.0 ? (v - thr) / (1.0 - thr) : 1.0;
    if (t > 1.0) t = 1.0;
    r = 166 + (26 - 166) * t;
    g = 217 + (150 - 217) * t;
    bl = 106 + (65 - 106) * t;
  }
  snprintf(buf, cap, "#%02x%02x%02x", (int)r, (int)g, (int)bl);
}

/* Builds the SVG into *out (which the caller frees). Returns an exit status. */
static int svg_plot(dlj_buf *out, const detloss_config *cfg, const detloss_dataset *ds,
                    const detloss_eval_gt *gt, const detloss_eval_report *r,
                    const detloss_eval_options *o) {
  /* anchor shapes (w, h) at network scale */
  size_t ns = 0;
  float *sh = NULL;
  size_t *sl = NULL;
  if (dl_cli_anchor_shapes(cfg, &sh, &ns, &sl) != DL_EXIT_OK) {
    fprintf(stderr, "detloss: eval: out of memory\n");
    return DL_EXIT_RUNTIME;
  }
  /* axis range: powers of two around every gt side and anchor side */
  double lo = 1e30, hi = 0.0;
  for (size_t i = 0; i < ds->num_boxes; i++) {
    if (gt[i].status != DETLOSS_EVAL_GT_OK) continue;
    double a = fmin((double)gt[i].w, (double)gt[i].h), c = fmax((double)gt[i].w, (double)gt[i].h);
    if (a < lo) lo = a;
    if (c > hi) hi = c;
  }
  for (size_t q = 0; q < ns; q++) {
    double a = fmin((double)sh[2 * q], (double)sh[2 * q + 1]);
    double c = fmax((double)sh[2 * q], (double)sh[2 * q + 1]);
    if (a > 0.0 && a < lo) lo = a;
    if (c > hi) hi = c;
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
  int iou = o->metric == DETLOSS_EVAL_IOU;
  const int fcos = cfg->assigner.method == DETLOSS_EVAL_METHOD_FCOS;
  /* FCOS: best is a positive's centerness, 0 without one: red below a hair above 0 */
  double thr = fcos ? 1e-9 : iou ? (double)o->iou_thresh : 1.0 / (double)o->ratio_thresh;
  dlj_buf b;
  dlj_buf_init(&b);
  dlj_printf(&b,
             "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 "
             "%g "
             "%g\" font-family=\"sans-serif\" font-size=\"12\">\n"
             "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
             W, H, W, H);
  dlj_raw(&b, "<text x=\"80\" y=\"24\" font-size=\"15\" font-weight=\"bold\">");
  dl_cli_svg_escape(&b, cfg->name ? cfg->name : cfg->path, 90);
  dlj_raw(&b, "</text>\n<text x=\"80\" y=\"42\">");
  dl_cli_svg_escape(&b, ds->name ? ds->name : ds->path, 40);
  if (fcos)
    dlj_printf(&b,
               ": %zu gts, %.3f with a positive point, %zu outside every range</text>\n"
               "<text x=\"80\" y=\"58\" fill=\"#555\">gt size after resizing (log scale), "
               "colour = best centerness of a positive point (red: no positive)</text>\n",
               r->all.num_gt, r->all.recall, r->num_out_of_range);
  else
    dlj_printf(&b,
               ": %zu gts, recall %.3f at %s %s %g, mean best %.3f</text>\n<text x=\"80\" "
               "y=\"58\" fill=\"#555\">gt size after resizing (log scale), colour = best %s; "
               "crosses: anchors</text>\n",
               r->all.num_gt, r->all.recall, iou ? "IoU" : "r", iou ? "&gt;=" : "&gt;", thr,
               r->all.mean_best, iou ? "IoU over the anchors" : "shape ratio r");
  /* frame, grid, ticks */
  dlj_printf(&b,
             "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#333\"/>\n",
             X0, Y0, X1 - X0, Y1 - Y0);
  for (double e = l2lo; e <= l2hi + 1e-9; e += 1.0) {
    double v = exp2(e);
    dlj_printf(&b,
               "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#eee\"/>"
               "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#eee\"/>"
               "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%g</text>"
               "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
               PX(v), Y0, PX(v), Y1, X0, PY(v), X1, PY(v), PX(v), Y1 + 16, v, X0 - 6, PY(v) + 4, v);
  }
  dlj_printf(&b,
             "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#bbb\" stroke-dasharray=\"4 "
             "4\"/>\n"
             "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">gt width (px)</text>\n"
             "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\" transform=\"rotate(-90 %g %g)\">gt "
             "height (px)</text>\n",
             X0, Y1, X1, Y0, (X0 + X1) / 2, Y1 + 36, X0 - 48, (Y0 + Y1) / 2, X0 - 48,
             (Y0 + Y1) / 2);
  /* points: fitting ones first, misses on top; at most ~40000 drawn (every k-th) */
  size_t n_ok = r->all.num_gt, step = n_ok > 40000 ? (n_ok + 39999) / 40000 : 1;
  for (int pass = 0; pass < 2; pass++) {
    size_t seen = 0;
    dlj_raw(&b, "<g fill-opacity=\"0.75\">\n");
    for (size_t i = 0; i < ds->num_boxes; i++) {
      const detloss_eval_gt *g = &gt[i];
      if (g->status != DETLOSS_EVAL_GT_OK) continue;
      if (seen++ % step) continue;
      int fit = fcos ? g->num_pos > 0 : iou ? (double)g->best >= thr : (double)g->best > thr;
      if (fit != (pass == 0)) continue;
      char col[16];
      colour((double)g->best, thr, col, sizeof col);
      dlj_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.2\" fill=\"%s\"/>\n",
                 PX(fmax((double)g->w, exp2(l2lo))), PY(fmax((double)g->h, exp2(l2lo))), col);
    }
    dlj_raw(&b, "</g>\n");
  }
  /* anchor shapes */
  for (size_t q = 0; q < ns; q++) {
    double x = PX((double)sh[2 * q]), y = PY((double)sh[2 * q + 1]);
    dlj_printf(&b,
               "<path d=\"M%.1f %.1fl10 10m0 -10l-10 10\" stroke=\"black\" stroke-width=\"2.2\"/>"
               "<title>anchor %g x %g (level %d)</title>\n",
               x - 5, y - 5, (double)sh[2 * q], (double)sh[2 * q + 1], (int)sl[q]);
  }
  /* colour bar */
  for (int k = 0; k < 50; k++) {
    double v = 1.0 - (double)k / 50.0;
    char col[16];
    colour(v, thr, col, sizeof col);
    dlj_printf(&b, "<rect x=\"680\" y=\"%.1f\" width=\"18\" height=\"%.1f\" fill=\"%s\"/>\n",
               Y0 + (Y1 - Y0) * 0.5 * k / 50.0, (Y1 - Y0) * 0.5 / 50.0 + 0.5, col);
  }
  if (fcos)
    dlj_printf(&b,
               "<text x=\"704\" y=\"%g\">1</text><text x=\"704\" y=\"%g\">0 (no positive)</text>"
               "<text x=\"680\" y=\"%g\">best centerness</text>\n</svg>\n",
               Y0 + 4, Y0 + (Y1 - Y0) * 0.5 + 4, Y0 - 8);
  else
    dlj_printf(&b,
               "<text x=\"704\" y=\"%g\">1</text><text x=\"704\" y=\"%.1f\">%g (fits)</text>"
               "<text x=\"704\" y=\"%g\">0</text><text x=\"680\" y=\"%g\">best %s</text>\n"
               "<path d=\"M680 %gl10 10m0 -10l-10 10\" stroke=\"black\" stroke-width=\"2.2\"/>"
               "<text x=\"696\" y=\"%g\">anchor shape</text>\n</svg>\n",
               Y0 + 4, Y0 + (Y1 - Y0) * 0.5 * (1.0 - thr) + 4, thr, Y0 + (Y1 - Y0) * 0.5 + 4,
               Y0 - 8, iou ? "IoU" : "r", Y0 + (Y1 - Y0) * 0.5 + 30, Y0 + (Y1 - Y0) * 0.5 + 39);
#undef PX
#undef PY
  free(sh);
  free(sl);
  if (b.oom) {
    fprintf(stderr, "detloss: eval: out of memory\n");
    dlj_buf_free(&b);
    return DL_EXIT_RUNTIME;
  }
  *out = b;
  return DL_EXIT_OK;
}

int dl_cmd_eval(int argc, char **argv) {
  dl_cli_progress prog; /* the run's clock starts now: loading counts towards the second */
  dl_cli_progress_start(&prog, "eval", "images");
  const char *cfg_path = NULL, *ds_path = NULL, *plot = NULL, *out = NULL;
  float image_w = 0.0f, image_h = 0.0f;
  int json = 0, threads = 0;
  long worst = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(HELP, stdout);
      return DL_EXIT_OK;
    } else if (strcmp(a, "--help-config") == 0) {
      char *d = detloss_config_describe();
      if (!d) {
        fprintf(stderr, "detloss: eval: out of memory\n");
        return DL_EXIT_RUNTIME;
      }
      int rc = dl_cli_write_stdout(d, strlen(d));
      detloss_free(d);
      return rc;
    } else if (strcmp(a, "--json") == 0) {
      json = 1;
    } else if (strcmp(a, "--dataset") == 0 || strcmp(a, "--plot") == 0 || strcmp(a, "-o") == 0 ||
               strcmp(a, "--threads") == 0 || strcmp(a, "--worst") == 0 ||
               strcmp(a, "--image-size") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "detloss: eval: %s needs a value (see detloss eval --help)\n", a);
        return DL_EXIT_INPUT;
      }
      const char *v = argv[++i];
      if (strcmp(a, "--dataset") == 0)
        ds_path = v;
      else if (strcmp(a, "--plot") == 0)
        plot = v;
      else if (strcmp(a, "-o") == 0)
        out = v;
      else if (strcmp(a, "--image-size") == 0) {
        char *end;
        double w = strtod(v, &end), h = 0.0;
        if (*end == ',' || *end == 'x') h = strtod(end + 1, &end);
        if (*end || !(w >= 1.0 && w <= 1e7 && h >= 1.0 && h <= 1e7)) {
          fprintf(stderr,
                  "detloss: eval: --image-size needs W,H: two numbers of pixels in [1, 1e7]\n");
          return DL_EXIT_INPUT;
        }
        image_w = (float)w;
        image_h = (float)h;
      } else if (strcmp(a, "--threads") == 0) {
        if ((threads = dl_cli_parse_threads(v)) < 0) {
          fprintf(stderr, "detloss: eval: --threads needs a whole number from 0 to 4096\n");
          return DL_EXIT_INPUT;
        }
      } else {
        char *end;
        errno = 0;
        worst = strtol(v, &end, 10);
        if (errno || end == v || *end || worst < 0 || worst > DETLOSS_EVAL_MAX_WORST) {
          fprintf(stderr, "detloss: eval: --worst needs a whole number from 0 to %d\n",
                  DETLOSS_EVAL_MAX_WORST);
          return DL_EXIT_INPUT;
        }
      }
    } else if (a[0] == '-' && a[1] != '\0') {
      fprintf(stderr, "detloss: eval: unknown option '%s' (see detloss eval --help)\n", a);
      return DL_EXIT_INPUT;
    } else if (!cfg_path) {
      cfg_path = a;
    } else {
      fprintf(stderr, "detloss: eval: expected one CONFIG, got a second: '%s'\n", a);
      return DL_EXIT_INPUT;
    }
  }
  if (!cfg_path) {
    fprintf(stderr, "detloss: eval: missing CONFIG (see detloss eval --help)\n");
    return DL_EXIT_INPUT;
  }
  int prc = dl_cli_check_plot_output("eval", plot, out);
  if (prc != DL_EXIT_OK) return prc;
  detloss_json_limits lim;
  int lrc = dl_cli_limits(&lim);
  if (lrc != DL_EXIT_OK) return lrc;
  dl_data_dirs dirs;
  char cfg_file[DL_PATH_CAP];
  dl_cli_data_dirs(&dirs);
  int found = dl_cli_config_path(cfg_path, &dirs, cfg_file, sizeof cfg_file);
  if (found != DL_EXIT_OK) return found;
  detloss_config *cfg = NULL;
  detloss_dataset *ds = NULL;
  detloss_error err;
  detloss_status st = detloss_config_load_ex(cfg_file, dirs.search, &lim, &cfg, &err);
  if (st != DETLOSS_OK) return dl_cli_load_error(&err, st);
  if (cfg->assigner.method != DETLOSS_EVAL_METHOD_MAX_IOU &&
      cfg->assigner.method != DETLOSS_EVAL_METHOD_ATSS &&
      cfg->assigner.method != DETLOSS_EVAL_METHOD_FCOS) {
    /* The config loads and describes, but eval has nothing to run. */
    fprintf(stderr,
            "detloss: %s: assigner.method: %s is a dynamic assigner: it assigns from "
            "predicted scores and boxes, which a data set of gt boxes does not have\n",
            cfg->path,
            cfg->assigner.method == DETLOSS_EVAL_METHOD_SIMOTA         ? "simota"
            : cfg->assigner.method == DETLOSS_EVAL_METHOD_TASK_ALIGNED ? "task_aligned"
                                                                       : "hungarian");
    detloss_config_free(cfg);
    return DL_EXIT_INPUT;
  }
  if (!ds_path) ds_path = cfg->dataset_path;
  if (!ds_path) {
    fprintf(stderr, "detloss: eval: no data set: give --dataset FILE or \"dataset\" in %s\n",
            cfg->path);
    detloss_config_free(cfg);
    return DL_EXIT_INPUT;
  }
  if (image_w > 0.0f) {
    detloss_yolo_options yo = detloss_yolo_options_default();
    yo.image_w = image_w;
    yo.image_h = image_h;
    st = detloss_dataset_load_yolo(ds_path, &yo, &lim, &ds, &err);
  } else {
    st = detloss_dataset_load_ex(ds_path, &lim, &ds, &err);
  }
  if (st != DETLOSS_OK) {
    detloss_config_free(cfg);
    return dl_cli_load_error(&err, st);
  }
  detloss_eval_options o = cfg->eval;
  o.num_threads = threads;
  if (worst >= 0) o.num_worst = (size_t)worst;
  if (isatty(STDERR_FILENO)) {
    o.progress = dl_cli_progress_cb;
    o.progress_user = &prog;
  }
  detloss_eval_gt *gt = malloc((ds->num_boxes ? ds->num_boxes : 1) * sizeof *gt);
  detloss_eval_report *rep = malloc(sizeof *rep);
  int rc = DL_EXIT_OK;
  if (!gt || !rep) {
    fprintf(stderr, "detloss: eval: out of memory\n");
    rc = DL_EXIT_RUNTIME;
  } else {
    detloss_eval_dataset view = detloss_dataset_view(ds);
    detloss_eval_anchors src = detloss_config_eval_anchors(cfg);
    /* Bounded work first: image sides, resized sides, anchors per image. */
    st = detloss_eval_check_limits(&view, &src, &o, &lim, &err);
    if (st == DETLOSS_OK) st = dl_eval_check_point_limits(&view, &cfg->assigner, &o, &lim, &err);
    if (st == DETLOSS_OK)
      st = detloss_anchor_eval_ex(&view, &src, &cfg->assigner, gt, rep, &o, &err);
    if (st != DETLOSS_OK) {
      /* Library names -> the names in the files: the data set file for data
       * errors, the config otherwise. */
      static const dlj_arg data_args[] = {{"data.image_hw", "images", NULL, 0, 0}};
      static const dlj_arg cfg_args[] = {{"resize_max_size", "resize.max_size", NULL, 0, 1},
                                         {"resize_min_size", "resize.min_size", NULL, 0, 1}};
      dlj_path at;
      dlj_path_init(&at, "");
      int data = strncmp(err.where, "data", 4) == 0;
      if (data)
        dlj_locate(&err, &at, data_args, 1);
      else
        dlj_locate(&err, &at, cfg_args, 2);
      dl_where_file(&err, data ? ds->path : cfg->path);
      rc = dl_cli_report(&err, st);
    }
  }
  if (rc == DL_EXIT_OK) {
    dlj_buf b;
    dlj_buf_init(&b);
    if (json) {
      dlj_obj_begin(&b);
      dlj_kv_str(&b, "config", cfg->path);
      if (cfg->name) dlj_kv_str(&b, "config_name", cfg->name);
      if (cfg->anchors_path) dlj_kv_str(&b, "anchors", cfg->anchors_path);
      if (cfg->assigner.method == DETLOSS_EVAL_METHOD_ATSS) { /* absent for the matcher */
        dlj_key(&b, "assigner");
        dlj_obj_begin(&b);
        dlj_kv_str(&b, "method", "atss");
        dlj_kv_str(&b, "semantics",
                   cfg->assigner.atss.semantics == DETLOSS_ATSS_ORIGINAL ? "original" : "mmdet");
        dlj_kv_int(&b, "topk", (long long)cfg->assigner.atss.topk);
        dlj_obj_end(&b);
      } else if (cfg->assigner.method == DETLOSS_EVAL_METHOD_FCOS) {
        const detloss_eval_assigner *as = &cfg->assigner;
        static const float FCOS_RANGES[10] = {-1, 64, 64, 128, 128, 256, 256, 512, 512, 1e8f};
        const float *rg = as->num_ranges ? as->regress_ranges : FCOS_RANGES;
        dlj_key(&b, "assigner");
        dlj_obj_begin(&b);
        dlj_kv_str(&b, "method", "fcos");
        dlj_kv_str(&b, "semantics",
                   as->fcos.semantics == DETLOSS_FCOS_ORIGINAL ? "original" : "mmdet");
        dlj_key(&b, "center_sampling");
        dlj_boolval(&b, as->fcos.center_sampling);
        dlj_kv_num(&b, "center_sample_radius", (double)as->fcos.center_sample_radius);
        dlj_key(&b, "regress_ranges");
        dlj_arr_begin(&b);
        for (size_t l = 0; l < as->num_point_levels; l++) {
          dlj_arr_begin(&b);
          dlj_num(&b, (double)rg[2 * l]);
          dlj_num(&b, (double)rg[2 * l + 1]);
          dlj_arr_end(&b);
        }
        dlj_arr_end(&b);
        dlj_obj_end(&b);
        dlj_key(&b, "points");
        dlj_obj_begin(&b);
        dlj_key(&b, "strides");
        dlj_arr_begin(&b);
        for (size_t l = 0; l < as->num_point_levels; l++) dlj_num(&b, (double)as->point_strides[l]);
        dlj_arr_end(&b);
        dlj_kv_num(&b, "offset", (double)as->point_offset);
        dlj_obj_end(&b);
      }
      dlj_kv_str(&b, "dataset", ds->path);
      if (ds->name) dlj_kv_str(&b, "dataset_name", ds->name);
      dl_eval_report_json(&b, rep, &o, cfg->grid.num_levels ? &cfg->grid : NULL, &cfg->assigner,
                          ds->image_id);
      dlj_obj_end(&b);
      dlj_raw(&b, "\n");
    } else {
      text_report(&b, cfg, ds, rep, &o);
    }
    /* Every output is complete in memory before any is written; the files
     * are replaced together, or none is (dl_cli_write_outputs). */
    dlj_buf svg;
    dlj_buf_init(&svg);
    if (b.oom) {
      fprintf(stderr, "detloss: eval: out of memory\n");
      rc = DL_EXIT_RUNTIME;
    } else if (plot && (rc = svg_plot(&svg, cfg, ds, gt, rep, &o)) != DL_EXIT_OK) {
      /* message printed */
    } else {
      dl_cli_output files[2];
      size_t nf = 0;
      if (plot) files[nf++] = (dl_cli_output){plot, svg.p, svg.len};
      if (out) files[nf++] = (dl_cli_output){out, b.p, b.len};
      rc = dl_cli_write_outputs(files, nf);
      if (rc == DL_EXIT_OK && !out) rc = dl_cli_write_stdout(b.p, b.len);
      /* where the plot went: on stderr, so that stdout stays the report alone */
      if (rc == DL_EXIT_OK && plot) fprintf(stderr, "detloss: wrote plot %s\n", plot);
    }
    dlj_buf_free(&svg);
    dlj_buf_free(&b);
  }
  free(gt);
  free(rep);
  detloss_dataset_free(ds);
  detloss_config_free(cfg);
  return rc;
}
