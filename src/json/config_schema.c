/*
 * config_schema.c - the reader that fills a run config's option sections
 * (matcher, sampler, box_coder, loss, eval, resize) through the core's
 * descriptor tables (src/registry.c, detloss_options_info_get), and
 * detloss_config_describe().
 *
 * House style (STYLE.md "Options, buffers, threads"): one descriptor table
 * per options struct (JSON key, type, offset, range, doc), in the core; the
 * default shown is read from the struct's own _default() value. The reader,
 * the range checks and detloss_config_describe() (--help-config and docs)
 * all read the tables.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json/config_internal.h"
#include "json/evalcfg.h"
#include "json/jread.h"
#include "json/names.h"
#include "json/jtree.h"

/* The rows are the core's (src/registry.c, detloss_options_info_get). */
typedef detloss_option_field desc;
#define DT_F32 DETLOSS_OPTION_F32
#define DT_F64 DETLOSS_OPTION_F64
#define DT_BOOL DETLOSS_OPTION_BOOL
#define DT_I64 DETLOSS_OPTION_I64
#define DT_U64 DETLOSS_OPTION_U64
#define DT_SIZE DETLOSS_OPTION_SIZE
#define DT_ENUM DETLOSS_OPTION_ENUM
#define DT_F32X4 DETLOSS_OPTION_F32X4

struct dlj_table {
  detloss_options_kind kind;
};
const dlj_table dlj_match_table = {DETLOSS_OPTIONS_MATCH};
const dlj_table dlj_sample_table = {DETLOSS_OPTIONS_SAMPLE};
const dlj_table dlj_coder_table = {DETLOSS_OPTIONS_CODER};
const dlj_table dlj_rpn_table = {DETLOSS_OPTIONS_RPN};
const dlj_table dlj_retina_table = {DETLOSS_OPTIONS_RETINA};
const dlj_table dlj_eval_table = {DETLOSS_OPTIONS_EVAL};
const dlj_table dlj_resize_table = {DETLOSS_OPTIONS_RESIZE};
const dlj_table dlj_atss_table = {DETLOSS_OPTIONS_ATSS};
const dlj_table dlj_fcos_table = {DETLOSS_OPTIONS_FCOS};

static const char *type_doc(const desc *d, char *buf, size_t cap) {
  switch (d->type) {
    case DT_BOOL: return "true|false";
    case DT_ENUM: {
      size_t n = 0;
      buf[0] = '\0';
      for (size_t i = 0; i < detloss_names_count((detloss_name_set)d->names); i++) {
        n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s", i ? "|" : "",
                              detloss_names_get((detloss_name_set)d->names, i)->name);
        if (n >= cap) break;
      }
      return buf;
    }
    case DT_F32X4:
      snprintf(buf, cap, "[4 numbers in %s%g, %g%s]", d->lo_open ? "(" : "[", d->lo, d->hi,
               d->hi_open ? ")" : "]");
      return buf;
    case DT_I64:
    case DT_U64:
    case DT_SIZE: snprintf(buf, cap, "integer in [%g, %g]", d->lo, d->hi); return buf;
    default:
      snprintf(buf, cap, "number in %s%g, %g%s", d->lo_open ? "(" : "[", d->lo, d->hi,
               d->hi_open ? ")" : "]");
      return buf;
  }
}

static void value_doc(const desc *d, const void *base, char *buf, size_t cap) {
  const char *p = (const char *)base + d->offset;
  switch (d->type) {
    case DT_F32: {
      float v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%g", (double)v);
      break;
    }
    case DT_F64: {
      double v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%.9g", v);
      break;
    }
    case DT_BOOL: {
      int v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%s", v ? "true" : "false");
      break;
    }
    case DT_I64: {
      int64_t v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%lld", (long long)v);
      break;
    }
    case DT_U64: {
      uint64_t v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%llu", (unsigned long long)v);
      break;
    }
    case DT_SIZE: {
      size_t v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "%zu", v);
      break;
    }
    case DT_ENUM: {
      int v;
      memcpy(&v, p, sizeof v);
      snprintf(buf, cap, "\"%s\"", detloss_names_get((detloss_name_set)d->names, (size_t)v)->name);
      break;
    }
    case DT_F32X4: {
      float v[4];
      memcpy(v, p, sizeof v);
      snprintf(buf, cap, "[%g, %g, %g, %g]", (double)v[0], (double)v[1], (double)v[2],
               (double)v[3]);
      break;
    }
  }
}

