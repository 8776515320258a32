/* parallel.c - block-parallel driver (see parallel.h). */
#include "parallel.h"

#ifdef DETLOSS_HAVE_OPENMP
#  include <omp.h>
#endif

int dl_thread_count(int num_threads) {
#ifdef DETLOSS_HAVE_OPENMP
  int t = num_threads > 0 ? num_threads : omp_get_max_threads();
  return t > 0 ? t : 1;
#else
  (void)num_threads;
  return 1;
#endif
}

void dl_parallel_blocks(size_t n, size_t block, int num_threads, dl_block_fn fn, void *ctx) {
  if (n == 0) return;
  if (block == 0) block = n;
  size_t nb = dl_num_blocks(n, block);
  int nt = dl_thread_count(num_threads);
  if (nb == 1 || nt == 1) {
    for (size_t b = 0; b < nb; b++) {
      size_t i0 = b * block;
      size_t i1 = (n - i0 < block) ? n : i0 + block;
      fn(ctx, i0, i1, b);
    }
    return;
  }
#ifdef DETLOSS_HAVE_OPENMP
  if ((size_t)nt > nb) nt = (int)nb;
  long long nbl = (long long)nb;
#  pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (long long bb = 0; bb < nbl; bb++) {
    size_t b = (size_t)bb;
    size_t i0 = b * block;
    size_t i1 = (n - i0 < block) ? n : i0 + block;
    fn(ctx, i0, i1, b);
  }
#endif
}

double dl_sum_blocks(const double *partials, size_t nblocks) {
  double s = 0.0;
  for (size_t b = 0; b < nblocks; b++) s += partials[b];
  return s;
}
