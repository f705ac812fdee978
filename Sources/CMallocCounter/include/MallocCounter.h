// A malloc counter meant to be loaded with LD_PRELOAD (see MallocCounter.c).
#ifndef ZPUB_MALLOC_COUNTER_H
#define ZPUB_MALLOC_COUNTER_H

/// The number of allocation calls (malloc, calloc, realloc, posix_memalign, aligned_alloc,
/// memalign) made in this process so far.
unsigned long zpub_malloc_count(void);

#endif