static detloss_status check_range(const desc *d, double v, const char *where, detloss_error *err) {
  int ok = (d->lo_open ? v > d->lo : v >= d->lo) && (d->hi_open ? v < d->hi : v <= d->hi);
  if (ok) return DETLOSS_OK;
  char t[160];
  return dl_fail(err, DETLOSS_ERR_RANGE, where, "expected a %s, got %g", type_doc(d, t, sizeof t),
                 v);
}

static detloss_status finite_number(const cJSON *v, const char *where, const char *what,
                                    double *out, detloss_error *err) {
  DL_RETURN_ERROR_IF(!cJSON_IsNumber(v), err, DETLOSS_ERR_TYPE, where, "expected a %s", what);
  DL_RETURN_ERROR_IF(!isfinite(v->valuedouble), err, DETLOSS_ERR_NONFINITE, where,
                     "expected a finite number");
  *out = v->valuedouble;
  return DETLOSS_OK;
}

/* Reads obj (at JSON path `path`) into the struct at dst through the table. */
static detloss_status read_table(const cJSON *obj, const char *path, const desc *t, size_t n,
                                 void *dst, detloss_error *err) {
  DL_RETURN_ERROR_IF(!cJSON_IsObject(obj), err, DETLOSS_ERR_TYPE, path, "expected an object");
  const char *keys[32];
  for (size_t i = 0; i < n; i++) keys[i] = t[i].key;
  keys[n] = NULL;
  DL_FORWARD_IF_ERROR(dlj_check_keys(obj, path, keys, err));
  for (size_t i = 0; i < n; i++) {
    const desc *d = &t[i];
    const cJSON *v = dlj_plain(obj, d->key);
    if (!v) continue;
    char where[DETLOSS_WHERE_MAX], tdoc[160];
    dlj_join(where, sizeof where, path, d->key);
    char *p = (char *)dst + d->offset;
    double x = 0.0;
    switch (d->type) {
      case DT_BOOL: {
        DL_RETURN_ERROR_IF(!cJSON_IsBool(v), err, DETLOSS_ERR_TYPE, where,
                           "expected true or false");
        int b = cJSON_IsTrue(v) ? 1 : 0;
        memcpy(p, &b, sizeof b);
        break;
      }
      case DT_ENUM: {
        DL_RETURN_ERROR_IF(!cJSON_IsString(v), err, DETLOSS_ERR_TYPE, where, "expected one of %s",
                           type_doc(d, tdoc, sizeof tdoc));
        int found = dlj_name_index((detloss_name_set)d->names, v->valuestring);
        if (found < 0) {
          const char *names[DLJ_NAMES_MAX];
          size_t cnt = dlj_names((detloss_name_set)d->names, names);
          const char *hint = dl_suggest(v->valuestring, names, cnt);
          if (hint)
            return dl_fail(err, DETLOSS_ERR_UNKNOWN, where,
                           "unknown name '%s' (did you mean '%s'?)", v->valuestring, hint);
          return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "unknown name '%s' (expected %s)",
                         v->valuestring, type_doc(d, tdoc, sizeof tdoc));
        }
        memcpy(p, &found, sizeof found);
        break;
      }
      case DT_F32X4: {
        DL_RETURN_ERROR_IF(!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 4, err,
                           cJSON_IsArray(v) ? DETLOSS_ERR_SHAPE : DETLOSS_ERR_TYPE, where,
                           "expected 4 numbers");
        float w[4];
        int k = 0;
        for (const cJSON *e = v->child; e; e = e->next, k++) {
          char sub[DETLOSS_WHERE_MAX];
          dlj_index(sub, sizeof sub, where, (size_t)k);
          DL_FORWARD_IF_ERROR(finite_number(e, sub, "number", &x, err));
          DL_FORWARD_IF_ERROR(check_range(d, x, sub, err));
          w[k] = (float)x;
        }
        memcpy(p, w, sizeof w);
        break;
      }
      default: {
        DL_FORWARD_IF_ERROR(finite_number(v, where, type_doc(d, tdoc, sizeof tdoc), &x, err));
        DL_FORWARD_IF_ERROR(check_range(d, x, where, err));
        if (d->type == DT_F32) {
          float f = (float)x;
          memcpy(p, &f, sizeof f);
        } else if (d->type == DT_F64) {
          memcpy(p, &x, sizeof x);
        } else {
          DL_RETURN_ERROR_IF(x != floor(x), err, DETLOSS_ERR_TYPE, where,
                             "expected an integer, got %g", x);
          if (d->type == DT_I64) {
            int64_t q = (int64_t)x;
            memcpy(p, &q, sizeof q);
          } else if (d->type == DT_U64) {
            uint64_t q = (uint64_t)x;
            memcpy(p, &q, sizeof q);
          } else {
            size_t q = (size_t)x;
            memcpy(p, &q, sizeof q);
          }
        }
      }
    }
  }
  return DETLOSS_OK;
}

