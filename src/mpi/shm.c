/*
 * shm.c -- stale shared-memory files of dead MPI jobs.
 *
 * When a rank is killed, Open MPI aborts the job, and nobody removes the
 * shared-memory files its processes created (/dev/shm/vader_segment.*, a
 * window's backing file): they hold memory until the next reboot.  So each
 * process keeps a record of the MPI library's shared-memory files it maps
 * -- a small file of ours, crew-mpi.<pid>, held with flock(LOCK_EX) for as
 * long as the process (or a child forked from it, which shares the lock)
 * lives -- and every new process sweeps the records whose lock is free.
 *
 * Liveness is the lock, never a PID: a lock is released by the kernel when
 * the last holder dies, however it dies, and a PID may have been reused.
 * A file is removed only when it is still the very file recorded (same
 * device and inode), belongs to the calling user, and no live record lists
 * it.
 *
 * A record is made under a temporary name, locked, filled, and only then
 * linked under its final name, so that a sweeper never sees one whose
 * lock is free only because its owner has not taken it yet.
 *
 * Record format: a line "crew-mpi-record 1", then one line per file:
 * "<device> <inode> <path>" (decimal; the path is the rest of the line).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "mpi/mpi_internal.h"

#define RECORD_PREFIX "crew-mpi."
#define RECORD_MAGIC "crew-mpi-record 1\n"

typedef struct file_id {
    unsigned long long dev, ino;
} file_id;

typedef struct id_list {
    file_id *ids;
    size_t n, cap;
} id_list;

static pthread_mutex_t track_lock = PTHREAD_MUTEX_INITIALIZER;
static int record_fd = -1;
static pid_t record_pid;
static char record_path[PATH_MAX];

static int id_add(id_list *l, file_id id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        file_id *ids = realloc(l->ids, cap * sizeof *ids);
        if (!ids)
            return CREW_ENOMEM;
        l->ids = ids;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return 0;
}

static int id_has(const id_list *l, file_id id)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->ids[i].dev == id.dev && l->ids[i].ino == id.ino)
            return 1;
    return 0;
}

static const char *default_dir(void)
{
    struct stat st;
    if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0)
        return "/dev/shm";
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

/* A record's name: the prefix, then anything but the temporary suffix. */
static int is_record_name(const char *name)
{
    size_t len = strlen(name), plen = strlen(RECORD_PREFIX);
    return len > plen && strncmp(name, RECORD_PREFIX, plen) == 0 &&
           !(len >= 4 && strcmp(name + len - 4, ".new") == 0);
}

/* Whole contents of fd (NUL-terminated), or NULL. */
static char *read_all(int fd)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        ssize_t n = pread(fd, buf + len, cap - len - 1, (off_t)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len + 1 == cap) {
            char *more = cap < ((size_t)1 << 26) ? realloc(buf, cap * 2) : NULL;
            if (!more) {
                free(buf);
                return NULL;
            }
            buf = more;
            cap *= 2;
        }
    }
    if (buf)
        buf[len] = '\0';
    return buf;
}

/*
 * Call fn(ctx, id, path) for every entry of the record held by fd.
 * A record that does not start with the magic line lists nothing.
 */
static void record_each(int fd, void (*fn)(void *ctx, file_id id, char *path), void *ctx)
{
    char *text = read_all(fd);
    if (!text || strncmp(text, RECORD_MAGIC, strlen(RECORD_MAGIC)) != 0) {
        free(text);
        return;
    }
    char *save = NULL;
    for (char *line = strtok_r(text + strlen(RECORD_MAGIC), "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        file_id id;
        int used = 0;
        if (sscanf(line, "%llu %llu %n", &id.dev, &id.ino, &used) == 2 && used > 0 &&
            line[used] == '/')
            fn(ctx, id, line + used);
    }
    free(text);
}

static void protect_one(void *ctx, file_id id, char *path)
{
    (void)path;
    (void)id_add(ctx, id);
}

typedef struct remove_ctx {
    const id_list *live;
    int removed;
} remove_ctx;

static void remove_one(void *ctx, file_id id, char *path)
{
    remove_ctx *r = ctx;
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid() ||
        (unsigned long long)st.st_dev != id.dev || (unsigned long long)st.st_ino != id.ino ||
        id_has(r->live, id))
        return;
    if (unlink(path) == 0)
        r->removed++;
}

