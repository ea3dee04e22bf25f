/*
 * CPU feature detection (cpuid + xgetbv on x86-64, getauxval on aarch64),
 * the once-initialised dispatch level, and topology (hwloc when built with
 * it; sysconf otherwise).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"

#if LQ_HAVE_HWLOC
#include <hwloc.h>
#endif
#if LQ_ARCH_X86
#include <cpuid.h>
#endif
#if LQ_ARCH_ARM
#include <sys/auxv.h>
#endif

size_t lq_physical_cores(void);

#if LQ_ARCH_X86
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

static void detect_features(lq_machine_info *m)
{
#if LQ_ARCH_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    m->has_sse42 = (c >> 20) & 1;
    m->has_fma = (c >> 12) & 1;
    m->has_f16c = (c >> 29) & 1;
    int osxsave = (c >> 27) & 1;
    int avx = (c >> 28) & 1;
    if (osxsave) {
        uint64_t xcr0 = xgetbv0();
        m->os_avx = avx && (xcr0 & 0x6) == 0x6;            /* XMM + YMM */
        m->os_avx512 = m->os_avx && (xcr0 & 0xE0) == 0xE0; /* opmask, ZMM hi */
    }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        m->has_avx2 = (b >> 5) & 1;
        m->has_avx512f = (b >> 16) & 1;
        m->has_avx512dq = (b >> 17) & 1;
        m->has_avx512bw = (b >> 30) & 1;
        m->has_avx512vl = (b >> 31) & 1;
        m->has_avx512vbmi = (c >> 1) & 1;
        m->has_avx512vnni = (c >> 11) & 1;
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) m->has_avx512bf16 = (a >> 5) & 1;
    unsigned brand[12];
    if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002 + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2],
                        &brand[4 * i + 3]);
        memcpy(m->cpu_name, brand, 48);
        m->cpu_name[48] = 0;
        /* trim leading spaces */
        size_t s = 0;
        while (m->cpu_name[s] == ' ') s++;
        memmove(m->cpu_name, m->cpu_name + s, strlen(m->cpu_name + s) + 1);
    }
#elif LQ_ARCH_ARM
    unsigned long hw = getauxval(AT_HWCAP);
    m->has_neon = 1; /* Advanced SIMD is mandatory on AArch64 */
#ifdef HWCAP_ASIMDDP
    m->has_dotprod = (hw & HWCAP_ASIMDDP) != 0;
#else
    m->has_dotprod = (hw & (1ul << 20)) != 0;
#endif
    strcpy(m->cpu_name, "aarch64");
#endif
}

#if LQ_ARCH_X86
static int x86_avx2_ok(const lq_machine_info *m)
{
    return m->os_avx && m->has_avx2 && m->has_fma && m->has_f16c;
}

static int x86_avx512_ok(const lq_machine_info *m)
{
    return x86_avx2_ok(m) && m->os_avx512 && m->has_avx512f && m->has_avx512bw && m->has_avx512vl &&
           m->has_avx512dq && m->has_avx512vnni && m->has_avx512vbmi;
}
#endif

static lq_simd_level g_level;
static pthread_once_t g_level_once = PTHREAD_ONCE_INIT;

static void init_level(void)
{
    lq_machine_info m;
    memset(&m, 0, sizeof m);
    detect_features(&m);
    lq_simd_level best = LQ_SIMD_SCALAR;
#if LQ_ARCH_X86
    if (x86_avx512_ok(&m))
        best = LQ_SIMD_AVX512;
    else if (x86_avx2_ok(&m))
        best = LQ_SIMD_AVX2;
#elif LQ_ARCH_ARM
    best = LQ_SIMD_NEON;
#endif
    const char *env = getenv("LQ_SIMD");
    if (env) {
        lq_simd_level want = best;
        if (!strcmp(env, "scalar"))
            want = LQ_SIMD_SCALAR;
        else if (!strcmp(env, "avx2") && best == LQ_SIMD_AVX512)
            want = LQ_SIMD_AVX2;
        /* "avx512", "neon" or a level above the machine's: keep best */
        best = want;
    }
    g_level = best;
}

lq_simd_level lq_simd_detected(void)
{
    pthread_once(&g_level_once, init_level);
    return g_level;
}

const char *lq_simd_name(lq_simd_level level)
{
    switch (level) {
    case LQ_SIMD_SCALAR: return "scalar";
    case LQ_SIMD_AVX2: return "avx2";
    case LQ_SIMD_AVX512: return "avx512";
    case LQ_SIMD_NEON: return "neon";
    case LQ_SIMD_AUTO: return "auto";
    }
    return "unknown";
}

/* ---- topology --------------------------------------------------------- */
typedef struct topo {
    size_t cores, pus, l1d, l2, l3;
} topo;

static topo g_topo;
static pthread_once_t g_topo_once = PTHREAD_ONCE_INIT;

static void init_topo(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    g_topo.pus = n > 0 ? (size_t)n : 1;
    g_topo.cores = g_topo.pus;
#if LQ_HAVE_HWLOC
    hwloc_topology_t t;
    if (hwloc_topology_init(&t) == 0) {
        if (hwloc_topology_load(t) == 0) {
            int c = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
            int p = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
            if (c > 0) g_topo.cores = (size_t)c;
            if (p > 0) g_topo.pus = (size_t)p;
            hwloc_obj_type_t types[3] = {HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L3CACHE};
            size_t *dst[3] = {&g_topo.l1d, &g_topo.l2, &g_topo.l3};
            for (int i = 0; i < 3; i++) {
                hwloc_obj_t o = hwloc_get_obj_by_type(t, types[i], 0);
                if (o && o->attr) *dst[i] = (size_t)o->attr->cache.size;
            }
        }
        hwloc_topology_destroy(t);
    }
#else
#ifdef _SC_LEVEL1_DCACHE_SIZE
    long v;
    if ((v = sysconf(_SC_LEVEL1_DCACHE_SIZE)) > 0) g_topo.l1d = (size_t)v;
    if ((v = sysconf(_SC_LEVEL2_CACHE_SIZE)) > 0) g_topo.l2 = (size_t)v;
    if ((v = sysconf(_SC_LEVEL3_CACHE_SIZE)) > 0) g_topo.l3 = (size_t)v;
#endif
#endif
    if (g_topo.cores == 0) g_topo.cores = 1;
}

size_t lq_physical_cores(void)
{
    pthread_once(&g_topo_once, init_topo);
    return g_topo.cores;
}

size_t lq_cache_l2(void)
{
    pthread_once(&g_topo_once, init_topo);
    return g_topo.l2;
}

size_t lq_cache_l3(void)
{
    pthread_once(&g_topo_once, init_topo);
    return g_topo.l3;
}

lq_status lq_machine_query(lq_machine_info *info)
{
    if (!info) return LQ_ERR_INVALID_ARG;
    lq_machine_info m;
    memset(&m, 0, sizeof m);
    detect_features(&m);
    pthread_once(&g_topo_once, init_topo);
    m.physical_cores = g_topo.cores;
    m.logical_cpus = g_topo.pus;
    m.l1d_bytes = g_topo.l1d;
    m.l2_bytes = g_topo.l2;
    m.l3_bytes = g_topo.l3;
    m.have_hwloc = LQ_HAVE_HWLOC;
    m.have_sleef = LQ_HAVE_SLEEF;
    *info = m;
    return LQ_OK;
}
