/*
 * jstream.c - the incremental JSON reader (jstream.h).
 *
 * Why our own rather than yajl (Debian's libyajl-dev 2.1): the data-set
 * reader must report every fault exactly as dlj_parse does (the same
 * "line L, column C: JSON syntax error: <what>" messages, duplicate keys
 * named by JSON path, the same limits on numbers and nesting) so that a
 * data set gives the same error whether it is read as a stream or as a tree;
 * yajl has its own messages, does not detect duplicate keys and would be a
 * new dependency. The lexical rules below are those of jread.c's validating
 * scanner, run over a window of the input that is refilled as it is read.
 */
#include "json/jstream.h"
#include "json/jtext.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Bytes read from a file at a time (the window grows only for one token
 * longer than this). */
#define CHUNK ((size_t)1 << 20)
/* Longest number token (jread.c's NUMBER_MAX_CHARS: cJSON's 64-byte buffer). */
#define NUMBER_MAX_CHARS 63
/* A lexer asks for more input when it would look at or beyond the window's end. */
#define NEED SIZE_MAX
/* Lookahead kept in the window while scanning a string: a \uXXXX\uXXXX pair
 * or a 4-byte UTF-8 sequence fits, so jread.c's checks apply unchanged. */
#define LOOKAHEAD 16

struct dljs_level {
  size_t index;  /* elements begun so far (arrays): the current one is index - 1 */
  size_t cur;    /* arena offset of the current key (objects) */
  size_t arena0; /* start of this object's keys in the arena */
  size_t nkeys;
  size_t *koff; /* key offsets into the arena */
  size_t kcap;
  uint32_t *tab; /* open-addressing table of key numbers + 1, for > 16 keys */
  size_t tcap;
  /* duplicate keys, to report the one dlj_parse's depth-first search finds:
   * in an object of up to 16 members the earliest second occurrence, in a
   * larger one the smallest key (it sorts them); an object's own before any
   * below it; children in order */
  size_t members;
  char *first, *min_path, *min_key; /* this object's own candidates (paths) */
  char *below;                      /* the first found below this value's members */
};

static void level_clear(dljs_level *lv) {
  free(lv->first);
  free(lv->min_path);
  free(lv->min_key);
  free(lv->below);
  lv->first = lv->min_path = lv->min_key = lv->below = NULL;
  lv->members = 0;
}

/* The arena of the keys of the open objects (stack discipline). */
typedef struct key_arena {
  char *mem;
  size_t len, cap;
} key_arena;

enum { VALUE, VALUE_OR_END, KEY, KEY_OR_END, COLON, AFTER };

typedef struct dljs_priv {
  key_arena arena;
} dljs_priv;

/* The private part lives after the levels (one allocation). */
static dljs_priv *priv(dljs *j) { return (dljs_priv *)(void *)(j->levels + DLJS_NESTING_LIMIT); }

static detloss_status setup(dljs *j, const char *file, detloss_error *err) {
  j->file = file ? file : "(input)";
  j->line = j->col = 1;
  j->state = VALUE;
  dlj_path_init(&j->path, "");
  j->levels = calloc(1, DLJS_NESTING_LIMIT * sizeof(dljs_level) + sizeof(dljs_priv));
  if (!j->levels) return dl_fail(err, DETLOSS_ERR_NOMEM, j->file, "out of memory");
  return DETLOSS_OK;
}

detloss_status dlj_stream_open_file(dljs *j, FILE *f, const char *file, size_t max_bytes,
                                    detloss_error *err) {
  memset(j, 0, sizeof *j);
  DL_FORWARD_IF_ERROR(setup(j, file, err));
  j->f = f;
  j->max_bytes = max_bytes;
  j->cap = CHUNK;
  j->buf = malloc(j->cap);
  j->owned = 1;
  if (!j->buf) {
    dlj_stream_close(j);
    return dl_fail(err, DETLOSS_ERR_NOMEM, j->file, "out of memory reading the input");
  }
  return DETLOSS_OK;
}

