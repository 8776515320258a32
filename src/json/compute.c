/*
 * compute.c - the `detloss compute` driver: parse, dispatch each case to its
 * op handler (cases.h), collect the results, and return them only when every
 * case succeeded (nothing half-written).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detloss/detloss_json.h"
#include "internal.h"
#include "json/cases.h"

typedef struct op_entry {
  const char *name;
  dl_case_fn fn;
} op_entry;

static const op_entry OPS[] = {
    {"iou", dl_case_iou},
    {"encode", dl_case_encode},
    {"decode", dl_case_decode},
    {"anchors", dl_case_anchors},
    {"match", dl_case_match},
    {"loss", dl_case_loss},
    {"embedding_loss", dl_case_embedding_loss},
    {"rpn_loss", dl_case_rpn_loss},
    {"retina_loss", dl_case_retina_loss},
    {"anchor_eval", dl_case_anchor_eval},
};
#define NUM_OPS (sizeof OPS / sizeof OPS[0])

void detloss_free(void *p) { free(p); }

/* 1 if the text ends inside a string or with unclosed brackets: the syntax
 * error is then "unexpected end of input" (cJSON reports the last byte). */
static int truncated(const char *text, size_t len) {
  long depth = 0;
  int in_str = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = text[i];
    if (in_str) {
      if (ch == '\\') i++;
      else if (ch == '"') in_str = 0;
    } else if (ch == '"') {
      in_str = 1;
    } else if (ch == '[' || ch == '{') {
      depth++;
    } else if (ch == ']' || ch == '}') {
      depth--;
    }
  }
  return in_str || depth > 0;
}

/* Line and column (1-based) of byte offset pos in text. */
static void line_col(const char *text, size_t pos, size_t *line, size_t *col) {
  *line = 1;
  *col = 1;
  for (size_t i = 0; i < pos; i++) {
    if (text[i] == '\n') {
      (*line)++;
      *col = 1;
    } else {
      (*col)++;
    }
  }
}

static detloss_status run_case(const cJSON *c, const char *path, dlj_buf *out, int nt,
                               detloss_error *err) {
  DL_RETURN_ERROR_IF(!cJSON_IsObject(c), err, DETLOSS_ERR_TYPE, path[0] ? path : "(root)",
                     "expected a case object");
  const char *op;
  DL_FORWARD_IF_ERROR(dlj_string(c, "op", path, 1, &op, err));
  const op_entry *e = NULL;
  for (size_t k = 0; k < NUM_OPS; k++)
    if (strcmp(OPS[k].name, op) == 0) e = &OPS[k];
  if (!e) {
    const char *names[NUM_OPS];
    for (size_t k = 0; k < NUM_OPS; k++) names[k] = OPS[k].name;
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, "op");
    const char *hint = dl_suggest(op, names, NUM_OPS);
    if (hint)
      return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "unknown op '%s' (did you mean '%s'?)",
                     op, hint);
    return dl_fail(err, DETLOSS_ERR_UNKNOWN, where,
                   "unknown op '%s' (expected iou, encode, decode, anchors, match, loss, "
                   "embedding_loss, rpn_loss, retina_loss, anchor_eval)",
                   op);
  }
  dlj_obj_begin(out);
  dlj_kv_str(out, "op", op);
  const cJSON *kind = dlj_field(c, "kind");
  if (cJSON_IsString(kind)) dlj_kv_str(out, "kind", kind->valuestring);
  DL_FORWARD_IF_ERROR(e->fn(c, path, out, nt, err));
  dlj_obj_end(out);
  return DETLOSS_OK;
}

detloss_status detloss_compute_json(const char *text, size_t len, char **out, size_t *out_len,
                                    const detloss_compute_options *opt, detloss_error *err) {
  DL_RETURN_ERROR_IF(!text, err, DETLOSS_ERR_NULL, "text", "is NULL");
  DL_RETURN_ERROR_IF(!out, err, DETLOSS_ERR_NULL, "out", "is NULL");
  int nt = opt ? opt->num_threads : 0;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  if (!root) {
    size_t pos = end && end >= text ? (size_t)(end - text) : 0;
    if (pos > len) pos = len;
    size_t line, col;
    line_col(text, pos, &line, &col);
    char where[DETLOSS_WHERE_MAX];
    snprintf(where, sizeof where, "line %zu, column %zu", line, col);
    return dl_fail(err, DETLOSS_ERR_PARSE, where,
                   pos + 1 >= len && truncated(text, len)
                       ? "JSON syntax error: unexpected end of input"
                       : "JSON syntax error");
  }
  /* Trailing garbage after the value is also a syntax error. */
  if (end) {
    size_t pos = (size_t)(end - text);
    while (pos < len && (text[pos] == ' ' || text[pos] == '\n' || text[pos] == '\r' ||
                         text[pos] == '\t'))
      pos++;
    if (pos < len && text[pos] != '\0') {
      size_t line, col;
      line_col(text, pos, &line, &col);
      char where[DETLOSS_WHERE_MAX];
      snprintf(where, sizeof where, "line %zu, column %zu", line, col);
      cJSON_Delete(root);
      return dl_fail(err, DETLOSS_ERR_PARSE, where,
                     "JSON syntax error: unexpected text after the value");
    }
  }

  dlj_buf buf;
  dlj_buf_init(&buf);
  detloss_status st = DETLOSS_OK;
  if (cJSON_IsArray(root)) {
    dlj_arr_begin(&buf);
    size_t i = 0;
    for (const cJSON *c = root->child; c && st == DETLOSS_OK; c = c->next, i++) {
      char path[DETLOSS_WHERE_MAX];
      dlj_index(path, sizeof path, "", i);
      st = run_case(c, path, &buf, nt, err);
    }
    dlj_arr_end(&buf);
  } else {
    st = run_case(root, "", &buf, nt, err);
  }
  cJSON_Delete(root);
  if (st == DETLOSS_OK && buf.oom)
    st = dl_fail(err, DETLOSS_ERR_NOMEM, "(output)", "cannot allocate the result text");
  if (st == DETLOSS_OK) {
    dlj_raw(&buf, "\n");
    if (buf.oom) st = dl_fail(err, DETLOSS_ERR_NOMEM, "(output)", "cannot allocate the result text");
  }
  if (st != DETLOSS_OK) {
    dlj_buf_free(&buf);
    return st;
  }
  *out = buf.p;
  if (out_len) *out_len = buf.len;
  return DETLOSS_OK;
}
