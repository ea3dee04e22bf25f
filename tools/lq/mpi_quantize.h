/* lq quantize across MPI ranks (LQ_WITH_MPI; docs/design.md "Scale-out with
 * MPI"). The hooks are called by tools/lq/cmd_quantize.c in this order:
 *   lq_mpi_begin -> lq_mpi_assign -> (per tensor) lq_mpi_mine ->
 *   lq_mpi_collect -> lq_mpi_end
 * with m == NULL meaning "one process" (not started by an MPI launcher):
 * every hook is then the identity, so the single-process path is unchanged.
 * The library itself never sees MPI: only the lq program links it.
 *
 * Protocol: tensors are assigned to ranks by size (largest first to the
 * least loaded rank, ties to the lower index and rank: deterministic); each
 * rank writes its share as a shard "<OUT>.mpi-shard<R>" next to OUT (the
 * directory must be visible to every rank, like IN and H); when every rank
 * succeeded, rank 0 copies the tensors from the shards into OUT in the
 * order of IN, which is the single-process file byte for byte. Every rank
 * calls exactly one status reduction (from lq_mpi_collect on success or
 * lq_mpi_end on failure), so a rank failing anywhere makes the others fail
 * too, after which no OUT exists and the shards are removed. */
#ifndef LQ_MPI_QUANTIZE_H
#define LQ_MPI_QUANTIZE_H

#include <stddef.h>

#include "quant.h"

typedef struct lq_mpi lq_mpi;

/* The environment variable by which an MPI launcher (mpirun/mpiexec of
 * Open MPI or MPICH, srun with PMI or PMIx) announced this process, or NULL
 * when none is set. Compiled with and without LQ_WITH_MPI. */
const char *lq_mpi_launcher(void);

/* When started by an MPI launcher: initialise MPI and return the job in
 * *out; *threads == 0 (all physical cores) becomes the node's physical cores
 * divided by the ranks on that node (at least 1). Otherwise *out = NULL.
 * Returns 0, or prints an error and returns 1 (MPI failed to start; lq
 * built without MPI but started by a launcher: every rank would quantize
 * and write everything). */
int lq_mpi_begin(size_t *threads, lq_mpi **out);

/* 0 for NULL or rank 0; the rank otherwise. */
int lq_mpi_rank(const lq_mpi *m);

/* Assign tensors sel[0..n) of f to the ranks (see above). Returns 0 or 1
 * (error printed; the caller goes on to lq_mpi_end). NULL m: 0. */
int lq_mpi_assign(lq_mpi *m, const lq_tfile *f, const size_t *sel, size_t n);

/* 1 when this rank quantizes the i-th selected tensor (always for NULL). */
int lq_mpi_mine(const lq_mpi *m, size_t i);

/* The path this rank writes: out itself for NULL, else its shard. */
const char *lq_mpi_out_path(lq_mpi *m, const char *out);

/* After this rank finished its shard: check that every rank did, gather
 * the per-tensor results at rank 0 (res: n elements of `elem` bytes, of
 * which the first `prefix` bytes are sent from the owning rank; the rest,
 * pointers, stay rank 0's), and on rank 0 write `out` from the shards.
 * Returns 0 when OUT is complete (every rank), 1 on failure (error printed
 * on rank 0; no OUT). NULL m: 0. */
int lq_mpi_collect(lq_mpi *m, lq_ctx *ctx, void *res, size_t elem, size_t prefix, const char *out);

/* Leave: the status reduction if lq_mpi_collect did not run it, remove this
 * rank's shard, finalise MPI, free m. Returns the process exit code: rc, or
 * 1 when rc == 0 but another rank failed. NULL m: rc. */
int lq_mpi_end(lq_mpi *m, int rc);

#endif /* LQ_MPI_QUANTIZE_H */
