/*
 * jsoncmp.c - compares an expected JSON document with an actual one for the
 * CLI tests: every field of the expected objects must be present in the
 * actual ones (extra fields are allowed, as the compute contract says),
 * arrays must have the same length, numbers must satisfy
 * |a - e| <= abs_tol + rel_tol |e|, strings, booleans and nulls must be equal.
 * usage: jsoncmp EXPECTED ACTUAL [RTOL ATOL]; exit 0 equal, 1 different, 2 usage.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (!b) {
    fclose(f);
    return NULL;
  }
  size_t got = fread(b, 1, (size_t)n, f);
  b[got] = '\0';
  fclose(f);
  return b;
}

static double rel_tol = 1e-5, abs_tol = 1e-6;

static int cmp(const cJSON *e, const cJSON *a, char *path, size_t cap) {
  size_t len = strlen(path);
  if (cJSON_IsNumber(e)) {
    if (!cJSON_IsNumber(a)) {
      printf("%s: expected a number\n", path[0] ? path : "(root)");
      return 0;
    }
    double x = a->valuedouble, y = e->valuedouble;
    if (!(fabs(x - y) <= abs_tol + rel_tol * fabs(y))) {
      printf("%s: got %.9g, expected %.9g (rel_tol %g, abs_tol %g)\n", path[0] ? path : "(root)", x,
             y, rel_tol, abs_tol);
      return 0;
    }
    return 1;
  }
  if (cJSON_IsString(e)) {
    if (!cJSON_IsString(a) || strcmp(a->valuestring, e->valuestring) != 0) {
      printf("%s: expected \"%s\"\n", path[0] ? path : "(root)", e->valuestring);
      return 0;
    }
    return 1;
  }
  if (cJSON_IsBool(e) || cJSON_IsNull(e)) {
    if (a->type != e->type) {
      printf("%s: expected %s\n", path[0] ? path : "(root)",
             cJSON_IsNull(e) ? "null" : (cJSON_IsTrue(e) ? "true" : "false"));
      return 0;
    }
    return 1;
  }
  if (cJSON_IsArray(e)) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != cJSON_GetArraySize(e)) {
      printf("%s: expected an array of %d elements\n", path[0] ? path : "(root)",
             cJSON_GetArraySize(e));
      return 0;
    }
    int i = 0;
    for (const cJSON *x = e->child, *y = a->child; x; x = x->next, y = y->next, i++) {
      snprintf(path + len, cap - len, "[%d]", i);
      if (!cmp(x, y, path, cap)) return 0;
    }
    path[len] = '\0';
    return 1;
  }
  if (cJSON_IsObject(e)) {
    if (!cJSON_IsObject(a)) {
      printf("%s: expected an object\n", path[0] ? path : "(root)");
      return 0;
    }
    for (const cJSON *x = e->child; x; x = x->next) {
      snprintf(path + len, cap - len, "%s%s", len ? "." : "", x->string);
      const cJSON *y = cJSON_GetObjectItemCaseSensitive(a, x->string);
      if (!y) {
        printf("%s: missing\n", path);
        return 0;
      }
      if (!cmp(x, y, path, cap)) return 0;
    }
    path[len] = '\0';
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 5) {
    fprintf(stderr, "usage: jsoncmp EXPECTED ACTUAL [RTOL ATOL]\n");
    return 2;
  }
  if (argc == 5) {
    rel_tol = atof(argv[3]);
    abs_tol = atof(argv[4]);
  }
  char *te = slurp(argv[1]), *ta = slurp(argv[2]);
  if (!te || !ta) {
    fprintf(stderr, "jsoncmp: cannot read input\n");
    return 2;
  }
  cJSON *e = cJSON_Parse(te), *a = cJSON_Parse(ta);
  if (!e || !a) {
    printf("%s is not valid JSON\n", !e ? argv[1] : argv[2]);
    return 1;
  }
  char path[4096] = "";
  int ok = cmp(e, a, path, sizeof path);
  cJSON_Delete(e);
  cJSON_Delete(a);
  free(te);
  free(ta);
  return ok ? 0 : 1;
}
