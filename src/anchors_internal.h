/*
 * anchors_internal.h - the expanded form of a detloss_anchor_config, shared by
 * anchors.c (generation) and match.c (the grid path of the matcher).
 *
 * Anchor (y, x, k) of level l has index off + (y * w + x) * K + k and
 * coordinates (sx[x] + base[k][0], sy[y] + base[k][1], sx[x] + base[k][2],
 * sy[y] + base[k][3]), each a float32 sum, so both users produce the same bits.
 */
#ifndef DETLOSS_ANCHORS_INTERNAL_H
#define DETLOSS_ANCHORS_INTERNAL_H

#include "internal.h"

typedef struct dl_grid_level {
  size_t h, w, k; /* rows, columns, base anchors per cell */
  size_t off;     /* index of the level's first anchor */
  float stride_h, stride_w, offset;
  float *base;    /* [k][4] */
  float *sx, *sy; /* [w], [h]: cell shifts */
} dl_grid_level;

typedef struct dl_grid {
  size_t num_levels;
  size_t count; /* total anchors */
  dl_grid_level *lv;
} dl_grid;

/* Validates cfg and expands it (allocates; dl_grid_free releases). Errors as
 * detloss_anchors_count(). */
detloss_status dl_grid_build(const detloss_anchor_config *cfg, dl_grid *g, detloss_error *err);
void dl_grid_free(dl_grid *g);

#endif /* DETLOSS_ANCHORS_INTERNAL_H */
