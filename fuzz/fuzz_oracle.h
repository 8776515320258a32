/*
 * fuzz_oracle.h - the status-class oracle shared by the libFuzzer targets.
 *
 * A fuzz input is hostile input, never a system failure, so every call must
 * end in DETLOSS_OK or an input-fault class: _NULL, _SHAPE, _NONFINITE,
 * _RANGE, _PARSE, _TYPE, _MISSING or _UNKNOWN. Never:
 *   - DETLOSS_ERR_NOMEM: the fuzz build injects no allocation failures and
 *     runs with -malloc_limit_mb/-rss_limit_mb far above what a bounded input
 *     needs, so a NOMEM is a syntax error or an exceeded limit reported as
 *     "out of memory", or a missing limit;
 *   - DETLOSS_ERR_IO / _UNSUPPORTED: nothing is read or written (the config
 *     target, which resolves anchor and data-set file names, allows IO only
 *     for a file that exists but cannot be read: see fuzz_config.c);
 *   - a value outside the enum.
 * On error, err->status equals the returned status, err->where and err->msg
 * are NUL-terminated (fuzz_error_init fills them with non-zero bytes first)
 * and the message is non-empty.
 * A violation aborts with a one-line message on stderr, which libFuzzer
 * records with the input that caused it.
 */
#ifndef DETLOSS_FUZZ_ORACLE_H
#define DETLOSS_FUZZ_ORACLE_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detloss/detloss.h"

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3), noreturn))
#endif
static void
fuzz_fail(const char *target, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: oracle violated: ", target);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

/* Poisons err so that an error path that leaves where or msg unterminated is
 * caught. */
static void fuzz_error_init(detloss_error *err) {
  memset(err, 0x5a, sizeof *err);
  err->status = DETLOSS_OK;
}

static int fuzz_is_input_fault(detloss_status st) {
  switch (st) {
    case DETLOSS_ERR_NULL:
    case DETLOSS_ERR_SHAPE:
    case DETLOSS_ERR_NONFINITE:
    case DETLOSS_ERR_RANGE:
    case DETLOSS_ERR_PARSE:
    case DETLOSS_ERR_TYPE:
    case DETLOSS_ERR_MISSING:
    case DETLOSS_ERR_NOT_FOUND:
    case DETLOSS_ERR_UNKNOWN: return 1;
    default: return 0;
  }
}

/* The message of err, printable even if it is not NUL-terminated. */
static const char *fuzz_msg(const detloss_error *err, char *buf, size_t cap) {
  const char *z = memchr(err->msg, '\0', sizeof err->msg);
  size_t n = z ? (size_t)(z - err->msg) : sizeof err->msg;
  if (n >= cap) n = cap - 1;
  memcpy(buf, err->msg, n);
  buf[n] = '\0';
  return buf;
}

/* Checks the status and, on error, the error record. allow_io: the call may
 * legitimately fail to read an existing file (see fuzz_config.c). */
static void fuzz_check_status(const char *target, const char *call, detloss_status st,
                              const detloss_error *err, int allow_io) {
  if (st == DETLOSS_OK) return;
  char m[DETLOSS_MSG_MAX + 1];
  if (memchr(err->where, '\0', sizeof err->where) == NULL)
    fuzz_fail(target, "%s: status %d: err.where is not NUL-terminated", call, (int)st);
  if (memchr(err->msg, '\0', sizeof err->msg) == NULL)
    fuzz_fail(target, "%s: status %d: err.msg is not NUL-terminated", call, (int)st);
  if (!fuzz_is_input_fault(st) && !(allow_io && st == DETLOSS_ERR_IO))
    fuzz_fail(target,
              "%s: status %s (%d) for hostile input, expected ok or an input-fault "
              "class: %s: %s",
              call, detloss_status_str(st), (int)st, err->where, fuzz_msg(err, m, sizeof m));
  if (err->status != st)
    fuzz_fail(target, "%s: returned status %d but err.status is %d", call, (int)st,
              (int)err->status);
  if (!err->msg[0]) fuzz_fail(target, "%s: status %d with an empty message", call, (int)st);
}

#endif
