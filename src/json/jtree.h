/*
 * jtree.h - a cJSON tree read through the stream reader (jstream.h), in
 * which an array of numbers is one packed node, not a cJSON node per number.
 *
 * A cJSON number costs about 80 bytes (the 64-byte node and the allocator's
 * header): a compute case of 5 M anchors and 5 M boxes (40 M numbers, 300 MB
 * of text) took 4.7 GB as a tree. Here a rectangular array of numbers
 * ([...], [[...], ...], up to DLJ_MAX_DIMS levels, every leaf at the same
 * depth, every row the same length) of at least pack_min numbers is kept as
 * its shape and its values in one block of doubles (8 bytes a number), the
 * doubles cJSON itself would have read (strtod of the token), so that
 * every getter returns the same values and reports the same faults (the
 * same messages at the same JSON paths) as over the plain tree. Other
 * values, and numeric arrays that turn out to be ragged, mixed or deeper
 * than DLJ_MAX_DIMS, are plain cJSON (a packed prefix is rebuilt as nodes
 * the moment the array stops being rectangular).
 *
 * A packed node is a cJSON node of type cJSON_Raw | cJSON_IsReference whose
 * valuestring points to a dlj_pack (cJSON_Delete leaves it alone; free the
 * tree with dlj_tree_delete). The jread.h getters read packed nodes
 * directly; code that walks arrays itself calls dlj_tree() first, which
 * gives the node as plain cJSON (built once, when first asked, and freed
 * with the tree). Never cJSON_Duplicate a tree that may hold packed nodes.
 */
#ifndef DETLOSS_JTREE_H
#define DETLOSS_JTREE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "detloss/detloss.h"
#include "json/jread.h"
#include "json/jstream.h"

/* Arrays of fewer numbers stay plain cJSON (the compute driver's choice:
 * a 64-box array is 256 numbers). */
#define DLJ_PACK_MIN 256

typedef struct dlj_pack {
  unsigned magic;
  int ndim; /* 1..DLJ_MAX_DIMS */
  size_t shape[DLJ_MAX_DIMS];
  size_t count; /* product of shape, >= 1 */
  double *v;    /* count values, row-major (last index fastest) */
  cJSON *tree;  /* dlj_tree's plain copy, built on first use, or NULL */
} dlj_pack;

/* The pack of a packed node, else NULL (also for NULL). */
const dlj_pack *dlj_packed(const cJSON *v);

/* v as plain cJSON: v itself unless packed, else its nodes (built once and
 * owned by the tree; v itself when they cannot be allocated). */
const cJSON *dlj_tree(const cJSON *v);

/* Frees the values of a packed node once its one reader has copied them
 * (dlj_boxes_take): the tree then holds no second copy of a large array
 * while the case runs. A later read of the node is DETLOSS_ERR_UNSUPPORTED
 * ("internal: ..."), a bug of the handler; a non-packed v is left alone. */
void dlj_release(const cJSON *v);

/* dlj_field(obj, key) as plain cJSON (dlj_tree): for code that walks the
 * value's arrays itself. */
static inline const cJSON *dlj_plain(const cJSON *obj, const char *key) {
  return dlj_tree(dlj_field(obj, key));
}

/* Reads the one JSON value of j (opened by the caller, who closes it) into
 * *root, packing numeric arrays of at least pack_min numbers (0: none).
 * Faults in dlj_parse's order and words: a syntax fault (or the input limit
 * or a read error, as the stream reports them) anywhere in the text first,
 * then DETLOSS_ERR_NOMEM ("out of memory while parsing N bytes of JSON"),
 * then a duplicate key. Nothing is returned on error. */
detloss_status dlj_parse_packed(dljs *j, size_t pack_min, cJSON **root, detloss_error *err);

/* Frees a tree from dlj_parse_packed (or any cJSON tree); NULL is fine. */
void dlj_tree_delete(cJSON *root);

#endif /* DETLOSS_JTREE_H */
