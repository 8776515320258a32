/*
 * jtext.h - the lexical checks of JSON text shared by the strict tree scanner
 * (jread.c) and the streaming reader (jstream.c), so that both accept and
 * reject exactly the same strings: whitespace, \u escapes, well-formed UTF-8.
 */
#ifndef DETLOSS_JTEXT_H
#define DETLOSS_JTEXT_H

#include <stddef.h>

static inline int dlj_is_ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

static inline int dlj_hex_value(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* The 4 hex digits of a \u escape whose 'u' is at s[i]; -1 if malformed. */
static inline long dlj_hex4(const char *s, size_t n, size_t i) {
  if (n - i < 5) return -1;
  long v = 0;
  for (size_t k = 1; k <= 4; k++) {
    int h = dlj_hex_value(s[i + k]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

/* Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlong
 * forms, no UTF-16 surrogates, nothing above U+10FFFF), or 0. */
static inline size_t dlj_utf8_len(const unsigned char *s, size_t n, size_t i) {
  unsigned char c = s[i];
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0)
      lo = 0xA0; /* overlong */
    else if (c == 0xED)
      hi = 0x9F; /* U+D800..U+DFFF */
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0)
      lo = 0x90; /* overlong */
    else if (c == 0xF4)
      hi = 0x8F; /* above U+10FFFF */
  } else {
    return 0; /* a continuation byte, 0xC0, 0xC1 or >= 0xF5 */
  }
  if (n - i < len) return 0;
  if (s[i + 1] < lo || s[i + 1] > hi) return 0;
  for (size_t k = 2; k < len; k++)
    if (s[i + k] < 0x80 || s[i + k] > 0xBF) return 0;
  return len;
}

#endif /* DETLOSS_JTEXT_H */
