/*
 * lsa.c - rectangular linear sum assignment by shortest augmenting paths.
 *
 * Problem: given c [n][m], n <= m, find distinct columns col4row[i] minimising
 * sum_i c[i][col4row[i]] (a tall matrix is solved transposed). Method: Crouse,
 * "On implementing 2D rectangular assignment algorithms", IEEE TAES 52(4), 2016,
 * Algorithm 1 (Jonker-Volgenant style shortest augmenting paths with duals u, v):
 * rows are added one at a time; for each, Dijkstra on reduced costs
 * c[i][j] - u[i] - v[j] >= 0 finds the cheapest path from the new row to an
 * unassigned column, the duals are updated so reduced costs stay >= 0 and the
 * assigned edges stay tight, and the path is flipped.
 *
 * Equal-cost optima: which optimum is returned depends on the scan order and
 * on the tie rules, which follow scipy >= 1.9's linear_sum_assignment (its
 * documented algorithm, checked pair for pair on 1,000 random matrices with
 * ties, tests/fixtures/lsa): the unscanned columns are kept in a list that
 * starts reversed (m-1, ..., 0) and loses the chosen column by swap-remove;
 * the column with the lowest path cost is taken, and on an exact tie an
 * unassigned column replaces an earlier assigned one; reduced costs are
 * evaluated as ((minVal + c) - u) - v; the input is never shifted (scipy <= 1.8
 * subtracted the minimum first). Arithmetic is float64 throughout.
 * Complexity O(n^2 m) time, O(n m) memory only for the transposed copy.
 */
#include "lsa.h"

#include <math.h>
#include <string.h>

/* Scratch layout (all 8-byte items first, then the flags). */
typedef struct lsa_ws {
  double *c;          /* [n][m]: the transposed copy (tall input only) */
  double *u, *v;      /* duals [n], [m] */
  double *spc;        /* shortest path cost to each column [m] */
  int64_t *path;      /* predecessor row of each column on the path [m] */
  int64_t *col4row;   /* [n] */
  int64_t *row4col;   /* [m] */
  int64_t *remaining; /* unscanned columns [m] */
  unsigned char *sr;  /* rows on the tree [n] */
  unsigned char *sc;  /* columns on the tree [m] */
} lsa_ws;

size_t dl_lsa_workspace_bytes(size_t nr, size_t nc) {
  if (nr == 0 || nc == 0) return 0;
  size_t n = nr < nc ? nr : nc, m = nr < nc ? nc : nr, nm, items, bytes;
  if (dl_mul_overflow(n, m, &nm)) return SIZE_MAX;
  /* c (only when transposed, counted always), u, v, spc, path, col4row, row4col,
   * remaining: nm + 2n + 5m items of 8 bytes; flags n + m bytes. */
  if (dl_add_overflow(nm, 2 * n, &items) || dl_add_overflow(items, 5 * m, &items) ||
      dl_mul_overflow(items, 8, &bytes) || dl_add_overflow(bytes, n + m + 7, &bytes))
    return SIZE_MAX;
  return bytes / 8 * 8; /* a multiple of 8: slices of one buffer stay aligned */
}

static void ws_layout(lsa_ws *w, void *work, size_t n, size_t m) {
  double *d = work;
  w->c = d;
  d += n * m;
  w->u = d;
  d += n;
  w->v = d;
  d += m;
  w->spc = d;
  d += m;
  int64_t *k = (int64_t *)d;
  w->path = k;
  k += m;
  w->col4row = k;
  k += n;
  w->row4col = k;
  k += m;
  w->remaining = k;
  k += m;
  w->sr = (unsigned char *)k;
  w->sc = w->sr + n;
}

/* Adds row cur to the matching: shortest augmenting path from cur to a free
 * column over reduced costs, dual update, path flip. Returns -1 when every
 * remaining column is forbidden (+inf) for the rows reached: infeasible. */
