/*
 * point_grid.c - bucket grid over 2-D points (point_grid.h).
 */
#include "point_grid.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t cell_of(double v, double v0, double h, size_t count) {
  double f = floor((v - v0) / h);
  if (!(f > 0)) return 0; /* also NaN-safe */
  if (f >= (double)(count - 1)) return count - 1;
  return (size_t)f;
}

size_t dl_point_grid_col(const dl_point_grid *g, double x) {
  return cell_of(x, g->x0, g->h, g->gx);
}
size_t dl_point_grid_row(const dl_point_grid *g, double y) {
  return cell_of(y, g->y0, g->h, g->gy);
}

/* Number of cells along an extent w with side h, at most cap (>= 1). */
static size_t cells_along(double w, double h, size_t cap) {
  double f = w / h;
  if (!(f < (double)cap)) return cap;
  return (size_t)f + 1 < cap ? (size_t)f + 1 : cap;
}

int dl_point_grid_build(const double *xy, size_t n, dl_point_grid *g) {
  memset(g, 0, sizeof *g);
  double xmin = 0, xmax = 0, ymin = 0, ymax = 0;
  for (size_t i = 0; i < n; i++) {
    double x = xy[2 * i], y = xy[2 * i + 1];
    if (i == 0 || x < xmin) xmin = x;
    if (i == 0 || x > xmax) xmax = x;
    if (i == 0 || y < ymin) ymin = y;
    if (i == 0 || y > ymax) ymax = y;
  }
  double wx = xmax - xmin, wy = ymax - ymin;
  double target = n > 4 ? (double)n / 2.0 : 1.0; /* about two points per cell */
  double h;
  if (wx > 0 && wy > 0)
    h = sqrt(wx / target) * sqrt(wy / target) * sqrt(target); /* sqrt(wx wy / target) */
  else
    h = (wx > wy ? wx : wy) / target;
  if (!(h > 0) || !isfinite(h)) h = 1.0;
  size_t cap = n > 0 ? n : 1;
  g->x0 = xmin;
  g->y0 = ymin;
  for (;;) {
    g->gx = cells_along(wx, h, cap);
    g->gy = cells_along(wy, h, cap);
    if (g->gx <= 2 * cap / g->gy + 2) break; /* gx * gy <= about 2n + 2 cells */
    h *= 2;
  }
  g->h = h;
  g->n = n;
  size_t ncell = g->gx * g->gy;
  g->start = calloc(ncell + 1, sizeof *g->start);
  g->items = malloc((n ? n : 1) * sizeof *g->items);
  size_t *cell = malloc((n ? n : 1) * sizeof *cell);
  if (!g->start || !g->items || !cell) {
    free(cell);
    dl_point_grid_free(g);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    cell[i] = dl_point_grid_row(g, xy[2 * i + 1]) * g->gx + dl_point_grid_col(g, xy[2 * i]);
    g->start[cell[i] + 1]++;
  }
  for (size_t c = 0; c < ncell; c++) g->start[c + 1] += g->start[c];
  /* stable placement: cell[i]'s next free slot, counted from the cell's start */
  size_t *next = malloc((ncell ? ncell : 1) * sizeof *next);
  if (!next) {
    free(cell);
    dl_point_grid_free(g);
    return -1;
  }
  memcpy(next, g->start, ncell * sizeof *next);
  for (size_t i = 0; i < n; i++) g->items[next[cell[i]]++] = i;
  free(next);
  free(cell);
  return 0;
}

void dl_point_grid_free(dl_point_grid *g) {
  free(g->start);
  free(g->items);
  g->start = NULL;
  g->items = NULL;
}
