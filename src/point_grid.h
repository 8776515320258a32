/*
 * point_grid.h - a bucket grid over a set of 2-D points (point_grid.c), the
 * spatial index of the ATSS and FCOS assigners: the points of one pyramid
 * level are sorted by cell (counting sort, stable, so each cell lists its
 * points in increasing index order). O(n) memory; no A x G matrix anywhere.
 *
 * Cells are squares of side h from (x0, y0); the first and last column and row
 * extend to infinity, so every point (and every query position) lies in a
 * cell, and the distance bounds below hold for positions outside the points'
 * extent too.
 */
#ifndef DETLOSS_POINT_GRID_H
#define DETLOSS_POINT_GRID_H

#include <stddef.h>

typedef struct dl_point_grid {
  double x0, y0, h; /* origin and cell side (h > 0) */
  size_t gx, gy;    /* columns, rows (>= 1 each) */
  size_t *start;    /* [gx * gy + 1]: cell c holds items[start[c] .. start[c + 1]) */
  size_t *items;    /* [n]: point indices (0-based within the set), by cell then index */
  size_t n;
} dl_point_grid;

/* Builds the grid over n points xy [n][2] (finite), with about two points per
 * cell. Returns 0, or -1 when out of memory (g then needs no free). */
int dl_point_grid_build(const double *xy, size_t n, dl_point_grid *g);
void dl_point_grid_free(dl_point_grid *g);

/* The column (row) of coordinate x (y), clamped to the grid. */
size_t dl_point_grid_col(const dl_point_grid *g, double x);
size_t dl_point_grid_row(const dl_point_grid *g, double y);

#endif /* DETLOSS_POINT_GRID_H */