detloss_status dlj_stream_open_mem(dljs *j, const char *text, size_t len, const char *file,
                                   detloss_error *err) {
  memset(j, 0, sizeof *j);
  DL_FORWARD_IF_ERROR(setup(j, file, err));
  j->buf = (char *)(uintptr_t)text; /* never written: owned = 0 */
  j->end = j->cap = len;
  j->eof = 1;
  j->max_bytes = SIZE_MAX;
  return DETLOSS_OK;
}

void dlj_stream_close(dljs *j) {
  if (j->levels) {
    for (size_t d = 0; d < DLJS_NESTING_LIMIT; d++) {
      free(j->levels[d].koff);
      free(j->levels[d].tab);
      level_clear(&j->levels[d]);
    }
    free(priv(j)->arena.mem);
    free(j->levels);
  }
  if (j->owned) free(j->buf);
  free(j->key);
  j->levels = NULL;
  j->buf = NULL;
  j->key = NULL;
}

static dljs_kind fatal(dljs *j, detloss_status st) {
  j->st = st;
  return j->kind = DLJS_ERROR;
}

/* Line and column (jread.c's counting: columns count UTF-8 characters) up
 * to buffer index rel. */
static void count_to(dljs *j, size_t rel) {
  size_t from = j->counted - j->base;
  if (rel <= from) return;
  /* lines with memchr; the column from the last newline on */
  const char *p = j->buf + from, *e = j->buf + rel, *nl;
  while ((nl = memchr(p, '\n', (size_t)(e - p))) != NULL) {
    j->line++;
    j->col = 1;
    p = nl + 1;
  }
  for (; p < e; p++)
    if (((unsigned char)*p & 0xC0) != 0x80) j->col++;
  j->counted = j->base + rel;
}

static dljs_kind syntax(dljs *j, size_t rel, const char *msg) {
  count_to(j, rel);
  char where[DETLOSS_WHERE_MAX];
  if (j->anon)
    snprintf(where, sizeof where, "line %zu, column %zu", j->line, j->col);
  else
    snprintf(where, sizeof where, "%s: line %zu, column %zu", j->file, j->line, j->col);
  return fatal(j, dl_fail(&j->err, DETLOSS_ERR_PARSE, where, "JSON syntax error: %s", msg));
}

/* Reads more input, keeping buf[keep, end). 0 on a fault (j set). */
static int refill(dljs *j, size_t keep) {
  if (j->eof) return 1;
  count_to(j, keep);
  if (keep > 0) {
    memmove(j->buf, j->buf + keep, j->end - keep);
    j->base += keep;
    j->end -= keep;
    j->pos -= keep;
    j->tok = j->tok >= keep ? j->tok - keep : 0;
  }
  if (j->end == j->cap) {
    char *p = j->cap <= SIZE_MAX / 2 ? realloc(j->buf, j->cap * 2) : NULL;
    if (!p) {
      fatal(j, dl_fail(&j->err, DETLOSS_ERR_NOMEM, j->file, "out of memory reading the input"));
      return 0;
    }
    j->buf = p;
    j->cap *= 2;
  }
  size_t got = fread(j->buf + j->end, 1, j->cap - j->end, j->f);
  j->end += got;
  if (j->base + j->end > j->max_bytes) {
    fatal(j, dl_fail(&j->err, DETLOSS_ERR_RANGE, j->file,
                     "the input is larger than the limit max_input_bytes = %zu", j->max_bytes));
    return 0;
  }
  if (got == 0) {
    if (ferror(j->f)) {
      fatal(j, dl_fail(&j->err, DETLOSS_ERR_IO, j->file, "read error"));
      return 0;
    }
    j->eof = 1;
  }
  return 1;
}

/* Lexer result: the index after the token, NEED, or 0 with *msg and *at. */
typedef struct lexfail {
  const char *msg;
  size_t at;
} lexfail;