detloss_status dlj_read_table(const cJSON *obj, const char *path, const dlj_table *t, void *dst,
                              detloss_error *err) {
  const detloss_options_info *info = detloss_options_info_get(t->kind);
  return read_table(obj, path, info->fields, info->num_fields, dst, err);
}

typedef struct table_ref {
  const char *path;
  detloss_options_kind kind;
  const void *def_a; /* default value (first head) */
  const void *def_b; /* a second default where heads differ, or NULL */
  const char *name_a, *name_b;
} table_ref;

char *detloss_config_describe(void) {
  detloss_rpn_options rpn = detloss_rpn_options_default();
  detloss_retina_options ret = detloss_retina_options_default();
  detloss_match_options none_match = detloss_match_options_default();
  detloss_sample_options smp = detloss_sample_options_default();
  detloss_coder_options cod = detloss_coder_options_default();
  detloss_eval_options ev = detloss_eval_options_default();
  detloss_atss_options atss = detloss_atss_options_default();
  detloss_fcos_options fcos = detloss_fcos_options_default();
  (void)none_match;
  const table_ref refs[] = {
      {"eval", DETLOSS_OPTIONS_EVAL, &ev, NULL, NULL, NULL},
      {"resize", DETLOSS_OPTIONS_RESIZE, &ev, NULL, NULL, NULL},
      {"matcher", DETLOSS_OPTIONS_MATCH, &rpn.match, &ret.match, "rpn", "retinanet"},
      {"sampler", DETLOSS_OPTIONS_SAMPLE, &smp, NULL, NULL, NULL},
      {"box_coder", DETLOSS_OPTIONS_CODER, &cod, NULL, NULL, NULL},
      {"loss (head rpn)", DETLOSS_OPTIONS_RPN, &rpn, NULL, NULL, NULL},
      {"loss (head retinanet)", DETLOSS_OPTIONS_RETINA, &ret, NULL, NULL, NULL},
      {"assigner (method atss)", DETLOSS_OPTIONS_ATSS, &atss, NULL, NULL, NULL},
      {"assigner (method fcos; and regress_ranges [[lo, hi] per point level], default "
       "FCOS's five)",
       DETLOSS_OPTIONS_FCOS, &fcos, NULL, NULL, NULL},
  };
  dlj_buf b;
  dlj_buf_init(&b);
  dlj_raw(&b,
          "config keys (all optional except \"anchors\"; unknown keys are errors):\n"
          "  name, source, notes            strings\n"
          "  head                           \"rpn\" (default) | \"retinanet\" | \"none\": which "
          "defaults apply\n"
          "  anchors                        file name (anchors/) or an inline anchor set\n"
          "  dataset                        default data set file (relative to the config)\n"
          "  assigner.method                \"max_iou\" (default: the matcher) | \"atss\" | "
          "\"fcos\" |\n"
          "                                 \"simota\" | \"task_aligned\" | \"hungarian\" "
          "(described only;\n"
          "                                 eval counts positives for max_iou, atss and fcos)\n"
          "  points.strides, points.offset  point levels (px) and the point's offset in its "
          "cell (0.5)\n"
          "                                 for fcos, simota, task_aligned; then anchors may be "
          "absent\n");
  for (size_t r = 0; r < sizeof refs / sizeof refs[0]; r++) {
    char line[512];
    snprintf(line, sizeof line, "%s:\n", refs[r].path);
    dlj_raw(&b, line);
    const detloss_options_info *info = detloss_options_info_get(refs[r].kind);
    for (size_t i = 0; i < info->num_fields; i++) {
      const desc *d = &info->fields[i];
      char t[160], da[64], db[64], dflt[160];
      value_doc(d, refs[r].def_a, da, sizeof da);
      if (refs[r].def_b) {
        value_doc(d, refs[r].def_b, db, sizeof db);
        if (strcmp(da, db) != 0)
          snprintf(dflt, sizeof dflt, "%s (%s), %s (%s)", da, refs[r].name_a, db, refs[r].name_b);
        else
          snprintf(dflt, sizeof dflt, "%s", da);
      } else {
        snprintf(dflt, sizeof dflt, "%s", da);
      }
      snprintf(line, sizeof line, "  %-22s %-34s default %s\n  %-22s %s\n", d->key,
               type_doc(d, t, sizeof t), dflt, "", d->doc);
      dlj_raw(&b, line);
    }
  }
  if (b.oom) {
    dlj_buf_free(&b);
    return NULL;
  }
  return b.p;
}
