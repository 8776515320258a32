/* test_jwrite.c - the JSON / text writer (src/json/jwrite.c): bounded appends
 * that grow instead of overrunning, and a nesting depth it refuses to pass. */
#include <cjson/cJSON.h>

#include "json/jwrite.h"
#include "testutil.h"

/* dlj_printf appends text of any length completely: 1000 x "123456.7 " is
 * 9000 bytes, far past the 256-byte scratch line and the 4096-byte first
 * allocation, and every byte arrives. */
static void printf_appends_long_text_completely(void **state) {
  (void)state;
  dlj_buf b;
  dlj_buf_init(&b);
  for (int i = 0; i < 1000; i++) dlj_printf(&b, "%s%.7g", i ? " " : "", 123456.7);
  assert_false(b.oom);
  assert_int_equal(b.len, 1000 * 8 + 999); /* "123456.7" is 8 chars, 999 separators */
  assert_int_equal(strlen(b.p), b.len);
  assert_memory_equal(b.p + b.len - 17, "123456.7 123456.7", 17);
  /* one call longer than the current capacity: a %-*s pad to 20000 columns */
  dlj_printf(&b, "|%-20000s|", "x");
  assert_false(b.oom);
  assert_int_equal(b.len, 8999 + 20002);
  assert_int_equal(b.p[8999], '|');
  assert_int_equal(b.p[9000], 'x');
  assert_int_equal(b.p[b.len - 1], '|');
  assert_int_equal(b.p[b.len], '\0');
  dlj_buf_free(&b);
}

/* dlj_printf after dlj_rawn mixes with the other writers in order. */
static void printf_and_rawn_keep_order(void **state) {
  (void)state;
  dlj_buf b;
  dlj_buf_init(&b);
  dlj_rawn(&b, "abcdef", 3);
  dlj_printf(&b, "[%d|%s]", 42, "z");
  dlj_raw(&b, "!");
  assert_false(b.oom);
  assert_string_equal(b.p, "abc[42|z]!");
  dlj_buf_free(&b);
}

/* Nesting past DLJ_MAX_DEPTH (64) used to index need_comma[] past its end
 * (ASan: stack-buffer-overflow on this dlj_buf). Now the writer refuses:
 * the buffer is marked failed, nothing is written out of bounds. */
static void nesting_past_the_limit_fails_the_buffer_without_overrun(void **state) {
  (void)state;
  dlj_buf b;
  dlj_buf_init(&b);
  for (int i = 0; i < 100; i++) dlj_arr_begin(&b);
  dlj_intval(&b, 1);
  for (int i = 0; i < 100; i++) dlj_arr_end(&b);
  assert_true(b.oom);
  dlj_buf_free(&b);
  /* exactly DLJ_MAX_DEPTH levels are fine */
  dlj_buf_init(&b);
  for (int i = 0; i < DLJ_MAX_DEPTH; i++) dlj_arr_begin(&b);
  dlj_intval(&b, 1);
  dlj_intval(&b, 2);
  for (int i = 0; i < DLJ_MAX_DEPTH; i++) dlj_arr_end(&b);
  assert_false(b.oom);
  assert_int_equal(b.len, 2 * DLJ_MAX_DEPTH + 3); /* 64 x "[", "1,2", 64 x "]" */
  assert_memory_equal(b.p + DLJ_MAX_DEPTH, "1,2]", 4);
  cJSON *j = cJSON_Parse(b.p);
  assert_non_null(j);
  cJSON_Delete(j);
  dlj_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(printf_appends_long_text_completely),
      cmocka_unit_test(printf_and_rawn_keep_order),
      cmocka_unit_test(nesting_past_the_limit_fails_the_buffer_without_overrun),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
