/* lq inspect: the header, metadata, tensors (quantized and float), sections,
 * bits per weight and validation result of an .lqt file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "io/io_internal.h"
#include "qtensor/format_e8.h"
#include "qtensor/qtensor_internal.h"

/* Longest metadata value printed in full by the text output. */
#define META_TEXT_MAX 200

static const char *tag_name(uint32_t tag)
{
    switch (tag) {
    case LQ_SEC_CODES: return "codes";
    case LQ_SEC_SCALES: return "scales";
    case LQ_SEC_ZEROS: return "zeros";
    case LQ_SEC_CODEBOOKS: return "codebooks";
    case LQ_SEC_BETAS: return "betas";
    case LQ_SEC_ALPHAS: return "alphas";
    case LQ_SEC_OFFSETS: return "offsets";
    case LQ_SEC_AUX: return "aux";
    case LQ_SEC_PERM: return "perm";
    default: return "unknown";
    }
}

static void json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

/* Print at most max bytes of a string with non-printable bytes escaped. */
static void text_str_n(const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < max && p[i]; i++) {
        if (p[i] < 0x20 || p[i] == 0x7F)
            printf("\\x%02x", p[i]);
        else
            putchar(p[i]);
    }
}

static void text_str(const char *s) { text_str_n(s, SIZE_MAX); }

static void print_meta(const lq_lqt *f, int json)
{
    size_t m = lq_lqt_meta_count(f);
    if (json)
        printf(",\"metadata\":{");
    else
        printf("metadata:   %zu\n", m);
    for (size_t i = 0; i < m; i++) {
        const char *k, *v;
        lq_lqt_meta_get(f, i, &k, &v);
        if (json) {
            printf("%s", i ? "," : "");
            json_str(k);
            putchar(':');
            json_str(v);
            continue;
        }
        size_t vlen = strlen(v);
        printf("    ");
        text_str(k);
        printf(" = ");
        text_str_n(v, META_TEXT_MAX);
        if (vlen > META_TEXT_MAX) printf("... (%zu bytes)", vlen);
        putchar('\n');
    }
    if (json) putchar('}');
}

