#ifndef LQ_CORE_POOL_H
#define LQ_CORE_POOL_H
#include "core/internal.h"

typedef struct lq_pool lq_pool;

/* Pool of n_workers threads (the caller is one more participant). */
lq_status lq_pool_create(const lq_allocator *a, size_t n_workers, lq_pool **out);
void lq_pool_destroy(lq_pool *p);
/* Run fn(arg, i), i in [0, n). Returns false (nothing run) when the pool is
 * already busy with another job or when called from one of its tasks; the
 * caller then runs the loop inline. */
bool lq_pool_run(lq_pool *p, size_t n, lq_task_fn fn, void *arg);

#endif
