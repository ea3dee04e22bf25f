/* Read-only byte ranges shared by reference count: a mapped file, a file
 * read into memory, or caller memory. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io_internal.h"

static const uint8_t g_empty[1] = {0};

static lq_blob *blob_new(lq_ctx *ctx)
{
    lq_allocator a = lq_ctx_allocator(ctx);
    lq_blob *b = lq_alloc_with(&a, sizeof *b);
    if (!b) return NULL;
    memset(b, 0, sizeof *b);
    b->alloc = a;
    b->data = g_empty;
    atomic_init(&b->refs, 1);
    return b;
}

lq_status lq_blob_wrap(lq_ctx *ctx, const void *data, size_t size, lq_blob **out)
{
    if ((!data && size) || !out) return LQ_ERR_INVALID_ARG;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    lq_blob *b = blob_new(ctx);
    if (!b) return LQ_ERR_NO_MEMORY;
    b->kind = LQ_BLOB_BORROWED;
    if (size) b->data = data;
    b->size = size;
    *out = b;
    return LQ_OK;
}

/* Read exactly n bytes (retrying short reads and EINTR). */
static int read_all(int fd, uint8_t *p, size_t n)
{
    while (n) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t r = read(fd, p, chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

lq_status lq_blob_open(lq_ctx *ctx, const char *path, int map, lq_blob **out)
{
    if (!path || !out) return LQ_ERR_INVALID_ARG;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return LQ_ERR_IO;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
        (uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return LQ_ERR_IO;
    }
    size_t size = (size_t)st.st_size;
    lq_blob *b = blob_new(ctx);
    if (!b) {
        close(fd);
        return LQ_ERR_NO_MEMORY;
    }
    b->size = size;
    if (size == 0) {
        b->kind = LQ_BLOB_HEAP;
        close(fd);
        *out = b;
        return LQ_OK;
    }
    if (map) {
        void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            b->kind = LQ_BLOB_MAP;
            b->map = m;
            b->map_len = size;
            b->data = m;
            close(fd);
            *out = b;
            return LQ_OK;
        }
    }
    void *buf = lq_alloc_with(&b->alloc, size);
    if (!buf) {
        lq_free_with(&b->alloc, b);
        close(fd);
        return LQ_ERR_NO_MEMORY;
    }
    if (read_all(fd, buf, size) != 0) {
        lq_free_with(&b->alloc, buf);
        lq_free_with(&b->alloc, b);
        close(fd);
        return LQ_ERR_IO;
    }
    close(fd);
    b->kind = LQ_BLOB_HEAP;
    b->heap = buf;
    b->data = buf;
    *out = b;
    return LQ_OK;
}

void lq_blob_retain(lq_blob *b) { atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed); }

void lq_blob_release(lq_blob *b)
{
    if (!b) return;
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return;
    if (b->kind == LQ_BLOB_MAP) munmap(b->map, b->map_len);
    lq_allocator a = b->alloc;
    lq_free_with(&a, b->heap);
    lq_free_with(&a, b);
}
