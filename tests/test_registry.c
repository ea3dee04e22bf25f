/* The method registry (lq_method_count / lq_method_get_info / lq_method_by_name
 * / lq_method_name): one row per method, consistent with lq_method_init and
 * with the format lq_quantize emits at the defaults. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_common.h"

START_TEST(every_row_is_consistent)
{
    size_t n = lq_method_count();
    ck_assert_uint_eq(n, 6); /* int, nestquant, gptvq, gptqt, bcq, aqlm */
    const size_t rows = 16, cols = 64;
    float *W = malloc(rows * cols * sizeof(float));
    lq_test_fill_gaussian(W, rows * cols, 1.0f, 7);
    for (size_t i = 0; i < n; i++) {
        lq_method_info mi;
        ck_assert_int_eq(lq_method_get_info(i, &mi), LQ_OK);
        ck_assert_ptr_nonnull(mi.name);
        ck_assert_ptr_nonnull(mi.summary);
        ck_assert_str_eq(lq_method_name(mi.kind), mi.name);
        lq_method_kind k = (lq_method_kind)0;
        ck_assert_int_eq(lq_method_by_name(mi.name, &k), LQ_OK);
        ck_assert_int_eq(k, mi.kind);
        for (size_t j = 0; j < i; j++) {
            lq_method_info mj;
            ck_assert_int_eq(lq_method_get_info(j, &mj), LQ_OK);
            ck_assert_int_ne(mj.kind, mi.kind);
            ck_assert_str_ne(mj.name, mi.name);
        }
        /* the defaults quantize and emit the row's format */
        lq_method m;
        ck_assert_int_eq(lq_method_init(&m, mi.kind), LQ_OK);
        ck_assert_int_eq(m.kind, mi.kind);
        if (mi.kind == LQ_METHOD_AQLM) { /* defaults are for real layers: keep it quick */
            m.u.aqlm.rounds = 1;
            m.u.aqlm.kmeans_iters = 2;
            m.u.aqlm.beam = 2;
            m.u.aqlm.code_bits = 4;
        }
        lq_qtensor *t = NULL;
        ck_assert_int_eq(lq_quantize(NULL, W, rows, cols, NULL, &m, &t, NULL), LQ_OK);
        lq_format f;
        ck_assert_int_eq(lq_qtensor_format(t, &f), LQ_OK);
        ck_assert_int_eq(f, mi.format);
        ck_assert_ptr_nonnull(lq_format_name(f));
        lq_qtensor_free(t);
    }
    free(W);
}
END_TEST

START_TEST(bad_arguments_leave_outputs_untouched)
{
    lq_method_info mi;
    memset(&mi, 0x5A, sizeof mi);
    lq_method_info keep = mi;
    ck_assert_int_eq(lq_method_get_info(lq_method_count(), &mi), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_method_get_info(SIZE_MAX, &mi), LQ_ERR_INVALID_ARG);
    ck_assert(memcmp(&mi, &keep, sizeof mi) == 0);
    ck_assert_int_eq(lq_method_get_info(0, NULL), LQ_ERR_INVALID_ARG);
    lq_method_kind k = (lq_method_kind)77;
    ck_assert_int_eq(lq_method_by_name("gptq", &k), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_method_by_name("", &k), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_method_by_name("INT", &k), LQ_ERR_INVALID_ARG); /* names are exact */
    ck_assert_int_eq(lq_method_by_name(NULL, &k), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_method_by_name("int", NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq((int)k, 77);
    ck_assert_ptr_null(lq_method_name((lq_method_kind)0));
    ck_assert_ptr_null(lq_method_name((lq_method_kind)99));
    lq_method m;
    memset(&m, 0x33, sizeof m);
    lq_method keepm = m;
    ck_assert_int_eq(lq_method_init(&m, (lq_method_kind)99), LQ_ERR_INVALID_ARG);
    ck_assert(memcmp(&m, &keepm, sizeof m) == 0);
    /* an unregistered kind in a method is refused by lq_quantize */
    float W[64] = {0};
    lq_qtensor *t = (lq_qtensor *)(uintptr_t)0x1234;
    m.kind = (lq_method_kind)99;
    ck_assert_int_eq(lq_quantize(NULL, W, 1, 64, NULL, &m, &t, NULL), LQ_ERR_INVALID_ARG);
    ck_assert(t == (lq_qtensor *)(uintptr_t)0x1234);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("registry");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_row_is_consistent);
    tcase_add_test(tc, bad_arguments_leave_outputs_untouched);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return lq_test_run(suite()); }