static size_t lex_fail(lexfail *lf, size_t at, const char *msg) {
  lf->at = at;
  lf->msg = msg;
  return 0;
}

/* jread.c's scan_string over the window; NEED when a check would look
 * within LOOKAHEAD bytes of the window's end before the input's end. */
static size_t lex_string(const dljs *j, size_t i, lexfail *lf) {
  const char *s = j->buf;
  size_t n = j->end;
  for (i++;;) {
    if (!j->eof && n - i < LOOKAHEAD) return NEED;
    if (i >= n) break;
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"') return i + 1;
    if (ch == '\0') return lex_fail(lf, i, "NUL byte in the input");
    if (ch < 0x20) return lex_fail(lf, i, "control character in a string (escape it)");
    if (ch >= 0x80) {
      size_t len = dlj_utf8_len((const unsigned char *)s, n, i);
      if (!len) return lex_fail(lf, i, "invalid UTF-8 in a string");
      i += len;
      continue;
    }
    if (ch != '\\') {
      i++;
      continue;
    }
    if (i + 1 >= n) break;
    char e = s[i + 1];
    if (e == '\0') return lex_fail(lf, i + 1, "NUL byte in the input");
    if (e != 'u') {
      if (!strchr("\"\\/bfnrt", e)) return lex_fail(lf, i, "invalid escape in a string");
      i += 2;
      continue;
    }
    long cp = dlj_hex4(s, n, i + 1);
    if (cp < 0) {
      size_t k = 0;
      while (k < 4 && i + 2 + k < n && dlj_hex_value(s[i + 2 + k]) >= 0) k++;
      if (k < 4 && i + 2 + k >= n) break;
      return lex_fail(lf, i, "invalid \\u escape (expected 4 hex digits)");
    }
    if (cp == 0) return lex_fail(lf, i, "\\u0000 (NUL) is not supported in strings");
    if (cp >= 0xDC00 && cp <= 0xDFFF)
      return lex_fail(lf, i, "unpaired UTF-16 surrogate (a low surrogate first)");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      long lo = n - i >= 8 && s[i + 6] == '\\' && s[i + 7] == 'u' ? dlj_hex4(s, n, i + 7) : -1;
      if (lo < 0xDC00 || lo > 0xDFFF)
        return lex_fail(lf, i, "unpaired UTF-16 surrogate (a high surrogate without a low one)");
      i += 12;
      continue;
    }
    i += 6;
  }
  return lex_fail(lf, n, "unexpected end of input");
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

/* jread.c's scan_number over the window. */
static size_t lex_number(const dljs *j, size_t i, lexfail *lf) {
  const unsigned char *s = (const unsigned char *)j->buf;
  size_t k = i, n = j->end;
  int more = !j->eof, c;
/* c = the byte at k, -1 at the input's end; NEED when the window must grow */
#define PEEK(at)                                                                                   \
  do {                                                                                             \
    size_t at_ = (at);                                                                             \
    if (at_ < n)                                                                                   \
      c = s[at_];                                                                                  \
    else if (more)                                                                                 \
      return NEED;                                                                                 \
    else                                                                                           \
      c = -1;                                                                                      \
  } while (0)
  PEEK(k);
  if (c == '-') PEEK(++k);
  if (c == '0') {
    PEEK(++k);
  } else if (c >= '1' && c <= '9') {
    do PEEK(++k);
    while (is_digit(c));
  } else {
    return lex_fail(lf, c >= 0 ? k : n, c >= 0 ? "invalid number" : "unexpected end of input");
  }
  if (c == '.') {
    size_t d = ++k;
    PEEK(k);
    while (is_digit(c)) PEEK(++k);
    if (k == d) return lex_fail(lf, k, c >= 0 ? "invalid number" : "unexpected end of input");
  }
  if (c == 'e' || c == 'E') {
    PEEK(++k);
    if (c == '+' || c == '-') PEEK(++k);
    size_t d = k;
    while (is_digit(c)) PEEK(++k);
    if (k == d) return lex_fail(lf, k, c >= 0 ? "invalid number" : "unexpected end of input");
  }
#undef PEEK
  if (k - i > NUMBER_MAX_CHARS) return lex_fail(lf, i, "number longer than 63 characters");
  return k;
}

