/*
 * dataset_ids.h - the image-id index shared by the data-set readers (dataset.c's
 * tree reader and dataset_stream.c): (id, position) pairs sorted by id, then
 * position (so duplicates are met in file order whatever qsort does), and a
 * binary search of an annotation's image_id.
 */
#ifndef DETLOSS_DATASET_IDS_H
#define DETLOSS_DATASET_IDS_H

#include <stddef.h>
#include <stdint.h>

typedef struct dl_idpair {
  int64_t id;
  size_t idx;
} dl_idpair;

/* qsort order of dl_idpair: by id, then by position. */
static inline int dl_idpair_cmp(const void *pa, const void *pb) {
  const dl_idpair *a = pa, *b = pb;
  if (a->id != b->id) return (a->id > b->id) - (a->id < b->id);
  return (a->idx > b->idx) - (a->idx < b->idx);
}

/* The position of id in the sorted ids[0..n), or SIZE_MAX. */
static inline size_t dl_idpair_find(const dl_idpair *ids, size_t n, int64_t id) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (ids[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n && ids[lo].id == id ? ids[lo].idx : SIZE_MAX;
}

#endif /* DETLOSS_DATASET_IDS_H */
