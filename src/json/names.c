/*
 * names.c - the JSON layer's lookups over the core's name registry and the
 * table-driven matcher options reader (names.h).
 */
#include "json/names.h"

#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "json/jread.h"

int dlj_name_index(detloss_name_set set, const char *s) {
  const detloss_name_info *row = detloss_names_find(set, s);
  return row ? row->value : -1;
}

size_t dlj_names(detloss_name_set set, const char **out) {
  size_t n = detloss_names_count(set);
  if (n > DLJ_NAMES_MAX) n = DLJ_NAMES_MAX;
  for (size_t k = 0; k < n; k++) out[k] = detloss_names_get(set, k)->name;
  return n;
}

void dlj_name_list(char *buf, size_t cap, detloss_name_set set) {
  const char *names[DLJ_NAMES_MAX];
  size_t n = dlj_names(set, names), len = 0;
  if (cap) buf[0] = '\0';
  for (size_t k = 0; k < n && len < cap; k++)
    len += (size_t)snprintf(buf + len, cap - len, "%s%s",
                            k == 0       ? ""
                            : k + 1 == n ? " or "
                                         : ", ",
                            names[k]);
}

detloss_status dlj_unknown_name(detloss_error *err, const char *where, detloss_name_set set,
                                const char *s, int hint) {
  const char *label = detloss_names_label(set);
  if (hint) {
    const char *names[DLJ_NAMES_MAX];
    const char *h = dl_suggest(s, names, dlj_names(set, names));
    if (h)
      return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "unknown %s '%s' (did you mean '%s'?)", label,
                     s, h);
  }
  char list[DETLOSS_MSG_MAX];
  dlj_name_list(list, sizeof list, set);
  return dl_fail(err, DETLOSS_ERR_UNKNOWN, where, "unknown %s '%s' (expected %s)", label, s, list);
}

/* Reads obj[key] into dst's field of row f by the row's type; an ENUM's name
 * is left in *name for the caller to resolve. */
static detloss_status read_row(const cJSON *obj, const char *path, const char *key,
                               const detloss_option_field *f, int required, void *dst,
                               const char **name, detloss_error *err) {
  char *p = (char *)dst + f->offset;
  switch (f->type) {
    case DETLOSS_OPTION_F32: return dlj_float(obj, key, path, required, (float *)p, err);
    case DETLOSS_OPTION_F64: return dlj_number(obj, key, path, required, (double *)p, err);
    case DETLOSS_OPTION_BOOL: return dlj_bool(obj, key, path, required, (int *)p, err);
    case DETLOSS_OPTION_ENUM: return dlj_string(obj, key, path, required, name, err);
    default:
      return dl_fail(err, DETLOSS_ERR_UNSUPPORTED, path, "no compute-op reader for %s", f->field);
  }
}

static detloss_status resolve_name(const char *path, const char *key, const detloss_option_field *f,
                                   const char *name, int hint, void *dst, detloss_error *err) {
  int k = dlj_name_index((detloss_name_set)f->names, name);
  if (k < 0) {
    char where[DETLOSS_WHERE_MAX];
    dlj_join(where, sizeof where, path, key);
    return dlj_unknown_name(err, where, (detloss_name_set)f->names, name, hint);
  }
  memcpy((char *)dst + f->offset, &k, sizeof k);
  return DETLOSS_OK;
}

detloss_status dlj_option(const cJSON *obj, const char *path, const char *key,
                          detloss_options_kind kind, const char *field, int required, int hint,
                          void *dst, detloss_error *err) {
  const detloss_options_info *info = detloss_options_info_get(kind);
  for (size_t i = 0; info && i < info->num_fields; i++) {
    const detloss_option_field *f = &info->fields[i];
    if (strcmp(f->field, field) != 0) continue;
    const char *name = NULL;
    DL_FORWARD_IF_ERROR(read_row(obj, path, key, f, required, dst, &name, err));
    return name ? resolve_name(path, key, f, name, hint, dst, err) : DETLOSS_OK;
  }
  return dl_fail(err, DETLOSS_ERR_UNSUPPORTED, path, "no options field %s", field);
}

detloss_status dlj_match_options(const cJSON *obj, const char *path, const dlj_match_keys *keys,
                                 detloss_match_options *m, detloss_error *err) {
  const detloss_options_info *info = detloss_options_info_get(DETLOSS_OPTIONS_MATCH);
  const char *const key[] = {keys->high,
                             keys->low,
                             keys->allow_low_quality,
                             keys->low_quality_min_iou,
                             keys->semantics,
                             keys->gt_max_assign_all,
                             keys->crowd_ioa_thresh,
                             keys->allowed_border};
  /* tests/test_registry.c pins the table's rows to dlj_match_keys's order. */
  const size_t n =
      info->num_fields < sizeof key / sizeof key[0] ? info->num_fields : sizeof key / sizeof key[0];
  const char *name[sizeof key / sizeof key[0]] = {NULL};
  for (size_t i = 0; i < n; i++)
    if (key[i])
      DL_FORWARD_IF_ERROR(read_row(obj, path, key[i], &info->fields[i], 0, m, &name[i], err));
  /* Names are resolved after every key was read. */
  for (size_t i = 0; i < n; i++)
    if (name[i])
      DL_FORWARD_IF_ERROR(resolve_name(path, key[i], &info->fields[i], name[i], 0, m, err));
  return DETLOSS_OK;
}