/* A record that may be ours to judge: a regular file of the calling user. */
static int open_record(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid())) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Is `name` in dfd still the file open as fd? (A sweeper racing us may
 * have removed it and a new process made a new one of the same name.) */
static int same_file(int dfd, const char *name, int fd)
{
    struct stat a, b;
    return fstatat(dfd, name, &a, AT_SYMLINK_NOFOLLOW) == 0 && fstat(fd, &b) == 0 &&
           a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int crew__mpi_shm_sweep(const char *dir)
{
    if (!dir)
        dir = default_dir();
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int dfd = dirfd(d);
    id_list live = {0};
    int *dead = NULL;
    char **dead_names = NULL;
    size_t n_dead = 0;
    /* First every live record's list, so that no file a live process
     * recorded is removed; the dead records stay locked meanwhile. */
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!is_record_name(e->d_name))
            continue;
        int fd = open_record(dfd, e->d_name);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            record_each(fd, protect_one, &live);
            close(fd);
            continue;
        }
        int *more = realloc(dead, (n_dead + 1) * sizeof *dead);
        char **more_names = more ? realloc(dead_names, (n_dead + 1) * sizeof *dead_names) : NULL;
        char *name = more_names ? strdup(e->d_name) : NULL;
        if (more)
            dead = more;
        if (more_names)
            dead_names = more_names;
        if (!name) {
            close(fd);
            continue;
        }
        dead[n_dead] = fd;
        dead_names[n_dead++] = name;
    }
    remove_ctx r = {.live = &live, .removed = 0};
    for (size_t i = 0; i < n_dead; i++) {
        if (same_file(dfd, dead_names[i], dead[i])) {
            record_each(dead[i], remove_one, &r);
            if (unlinkat(dfd, dead_names[i], 0) == 0)
                r.removed++;
        }
        close(dead[i]);
        free(dead_names[i]);
    }
    free(dead);
    free(dead_names);
    free(live.ids);
    closedir(d);
    return r.removed;
}

/*
 * The MPI library's shared-memory files: mapped from /dev/shm, or from
 * this process's own Open MPI session directory ($OMPI_FILE_LOCATION).
 * Not the rest of the session tree: mpirun's own files live there, and
 * mpirun may outlive the ranks that mapped them.
 */
static int is_mpi_file(const char *path, const char *session)
{
    const char *base = strrchr(path, '/') + 1;
    if (strncmp(base, RECORD_PREFIX, strlen(RECORD_PREFIX)) == 0)
        return 0;
    if (strncmp(path, "/dev/shm/", 9) == 0)
        return 1;
    size_t n = session ? strlen(session) : 0;
    return n > 1 && strncmp(path, session, n) == 0 && path[n] == '/';
}

