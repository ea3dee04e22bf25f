/* Output files written beside their destination and renamed (io_internal.h). */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io_internal.h"

int lq_path_replaceable(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) return errno == ENOENT;
    return S_ISREG(sb.st_mode);
}

FILE *lq_open_part(const char *tmp)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0) return NULL;
    struct stat sb;
    FILE *f = NULL;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) f = fdopen(fd, "wb");
    if (!f) close(fd);
    return f;
}
