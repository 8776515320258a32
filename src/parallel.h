/*
 * parallel.h - the only place that touches OpenMP.
 *
 * Kernels are serial functions over an index range [i0, i1); drivers call
 * dl_parallel_blocks(), which cuts [0, n) into fixed-size blocks (the block
 * size is chosen by the caller, never from the thread count) and runs the
 * blocks on the threads. A reduction writes one double partial per block and
 * the driver adds the partials with dl_sum_blocks(), serially in block order:
 * so results are bitwise identical for any thread count.
 */
#ifndef DETLOSS_PARALLEL_H
#define DETLOSS_PARALLEL_H

#include <stddef.h>

/* fn(ctx, i0, i1, block): process items [i0, i1), which form block number `block`. */
typedef void (*dl_block_fn)(void *ctx, size_t i0, size_t i1, size_t block);

/* Number of blocks of `block` items needed for n items (0 for n = 0). */
static inline size_t dl_num_blocks(size_t n, size_t block) {
  return n == 0 ? 0 : (n - 1) / block + 1;
}

/* Runs fn over [0, n) in blocks of `block` items on up to num_threads threads
 * (0 = OpenMP default). Runs serially, without entering a parallel region,
 * when there is a single block or one thread. Blocks are scheduled
 * dynamically: which thread runs a block never affects the result. */
void dl_parallel_blocks(size_t n, size_t block, int num_threads, dl_block_fn fn, void *ctx);

/* Sum of partials[0..nblocks) in index order (deterministic). */
double dl_sum_blocks(const double *partials, size_t nblocks);

/* The number of threads a parallel region with this request would use (>= 1). */
int dl_thread_count(int num_threads);

#endif /* DETLOSS_PARALLEL_H */
