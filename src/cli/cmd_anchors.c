/* cmd_anchors.c - `detloss anchors CONFIG [--image-size H W] [-o FILE]`: show an anchor set. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "detloss/detloss_json.h"
#include "json/evalcfg.h"
#include "json/jread.h"
#include "json/jwrite.h"

static const char HELP[] =
    "usage: detloss anchors CONFIG [--image-size H W] [-o FILE]\n"
    "\n"
    "Prints the anchor set of a config (configs/*.json) or of an anchor file\n"
    "given through a config: per pyramid level the stride, the sizes and aspect\n"
    "ratios (h/w) or the explicit shapes, the base anchors (x1, y1, x2, y2)\n"
    "around the cell point, and, for an image size, the feature map and the\n"
    "number of anchors. The feature map of a level is ceil(H / stride) x\n"
    "ceil(W / stride), as `detloss eval` uses it.\n"
    "\n"
    "options:\n"
    "  --image-size H W  image height and width in pixels (default: the anchor\n"
    "                    set's \"image_size\", if it has one)\n"
    "  -o FILE           write the anchors as JSON to FILE: {\"image_size\", \"levels\":\n"
    "                    [{\"stride\", \"feature_map\", \"count\"}], \"anchors\": [[x1, y1,\n"
    "                    x2, y2], ...]} in torchvision order (level, row, column, base\n"
    "                    anchor); needs an image size for a grid. Written in full\n"
    "                    to a temporary file beside FILE, then renamed over it (a\n"
    "                    symbolic link is followed, the file keeps its permissions;\n"
    "                    a FIFO or device such as /dev/stdout is written directly).\n"
    "                    The table goes to standard output only once FILE is written.\n"
    "  -h, --help        show this help\n"
    "\n" DL_CLI_DATA_DIRS_HELP
    "\n"
    "limits (environment; docs/limits.md): DETLOSS_MAX_INPUT_BYTES (1 GiB per\n"
    "file), DETLOSS_MAX_ANCHORS (134217728 per image), DETLOSS_MAX_IMAGE_SIDE\n"
    "(100000 px, also after resizing),\n"
    "DETLOSS_MAX_OUTPUT_NUMBERS (16777216: -o writes 4 per anchor). Past one: exit 2\n"
    "before any work.\n"
    "\n" DL_EXIT_HELP;

static int parse_size(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= 1.0 && v <= 1e6)) return -1;
  *out = v;
  return 0;
}

static void print_list(dlj_buf *t, const float *v, size_t n) {
  for (size_t i = 0; i < n; i++) dlj_printf(t, "%s%g", i ? " " : "", (double)v[i]);
}

int dl_cmd_anchors(int argc, char **argv) {
  const char *cfg_path = NULL, *out_path = NULL;
  double ih = 0.0, iw = 0.0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(HELP, stdout);
      return DL_EXIT_OK;
    } else if (strcmp(a, "--image-size") == 0) {
      if (i + 2 >= argc || parse_size(argv[i + 1], &ih) || parse_size(argv[i + 2], &iw)) {
        fprintf(stderr, "detloss: anchors: --image-size needs two numbers H W in [1, 1e6]\n");
        return DL_EXIT_INPUT;
      }
      i += 2;
    } else if (strcmp(a, "-o") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "detloss: anchors: -o needs a file name\n");
        return DL_EXIT_INPUT;
      }
      out_path = argv[++i];
    } else if (a[0] == '-' && a[1] != '\0') {
      fprintf(stderr, "detloss: anchors: unknown option '%s' (see detloss anchors --help)\n", a);
      return DL_EXIT_INPUT;
    } else if (!cfg_path) {
      cfg_path = a;
    } else {
      fprintf(stderr, "detloss: anchors: expected one CONFIG, got a second: '%s'\n", a);
      return DL_EXIT_INPUT;
    }
  }
  if (!cfg_path) {
    fprintf(stderr, "detloss: anchors: missing CONFIG (see detloss anchors --help)\n");
    return DL_EXIT_INPUT;
  }
  detloss_json_limits lim;
  int lrc = dl_cli_limits(&lim);
  if (lrc != DL_EXIT_OK) return lrc;
  if (fmax(ih, iw) > lim.max_image_side) {
    fprintf(stderr,
            "detloss: anchors: --image-size: %g px is above the limit max_image_side = "
            "%.0f (set DETLOSS_MAX_IMAGE_SIDE to raise it)\n",
            fmax(ih, iw), lim.max_image_side);
    return DL_EXIT_INPUT;
  }
  dl_data_dirs dirs;
  char cfg_file[DL_PATH_CAP];
  dl_cli_data_dirs(&dirs);
  int found = dl_cli_config_path(cfg_path, &dirs, cfg_file, sizeof cfg_file);
  if (found != DL_EXIT_OK) return found;
  detloss_config *cfg = NULL;
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
  if (ih == 0.0 && cfg->image_size[0] > 0.0f) {
    ih = (double)cfg->image_size[0];
    iw = (double)cfg->image_size[1];
  }
  if (cfg->grid.num_levels > 0 && ih > 0.0) {
    /* Checked before the feature maps are computed (a stride of 1e-30 would
     * make ceil(H / stride) too large for size_t) and before -o allocates. */
    size_t big;
    double n = dl_grid_anchor_count(&cfg->grid, ih, iw, &big);
    const char *what = NULL;
    size_t limit = 0;
    if (!(n <= (double)lim.max_anchors)) {
      what = "max_anchors";
      limit = lim.max_anchors;
    } else if (out_path && !(4.0 * n <= (double)lim.max_output_numbers)) {
      what = "max_output_numbers";
      limit = lim.max_output_numbers;
    }
    if (what) {
      detloss_error e;
      snprintf(e.where, sizeof e.where, "%s", cfg->path);
      snprintf(e.msg, sizeof e.msg,
               "a %g x %g px image needs %.15g anchors (level %zu, stride %g, has the "
               "most)%s, more than the limit %s = %zu",
               ih, iw, n, big, (double)cfg->grid.levels[big].stride_h,
               what[4] == 'o' ? " written as 4 numbers each" : "", what, limit);
      detloss_config_free(cfg);
      return dl_cli_report(&e, DETLOSS_ERR_RANGE);
    }
  }
  if (out_path && cfg->grid.num_levels > 0 && ih <= 0.0) {
    fprintf(stderr, "detloss: anchors: -o needs --image-size H W for a grid anchor set\n");
    detloss_config_free(cfg);
    return DL_EXIT_INPUT;
  }

  /* The table is built in memory and printed after the -o file is written:
   * any failure leaves standard output empty. */
  dlj_buf t;
  dlj_buf_init(&t);
  dlj_printf(&t, "config      %s%s%s\n", cfg->path, cfg->name ? ": " : "",
             cfg->name ? cfg->name : "");
  if (cfg->source) dlj_printf(&t, "source      %s\n", cfg->source);
  dlj_printf(&t, "anchors     %s%s%s\n", cfg->anchors_path ? cfg->anchors_path : "(inline)",
             cfg->anchors_name ? ": " : "", cfg->anchors_name ? cfg->anchors_name : "");
  if (cfg->anchors_source) dlj_printf(&t, "            %s\n", cfg->anchors_source);

  int rc = DL_EXIT_OK;
  float *anchors = NULL;
  size_t total = 0;
  detloss_anchor_level lv[DETLOSS_EVAL_MAX_LEVELS];
  detloss_anchor_config grid = cfg->grid;
  if (cfg->grid.num_levels > 0) {
    dlj_printf(&t, "convention  %s, cell offset %g\n",
               detloss_names_get(DETLOSS_NAMES_ANCHOR_CONVENTION, cfg->grid.convention)->name,
               (double)cfg->grid.offset);
    if (ih > 0.0)
      dlj_printf(&t, "image       %g x %g (H x W); feature map = ceil(size / stride)\n", ih, iw);
    dlj_printf(&t, "\nlevel  stride    per cell  %-30s%s\n", "sizes / aspect ratios (h/w)",
               ih > 0.0 ? "  feature map     anchors" : "");
    for (size_t l = 0; l < grid.num_levels; l++) {
      lv[l] = cfg->grid.levels[l];
      size_t k = 0;
      detloss_anchors_level_base(&cfg->grid, l, NULL, 0, &k, NULL);
      if (ih > 0.0) {
        lv[l].feat_h = (size_t)ceil(ih / (double)lv[l].stride_h);
        lv[l].feat_w = (size_t)ceil(iw / (double)lv[l].stride_w);
      }
      char stride[40]; /* two %g are at most 2 x 13 characters */
      if (lv[l].stride_h == lv[l].stride_w)
        snprintf(stride, sizeof stride, "%g", (double)lv[l].stride_h);
      else
        snprintf(stride, sizeof stride, "%gx%g", (double)lv[l].stride_h, (double)lv[l].stride_w);
      dlj_printf(&t, "%-6zu %-9s %-9zu ", l, stride, k);
      if (lv[l].base)
        dlj_printf(&t, "%-30s", "explicit base anchors");
      else if (lv[l].shapes)
        dlj_printf(&t, "%-30s", "shapes (w, h), see below");
      else {
        /* every size and ratio, however many: a level's list may be long */
        size_t col0 = t.len;
        print_list(&t, lv[l].sizes, lv[l].num_sizes);
        dlj_raw(&t, " / ");
        print_list(&t, lv[l].ratios, lv[l].num_ratios);
        if (!t.oom && t.len - col0 < 30) dlj_printf(&t, "%-*s", (int)(30 - (t.len - col0)), "");
      }
      if (ih > 0.0) {
        size_t cnt = lv[l].feat_h * lv[l].feat_w * k;
        total += cnt;
        char fm[48]; /* two %zu are at most 2 x 20 characters */
        snprintf(fm, sizeof fm, "%zu x %zu", lv[l].feat_h, lv[l].feat_w);
        dlj_printf(&t, "  %-15s %zu", fm, cnt);
      }
      dlj_printf(&t, "\n");
    }
    if (ih > 0.0)
      dlj_printf(&t, "%-6s %-9s %-9s %-30s  %-15s %zu\n", "total", "", "", "", "", total);
    dlj_printf(&t, "\nbase anchors (x1, y1, x2, y2) around the cell point:\n");
    for (size_t l = 0; l < grid.num_levels; l++) {
      size_t k = 0;
      detloss_anchors_level_base(&cfg->grid, l, NULL, 0, &k, NULL);
      float *b = malloc((k ? k : 1) * 4 * sizeof(float));
      if (!b) {
        fprintf(stderr, "detloss: anchors: out of memory\n");
        dlj_buf_free(&t);
        detloss_config_free(cfg);
        return DL_EXIT_RUNTIME;
      }
      detloss_anchors_level_base(&cfg->grid, l, b, k, &k, NULL);
      dlj_printf(&t, "  level %zu:", l);
      for (size_t q = 0; q < k; q++)
        dlj_printf(&t, " [%g, %g, %g, %g]", (double)b[4 * q], (double)b[4 * q + 1],
                   (double)b[4 * q + 2], (double)b[4 * q + 3]);
      dlj_printf(&t, "\n");
      free(b);
    }
    grid.levels = lv;
  } else if (cfg->num_anchors > 0) {
    dlj_printf(&t, "explicit    %zu anchors, the same for every image\n", cfg->num_anchors);
    for (size_t a = 0; a < cfg->num_anchors; a++) {
      dlj_printf(&t, "  [");
      print_list(&t, cfg->anchors + 4 * a, 4);
      dlj_printf(&t, "]\n");
    }
  } else {
    dlj_printf(&t, "shapes      %zu (w, h), positions ignored (metric wh_ratio)\n",
               cfg->num_shapes);
    for (size_t a = 0; a < cfg->num_shapes; a++)
      dlj_printf(&t, "  %g x %g\n", (double)cfg->shapes[2 * a], (double)cfg->shapes[2 * a + 1]);
  }
  if (t.oom) {
    fprintf(stderr, "detloss: anchors: out of memory\n");
    rc = DL_EXIT_RUNTIME;
  }

  if (out_path && rc == DL_EXIT_OK) {
    dlj_buf b;
    dlj_buf_init(&b);
    dlj_obj_begin(&b);
    if (cfg->anchors_name) dlj_kv_str(&b, "name", cfg->anchors_name);
    if (cfg->grid.num_levels > 0) {
      anchors = malloc((total ? total : 1) * 4 * sizeof(float));
      detloss_status gs =
          anchors ? detloss_anchors_generate(&grid, anchors, total, &err) : DETLOSS_ERR_NOMEM;
      if (gs != DETLOSS_OK) {
        if (gs == DETLOSS_ERR_NOMEM)
          fprintf(stderr, "detloss: anchors: out of memory\n");
        else
          dl_cli_report(&err, gs);
        free(anchors);
        dlj_buf_free(&b);
        dlj_buf_free(&t);
        detloss_config_free(cfg);
        return gs == DETLOSS_ERR_NOMEM ? DL_EXIT_RUNTIME : DL_EXIT_INPUT;
      }
      dlj_key(&b, "image_size");
      dlj_arr_begin(&b);
      dlj_num(&b, ih);
      dlj_num(&b, iw);
      dlj_arr_end(&b);
      dlj_key(&b, "levels");
      dlj_arr_begin(&b);
      for (size_t l = 0; l < grid.num_levels; l++) {
        size_t k = 0;
        detloss_anchors_level_base(&grid, l, NULL, 0, &k, NULL);
        dlj_obj_begin(&b);
        dlj_kv_num(&b, "stride", (double)lv[l].stride_w);
        dlj_key(&b, "feature_map");
        dlj_arr_begin(&b);
        dlj_intval(&b, (long long)lv[l].feat_h);
        dlj_intval(&b, (long long)lv[l].feat_w);
        dlj_arr_end(&b);
        dlj_kv_int(&b, "count", (long long)(lv[l].feat_h * lv[l].feat_w * k));
        dlj_obj_end(&b);
      }
      dlj_arr_end(&b);
      dlj_kv_int(&b, "count", (long long)total);
      dlj_kv_rows(&b, "anchors", anchors, total, 4);
    } else if (cfg->num_anchors > 0) {
      dlj_kv_int(&b, "count", (long long)cfg->num_anchors);
      dlj_kv_rows(&b, "anchors", cfg->anchors, cfg->num_anchors, 4);
    } else {
      dlj_kv_int(&b, "count", (long long)cfg->num_shapes);
      dlj_kv_rows(&b, "shapes", cfg->shapes, cfg->num_shapes, 2);
    }
    dlj_obj_end(&b);
    dlj_raw(&b, "\n");
    char elem[DETLOSS_WHERE_MAX];
    if (b.oom) {
      fprintf(stderr, "detloss: anchors: out of memory\n");
      rc = DL_EXIT_RUNTIME;
    } else if (dlj_find_nonfinite(b.p, b.len, elem, sizeof elem)) {
      /* A float32 overflow (sizes of 3e38): never written as null. */
      fprintf(stderr,
              "detloss: anchors: -o: %s: result is not finite (the anchor set "
              "overflows float32)\n",
              elem[0] ? elem : "(output)");
      rc = DL_EXIT_INPUT;
    } else {
      rc = dl_cli_write_atomic(out_path, b.p, b.len);
    }
    dlj_buf_free(&b);
  }
  if (rc == DL_EXIT_OK) rc = dl_cli_write_stdout(t.p, t.len);
  dlj_buf_free(&t);
  free(anchors);
  detloss_config_free(cfg);
  return rc;
}
