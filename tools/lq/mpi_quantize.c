/* lq quantize across MPI ranks: assignment, shards, the gather at rank 0
 * and the all-or-nothing status (see mpi_quantize.h). Only this file
 * includes <mpi.h>; without LQ_WITH_MPI it keeps the launcher check, so an
 * lq built without MPI refuses to run as N independent copies. */
#include "mpi_quantize.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char *lq_mpi_launcher(void)
{
    /* Open MPI's mpirun, PMIx (Open MPI 4+, srun --mpi=pmix), PMI-1/2
     * (MPICH's hydra, srun --mpi=pmi2). */
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return vars[i];
    }
    return NULL;
}

#if LQ_HAVE_MPI

#include <limits.h>
#include <mpi.h>
#include <unistd.h>

struct lq_mpi {
    int rank, size;
    int reduced; /* the status reduction has run */
    int *owner;  /* owner[i]: rank of the i-th selected tensor */
    size_t n;
    char *shard; /* this rank's shard path (set by lq_mpi_out_path) */
};

int lq_mpi_begin(size_t *threads, lq_mpi **out)
{
    *out = NULL;
    if (!lq_mpi_launcher()) return 0;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(NULL, NULL) != MPI_SUCCESS) {
        fprintf(stderr, "error: MPI_Init failed\n");
        return 1;
    }
    lq_mpi *m = calloc(1, sizeof *m);
    if (!m) {
        /* The others cannot be told without the job: abort them all. */
        fprintf(stderr, "error: out of memory starting the MPI job\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
        return 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &m->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &m->size);
    if (*threads == 0) {
        /* Ranks sharing a node share its cores. */
        MPI_Comm node;
        int local = 1;
        if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, m->rank, MPI_INFO_NULL,
                                &node) == MPI_SUCCESS) {
            MPI_Comm_size(node, &local);
            MPI_Comm_free(&node);
        }
        lq_machine_info mi;
        size_t cores = lq_machine_query(&mi) == LQ_OK ? mi.physical_cores : 1;
        size_t t = cores / (size_t)(local > 0 ? local : 1);
        *threads = t ? t : 1;
    }
    *out = m;
    return 0;
}

int lq_mpi_rank(const lq_mpi *m) { return m ? m->rank : 0; }

typedef struct weighted {
    size_t weight, index;
} weighted;