static size_t key_hash(const char *s) {
  size_t h = 1469598103934665603ull & SIZE_MAX;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * (1099511628211ull & SIZE_MAX);
  return h;
}

/* Records key in the object at depth d; 1 if it was there already, -1 when
 * out of memory. Up to 16 keys are compared pairwise, then a hash table
 * keeps a hostile object of 10^6 keys linear. */
static int add_key(dljs *j, dljs_level *lv, const char *key, size_t len) {
  key_arena *a = &priv(j)->arena;
  int dup = 0;
  if (lv->nkeys <= 16) {
    for (size_t k = 0; k < lv->nkeys && !dup; k++) dup = strcmp(a->mem + lv->koff[k], key) == 0;
  } else {
    size_t m = lv->tcap - 1;
    for (size_t h = key_hash(key) & m; lv->tab[h] && !dup; h = (h + 1) & m)
      dup = strcmp(a->mem + lv->koff[lv->tab[h] - 1], key) == 0;
  }
  if (a->len + len + 1 > a->cap) {
    size_t cap = a->cap ? a->cap : 4096;
    while (cap < a->len + len + 1) cap *= 2;
    char *p = realloc(a->mem, cap);
    if (!p) return -1;
    a->mem = p;
    a->cap = cap;
  }
  memcpy(a->mem + a->len, key, len + 1);
  lv->cur = a->len;
  a->len += len + 1;
  if (dup) return 1; /* named by the path; not added to the set again */
  if (lv->nkeys == lv->kcap) {
    size_t cap = lv->kcap ? 2 * lv->kcap : 16;
    size_t *p = realloc(lv->koff, cap * sizeof *p);
    if (!p) return -1;
    lv->koff = p;
    lv->kcap = cap;
  }
  lv->koff[lv->nkeys++] = lv->cur;
  if (lv->nkeys == 17 || (lv->nkeys > 17 && 2 * lv->nkeys > lv->tcap)) {
    size_t cap = lv->tcap >= 64 ? lv->tcap : 64;
    while (2 * lv->nkeys > cap) cap *= 2;
    if (cap != lv->tcap) {
      uint32_t *t = lv->nkeys < UINT32_MAX ? malloc(cap * sizeof *t) : NULL;
      if (!t) return -1;
      free(lv->tab);
      lv->tab = t;
      lv->tcap = cap;
    }
    memset(lv->tab, 0, cap * sizeof *lv->tab);
    for (size_t k = 0; k < lv->nkeys; k++) {
      size_t h = key_hash(a->mem + lv->koff[k]) & (cap - 1);
      while (lv->tab[h]) h = (h + 1) & (cap - 1);
      lv->tab[h] = (uint32_t)(k + 1);
    }
  } else if (lv->nkeys > 17) {
    size_t m = lv->tcap - 1, h = key_hash(key) & m;
    while (lv->tab[h]) h = (h + 1) & m;
    lv->tab[h] = (uint32_t)lv->nkeys;
  }
  return 0;
}

