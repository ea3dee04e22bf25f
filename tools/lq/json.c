/* Strict recursive-descent JSON parser. */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *s, *e;
    int depth;
} parser;

static void ws(parser *p)
{
    while (p->s < p->e && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}

static int hex4(const char *s, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d > 15) return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

static char *parse_str(parser *p)
{
    if (p->s >= p->e || *p->s != '"') return NULL;
    p->s++;
    size_t cap = 16, n = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    for (;;) {
        if (p->s >= p->e) goto bad;
        unsigned char c = (unsigned char)*p->s++;
        unsigned cp;
        if (c == '"') break;
        if (c < 0x20) goto bad;
        if (n + 5 > cap) {
            char *o2 = realloc(out, cap *= 2);
            if (!o2) goto bad;
            out = o2;
        }
        if (c != '\\') {
            out[n++] = (char)c;
            continue;
        }
        if (p->s >= p->e) goto bad;
        c = (unsigned char)*p->s++;
        switch (c) {
        case '"': out[n++] = '"'; continue;
        case '\\': out[n++] = '\\'; continue;
        case '/': out[n++] = '/'; continue;
        case 'b': out[n++] = '\b'; continue;
        case 'f': out[n++] = '\f'; continue;
        case 'n': out[n++] = '\n'; continue;
        case 'r': out[n++] = '\r'; continue;
        case 't': out[n++] = '\t'; continue;
        case 'u': break;
        default: goto bad;
        }
        if (p->e - p->s < 4 || hex4(p->s, &cp)) goto bad;
        p->s += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (p->e - p->s < 6 || p->s[0] != '\\' || p->s[1] != 'u' || hex4(p->s + 2, &lo) ||
                lo < 0xDC00 || lo > 0xDFFF)
                goto bad;
            p->s += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            goto bad;
        }
        if (cp == 0) goto bad;
        if (cp < 0x80) {
            out[n++] = (char)cp;
        } else if (cp < 0x800) {
            out[n++] = (char)(0xC0 | cp >> 6);
            out[n++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[n++] = (char)(0xE0 | cp >> 12);
            out[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
            out[n++] = (char)(0xF0 | cp >> 18);
            out[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            out[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    out[n] = 0;
    return out;
bad:
    free(out);
    return NULL;
}

static lq_json *parse_value(parser *p);

static int parse_num(parser *p, double *v)
{
    const char *s = p->s;
    if (s < p->e && *s == '-') s++;
    if (s >= p->e) return -1;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (s < p->e && *s >= '0' && *s <= '9') s++;
    else
        return -1;
    if (s < p->e && *s == '.') {
        s++;
        if (s >= p->e || *s < '0' || *s > '9') return -1;
        while (s < p->e && *s >= '0' && *s <= '9') s++;
    }
    if (s < p->e && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < p->e && (*s == '+' || *s == '-')) s++;
        if (s >= p->e || *s < '0' || *s > '9') return -1;
        while (s < p->e && *s >= '0' && *s <= '9') s++;
    }
    char buf[64];
    size_t len = (size_t)(s - p->s);
    if (len >= sizeof buf) return -1;
    memcpy(buf, p->s, len);
    buf[len] = 0;
    *v = strtod(buf, NULL);
    p->s = s;
    return 0;
}

static int lit(parser *p, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(p->e - p->s) < n || memcmp(p->s, w, n)) return -1;
    p->s += n;
    return 0;
}

static lq_json *parse_value(parser *p)
{
    ws(p);
    if (p->s >= p->e || ++p->depth > 64) return NULL;
    lq_json *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    char c = *p->s;
    if (c == '{' || c == '[') {
        v->type = c == '{' ? LQ_JSON_OBJ : LQ_JSON_ARR;
        p->s++;
        ws(p);
        lq_json **tail = &v->child;
        if (p->s < p->e && *p->s == (c == '{' ? '}' : ']')) {
            p->s++;
        } else {
            for (;;) {
                char *key = NULL;
                if (c == '{') {
                    ws(p);
                    if (!(key = parse_str(p))) goto bad;
                    ws(p);
                    if (p->s >= p->e || *p->s != ':') {
                        free(key);
                        goto bad;
                    }
                    p->s++;
                }
                lq_json *e = parse_value(p);
                if (!e) {
                    free(key);
                    goto bad;
                }
                e->key = key;
                *tail = e;
                tail = &e->next;
                ws(p);
                if (p->s < p->e && *p->s == ',') {
                    p->s++;
                    continue;
                }
                if (p->s < p->e && *p->s == (c == '{' ? '}' : ']')) {
                    p->s++;
                    break;
                }
                goto bad;
            }
        }
    } else if (c == '"') {
        v->type = LQ_JSON_STR;
        if (!(v->str = parse_str(p))) goto bad;
    } else if (c == 't' || c == 'f') {
        v->type = LQ_JSON_BOOL;
        v->num = c == 't';
        if (lit(p, c == 't' ? "true" : "false")) goto bad;
    } else if (c == 'n') {
        v->type = LQ_JSON_NULL;
        if (lit(p, "null")) goto bad;
    } else {
        v->type = LQ_JSON_NUM;
        if (parse_num(p, &v->num)) goto bad;
    }
    p->depth--;
    return v;
bad:
    lq_json_free(v);
    return NULL;
}

lq_json *lq_json_parse(const char *s, size_t n)
{
    if (!s) return NULL;
    parser p = {s, s + n, 0};
    lq_json *v = parse_value(&p);
    if (!v) return NULL;
    ws(&p);
    if (p.s != p.e) {
        lq_json_free(v);
        return NULL;
    }
    return v;
}

void lq_json_free(lq_json *v)
{
    while (v) {
        lq_json *n = v->next;
        lq_json_free(v->child);
        free(v->str);
        free(v->key);
        free(v);
        v = n;
    }
}

const lq_json *lq_json_get(const lq_json *v, const char *key)
{
    if (!v || v->type != LQ_JSON_OBJ) return NULL;
    for (const lq_json *c = v->child; c; c = c->next)
        if (!strcmp(c->key, key)) return c;
    return NULL;
}

char *lq_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap) break;
        if (cap >= ((size_t)64 << 20)) {
            free(buf);
            buf = NULL;
            break;
        }
        char *b2 = realloc(buf, 2 * cap + 1);
        if (!b2) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b2;
        cap *= 2;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[len] = 0;
        *n = len;
    }
    return buf;
}
