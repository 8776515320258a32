/* plot_util.c - what `detloss eval` and `detloss fit` both draw: the progress
 * bar on stderr, SVG text escaping and the config's anchor shapes (declared in
 * cli.h). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

void dl_cli_progress_start(dl_cli_progress *p, const char *label, const char *unit) {
  memset(p, 0, sizeof *p);
  p->label = label;
  p->unit = unit;
  clock_gettime(CLOCK_MONOTONIC, &p->t0);
}

static double elapsed(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

void dl_cli_progress_cb(void *user, size_t done, size_t total) {
  dl_cli_progress *p = user;
  if (done >= total) {
    dl_cli_progress_clear(p);
    return;
  }
  if (elapsed(&p->t0) < 1.0) return;
  int width = 40, fill = (int)((double)width * (double)done / (double)total);
  char bar[64];
  for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
  bar[width] = '\0';
  fprintf(stderr, "\rdetloss %s [%s] %3d%% %zu/%zu%s%s", p->label, bar,
          (int)(100.0 * (double)done / (double)total), done, total, p->unit[0] ? " " : "", p->unit);
  fflush(stderr);
  p->drawn = 1;
}

void dl_cli_progress_clear(dl_cli_progress *p) {
  if (p->drawn) fputs("\r\033[K", stderr);
  p->drawn = 0;
}

void dl_cli_svg_escape(dlj_buf *b, const char *s, size_t max) {
  size_t n = 0;
  for (; s && *s; s++) {
    int cont = ((unsigned char)*s & 0xC0) == 0x80; /* a UTF-8 continuation byte */
    if (!cont && n++ == max) {
      dlj_raw(b, "...");
      break;
    }
    if (*s == '<')
      dlj_raw(b, "&lt;");
    else if (*s == '>')
      dlj_raw(b, "&gt;");
    else if (*s == '&')
      dlj_raw(b, "&amp;");
    else
      dlj_rawn(b, s, 1);
  }
}

int dl_cli_anchor_shapes(const detloss_config *cfg, float **wh, size_t *n, size_t **level) {
  size_t cap = 0;
  if (cfg->grid.num_levels > 0) {
    for (size_t l = 0; l < cfg->grid.num_levels; l++) {
      size_t k = 0;
      detloss_anchors_level_base(&cfg->grid, l, NULL, 0, &k, NULL);
      cap += k;
    }
  } else {
    cap = cfg->num_anchors ? cfg->num_anchors : cfg->num_shapes;
  }
  float *sh = malloc((cap ? cap : 1) * 2 * sizeof(float));
  size_t *lv = malloc((cap ? cap : 1) * sizeof(size_t));
  float *base = malloc((cap ? cap : 1) * 4 * sizeof(float));
  if (!sh || !lv || !base) {
    free(sh);
    free(lv);
    free(base);
    return DL_EXIT_RUNTIME;
  }
  size_t ns = 0;
  if (cfg->grid.num_levels > 0) {
    for (size_t l = 0; l < cfg->grid.num_levels; l++) {
      size_t k = 0;
      detloss_anchors_level_base(&cfg->grid, l, base, cap, &k, NULL);
      for (size_t q = 0; q < k; q++, ns++) {
        sh[2 * ns] = base[4 * q + 2] - base[4 * q];
        sh[2 * ns + 1] = base[4 * q + 3] - base[4 * q + 1];
        lv[ns] = l;
      }
    }
  } else if (cfg->num_anchors) {
    for (; ns < cfg->num_anchors; ns++) {
      sh[2 * ns] = cfg->anchors[4 * ns + 2] - cfg->anchors[4 * ns];
      sh[2 * ns + 1] = cfg->anchors[4 * ns + 3] - cfg->anchors[4 * ns + 1];
      lv[ns] = 0;
    }
  } else {
    for (; ns < cfg->num_shapes; ns++) {
      sh[2 * ns] = cfg->shapes[2 * ns];
      sh[2 * ns + 1] = cfg->shapes[2 * ns + 1];
      lv[ns] = 0;
    }
  }
  free(base);
  *wh = sh;
  *n = ns;
  *level = lv;
  return DL_EXIT_OK;
}