/* The record's text for the files this process maps now. */
static char *record_text(size_t *len)
{
    FILE *maps = fopen("/proc/self/maps", "re");
    const char *session = getenv("OMPI_FILE_LOCATION");
    size_t cap = 4096;
    char *out = malloc(cap);
    if (!maps || !out) {
        if (maps)
            fclose(maps);
        free(out);
        return NULL;
    }
    *len = (size_t)sprintf(out, "%s", RECORD_MAGIC);
    id_list seen = {0};
    char line[PATH_MAX + 256];
    while (fgets(line, sizeof line, maps)) {
        unsigned maj, min;
        unsigned long long ino;
        int at = 0;
        line[strcspn(line, "\n")] = '\0';
        if (sscanf(line, "%*s %*s %*s %x:%x %llu %n", &maj, &min, &ino, &at) != 3 || at == 0)
            continue;
        const char *path = line + at;
        size_t plen = strlen(path);
        if (path[0] != '/' || (plen > 10 && strcmp(path + plen - 10, " (deleted)") == 0) ||
            !is_mpi_file(path, session))
            continue;
        file_id id = {(unsigned long long)makedev(maj, min), ino};
        if (id_has(&seen, id) || id_add(&seen, id) != 0)
            continue;
        if (*len + plen + 64 > cap) {
            char *more = realloc(out, 2 * cap + plen + 64);
            if (!more)
                break;
            out = more;
            cap = 2 * cap + plen + 64;
        }
        *len += (size_t)sprintf(out + *len, "%llu %llu %s\n", id.dev, id.ino, path);
    }
    fclose(maps);
    free(seen.ids);
    return out;
}

static int record_write(int fd)
{
    size_t len = 0;
    char *text = record_text(&len);
    if (!text)
        return CREW_ENOMEM;
    int rc = 0;
    if (ftruncate(fd, 0) != 0)
        rc = -errno;
    for (size_t done = 0; rc == 0 && done < len;) {
        ssize_t n = pwrite(fd, text + done, len - done, (off_t)done);
        if (n < 0 && errno != EINTR)
            rc = -errno;
        else if (n > 0)
            done += (size_t)n;
    }
    free(text);
    return rc;
}

/* At exit: a process that finalised MPI left nothing behind, so its
 * record goes.  One that exits without (a failed rank calling exit, and
 * mpirun then killing the others) keeps it for the next sweep. */
static void record_remove(void)
{
    int done = 0;
    if (MPI_Finalized(&done) != MPI_SUCCESS || !done)
        return;
    pthread_mutex_lock(&track_lock);
    if (record_fd >= 0 && record_pid == getpid()) {
        unlink(record_path);
        close(record_fd);
        record_fd = -1;
    }
    pthread_mutex_unlock(&track_lock);
}

/* Make this process's record: temporary name, lock, contents, then the
 * final name (crew-mpi.<pid>, or .<pid>.<n> if another process in another
 * PID namespace holds that). */
static int record_create(const char *dir)
{
    char tmp[PATH_MAX];
    pid_t pid = getpid();
    if (snprintf(tmp, sizeof tmp, "%s/" RECORD_PREFIX "%ld.new", dir, (long)pid) >=
        (int)sizeof tmp)
        return -ENAMETOOLONG;
    (void)unlink(tmp); /* a dead namesake's, never a live one's: the PID is ours */
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = flock(fd, LOCK_EX | LOCK_NB) == 0 ? record_write(fd) : -errno;
    for (int n = 0; rc == 0; n++) {
        if (n == 0)
            snprintf(record_path, sizeof record_path, "%s/" RECORD_PREFIX "%ld", dir, (long)pid);
        else
            snprintf(record_path, sizeof record_path, "%s/" RECORD_PREFIX "%ld.%d", dir,
                     (long)pid, n);
        if (link(tmp, record_path) == 0)
            break;
        if (errno != EEXIST || n == 9)
            rc = -errno;
    }
    unlink(tmp);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    record_fd = fd;
    record_pid = pid;
    return 0;
}

int crew__mpi_shm_track(const char *dir)
{
    static int exit_hook;
    int rc;
    pthread_mutex_lock(&track_lock);
    if (record_fd >= 0 && record_pid == getpid()) {
        rc = record_write(record_fd);
    } else {
        /* A forked child shares its parent's lock and record: it makes
         * its own only if it calls in itself. */
        if (record_fd >= 0)
            close(record_fd);
        record_fd = -1;
        if (!dir)
            dir = default_dir();
        (void)crew__mpi_shm_sweep(dir);
        rc = record_create(dir);
        if (rc == 0 && !exit_hook)
            exit_hook = atexit(record_remove) == 0;
    }
    pthread_mutex_unlock(&track_lock);
    return rc;
}
