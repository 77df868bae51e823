#include "pcl_arena.h"

#include <stdint.h>
#include <stdlib.h>

#define PCL_ARENA_BYTES 16384

typedef struct {
    size_t used;
    size_t spilled;
    _Alignas(16) unsigned char bytes[PCL_ARENA_BYTES];
} pcl_arena;

static _Thread_local pcl_arena arena;

static void *arena_alloc(void *data, size_t size) {
    (void)data;
    size_t aligned = (size + 15) & ~(size_t)15;
    if (aligned >= size && aligned <= PCL_ARENA_BYTES - arena.used) {
        void *p = arena.bytes + arena.used;
        arena.used += aligned;
        return p;
    }
    arena.spilled += 1;
    return malloc(size);
}

static void arena_free(void *data, void *pointer) {
    (void)data;
    if (pointer == NULL) return;
    uintptr_t p = (uintptr_t)pointer;
    uintptr_t start = (uintptr_t)arena.bytes;
    if (p >= start && p < start + PCL_ARENA_BYTES) return;
    free(pointer);
}

static ProtobufCAllocator allocator = {arena_alloc, arena_free, NULL};

ProtobufCAllocator *pcl_arena_allocator(void) { return &allocator; }

void pcl_arena_rewind(void) {
    arena.used = 0;
    arena.spilled = 0;
}

int pcl_arena_spilled(void) { return arena.spilled != 0; }
