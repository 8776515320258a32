/*
 * gen_large_case.c - writes a large `detloss compute` case to standard output,
 * for the memory benchmark of bench/compute_memory.md:
 *
 *   gen_large_case N [encode|decode] > case.json
 *
 * One case of op encode (or decode) with N anchors and N boxes (or deltas),
 * each a row of 4 numbers with 2 decimals, e.g. [412.37,96.05,517.80,233.91]
 * (about 28 bytes per row). The numbers come from a fixed counter-based
 * generator (splitmix64), so the same N always gives the same bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state = 12345;
static double u01(void) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (double)((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0);
}

static void rows(const char *key, size_t n, int deltas) {
  printf("\"%s\":[", key);
  for (size_t i = 0; i < n; i++) {
    if (deltas) {
      printf("%s[%.2f,%.2f,%.2f,%.2f]", i ? "," : "", u01() - 0.5, u01() - 0.5, u01() - 0.5,
             u01() - 0.5);
    } else {
      double x = 1000.0 * u01(), y = 1000.0 * u01();
      double w = 1.0 + 200.0 * u01(), h = 1.0 + 200.0 * u01();
      printf("%s[%.2f,%.2f,%.2f,%.2f]", i ? "," : "", x, y, x + w, y + h);
    }
  }
  printf("]");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: gen_large_case N [encode|decode] > case.json\n");
    return 2;
  }
  size_t n = (size_t)strtoull(argv[1], NULL, 10);
  int decode = argc > 2 && strcmp(argv[2], "decode") == 0;
  printf("{\"op\":\"%s\",", decode ? "decode" : "encode");
  rows("anchors", n, 0);
  printf(",");
  rows(decode ? "deltas" : "boxes", n, decode);
  printf("}\n");
  return 0;
}
