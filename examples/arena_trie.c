/*
 * arena_trie.c -- a pointer-rich structure shared by processes, the crew way.
 *
 * The pattern:
 *   1. Build the structure in an arena, linking nodes with crew_ref (byte
 *      offsets), never with pointers: it then means the same thing at any
 *      address, in any process, and in a file.
 *   2. Freeze the arena: read-only forever, so no reader can corrupt it.
 *   3. Save it as a snapshot (atomic), and/or fork workers that read it.
 *      Forked workers share its pages; a fresh process opens the snapshot in
 *      O(1) and shares the file's pages with everyone else who maps it.
 *   4. Readers that got the data from a file follow refs with the checked
 *      accessors (CREW_ARENA_GET), which return NULL instead of reading
 *      outside the arena if the file is corrupt.
 *
 * Here the structure is a trie of 60,000 generated words (first-child /
 * next-sibling links, each word interned in a string table), and four
 * worker processes answer prefix queries: two use the arena inherited
 * through fork, two open the saved snapshot themselves.  Answers go to a
 * shared results page and are checked against a brute-force count.
 *
 * Usage: arena_trie [SNAPSHOT_PATH]   (default: $TMPDIR or /tmp/arena_trie.crew)
 */
#define _GNU_SOURCE /* MAP_ANONYMOUS */
#include <crew.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

struct trie_node {
    crew_ref first_child;  /* struct trie_node, children sorted by ch */
    crew_ref next_sibling; /* struct trie_node */
    crew_ref word;         /* interned string when a word ends here, else 0 */
    uint32_t words_below;  /* words in this subtree, this node's included */
    char ch;
};

struct trie_root {
    crew_ref trie;        /* struct trie_node: the empty prefix */
    crew_ref words_index; /* crew_strtab index of every distinct word */
    uint64_t distinct;
};

enum { WORDS = 60000, WORKERS = 4, QUERIES = 16, EXAMPLES = 3 };

static const char *queries[QUERIES] = {"ka", "zo", "ri", "tan", "mel", "o", "sha", "pu",
                                       "kira", "lo", "ne", "vu", "a", "tomi", "xx", ""};

struct answer {
    int worker;
    int pid;
    int opened_file;
    unsigned count;
    unsigned exact; /* is the prefix itself a word (found via the string index) */
    char examples[EXAMPLES][32];
};

/* Deterministic pseudo-words from syllables. */
static void make_word(uint64_t *state, char *out, size_t cap)
{
    static const char *syl[] = {"ka", "zo", "ri", "ta", "n",  "me", "l",  "o",  "sha", "pu",
                                "ki", "ra", "lo", "ne", "vu", "a",  "to", "mi", "su", "e"};
    size_t len = 0, n = 1 + (*state >> 60) % 4;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        const char *s = syl[(*state >> 33) % 20];
        size_t l = strlen(s);
        if (len + l + 1 > cap)
            break;
        memcpy(out + len, s, l + 1);
        len += l;
    }
}

/* The child of `node` for character c, created (in sorted place) if asked. */
static crew_ref child(crew_arena *a, crew_ref node, char c, int create)
{
    crew_ref *link = &CREW_ARENA_PTR(a, struct trie_node, node)->first_child;
    while (*link && CREW_ARENA_PTR(a, struct trie_node, *link)->ch < c)
        link = &CREW_ARENA_PTR(a, struct trie_node, *link)->next_sibling;
    if (*link && CREW_ARENA_PTR(a, struct trie_node, *link)->ch == c)
        return *link;
    if (!create)
        return 0;
    crew_ref n = CREW_ARENA_NEW(a, struct trie_node);
    if (!n)
        return 0;
    struct trie_node *p = CREW_ARENA_PTR(a, struct trie_node, n);
    p->ch = c;
    p->next_sibling = *link; /* `link` still valid: the base never moves */
    *link = n;
    return n;
}

static int insert(crew_arena *a, crew_strtab *t, crew_ref trie, const char *w)
{
    crew_ref path[64];
    size_t depth = 0;
    crew_ref node = trie;
    path[depth++] = node;
    for (const char *c = w; *c; c++) {
        if (!(node = child(a, node, *c, 1)))
            return -1;
        path[depth++] = node;
    }
    struct trie_node *end = CREW_ARENA_PTR(a, struct trie_node, node);
    if (end->word)
        return 0; /* a duplicate */
    if (!(end->word = crew_strtab_intern(t, w, strlen(w))))
        return -1;
    for (size_t i = 0; i < depth; i++)
        CREW_ARENA_PTR(a, struct trie_node, path[i])->words_below++;
    return 1;
}

static crew_arena *build(char words[][32], uint64_t *distinct)
{
    crew_arena *a;
    crew_strtab *t;
    if (crew_arena_create(&a, (size_t)256 << 20) < 0 || crew_strtab_create(&t, a) < 0)
        return NULL;
    crew_ref root = CREW_ARENA_NEW(a, struct trie_root);
    crew_ref trie = CREW_ARENA_NEW(a, struct trie_node);
    uint64_t state = 42;
    *distinct = 0;
    for (int i = 0; i < WORDS; i++) {
        make_word(&state, words[i], 32);
        int rc = insert(a, t, trie, words[i]);
        if (rc < 0)
            return NULL;
        *distinct += (uint64_t)rc;
    }
    struct trie_root *r = CREW_ARENA_PTR(a, struct trie_root, root);
    r->trie = trie;
    r->distinct = *distinct;
    r->words_index = crew_strtab_publish(t);
    crew_strtab_close(t);
    crew_arena_set_root(a, root);
    return a;
}