int lq_cmd_inspect(int argc, char **argv)
{
    int json = 0, no_crc = 0, mmap_it = 0;
    const lq_opt opts[] = {
        {"json", LQ_OPT_FLAG, "machine-readable output", &json},
        {"no-data-crc", LQ_OPT_FLAG, "skip the section checksums", &no_crc},
        {"mmap", LQ_OPT_FLAG, "map the file instead of reading it", &mmap_it},
    };
    char *pos[1];
    size_t npos = 0;
    int r = lq_cli_parse(argc, argv, "lq inspect [--json] [--no-data-crc] [--mmap] FILE.lqt", opts,
                         3, pos, 1, &npos);
    if (r <= 0) return r < 0 ? 2 : 0;
    if (npos != 1) {
        fprintf(stderr, "usage: lq inspect [--json] [--no-data-crc] [--mmap] FILE.lqt\n");
        return 2;
    }
    lq_lqt *f;
    lq_status st = lq_lqt_open(NULL, pos[0], mmap_it ? LQ_LQT_MMAP : 0, &f);
    if (st != LQ_OK) {
        if (json) {
            printf("{\"file\":");
            json_str(pos[0]);
            printf(",\"valid\":false,\"error\":\"%s\"}\n", lq_status_str(st));
        } else {
            printf("%s: invalid: %s\n", pos[0], lq_status_str(st));
        }
        return 1;
    }
    uint32_t version, align;
    uint64_t fsize;
    lq_lqt_file_info(f, &version, &align, &fsize);
    size_t n = lq_lqt_count(f), bad = 0;
    if (json) {
        printf("{\"file\":");
        json_str(pos[0]);
        printf(",\"version\":%u,\"alignment\":%u,\"size\":%llu", version, align,
               (unsigned long long)fsize);
        print_meta(f, 1);
        printf(",\"tensors\":[");
    } else {
        printf("file:       %s\nversion:    %u\nalignment:  %u\nsize:       %llu bytes\n"
               "tensors:    %zu\n",
               pos[0], version, align, (unsigned long long)fsize, n);
        print_meta(f, 0);
    }
    for (size_t i = 0; i < n; i++) {
        lq_lqt_info in;
        lq_lqt_info_get(f, i, &in);
        /* Float entries exist from version 2 on (in version 1 the marker is
         * an unknown quantized format). Their values are checked in place
         * (CRC, finite) without a copy; --no-data-crc skips that. */
        int f32 = version >= 2 && in.format == LQ_LQT_FORMAT_F32;
        lq_status vs = LQ_OK;
        double bpw = 32;
        lq_e8_layout e8; /* the named parameters of an E8 tensor (pointers unused) */
        int has_e8 = 0;
        if (f32) {
            if (!no_crc) vs = lq_lqt_f32_check(f, i);
        } else {
            lq_qtensor *t = NULL;
            vs = lq_lqt_load(NULL, f, i, no_crc ? LQ_LQT_SKIP_DATA_CRC : 0, &t);
            if (vs == LQ_OK) lq_qtensor_bits_per_weight(t, &bpw);
            has_e8 = vs == LQ_OK && lq_e8_layout_of(t, &e8) == LQ_OK;
            lq_qtensor_free(t);
        }
        if (vs != LQ_OK) bad++;
        const char *fmt = f32 ? "f32" : lq_format_name((lq_format)in.format);
        if (json) {
            printf("%s{\"name\":", i ? "," : "");
            json_str(in.name);
            printf(",\"format\":\"%s\",\"format_id\":%u,\"rows\":%zu,\"cols\":%zu,", fmt, in.format,
                   in.rows, in.cols);
            printf("\"ip\":[");
            for (size_t k = 0; k < LQ_LQT_NPARAMS; k++) printf("%s%u", k ? "," : "", in.ip[k]);
            printf("],\"fp\":[");
            for (size_t k = 0; k < LQ_LQT_NPARAMS; k++) printf("%s%.9g", k ? "," : "", in.fp[k]);
            printf("],\"sections\":[");
            for (size_t s = 0; s < in.nsec; s++)
                printf("%s{\"tag\":\"%s\",\"tag_id\":%u,\"elem_size\":%u,\"offset\":%llu,"
                       "\"bytes\":%llu,\"crc32c\":\"%08x\"}",
                       s ? "," : "", f32 ? "values" : tag_name(in.sec[s].tag), in.sec[s].tag,
                       in.sec[s].elem_size, (unsigned long long)in.sec[s].offset,
                       (unsigned long long)in.sec[s].nbytes, in.sec[s].crc);
            printf("]");
            if (has_e8)
                printf(",\"e8\":{\"q\":%u,\"betas\":%u,\"group\":%zu,\"hadamard\":%u,"
                       "\"n8\":%zu,\"seed\":%llu,\"code_bits\":%u,\"beta_bits\":%u}",
                       e8.q, e8.K, e8.group, e8.hadamard, e8.n8, (unsigned long long)e8.seed,
                       e8.cbits, e8.ibits);
            printf(",\"valid\":%s", vs == LQ_OK ? "true" : "false");
            if (vs == LQ_OK)
                printf(",\"bits_per_weight\":%.6f}", bpw);
            else
                printf(",\"error\":\"%s\"}", lq_status_str(vs));
        } else {
            printf("\n[%zu] ", i);
            text_str(in.name);
            printf("\n    format:   %s (%u)\n    shape:    %zu x %zu\n", fmt, in.format, in.rows,
                   in.cols);
            if (!f32) { /* a float entry's parameters are all zero */
                printf("    ip:      ");
                for (size_t k = 0; k < LQ_LQT_NPARAMS; k++) printf(" %u", in.ip[k]);
                printf("\n    fp:      ");
                for (size_t k = 0; k < LQ_LQT_NPARAMS; k++) printf(" %g", in.fp[k]);
                printf("\n");
                if (has_e8)
                    printf("    e8:       q %u, betas %u, group %zu, hadamard %u, n8 %zu, seed "
                           "%llu, code bits %u, beta bits %u\n",
                           e8.q, e8.K, e8.group, e8.hadamard, e8.n8, (unsigned long long)e8.seed,
                           e8.cbits, e8.ibits);
            }
            printf("    record:   offset %llu, %llu bytes\n", (unsigned long long)in.offset,
                   (unsigned long long)in.size);
            for (size_t s = 0; s < in.nsec; s++)
                printf("    section:  %-9s elem %u  offset %10llu  %10llu bytes  crc32c %08x\n",
                       f32 ? "values" : tag_name(in.sec[s].tag), in.sec[s].elem_size,
                       (unsigned long long)in.sec[s].offset, (unsigned long long)in.sec[s].nbytes,
                       in.sec[s].crc);
            if (vs == LQ_OK)
                printf("    bits/w:   %.4f\n    valid:    yes\n", bpw);
            else
                printf("    valid:    NO (%s)\n", lq_status_str(vs));
        }
    }
    if (json)
        printf("],\"valid\":%s}\n", bad ? "false" : "true");
    else
        printf("\n%s: %s\n", pos[0], bad ? "INVALID" : "valid");
    lq_lqt_close(f);
    return bad ? 1 : 0;
}
