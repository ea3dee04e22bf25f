/*
 * libquant core: status codes, version, and the context that carries the
 * allocator, threads, seed, progress callback and SIMD cap.
 *
 * Every public function that can fail returns lq_status (LQ_OK == 0) and
 * writes its results through pointer arguments; on error, caller-owned
 * outputs are left untouched. Functions are reentrant; a context may be used
 * from several threads at once (parallel sections from different caller
 * threads on the same context run one at a time in the pool, the others run
 * inline on their caller's thread).
 */
#ifndef QUANT_CORE_H
#define QUANT_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "quant/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(LQ_BUILDING_LIBRARY)
#define LQ_API __attribute__((visibility("default")))
#else
#define LQ_API
#endif

/* Status codes. Stable values: they may be stored and compared. */
typedef enum lq_status {
    LQ_OK = 0,
    LQ_ERR_INVALID_ARG = 1,           /* NULL pointer, zero or inconsistent size, bad option */
    LQ_ERR_NO_MEMORY = 2,             /* an allocation failed; nothing was changed */
    LQ_ERR_NOT_FINITE = 3,            /* NaN or Inf in an input */
    LQ_ERR_NOT_POSITIVE_DEFINITE = 4, /* a Hessian stayed indefinite after damping */
    LQ_ERR_CORRUPT = 5,               /* packed data or a file failed validation */
    LQ_ERR_UNSUPPORTED = 6,           /* valid request this build or format cannot serve */
    LQ_ERR_IO = 7,                    /* a read, write or map of a file failed */
    LQ_ERR_OUT_OF_RANGE = 8           /* finite input beyond the supported range (below) */
} lq_status;

/* Supported input range of the quantizers (lq_quantize, lq_gptq_run, the
 * k-means/VQ/AQ fits): every weight |w| <= LQ_MAX_ABS_WEIGHT and every
 * Hessian entry |h| <= LQ_MAX_ABS_HESSIAN. Within these bounds no
 * intermediate quantity (grid scales, squared errors summed over a layer,
 * H^-1 and its Cholesky factor) can overflow or underflow to a NaN; beyond
 * them the input is refused with LQ_ERR_OUT_OF_RANGE (NaN/Inf stay
 * LQ_ERR_NOT_FINITE). Trained weights are many orders of magnitude smaller:
 * rescale such data before quantizing. */
#define LQ_MAX_ABS_WEIGHT 0x1p40f  /* 1.0995e12 */
#define LQ_MAX_ABS_HESSIAN 0x1p80f /* 1.2089e24 */
/* Products on the codes (lq_matvec, lq_matmul, lq_matmul_ex) accept
 * activations |x| <= LQ_MAX_ABS_ACTIVATION, so that every look-up table and
 * int8 block scale built from them stays finite; beyond, OUT_OF_RANGE. The
 * outputs are the IEEE results of the documented float operations: they
 * may overflow to +-Inf when the exact product exceeds FLT_MAX. */
#define LQ_MAX_ABS_ACTIVATION 0x1p64f /* 1.8447e19 */

/* Static, never-NULL English description of a status ("unknown status" for
 * values outside the enum). Thread-safe. */
LQ_API const char *lq_status_str(lq_status s);

/* Version string of the library actually linked, e.g. "0.1.0". */
LQ_API const char *lq_version(void);

/* SIMD levels. x86-64 has scalar < avx2 < avx512; aarch64 has scalar < neon. */
typedef enum lq_simd_level {
    LQ_SIMD_SCALAR = 0,
    LQ_SIMD_AVX2 = 1,
    LQ_SIMD_AVX512 = 2, /* F, BW, VL, DQ, VNNI, VBMI */
    LQ_SIMD_NEON = 3,
    LQ_SIMD_AUTO = 255 /* no cap (config default) */
} lq_simd_level;

/* Name of a level ("scalar", "avx2", "avx512", "neon", "auto"). */
LQ_API const char *lq_simd_name(lq_simd_level level);

