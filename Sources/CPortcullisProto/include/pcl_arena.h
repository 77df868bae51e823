#ifndef PCL_ARENA_H
#define PCL_ARENA_H

#include <protobuf-c/protobuf-c.h>

/* A per-thread bump allocator for protobuf-c unpacking. Decoding a frame
 * otherwise costs one malloc/free pair per message and string field (about
 * eight per decision request); frames are decoded, copied into Swift values
 * and freed synchronously, so one small arena per thread, rewound before
 * each decode, serves them all. Allocations that do not fit fall back to
 * malloc, and free() knows which is which. */
ProtobufCAllocator *pcl_arena_allocator(void);

/* Rewinds this thread's arena. Only between decodes: everything allocated
 * from it since the last rewind becomes invalid. */
void pcl_arena_rewind(void);

/* Whether anything since the last rewind did not fit and came from malloc:
 * only then does an unpacked message need protobuf-c's free walk (arena
 * memory is reclaimed by the next rewind). */
int pcl_arena_spilled(void);

#endif
