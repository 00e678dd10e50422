/*
 * deque.c -- the Chase-Lev work-stealing deque.
 *
 * The owner pushes and pops at the bottom; thieves take from the top.  Only
 * the race for the last element needs a CAS; everything else is plain loads
 * and stores with the orders commented below (after Le, Pop, Cohen and
 * Zappa Nardelli, "Correct and efficient work-stealing for weak memory
 * models", PPoPP 2013).
 *
 * Two simplifications keep the deque easy to argue about:
 *   - The array has a fixed size.  A full deque makes push fail and the
 *     caller runs the work inline, so there is no buffer to grow and no old
 *     buffer to reclaim while a thief might still read it.
 *   - Every store to `bottom` is a release store (free on x86), so a thief
 *     that reads any value of bottom synchronises with all the owner's pushes
 *     before it.  ThreadSanitizer understands that, while it does not model
 *     the stand-alone fences of the paper's version.
 */
#include "internal.h"

#define MASK (CREW_DEQUE_SIZE - 1)

void crew__deque_init(crew__deque *d)
{
    atomic_init(&d->top, 0);
    atomic_init(&d->bottom, 0);
    for (size_t i = 0; i < CREW_DEQUE_SIZE; i++)
        atomic_init(&d->slots[i], NULL);
}

bool crew__deque_push(crew__deque *d, crew__job *job)
{
    /* relaxed: only the owner writes bottom. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    /* acquire: a slot may be reused only after the thief that took it
     * finished reading it (its CAS on top released that read). */
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    if (b - t >= CREW_DEQUE_SIZE)
        return false;
    atomic_store_explicit(&d->slots[b & MASK], job, memory_order_relaxed);
    /* seq_cst: publishes the job (release) and orders this store before the
     * caller's check for sleeping workers (work.c), the other half of which
     * is a sleeper's seq_cst announcement followed by a steal attempt. */
    atomic_store_explicit(&d->bottom, b + 1, memory_order_seq_cst);
    return true;
}

crew__job *crew__deque_pop(crew__deque *d)
{
    /* Fast path for an empty deque (idle and helping workers ask often):
     * relaxed is enough, because only we raise bottom and top only grows,
     * so a stale top can only make the deque look fuller, never emptier.
     * It spares the seq_cst store below and the cache line it dirties,
     * which every thief reads. */
    if (atomic_load_explicit(&d->top, memory_order_relaxed) >=
        atomic_load_explicit(&d->bottom, memory_order_relaxed))
        return NULL;
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    /* seq_cst: the store of bottom must be visible before we read top, or a
     * thief and the owner could both take the last job (store-load order). */
    atomic_store_explicit(&d->bottom, b, memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    if (t > b) {
        /* Empty: restore bottom.  release: see the file comment. */
        atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
        return NULL;
    }
    crew__job *job = atomic_load_explicit(&d->slots[b & MASK], memory_order_relaxed);
    if (t == b) {
        /* The last job: race the thieves for it with the same CAS they use.
         * seq_cst: totally ordered with the thieves' CAS on top. */
        if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                     memory_order_relaxed))
            job = NULL;
        atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    }
    return job;
}

crew__job *crew__deque_steal(crew__deque *d, bool *contended)
{
    /* seq_cst on both loads: read top before bottom (pairs with the owner's
     * seq_cst store of bottom in pop); acquire on bottom makes the owner's
     * write of the job and of the slot visible. */
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    if (t >= b)
        return NULL;
    crew__job *job = atomic_load_explicit(&d->slots[t & MASK], memory_order_relaxed);
    /* seq_cst: decides the race with other thieves and with the owner's pop
     * of the last job; release also tells push the slot was read. */
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                 memory_order_relaxed)) {
        *contended = true;
        return NULL;
    }
    return job;
}

bool crew__deque_empty(const crew__deque *d)
{
    /* relaxed: a hint for the splitting heuristic, exactness not needed. */
    int64_t b = atomic_load_explicit(&((crew__deque *)d)->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&((crew__deque *)d)->top, memory_order_relaxed);
    return t >= b;
}
