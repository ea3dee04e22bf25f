/* A small strict JSON reader for configuration files (config.json,
 * model.safetensors.index.json): RFC 8259 grammar, depth and size limits,
 * a tree of values. */
#ifndef LQ_JSON_H
#define LQ_JSON_H

#include <stddef.h>

typedef enum {
    LQ_JSON_NULL,
    LQ_JSON_BOOL,
    LQ_JSON_NUM,
    LQ_JSON_STR,
    LQ_JSON_ARR,
    LQ_JSON_OBJ
} lq_json_type;

typedef struct lq_json {
    lq_json_type type;
    double num;            /* NUM; BOOL: 0 or 1 */
    char *str;             /* STR (NUL-terminated; strings holding \u0000 are refused) */
    char *key;             /* member name when inside an object */
    struct lq_json *child; /* ARR / OBJ: first element */
    struct lq_json *next;  /* next sibling */
} lq_json;

/* Parse n bytes. Returns NULL on a syntax error, a limit (depth 64) or no
 * memory. */
lq_json *lq_json_parse(const char *s, size_t n);
void lq_json_free(lq_json *v);
/* Member `key` of an object (NULL when absent or v is not an object). */
const lq_json *lq_json_get(const lq_json *v, const char *key);
/* Read a whole (small, <= 64 MiB) file; NULL on error. */
char *lq_read_file(const char *path, size_t *n);

#endif
