/*
 * Description: crew_strerror, crew_err_name and crew_version.
 *
 * Every CREW_E... code gets its own readable sentence and its own name;
 * -errno values get the C library's text and name; unknown codes get
 * "unknown" (never NULL).  crew_version matches the header's macros.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>

#include "crew.h"
#include "test.h"

#define CODE(c) {c, #c}

static const struct {
    int code;
    const char *name;
} crew_own[] = {
    CODE(CREW_EFAILED), CODE(CREW_EFULL),    CODE(CREW_EFROZEN),  CODE(CREW_EEMPTY),
    CODE(CREW_ETRUNC),  CODE(CREW_EMAGIC),   CODE(CREW_EVERSION), CODE(CREW_EENDIAN),
    CODE(CREW_EBADSIZE), CODE(CREW_EBADROOT), CODE(CREW_ECHECKSUM), CODE(CREW_ENOTSUP),
    CODE(CREW_ENOTFROZEN), CODE(CREW_ENOTFILE), CODE(CREW_ECRASHED), CODE(CREW_EEXITED),
    CODE(CREW_EREADONLY), CODE(CREW_ELOST), CODE(CREW_EFORMAT),
};

/* errno-valued CREW_ codes: the name may be "CREW_EINVAL" or "EINVAL". */
static const struct {
    int code;
    const char *name;
} crew_errno[] = {
    CODE(CREW_EINVAL),    CODE(CREW_ENOMEM),    CODE(CREW_EAGAIN), CODE(CREW_ENOENT),
    CODE(CREW_ETIMEDOUT), CODE(CREW_ECANCELED), CODE(CREW_EBUSY), CODE(CREW_E2BIG),
    CODE(CREW_EIO),
};

#define N_OWN (sizeof crew_own / sizeof crew_own[0])
#define N_ERRNO (sizeof crew_errno / sizeof crew_errno[0])

/* A usable message: not NULL, not empty, not the "unknown" fallback. */
static void check_known_text(int code)
{
    const char *s = crew_strerror(code);
    ASSERT_NOT_NULL(s);
    if (s[0] == '\0' || strcmp(s, "unknown error") == 0)
        TEST_FAIL_("crew_strerror(%d) = \"%s\"", code, s);
}

static void test_own_codes(void)
{
    for (size_t i = 0; i < N_OWN; i++) {
        ASSERT_LT(crew_own[i].code, CREW__EBASE);
        check_known_text(crew_own[i].code);
        ASSERT_NOT_NULL(crew_err_name(crew_own[i].code));
        ASSERT_STR_EQ(crew_err_name(crew_own[i].code), crew_own[i].name);
    }
}

static void test_errno_codes(void)
{
    for (size_t i = 0; i < N_ERRNO; i++) {
        int code = crew_errno[i].code;
        ASSERT_LT(code, 0);
        ASSERT_GT(code, CREW__EBASE);
        check_known_text(code);
        const char *name = crew_err_name(code);
        ASSERT_NOT_NULL(name);
        const char *bare = crew_errno[i].name + strlen("CREW_");
        if (strcmp(name, crew_errno[i].name) != 0 && strcmp(name, bare) != 0)
            TEST_FAIL_("crew_err_name(%s) = \"%s\", want \"%s\" or \"%s\"",
                       crew_errno[i].name, name, crew_errno[i].name, bare);
    }
    /* CREW_E... codes are -errno by definition. */
    ASSERT_EQ(CREW_EINVAL, -EINVAL);
    ASSERT_EQ(CREW_ENOMEM, -ENOMEM);
    ASSERT_EQ(CREW_ECANCELED, -ECANCELED);
}

/* Two different codes never share a message or a name. */
static void test_distinct(void)
{
    int all[N_OWN + N_ERRNO];
    size_t n = 0;
    for (size_t i = 0; i < N_OWN; i++)
        all[n++] = crew_own[i].code;
    for (size_t i = 0; i < N_ERRNO; i++)
        all[n++] = crew_errno[i].code;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            if (strcmp(crew_strerror(all[i]), crew_strerror(all[j])) == 0)
                TEST_FAIL_("codes %d and %d share the text \"%s\"", all[i], all[j],
                           crew_strerror(all[i]));
            if (strcmp(crew_err_name(all[i]), crew_err_name(all[j])) == 0)
                TEST_FAIL_("codes %d and %d share the name \"%s\"", all[i], all[j],
                           crew_err_name(all[i]));
        }
}

/* System errors crew passes through as -errno. */
static void test_system_errors(void)
{
    static const struct {
        int err;
        const char *name;
    } sys[] = {{EPIPE, "EPIPE"}, {ENOTDIR, "ENOTDIR"}, {ENOSPC, "ENOSPC"},
               {EACCES, "EACCES"}, {EPERM, "EPERM"}, {EMFILE, "EMFILE"}};
    for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++) {
        check_known_text(-sys[i].err);
        ASSERT_STR_EQ(crew_err_name(-sys[i].err), sys[i].name);
    }
    /* The sentence for a system error is the C library's one. */
    ASSERT_STR_EQ(crew_strerror(-EPIPE), strerrordesc_np(EPIPE));
    ASSERT_STR_EQ(crew_strerror(-ENOSPC), strerrordesc_np(ENOSPC));
}

static void test_unknown(void)
{
    static const int odd[] = {1, 7, 12345, INT_MAX, INT_MIN, -9999, CREW__EBASE,
                              -10999, -20000, CREW_EFORMAT - 1};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        const char *s = crew_strerror(odd[i]);
        const char *name = crew_err_name(odd[i]);
        ASSERT_NOT_NULL(s);
        ASSERT_NOT_NULL(name);
        ASSERT(s[0] != '\0');
        if (strcmp(name, "unknown") != 0)
            TEST_FAIL_("crew_err_name(%d) = \"%s\", want \"unknown\"", odd[i], name);
    }
    /* CREW_OK is a code crew returns: it gets a text too. */
    ASSERT_NOT_NULL(crew_strerror(CREW_OK));
    ASSERT(crew_strerror(CREW_OK)[0] != '\0');
    ASSERT_NOT_NULL(crew_err_name(CREW_OK));
}

static void test_version(void)
{
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", CREW_VERSION_MAJOR, CREW_VERSION_MINOR,
             CREW_VERSION_PATCH);
    ASSERT_NOT_NULL(crew_version());
    ASSERT_STR_EQ(crew_version(), want);
    ASSERT_PTR_EQ(crew_version(), crew_version());
}

/* The strings are static and the functions thread-safe: the same answer
 * from several threads at once. */
static void *hammer(void *arg)
{
    (void)arg;
    for (int round = 0; round < 2000; round++) {
        for (size_t i = 0; i < N_OWN; i++)
            if (strcmp(crew_err_name(crew_own[i].code), crew_own[i].name) != 0)
                return (void *)1;
        if (strcmp(crew_strerror(-EPIPE), strerrordesc_np(EPIPE)) != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_threads(void)
{
    TEST_THREADS_OK(4, hammer, NULL);
}

int main(void)
{
    test_own_codes();
    test_errno_codes();
    test_distinct();
    test_system_errors();
    test_unknown();
    test_version();
    test_threads();
    printf("test_errors: ok\n");
    return 0;
}
