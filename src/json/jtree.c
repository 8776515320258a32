/* jtree.c - a cJSON tree from the stream reader, numeric arrays packed (jtree.h). */
#include "json/jtree.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define PACK_MAGIC 0x6b636170u /* "pack" */
#define PACK_TYPE (cJSON_Raw | cJSON_IsReference)

enum { KIND_UNKNOWN = 0, KIND_NUMBERS, KIND_ARRAYS };

/* The reader's state. Tree mode: stack[0..depth) are the open containers,
 * key the key of the next member of the innermost object. Numeric mode (num
 * = 1): an array is being read as numbers; levels 0..nd-1 are open, cnt[l]
 * counts the elements begun at level l, and kind, known and shape hold what
 * every array of level l must be (its elements' kind; its length once one
 * such array has ended): the first token breaking them ends numeric mode. */
typedef struct builder {
  dljs *j;
  size_t pack_min;
  cJSON *root;
  cJSON *stack[DLJS_NESTING_LIMIT + 1];
  int depth;
  char *key;
  size_t key_cap;
  int num, nd;
  size_t cnt[DLJ_MAX_DIMS], shape[DLJ_MAX_DIMS];
  unsigned char kind[DLJ_MAX_DIMS], known[DLJ_MAX_DIMS];
  double *v;
  size_t n, vcap;
  int oom;
} builder;

const dlj_pack *dlj_packed(const cJSON *v) {
  if (!v || v->type != PACK_TYPE || !v->valuestring) return NULL;
  const dlj_pack *p = (const dlj_pack *)(const void *)v->valuestring;
  return p->magic == PACK_MAGIC ? p : NULL;
}

/* A complete array of level l (shape[l] elements) from v[*pos...]. */
static cJSON *build_block(const size_t *shape, const unsigned char *kind, int l, const double *v,
                          size_t *pos) {
  cJSON *a = cJSON_CreateArray();
  if (!a) return NULL;
  for (size_t i = 0; i < shape[l]; i++) {
    cJSON *e = kind[l] == KIND_NUMBERS ? cJSON_CreateNumber(v[(*pos)++])
                                       : build_block(shape, kind, l + 1, v, pos);
    if (!e) {
      cJSON_Delete(a);
      return NULL;
    }
    cJSON_AddItemToArray(a, e);
  }
  return a;
}

const cJSON *dlj_tree(const cJSON *v) {
  dlj_pack *p = (dlj_pack *)(uintptr_t)dlj_packed(v);
  if (!p) return v;
  if (!p->tree && p->v) {
    unsigned char kind[DLJ_MAX_DIMS];
    for (int l = 0; l < DLJ_MAX_DIMS; l++) kind[l] = l + 1 < p->ndim ? KIND_ARRAYS : KIND_NUMBERS;
    size_t pos = 0;
    p->tree = build_block(p->shape, kind, 0, p->v, &pos);
  }
  return p->tree ? p->tree : v;
}

void dlj_release(const cJSON *v) {
  dlj_pack *p = (dlj_pack *)(uintptr_t)dlj_packed(v);
  if (!p) return;
  free(p->v);
  p->v = NULL;
}

static void free_packs(cJSON *v) {
  for (; v; v = v->next) {
    dlj_pack *p = (dlj_pack *)(uintptr_t)dlj_packed(v);
    if (p) {
      cJSON_Delete(p->tree);
      free(p->v);
      free(p);
      v->valuestring = NULL;
    } else if (v->child) {
      free_packs(v->child);
    }
  }
}

void dlj_tree_delete(cJSON *root) {
  if (!root) return;
  free_packs(root);
  cJSON_Delete(root);
}

/* Adds node as the next value (the root, an array element or the member
 * named key); frees it when that fails. 0 then (oom set). */
static int attach(builder *b, cJSON *node) {
  if (!node) {
    b->oom = 1;
    return 0;
  }
  if (b->depth == 0) {
    b->root = node;
    return 1;
  }
  cJSON *p = b->stack[b->depth - 1];
  if (cJSON_IsObject(p)) {
    if (!cJSON_AddItemToObject(p, b->key ? b->key : "", node)) {
      dlj_tree_delete(node);
      b->oom = 1;
      return 0;
    }
  } else {
    cJSON_AddItemToArray(p, node);
  }
  return 1;
}

static int push(builder *b, cJSON *c) {
  if (!attach(b, c)) return 0;
  b->stack[b->depth++] = c;
  return 1;
}

/* Numeric mode ends without a fault: the array as a packed node, or as
 * nodes when it holds fewer than pack_min numbers. */
static void finish_numeric(builder *b) {
  b->num = 0;
  size_t n = b->n;
  b->n = 0;
  int rank = 0;
  while (rank < DLJ_MAX_DIMS && b->kind[rank] == KIND_ARRAYS) rank++;
  if (n == 0 || n < b->pack_min || rank == DLJ_MAX_DIMS) {
    size_t pos = 0;
    attach(b, build_block(b->shape, b->kind, 0, b->v, &pos));
    return;
  }
  dlj_pack *p = calloc(1, sizeof *p);
  cJSON *node = p ? cJSON_CreateNull() : NULL;
  if (!node) {
    free(p);
    b->oom = 1;
    return;
  }
  p->magic = PACK_MAGIC;
  p->ndim = rank + 1;
  for (int l = 0; l < p->ndim; l++) p->shape[l] = b->shape[l];
  p->count = n;
  /* the reading buffer becomes the pack's, trimmed to size */
  double *v = realloc(b->v, n * sizeof *v);
  p->v = v ? v : b->v;
  b->v = NULL;
  b->vcap = 0;
  node->type = PACK_TYPE;
  node->valuestring = (char *)(void *)p;
  attach(b, node);
}