/*
 * Collect up to EXAMPLES words under node, in order.  Checked reads, and a
 * depth limit: a corrupt file could link nodes in a cycle.
 */
static void examples(const crew_arena *a, crew_ref node, int depth, struct answer *ans, int *n)
{
    const struct trie_node *p = CREW_ARENA_GET(a, struct trie_node, node);
    if (!p || *n >= EXAMPLES || depth > 64)
        return;
    const char *w = p->word ? crew_arena_str(a, p->word) : NULL;
    if (w)
        snprintf(ans->examples[(*n)++], sizeof ans->examples[0], "%s", w);
    for (crew_ref k = p->first_child; k && *n < EXAMPLES;) {
        examples(a, k, depth + 1, ans, n);
        const struct trie_node *q = CREW_ARENA_GET(a, struct trie_node, k);
        k = q ? q->next_sibling : 0;
    }
}

/* Answer one query from whatever arena this process has. */
static void answer(const crew_arena *a, const char *prefix, struct answer *ans)
{
    const struct trie_root *r = CREW_ARENA_GET(a, struct trie_root, crew_arena_root(a));
    if (!r)
        return;
    crew_ref node = r->trie;
    for (const char *c = prefix; *c && node; c++) {
        const struct trie_node *p = CREW_ARENA_GET(a, struct trie_node, node);
        crew_ref k = p ? p->first_child : 0;
        const struct trie_node *q;
        while (k && (q = CREW_ARENA_GET(a, struct trie_node, k)) && q->ch != *c)
            k = q->next_sibling;
        node = k;
    }
    const struct trie_node *p = CREW_ARENA_GET(a, struct trie_node, node);
    ans->count = p ? p->words_below : 0;
    ans->exact = crew_strtab_find(a, r->words_index, prefix, strlen(prefix)) != 0;
    int n = 0;
    if (p)
        examples(a, node, 0, ans, &n);
}

static int compare_words(const void *x, const void *y)
{
    return strcmp(x, y);
}

static int worker(int id, crew_arena *inherited, const char *path, struct answer *out)
{
    crew_arena *a = inherited;
    int opened = id >= WORKERS / 2;
    if (opened && crew_arena_open(&a, path, CREW_ARENA_VERIFY) < 0)
        return 1;
    for (int q = id; q < QUERIES; q += WORKERS) {
        out[q].worker = id;
        out[q].pid = (int)getpid();
        out[q].opened_file = opened;
        answer(a, queries[q], &out[q]);
    }
    if (opened)
        crew_arena_close(a);
    return 0;
}

int main(int argc, char **argv)
{
    char path[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s", argc > 1 ? argv[1] : "");
    if (!path[0])
        snprintf(path, sizeof path, "%s/arena_trie.crew", tmp && *tmp ? tmp : "/tmp");

    static char words[WORDS][32];
    uint64_t distinct;
    crew_arena *a = build(words, &distinct);
    int rc;
    if (!a || (rc = crew_arena_freeze(a)) < 0 || (rc = crew_arena_save(a, path)) < 0) {
        fprintf(stderr, "arena_trie: could not build, freeze or save: %s\n",
                a ? crew_strerror(rc) : "out of memory");
        return 1;
    }
    printf("built a trie of %d words (%llu distinct) in a %.1f MiB arena; frozen; saved to %s\n",
           WORDS, (unsigned long long)distinct, crew_arena_size(a) / 1048576.0, path);

    /* Results come back through a shared page: no pipes, no copies. */
    struct answer *out = mmap(NULL, sizeof(struct answer) * QUERIES, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (out == MAP_FAILED)
        return 1;
    fflush(NULL);
    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++)
        if ((pids[w] = fork()) == 0)
            _exit(worker(w, a, path, out));
    int failed = 0;
    for (int w = 0; w < WORKERS; w++) {
        int status;
        waitpid(pids[w], &status, 0);
        failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }

    /* brute force over the sorted, de-duplicated word list */
    qsort(words, WORDS, sizeof words[0], compare_words);
    int mismatches = 0;
    for (int q = 0; q < QUERIES; q++) {
        unsigned count = 0, exact = 0;
        size_t plen = strlen(queries[q]);
        for (int i = 0; i < WORDS; i++) {
            int dup = i > 0 && strcmp(words[i], words[i - 1]) == 0;
            if (!dup && strncmp(words[i], queries[q], plen) == 0) {
                count++;
                exact |= words[i][plen] == '\0';
            }
        }
        const struct answer *ans = &out[q];
        int ok = ans->count == count && ans->exact == exact;
        mismatches += !ok;
        printf("worker %d (pid %d, %s): prefix \"%s\": %u words%s, e.g. %s %s %s  [%s]\n",
               ans->worker, ans->pid, ans->opened_file ? "opened the snapshot" : "forked arena",
               queries[q], ans->count, ans->exact ? " (itself a word)" : "", ans->examples[0],
               ans->examples[1], ans->examples[2], ok ? "ok" : "WRONG");
    }
    printf("%s: %d of %d answers match a brute-force count\n",
           failed || mismatches ? "FAILED" : "all good", QUERIES - mismatches, QUERIES);
    crew_arena_close(a);
    unlink(path);
    return failed || mismatches;
}
