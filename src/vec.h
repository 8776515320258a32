/*
 * vec.h - the function attributes of the vectorized loops: DL_VEC_FN (gcc may
 * if-convert and so vectorize them) and DL_VEC_CLONES (compiled for three
 * x86-64 ISA levels, picked at load time). Used by the loss kernels
 * (loss_vmath.h, loss_kernels.h, loss_*.c) and the heads' hot loops.
 */
#ifndef DETLOSS_VEC_H
#define DETLOSS_VEC_H

/* For the loops that call the exp and log of loss_vmath.h and for those
 * functions themselves (gcc inlines only between functions with the same
 * optimization options): gcc hoists the polynomial of dl_expf_neg into the branch where it is used,
 * and then, under the default -ftrapping-math, refuses to if-convert (and so
 * to vectorize) the loop, because the hoisted operations "could trap". No
 * code here reads floating-point exception flags, and -fno-trapping-math
 * changes no result, only which operations may be executed speculatively. */
#if defined(__GNUC__) && !defined(__clang__)
#  define DL_VEC_FN __attribute__((optimize("no-trapping-math")))
#else
#  define DL_VEC_FN
#endif

/* The hot kernels are compiled three times, for baseline x86-64 (SSE2), AVX2
 * and x86-64-v4 (AVX-512), and the loader picks one (gcc function
 * multi-versioning through an ifunc). All clones evaluate the same IEEE
 * operations in the same order (no FMA: -ffp-contract=off), so they give the
 * same bits; they only run 4, 8 or 16 lanes at once. Define DETLOSS_NO_CLONES
 * to build the baseline only. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) &&       \
    !defined(DETLOSS_NO_CLONES)
#  define DL_VEC_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#  define DL_VEC_CLONES
#endif

#endif /* DETLOSS_VEC_H */