/* Decodes the string token buf[tok, tok_end) into j->key. 0 when out of memory. */
static int decode(dljs *j) {
  const char *s = j->buf + j->tok + 1, *e = j->buf + j->tok_end - 1;
  size_t need = (size_t)(e - s) + 1;
  if (need > j->key_cap) {
    char *p = realloc(j->key, need);
    if (!p) return 0;
    j->key = p;
    j->key_cap = need;
  }
  char *o = j->key;
  while (s < e) {
    if (*s != '\\') {
      *o++ = *s++;
      continue;
    }
    char c = s[1];
    s += 2;
    switch (c) {
      case 'b': *o++ = '\b'; break;
      case 'f': *o++ = '\f'; break;
      case 'n': *o++ = '\n'; break;
      case 'r': *o++ = '\r'; break;
      case 't': *o++ = '\t'; break;
      case 'u': {
        unsigned long cp = (unsigned long)dlj_hex4(s - 1, (size_t)(e - s) + 1, 0);
        s += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          unsigned long lo = (unsigned long)dlj_hex4(s + 1, (size_t)(e - s) - 1, 0);
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          s += 6;
        }
        if (cp < 0x80) {
          *o++ = (char)cp;
        } else if (cp < 0x800) {
          *o++ = (char)(0xC0 | (cp >> 6));
          *o++ = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
          *o++ = (char)(0xE0 | (cp >> 12));
          *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
          *o++ = (char)(0x80 | (cp & 0x3F));
        } else {
          *o++ = (char)(0xF0 | (cp >> 18));
          *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
          *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
          *o++ = (char)(0x80 | (cp & 0x3F));
        }
        break;
      }
      default: *o++ = c; break; /* " \ / */
    }
  }
  *o = '\0';
  j->key_len = (size_t)(o - j->key);
  return 1;
}

/* A container at level d ends: its duplicate (its own, else the first from
 * below) goes up to the enclosing level, or is the text's at the top. */