/* Numeric mode meets a token that breaks it: what was read so far becomes
 * nodes (the open arrays pushed as tree containers), numeric mode ends. */
static void unpack_prefix(builder *b) {
  b->num = 0;
  size_t pos = 0;
  for (int l = 0; l < b->nd && !b->oom; l++) {
    cJSON *a = cJSON_CreateArray();
    if (!push(b, a)) break;
    size_t complete = l + 1 < b->nd ? b->cnt[l] - 1 : b->cnt[l];
    for (size_t i = 0; i < complete; i++) {
      cJSON *e = b->kind[l] == KIND_NUMBERS ? cJSON_CreateNumber(b->v[pos++])
                                            : build_block(b->shape, b->kind, l + 1, b->v, &pos);
      if (!e) {
        b->oom = 1;
        break;
      }
      cJSON_AddItemToArray(a, e);
    }
  }
  b->n = 0;
}

/* One token in numeric mode: 1 if taken, 0 if it ended numeric mode (the
 * caller then handles it as a tree token). */
static int numeric_token(builder *b, dljs_kind k) {
  int l = b->nd - 1;
  int full = b->known[l] && b->cnt[l] == b->shape[l];
  switch (k) {
    case DLJS_NUMBER:
      if (b->kind[l] == KIND_ARRAYS || full) break;
      if (b->n == b->vcap) {
        size_t cap = b->vcap ? 2 * b->vcap : 1024;
        double *p = cap <= SIZE_MAX / sizeof *p ? realloc(b->v, cap * sizeof *p) : NULL;
        if (!p) {
          b->oom = 1;
          return 1;
        }
        b->v = p;
        b->vcap = cap;
      }
      b->v[b->n++] = dlj_stream_number(b->j);
      b->kind[l] = KIND_NUMBERS;
      b->cnt[l]++;
      return 1;
    case DLJS_BEGIN_ARRAY:
      if (b->kind[l] == KIND_NUMBERS || full || b->nd == DLJ_MAX_DIMS) break;
      b->kind[l] = KIND_ARRAYS;
      b->cnt[l]++;
      b->cnt[++b->nd - 1] = 0;
      return 1;
    case DLJS_END_ARRAY:
      if (b->known[l] && b->cnt[l] != b->shape[l]) break;
      b->known[l] = 1;
      b->shape[l] = b->cnt[l];
      if (--b->nd == 0) finish_numeric(b);
      return 1;
    default: break;
  }
  unpack_prefix(b);
  return 0;
}

static void tree_token(builder *b, dljs_kind k) {
  dljs *j = b->j;
  switch (k) {
    case DLJS_BEGIN_OBJECT: push(b, cJSON_CreateObject()); break;
    case DLJS_BEGIN_ARRAY:
      b->num = 1;
      b->nd = 1;
      b->n = 0;
      memset(b->cnt, 0, sizeof b->cnt);
      memset(b->kind, 0, sizeof b->kind);
      memset(b->known, 0, sizeof b->known);
      break;
    case DLJS_END_OBJECT:
    case DLJS_END_ARRAY:
      if (b->depth > 0) b->depth--;
      break;
    case DLJS_KEY:
      if (j->key_len + 1 > b->key_cap) {
        char *p = realloc(b->key, j->key_len + 1);
        if (!p) {
          b->oom = 1;
          return;
        }
        b->key = p;
        b->key_cap = j->key_len + 1;
      }
      memcpy(b->key, j->key, j->key_len + 1);
      break;
    case DLJS_STRING: {
      const char *s = dlj_stream_string(j);
      if (s) attach(b, cJSON_CreateString(s));
      break;
    }
    case DLJS_NUMBER: attach(b, cJSON_CreateNumber(dlj_stream_number(j))); break;
    case DLJS_TRUE: attach(b, cJSON_CreateTrue()); break;
    case DLJS_FALSE: attach(b, cJSON_CreateFalse()); break;
    case DLJS_NULL: attach(b, cJSON_CreateNull()); break;
    default: break;
  }
}

detloss_status dlj_parse_packed(dljs *j, size_t pack_min, cJSON **root, detloss_error *err) {
  builder *b = calloc(1, sizeof *b);
  if (!b) return dl_fail(err, DETLOSS_ERR_NOMEM, j->anon ? "(input)" : j->file, "out of memory");
  b->j = j;
  b->pack_min = pack_min ? pack_min : SIZE_MAX;
  for (;;) {
    dljs_kind k = dlj_stream_next(j);
    if (k == DLJS_ERROR || k == DLJS_EOF) break;
    if (b->num && numeric_token(b, k)) {
      if (b->oom) break;
      continue;
    }
    if (!b->oom) tree_token(b, k);
    if (b->oom) break;
  }
  /* dlj_parse's order: the text's syntax first, then memory, then duplicates */
  int oom = b->oom;
  cJSON *r = b->root;
  free(b->v);
  free(b->key);
  free(b);
  detloss_error e;
  detloss_status st = dlj_stream_finish(j, &e);
  if (j->st == DETLOSS_OK && oom)
    st = dl_fail(&e, DETLOSS_ERR_NOMEM, j->anon ? "(input)" : j->file,
                 "out of memory while parsing %zu bytes of JSON", j->base + j->end);
  if (st != DETLOSS_OK) {
    dlj_tree_delete(r);
    if (err) *err = e;
    return st;
  }
  *root = r;
  return DETLOSS_OK;
}