static int by_weight_desc(const void *a, const void *b)
{
    const weighted *x = a, *y = b;
    if (x->weight != y->weight) return x->weight > y->weight ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

int lq_mpi_assign(lq_mpi *m, const lq_tfile *f, const size_t *sel, size_t n)
{
    if (!m) return 0;
    weighted *w = malloc((n ? n : 1) * sizeof *w);
    double *load = calloc((size_t)m->size, sizeof *load);
    m->owner = malloc((n ? n : 1) * sizeof *m->owner);
    if (!w || !load || !m->owner) {
        free(w);
        free(load);
        free(m->owner);
        m->owner = NULL;
        return lq_cli_fail("MPI assignment", LQ_ERR_NO_MEMORY);
    }
    for (size_t i = 0; i < n; i++) {
        lq_tensor_info ti;
        lq_tfile_info(f, sel[i], &ti);
        w[i].weight = ti.numel;
        w[i].index = i;
    }
    /* Longest processing time first: the largest tensor goes to the least
     * loaded rank (ties: the lowest rank). Depends only on the sizes, the
     * order of IN and the number of ranks, so every rank computes the
     * same table. */
    qsort(w, n, sizeof *w, by_weight_desc);
    for (size_t k = 0; k < n; k++) {
        int best = 0;
        for (int r = 1; r < m->size; r++)
            if (load[r] < load[best]) best = r;
        load[best] += (double)w[k].weight;
        m->owner[w[k].index] = best;
    }
    m->n = n;
    free(w);
    free(load);
    return 0;
}

int lq_mpi_mine(const lq_mpi *m, size_t i)
{
    return !m || (m->owner && i < m->n && m->owner[i] == m->rank);
}

static char *shard_path(const char *out, int rank)
{
    size_t len = strlen(out) + 32;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s.mpi-shard%d", out, rank);
    return p;
}

const char *lq_mpi_out_path(lq_mpi *m, const char *out)
{
    if (!m) return out;
    if (!m->shard) m->shard = shard_path(out, m->rank);
    return m->shard; /* NULL (out of memory): the writer refuses it */
}

/* The one status reduction of the job: returns the number of failed ranks. */
static int reduce_status(lq_mpi *m, int failed)
{
    int nfail = 0;
    m->reduced = 1;
    MPI_Allreduce(&failed, &nfail, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    return nfail;
}

/* Rank 0: OUT from the shards, tensor i from the shard of owner[i], in
 * the order of IN. */
static int merge(lq_mpi *m, lq_ctx *ctx, const char *out)
{
    int rc = 1;
    lq_lqt **shards = calloc((size_t)m->size, sizeof *shards);
    size_t *next = calloc((size_t)m->size, sizeof *next);
    lq_lqt_writer *w = NULL;
    if (!shards || !next) {
        lq_cli_fail("MPI gather", LQ_ERR_NO_MEMORY);
        goto done;
    }
    for (int r = 0; r < m->size; r++) {
        char *p = shard_path(out, r);
        lq_status st = p ? lq_lqt_open(ctx, p, LQ_LQT_MMAP, &shards[r]) : LQ_ERR_NO_MEMORY;
        if (st != LQ_OK) {
            fprintf(stderr,
                    "error: shard of rank %d (%s): %s (is the output directory shared "
                    "by every rank?)\n",
                    r, p ? p : out, lq_status_str(st));
            free(p);
            goto done;
        }
        free(p);
    }
    lq_status st = lq_lqt_writer_open(ctx, out, &w);
    if (st != LQ_OK) {
        fprintf(stderr, "error: %s: %s\n", out, lq_status_str(st));
        goto done;
    }
    for (size_t i = 0; i < m->n; i++) {
        int r = m->owner[i];
        lq_lqt_info info;
        lq_qtensor *q = NULL;
        size_t k = next[r]++;
        st = lq_lqt_info_get(shards[r], k, &info);
        if (st == LQ_OK) st = lq_lqt_load(ctx, shards[r], k, 0, &q);
        if (st == LQ_OK) st = lq_lqt_writer_add(w, info.name, q);
        lq_qtensor_free(q);
        if (st != LQ_OK) {
            fprintf(stderr, "error: copying tensor %zu from the shard of rank %d to %s: %s\n", i, r,
                    out, lq_status_str(st));
            goto done;
        }
    }
    for (int r = 0; r < m->size; r++)
        if (next[r] != lq_lqt_count(shards[r])) {
            fprintf(stderr, "error: the shard of rank %d holds %zu tensors, %zu expected\n", r,
                    lq_lqt_count(shards[r]), next[r]);
            goto done;
        }
    st = lq_lqt_writer_finish(w);
    w = NULL;
    if (st != LQ_OK) {
        fprintf(stderr, "error: finishing %s: %s\n", out, lq_status_str(st));
        goto done;
    }
    rc = 0;
done:
    lq_lqt_writer_abort(w);
    if (shards)
        for (int r = 0; r < m->size; r++) lq_lqt_close(shards[r]);
    free(shards);
    free(next);
    return rc;
}

int lq_mpi_collect(lq_mpi *m, lq_ctx *ctx, void *res, size_t elem, size_t prefix, const char *out)
{
    if (!m) return 0;
    int nfail = reduce_status(m, 0);
    if (nfail) {
        if (m->rank == 0)
            fprintf(stderr, "error: %d of %d MPI ranks failed (see above); %s not written\n", nfail,
                    m->size, out);
        return 1;
    }
    /* The per-tensor results: every rank packs the prefixes of its own
     * tensors in index order; rank 0 unpacks them by owner. The size check
     * gives the same answer on every rank (same n, prefix, size). */
    int fail = 0;
    if (prefix > elem || (m->n && prefix > (size_t)INT_MAX / m->n)) fail = 1;
    int mine = 0;
    for (size_t i = 0; i < m->n && !fail; i++) mine += m->owner[i] == m->rank;
    unsigned char *send = NULL, *recv = NULL;
    int *counts = NULL, *displs = NULL;
    if (!fail) {
        send = malloc((size_t)mine * prefix + 1);
        if (m->rank == 0) {
            recv = malloc(m->n * prefix + 1);
            counts = calloc((size_t)m->size, sizeof *counts);
            displs = calloc((size_t)m->size, sizeof *displs);
        }
    }
    int lfail = fail || !send || (m->rank == 0 && (!recv || !counts || !displs));
    /* Allocation is the only thing that can differ between ranks here:
     * agree on it before the gather. */
    MPI_Allreduce(&lfail, &fail, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    int rc = 1;
    if (fail) {
        if (m->rank == 0) lq_cli_fail("MPI gather of the results", LQ_ERR_NO_MEMORY);
        goto done;
    }
    unsigned char *base = res;
    size_t off = 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->owner[i] == m->rank) {
            memcpy(send + off, base + i * elem, prefix);
            off += prefix;
        }
    if (m->rank == 0) {
        for (size_t i = 0; i < m->n; i++) counts[m->owner[i]] += (int)prefix;
        for (int r = 1; r < m->size; r++) displs[r] = displs[r - 1] + counts[r - 1];
    }
    MPI_Gatherv(send, mine * (int)prefix, MPI_BYTE, recv, counts, displs, MPI_BYTE, 0,
                MPI_COMM_WORLD);
    int st = 0;
    if (m->rank == 0) {
        for (size_t i = 0; i < m->n; i++) {
            int r = m->owner[i];
            memcpy(base + i * elem, recv + displs[r], prefix);
            displs[r] += (int)prefix;
        }
        st = merge(m, ctx, out);
    }
    /* The others keep their shards until rank 0 is done with them. */
    MPI_Bcast(&st, 1, MPI_INT, 0, MPI_COMM_WORLD);
    rc = st;
done:
    free(send);
    free(recv);
    free(counts);
    free(displs);
    return rc;
}

int lq_mpi_end(lq_mpi *m, int rc)
{
    if (!m) return rc;
    int nfail = 0;
    if (!m->reduced) {
        nfail = reduce_status(m, rc != 0);
        if (m->rank == 0 && nfail)
            fprintf(stderr, "error: %d of %d MPI ranks failed (see above); no output written\n",
                    nfail, m->size);
    }
    if (m->shard) unlink(m->shard); /* absent after a failure: the writer removed its .part */
    free(m->shard);
    free(m->owner);
    free(m);
    MPI_Finalize();
    return rc ? rc : nfail ? 1 : 0;
}

#else /* !LQ_HAVE_MPI: one process, but refuse to run as N unaware copies */

int lq_mpi_begin(size_t *threads, lq_mpi **out)
{
    (void)threads;
    *out = NULL;
    const char *v = lq_mpi_launcher();
    if (v) {
        fprintf(stderr,
                "error: started by an MPI launcher (%s is set), but this lq was built "
                "without MPI (configure with -DLQ_WITH_MPI=ON): every rank would "
                "quantize and write every tensor\n",
                v);
        return 1;
    }
    return 0;
}

int lq_mpi_rank(const lq_mpi *m)
{
    (void)m;
    return 0;
}

int lq_mpi_assign(lq_mpi *m, const lq_tfile *f, const size_t *sel, size_t n)
{
    (void)m, (void)f, (void)sel, (void)n;
    return 0;
}

int lq_mpi_mine(const lq_mpi *m, size_t i)
{
    (void)m, (void)i;
    return 1;
}

const char *lq_mpi_out_path(lq_mpi *m, const char *out)
{
    (void)m;
    return out;
}

int lq_mpi_collect(lq_mpi *m, lq_ctx *ctx, void *res, size_t elem, size_t prefix, const char *out)
{
    (void)m, (void)ctx, (void)res, (void)elem, (void)prefix, (void)out;
    return 0;
}

int lq_mpi_end(lq_mpi *m, int rc)
{
    (void)m;
    return rc;
}

#endif
