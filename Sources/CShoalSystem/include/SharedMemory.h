// Shared memory between processes: memfd_create, and the atomic operations on plain memory that
// the cluster's shared segment needs (Swift's Atomic cannot live at an address in an mmap'd file).
// Sequentially consistent unless the name says otherwise. Prefix: shoal_.
#ifndef SHOAL_SHAREDMEMORY_H
#define SHOAL_SHAREDMEMORY_H

#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/// memfd_create(2) with MFD_CLOEXEC (glibc declares it only under _GNU_SOURCE).
static inline int shoal_memfd_create(const char *name) { return (int)syscall(SYS_memfd_create, name, 1U /* MFD_CLOEXEC */); }

static inline uint64_t shoal_atomic_load_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void shoal_atomic_store_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint64_t shoal_atomic_fetch_add_u64(uint64_t *p, uint64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline uint64_t shoal_atomic_fetch_add_relaxed_u64(uint64_t *p, uint64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
/// A counter only this thread writes (others only read it): a relaxed load and store, no locked
/// read-modify-write; readers still see whole values.
static inline void shoal_atomic_add_single_writer_u64(uint64_t *p, uint64_t v) {
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}
static inline int shoal_atomic_cas_u64(uint64_t *p, uint64_t expected, uint64_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline uint32_t shoal_atomic_load_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void shoal_atomic_store_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint32_t shoal_atomic_fetch_add_u32(uint32_t *p, uint32_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }

#include <sys/prctl.h>
#include <signal.h>
/// Asks the kernel to send `signal` to this process when its parent dies (a worker whose
/// supervisor was killed must not live on, orphaned).
static inline int shoal_set_parent_death_signal(int signal) { return prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0); }

#endif
