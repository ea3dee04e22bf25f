/*
 * A small fork-join pool on pthreads. Tasks are claimed from an atomic
 * counter, so which thread runs a task varies; callers make each task's
 * result independent of that (see internal.h), which is what keeps results
 * identical for every thread count.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "core/pool.h"

struct lq_pool {
    lq_allocator alloc;
    size_t n_workers;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t done;
    pthread_mutex_t busy; /* held by the thread running a job */
    uint64_t generation;  /* bumped per job */
    bool stop;
    /* current job */
    lq_task_fn fn;
    void *arg;
    size_t n;
    atomic_size_t next;
    size_t active; /* workers still inside the job */
};

/* Set while a thread executes pool tasks: nested parallel calls run inline. */
static _Thread_local int tls_in_task;

static void run_tasks(lq_pool *p)
{
    tls_in_task++;
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (i >= p->n) break;
        p->fn(p->arg, i);
    }
    tls_in_task--;
}

static void *worker(void *arg)
{
    lq_pool *p = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        run_tasks(p);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

lq_status lq_pool_create(const lq_allocator *a, size_t n_workers, lq_pool **out)
{
    lq_pool *p = lq_alloc_with(a, sizeof *p);
    if (!p) return LQ_ERR_NO_MEMORY;
    *p = (lq_pool){.alloc = *a, .n_workers = 0};
    p->threads = lq_alloc_with(a, (n_workers ? n_workers : 1) * sizeof(pthread_t));
    if (!p->threads) {
        lq_free_with(a, p);
        return LQ_ERR_NO_MEMORY;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->busy, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    for (size_t i = 0; i < n_workers; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
            lq_pool_destroy(p);
            return LQ_ERR_NO_MEMORY;
        }
        p->n_workers++;
    }
    *out = p;
    return LQ_OK;
}

void lq_pool_destroy(lq_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->n_workers; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->busy);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    lq_allocator a = p->alloc;
    lq_free_with(&a, p->threads);
    lq_free_with(&a, p);
}

bool lq_pool_run(lq_pool *p, size_t n, lq_task_fn fn, void *arg)
{
    if (tls_in_task) return false;
    if (pthread_mutex_trylock(&p->busy) != 0) return false;
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    p->active = p->n_workers;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    run_tasks(p);

    pthread_mutex_lock(&p->mu);
    while (p->active != 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->busy);
    return true;
}