static int augment_row(const double *c, size_t n, size_t m, size_t cur, lsa_ws *w) {
  for (size_t it = 0; it < m; it++) {
    w->remaining[it] = (int64_t)(m - 1 - it);
    w->spc[it] = HUGE_VAL;
    w->sc[it] = 0;
  }
  memset(w->sr, 0, n);
  size_t left = m;
  double min_val = 0.0;
  size_t i = cur;
  int64_t sink = -1;
  while (sink < 0) {
    w->sr[i] = 1;
    double lowest = HUGE_VAL;
    size_t best = SIZE_MAX;
    const double *ci = c + i * m;
    for (size_t it = 0; it < left; it++) {
      size_t j = (size_t)w->remaining[it];
      double r = min_val + ci[j] - w->u[i] - w->v[j];
      if (r < w->spc[j]) {
        w->path[j] = (int64_t)i;
        w->spc[j] = r;
      }
      /* lowest path cost; an exact tie prefers a free column (ends the search) */
      if (w->spc[j] < lowest || (w->spc[j] == lowest && w->row4col[j] < 0)) {
        lowest = w->spc[j];
        best = it;
      }
    }
    min_val = lowest;
    if (!(min_val < HUGE_VAL)) return -1;
    size_t j = (size_t)w->remaining[best];
    if (w->row4col[j] < 0)
      sink = (int64_t)j;
    else
      i = (size_t)w->row4col[j];
    w->sc[j] = 1;
    w->remaining[best] = w->remaining[--left];
  }
  /* Duals: the new row and every row reached move by the path length to them. */
  w->u[cur] += min_val;
  for (size_t r = 0; r < n; r++)
    if (w->sr[r] && r != cur) w->u[r] += min_val - w->spc[w->col4row[r]];
  for (size_t j = 0; j < m; j++)
    if (w->sc[j]) w->v[j] -= min_val - w->spc[j];
  /* Flip the path from the sink back to cur. */
  size_t j = (size_t)sink;
  for (;;) {
    size_t r = (size_t)w->path[j];
    w->row4col[j] = (int64_t)r;
    size_t prev = (size_t)w->col4row[r];
    w->col4row[r] = (int64_t)j;
    j = prev;
    if (r == cur) break;
  }
  return 0;
}

int dl_lsa_solve(const double *cost, size_t nr, size_t nc, int64_t *row_ind, int64_t *col_ind,
                 void *work) {
  if (nr == 0 || nc == 0) return 0;
  int transposed = nc < nr;
  size_t n = transposed ? nc : nr, m = transposed ? nr : nc;
  lsa_ws w;
  ws_layout(&w, work, n, m);
  const double *c = cost;
  if (transposed) {
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < m; j++) w.c[i * m + j] = cost[j * nc + i];
    c = w.c;
  }
  for (size_t i = 0; i < n; i++) {
    w.u[i] = 0.0;
    w.col4row[i] = -1;
  }
  for (size_t j = 0; j < m; j++) {
    w.v[j] = 0.0;
    w.row4col[j] = -1;
  }
  for (size_t cur = 0; cur < n; cur++)
    if (augment_row(c, n, m, cur, &w) != 0) return -1;
  if (!transposed) {
    for (size_t i = 0; i < n; i++) {
      row_ind[i] = (int64_t)i;
      col_ind[i] = w.col4row[i];
    }
    return 0;
  }
  /* Transposed: solved-row i is original column i, matched to original row
   * col4row[i]; list the pairs by original row ascending. row4col of the
   * original rows is free to reuse as a marker: walk the original rows in
   * order and emit those matched (row4col[r] >= 0 is set for exactly the
   * matched original rows r). */
  size_t k = 0;
  for (size_t r = 0; r < m; r++) {
    if (w.row4col[r] < 0) continue;
    row_ind[k] = (int64_t)r;
    col_ind[k] = w.row4col[r];
    k++;
  }
  return 0;
}
