/* test_head_rpn.c - placeholder until its module lands. */
#include "testutil.h"
#include "detloss/detloss.h"

static void version_is_set(void **state) {
  (void)state;
  assert_string_equal(detloss_version(), DETLOSS_VERSION_STRING);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(version_is_set)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
