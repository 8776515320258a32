/*
 * lsa.h - rectangular linear sum assignment (lsa.c), internal interface.
 *
 * dl_lsa_solve() solves min sum_k c[r_k][c_k] over min(nr, nc) pairs with
 * distinct rows and columns, in float64, with the shortest augmenting path
 * method (Crouse 2016, Algorithm 1) in the form whose choice among equal-cost
 * optima is that of scipy >= 1.9 linear_sum_assignment (docs/math/hungarian.md).
 * The caller gives the scratch (dl_lsa_workspace_bytes()), so the batched
 * Hungarian matcher allocates once per image and no call allocates.
 */
#ifndef DETLOSS_LSA_H
#define DETLOSS_LSA_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Bytes of scratch dl_lsa_solve needs for an nr x nc matrix (0 when nr or nc is 0;
 * SIZE_MAX when the size would overflow). */
size_t dl_lsa_workspace_bytes(size_t nr, size_t nc);

/* Solves cost [nr][nc] (row-major, float64; +inf = forbidden pair; NaN and -inf
 * must have been rejected by the caller). Writes the min(nr, nc) pairs to
 * row_ind / col_ind, ordered by row ascending. work: dl_lsa_workspace_bytes()
 * bytes, 8-byte aligned (malloc'ed). Returns 0, or -1 when no complete matching
 * of finite cost exists (outputs then partly written). */
int dl_lsa_solve(const double *cost, size_t nr, size_t nc, int64_t *row_ind, int64_t *col_ind,
                 void *work);

#endif /* DETLOSS_LSA_H */