/* The level the library uses when no context caps it: the best level this
 * CPU and OS support, lowered by the environment variable
 * LQ_SIMD=scalar|avx2|avx512|neon when set (a level the machine lacks is
 * ignored). Detected once, thread-safely. */
LQ_API lq_simd_level lq_simd_detected(void);

/* Allocator hooks. alloc returns memory aligned to `align` (a power of two,
 * at most 4096) or NULL; free accepts NULL. Both receive `user`. */
typedef struct lq_allocator {
    void *(*alloc)(void *user, size_t size, size_t align);
    void (*free)(void *user, void *ptr);
    void *user;
} lq_allocator;

/* A host-supplied parallel-for: run task(arg, i) for every i in [0, n), on
 * any threads in any order, and return when all have finished. Lets an
 * engine run libquant on its own pool. libquant never relies on the order or
 * on the number of threads: results are identical whatever the host does. */
typedef void (*lq_task_fn)(void *arg, size_t i);
typedef void (*lq_parallel_for_fn)(void *user, size_t n, lq_task_fn task, void *arg);

/* Progress: fraction in [0, 1] and a short stage name ("gptq", "kmeans"...).
 * Called from the thread that called the library function. */
typedef void (*lq_progress_fn)(void *user, double fraction, const char *stage);

typedef struct lq_ctx_config {
    lq_allocator allocator;          /* alloc == NULL: aligned malloc/free */
    size_t n_threads;                /* 0: physical cores (hwloc), else exact */
    lq_parallel_for_fn parallel_for; /* non-NULL: use the host's pool instead */
    void *parallel_user;
    uint64_t seed;           /* RNG seed for every randomized step */
    lq_progress_fn progress; /* optional */
    void *progress_user;
    lq_simd_level simd_cap; /* LQ_SIMD_AUTO: no cap */
} lq_ctx_config;

typedef struct lq_ctx lq_ctx;

/* Fill *cfg with the defaults: malloc, all physical cores, seed 0, no
 * progress, no SIMD cap. */
LQ_API void lq_ctx_config_init(lq_ctx_config *cfg);

/* Create a context. cfg == NULL gives the defaults. On success *out owns a
 * thread pool (unless parallel_for is set or n_threads == 1); destroy it with
 * lq_ctx_destroy. Errors: LQ_ERR_INVALID_ARG (out NULL, alloc without free,
 * simd_cap out of range), LQ_ERR_NO_MEMORY (allocation or thread creation
 * failed; nothing is left behind). */
LQ_API lq_status lq_ctx_create(const lq_ctx_config *cfg, lq_ctx **out);

/* Destroy a context (joins its threads). NULL is a no-op. No call may be
 * running on the context. */
LQ_API void lq_ctx_destroy(lq_ctx *ctx);

/* Number of threads work is split across (1 when a host parallel_for is
 * set: the host decides). ctx NULL: the default context. */
LQ_API size_t lq_ctx_threads(const lq_ctx *ctx);

/* SIMD level the context's work uses: lq_simd_detected() capped by the
 * context's simd_cap. */
LQ_API lq_simd_level lq_ctx_simd(const lq_ctx *ctx);

/* Machine description, as used by `lq info`. */
typedef struct lq_machine_info {
    size_t physical_cores; /* hwloc, or sysconf fallback */
    size_t logical_cpus;
    size_t l1d_bytes, l2_bytes, l3_bytes; /* 0 if unknown */
    int has_sse42, has_avx2, has_fma, has_f16c, has_avx512f, has_avx512bw, has_avx512vl,
        has_avx512dq, has_avx512vnni, has_avx512vbmi, has_avx512bf16, has_neon, has_dotprod;
    int os_avx, os_avx512; /* xgetbv: the OS saves the YMM / ZMM state */
    int have_hwloc;        /* built with hwloc */
    int have_sleef;        /* built with SLEEF */
    char cpu_name[64];
} lq_machine_info;

/* Describe this machine. Errors: LQ_ERR_INVALID_ARG (info NULL). */
LQ_API lq_status lq_machine_query(lq_machine_info *info);

#ifdef __cplusplus
}
#endif
#endif /* QUANT_CORE_H */