static void end_level(dljs *j, int d, int object) {
  dljs_level *lv = &j->levels[d];
  char **own = object ? (lv->members <= 16 ? &lv->first : &lv->min_path) : NULL;
  char **pick = own && *own ? own : &lv->below;
  if (*pick) {
    if (d == 0) {
      if (!j->dup) {
        j->dup = 1;
        if (j->anon)
          snprintf(j->dup_where, sizeof j->dup_where, "%s", *pick);
        else
          snprintf(j->dup_where, sizeof j->dup_where, "%s: %s", j->file, *pick);
      }
    } else if (!j->levels[d - 1].below) {
      j->levels[d - 1].below = *pick;
      *pick = NULL;
    }
  }
  level_clear(lv);
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

/* A value starts: it is the next element of an enclosing array. */
static void begin_value(dljs *j) {
  if (j->depth > 0 && j->stack[j->depth - 1] == '[') j->levels[j->depth - 1].index++;
}

const char *dlj_stream_path(dljs *j) {
  dlj_path_init(&j->path, "");
  key_arena *a = &priv(j)->arena;
  int top = j->depth - (j->kind == DLJS_BEGIN_OBJECT || j->kind == DLJS_BEGIN_ARRAY);
  for (int d = 0; d < top; d++) {
    const dljs_level *lv = &j->levels[d];
    if (j->stack[d] == '[') {
      if (lv->index) dlj_path_index(&j->path, lv->index - 1);
    } else if (lv->nkeys) {
      dlj_path_key(&j->path, a->mem + lv->cur);
    }
  }
  return j->path.buf;
}

dljs_kind dlj_stream_next(dljs *j) {
  if (j->st != DETLOSS_OK) return j->kind = DLJS_ERROR;
  dljs_priv *pv = priv(j);
  if (j->base == 0 && j->pos == 0 && j->counted == 0 && j->state == VALUE && j->depth == 0) {
    /* a UTF-8 byte-order mark, skipped as dlj_parse skips it */
    while (!j->eof && j->end < 3)
      if (!refill(j, 0)) return DLJS_ERROR;
    if (j->end >= 3 && (unsigned char)j->buf[0] == 0xEF && (unsigned char)j->buf[1] == 0xBB &&
        (unsigned char)j->buf[2] == 0xBF)
      j->pos = 3;
  }
  for (;;) {
    size_t i = j->pos;
    for (;;) {
      while (i < j->end && dlj_is_ws(j->buf[i])) i++;
      if (i < j->end || j->eof) break;
      j->pos = i;
      if (!refill(j, i)) return DLJS_ERROR;
      i = j->pos;
    }
    j->pos = i;
    size_t n = j->end;
    if (j->state == AFTER && j->depth == 0) {
      if (i == n) return j->kind = DLJS_EOF;
      return syntax(j, i,
                    j->buf[i] == '\0' ? "NUL byte in the input"
                                      : "unexpected text after the value");
    }
    if (i >= n) return syntax(j, n, "unexpected end of input");
    char ch = j->buf[i];
    if (ch == '\0') return syntax(j, i, "NUL byte in the input");
    j->tok = i;
    switch (j->state) {
      case VALUE_OR_END:
        if (ch == ']') {
          j->depth--;
          end_level(j, j->depth, 0);
          j->pos = i + 1;
          j->state = AFTER;
          return j->kind = DLJS_END_ARRAY;
        }
        j->state = VALUE;
        /* fall through */
      case VALUE:
        if (ch == '{' || ch == '[') {
          if (j->depth == DLJS_NESTING_LIMIT) return syntax(j, i, "nested deeper than 1000 levels");
          begin_value(j);
          j->stack[j->depth++] = ch;
          dljs_level *lv = &j->levels[j->depth - 1];
          lv->index = 0;
          lv->nkeys = 0;
          lv->cur = 0;
          level_clear(lv);
          lv->arena0 = pv->arena.len;
          j->pos = i + 1;
          j->state = ch == '{' ? KEY_OR_END : VALUE_OR_END;
          return j->kind = ch == '{' ? DLJS_BEGIN_OBJECT : DLJS_BEGIN_ARRAY;
        }
        {
          lexfail lf = {NULL, 0};
          size_t e;
          dljs_kind k;
          if (ch == '"') {
            e = lex_string(j, i, &lf);
            k = DLJS_STRING;
          } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            e = lex_number(j, i, &lf);
            k = DLJS_NUMBER;
          } else {
            static const char *const lits[] = {"true", "false", "null"};
            static const dljs_kind kinds[] = {DLJS_TRUE, DLJS_FALSE, DLJS_NULL};
            if (!j->eof && n - i < 5) {
              e = NEED;
              k = DLJS_NULL;
            } else {
              size_t q = 0, len = 0;
              for (; q < 3; q++) {
                len = strlen(lits[q]);
                if (n - i >= len && strncmp(j->buf + i, lits[q], len) == 0) break;
              }
              if (q == 3) {
                for (q = 0; q < 3; q++)
                  if (n - i < strlen(lits[q]) && strncmp(j->buf + i, lits[q], n - i) == 0)
                    return syntax(j, n, "unexpected end of input");
                return syntax(j, i, "expected a value");
              }
              e = i + len;
              k = kinds[q];
            }
          }
          if (e == NEED) {
            if (!refill(j, i)) return DLJS_ERROR;
            continue;
          }
          if (e == 0) return syntax(j, lf.at, lf.msg);
          begin_value(j);
          j->tok_end = e;
          j->pos = e;
          j->state = AFTER;
          return j->kind = k;
        }
      case KEY_OR_END:
        if (ch == '}') {
          j->depth--;
          end_level(j, j->depth, 1);
          pv->arena.len = j->levels[j->depth].arena0;
          j->pos = i + 1;
          j->state = AFTER;
          return j->kind = DLJS_END_OBJECT;
        }
        /* fall through */
      case KEY: {
        if (ch != '"')
          return syntax(j, i,
                        j->state == KEY ? "expected a string key" : "expected a string key or '}'");
        lexfail lf = {NULL, 0};
        size_t e = lex_string(j, i, &lf);
        if (e == NEED) {
          if (!refill(j, i)) return DLJS_ERROR;
          continue;
        }
        if (e == 0) return syntax(j, lf.at, lf.msg);
        j->tok_end = e;
        j->pos = e;
        j->state = COLON;
        if (!decode(j))
          return fatal(j, dl_fail(&j->err, DETLOSS_ERR_NOMEM, j->file, "out of memory"));
        dljs_level *lv = &j->levels[j->depth - 1];
        int d = add_key(j, lv, j->key, j->key_len);
        if (d < 0) return fatal(j, dl_fail(&j->err, DETLOSS_ERR_NOMEM, j->file, "out of memory"));
        lv->members++;
        j->kind = DLJS_KEY;
        if (d > 0) {
          const char *path = dlj_stream_path(j);
          int oom = 0;
          if (!lv->first) oom |= !(lv->first = dup_str(path));
          if (!lv->min_key || strcmp(j->key, lv->min_key) < 0) {
            free(lv->min_key);
            free(lv->min_path);
            lv->min_key = dup_str(j->key);
            lv->min_path = dup_str(path);
            oom |= !lv->min_key || !lv->min_path;
          }
          if (oom) return fatal(j, dl_fail(&j->err, DETLOSS_ERR_NOMEM, j->file, "out of memory"));
        }
        return DLJS_KEY;
      }
      case COLON:
        if (ch != ':') return syntax(j, i, "expected ':'");
        j->pos = i + 1;
        j->state = VALUE;
        continue;
      case AFTER:
        if (ch == ',') {
          j->pos = i + 1;
          j->state = j->stack[j->depth - 1] == '[' ? VALUE : KEY;
          continue;
        }
        if ((ch == ']' && j->stack[j->depth - 1] == '[') ||
            (ch == '}' && j->stack[j->depth - 1] == '{')) {
          j->depth--;
          end_level(j, j->depth, ch == '}');
          if (ch == '}') pv->arena.len = j->levels[j->depth].arena0;
          j->pos = i + 1;
          return j->kind = ch == '}' ? DLJS_END_OBJECT : DLJS_END_ARRAY;
        }
        return syntax(j, i,
                      j->stack[j->depth - 1] == '[' ? "expected ',' or ']'"
                                                    : "expected ',' or '}'");
    }
  }
}

