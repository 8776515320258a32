/*
 * jstream.h - an incremental (pull) JSON reader for large inputs: data sets.
 *
 * dlj_stream_next() returns one token at a time from a file read in 1 MiB chunks
 * (or from a memory buffer), so memory does not grow with the input: a value
 * the caller does not need (COCO's polygons, RLE strings, "info") is skipped
 * token by token and never built. It accepts exactly what dlj_parse accepts
 * and reports the same faults with the same messages (jread.h: RFC 8259,
 * UTF-8, \u escapes, numbers of at most 63 characters, nesting of at most
 * 1000 levels, a leading byte-order mark skipped): a syntax fault is
 * DETLOSS_ERR_PARSE with where = "<file>: line L, column C"; a key given
 * twice in one object is DETLOSS_ERR_PARSE "duplicate key" with where =
 * "<file>: <JSON path>", reported only once the whole text has been read
 * and found free of syntax faults (as dlj_parse checks the syntax first).
 * dlj_stream_path() gives the JSON path of the current token's value, which the
 * caller uses to name semantic faults; it is built only when asked for.
 */
#ifndef DETLOSS_JSTREAM_H
#define DETLOSS_JSTREAM_H

#include <stddef.h>
#include <stdio.h>

#include "detloss/detloss.h"
#include "json/jread.h"

typedef enum dljs_kind {
  DLJS_ERROR = 0, /* syntax or I/O fault, or input too large: see dljs_fail */
  DLJS_BEGIN_OBJECT,
  DLJS_END_OBJECT,
  DLJS_BEGIN_ARRAY,
  DLJS_END_ARRAY,
  DLJS_KEY, /* j->key holds the decoded key */
  DLJS_STRING,
  DLJS_NUMBER,
  DLJS_TRUE,
  DLJS_FALSE,
  DLJS_NULL,
  DLJS_EOF /* the one top-level value has ended and only white space followed */
} dljs_kind;

#define DLJS_NESTING_LIMIT 1000

typedef struct dljs_level dljs_level;

typedef struct dljs {
  /* source */
  FILE *f;
  const char *file;     /* name for messages (never NULL) */
  int anon;             /* 1: syntax and duplicate-key locations carry no "<file>: "
                           prefix, as dlj_parse's with file NULL (set after opening) */
  size_t max_bytes;     /* input limit (max_input_bytes) */
  char *buf;            /* owned for a file; the caller's text otherwise */
  size_t cap, pos, end; /* unread bytes are buf[pos, end) */
  size_t base;          /* absolute offset of buf[0] */
  int eof, owned;
  /* line and column of the first byte not yet counted */
  size_t line, col, counted;
  /* structure */
  int state, depth;
  char stack[DLJS_NESTING_LIMIT];
  dljs_level *levels; /* per depth: element index and the keys seen (duplicates) */
  dlj_path path;      /* dlj_stream_path's buffer */
  /* current token */
  dljs_kind kind;
  size_t tok, tok_end; /* the token's bytes: buf[tok, tok_end) */
  char *key;           /* decoded key or string (dlj_stream_string) */
  size_t key_cap, key_len;
  /* faults */
  detloss_status st; /* first fatal fault (syntax, I/O, limit, memory) */
  detloss_error err;
  int dup; /* a duplicate key was found */
  char dup_where[DETLOSS_WHERE_MAX];
} dljs;

/* Reads an open file (the caller closes it) of at most max_bytes. */
detloss_status dlj_stream_open_file(dljs *j, FILE *f, const char *file, size_t max_bytes,
                                    detloss_error *err);
/* Reads text[len] (not copied; it must outlive the reader). */
detloss_status dlj_stream_open_mem(dljs *j, const char *text, size_t len, const char *file,
                                   detloss_error *err);
void dlj_stream_close(dljs *j);

/* The next token; DLJS_ERROR once a fault was found (then always). */
dljs_kind dlj_stream_next(dljs *j);
/* Skips the value whose first token is current (a container to its end). */
dljs_kind dlj_stream_skip(dljs *j);
/* The JSON path of the current token's value (of the container itself for
 * BEGIN and END tokens, of the key's value for a KEY): "images[3].bbox".
 * Valid until the next call. */
const char *dlj_stream_path(dljs *j);
/* The current string token decoded (UTF-8, NUL-terminated), into j->key;
 * NULL when out of memory (then j is in error). */
const char *dlj_stream_string(dljs *j);
/* The current number token as cJSON reads it (strtod of its text). */
double dlj_stream_number(const dljs *j);
/* Reads to the end of the input, checking it. Returns DETLOSS_OK or the
 * first fault: syntax/I/O first, then a duplicate key (into err). */
detloss_status dlj_stream_finish(dljs *j, detloss_error *err);

#endif /* DETLOSS_JSTREAM_H */
