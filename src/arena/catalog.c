/* catalog.c -- named data sets in an arena (crew.h section 7). Not written yet. */
#include "arena/arena_internal.h"