dljs_kind dlj_stream_skip(dljs *j) {
  if (j->kind != DLJS_BEGIN_OBJECT && j->kind != DLJS_BEGIN_ARRAY) return j->kind;
  int d = j->depth;
  for (;;) {
    dljs_kind k = dlj_stream_next(j);
    if (k == DLJS_ERROR) return k;
    if ((k == DLJS_END_ARRAY || k == DLJS_END_OBJECT) && j->depth == d - 1) return k;
  }
}

const char *dlj_stream_string(dljs *j) {
  if (j->kind == DLJS_KEY) return j->key;
  if (j->kind != DLJS_STRING) return NULL;
  if (!decode(j)) {
    fatal(j, dl_fail(&j->err, DETLOSS_ERR_NOMEM, j->file, "out of memory"));
    return NULL;
  }
  return j->key;
}

double dlj_stream_number(const dljs *j) {
  char tmp[NUMBER_MAX_CHARS + 1];
  size_t n = j->tok_end - j->tok;
  if (n > NUMBER_MAX_CHARS) n = NUMBER_MAX_CHARS;
  memcpy(tmp, j->buf + j->tok, n);
  tmp[n] = '\0';
  return strtod(tmp, NULL);
}

detloss_status dlj_stream_finish(dljs *j, detloss_error *err) {
  while (j->kind != DLJS_EOF && j->kind != DLJS_ERROR) dlj_stream_next(j);
  if (j->st == DETLOSS_ERR_PARSE && j->f && !j->eof) {
    /* dlj_parse's callers read the whole file first: an input above the
     * limit is reported as such even when it has a syntax fault. */
    detloss_error keep = j->err;
    j->st = DETLOSS_OK;
    while (!j->eof && refill(j, j->end)) {
    }
    if (j->st == DETLOSS_OK) {
      j->st = DETLOSS_ERR_PARSE;
      j->err = keep;
    }
  }
  if (j->st != DETLOSS_OK) {
    if (err) *err = j->err;
    return j->st;
  }
  if (j->dup) return dl_fail(err, DETLOSS_ERR_PARSE, j->dup_where, "duplicate key");
  return DETLOSS_OK;
}
