// Linux headers that Glibc's Swift module does not export (eventfd, memfd, pidfd, epoll, malloc_trim), and
// shims for the few of their macros Swift cannot import. Prefix: shoal_.
#ifndef SHOAL_CSHOALSYSTEM_H
#define SHOAL_CSHOALSYSTEM_H

#include <malloc.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "SharedMemory.h"

static inline int shoal_eventfd(unsigned int initial, int flags) { return eventfd(initial, flags); }
static inline int shoal_efd_nonblock(void) { return EFD_NONBLOCK; }
static inline int shoal_efd_cloexec(void) { return EFD_CLOEXEC; }

// epoll, for the fallback loop backend. `struct epoll_event` is packed on x86-64, so Swift never
// touches its fields: registration takes the events and the tag as plain values, and the events
// epoll_wait filled in are read back through accessors.
static inline int shoal_epoll_create1(int flags) { return epoll_create1(flags); }
static inline int shoal_epoll_cloexec(void) { return EPOLL_CLOEXEC; }
static inline int shoal_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event event = { .events = events, .data = { .u64 = data } };
    return epoll_ctl(epfd, op, fd, &event);
}
static inline int shoal_epoll_ctl_add(void) { return EPOLL_CTL_ADD; }
static inline int shoal_epoll_ctl_mod(void) { return EPOLL_CTL_MOD; }
static inline int shoal_epoll_ctl_del(void) { return EPOLL_CTL_DEL; }
/// Memory for `count` events, for the caller to allocate once (alignment: 8).
static inline size_t shoal_epoll_event_size(void) { return sizeof(struct epoll_event); }
static inline int shoal_epoll_wait(int epfd, void *events, int max_events, int timeout_ms) {
    return epoll_wait(epfd, (struct epoll_event *)events, max_events, timeout_ms);
}
static inline uint32_t shoal_epoll_event_events(const void *events, int index) {
    return ((const struct epoll_event *)events)[index].events;
}
static inline uint64_t shoal_epoll_event_data(const void *events, int index) {
    return ((const struct epoll_event *)events)[index].data.u64;
}
static inline uint32_t shoal_epollin(void) { return EPOLLIN; }
static inline uint32_t shoal_epollout(void) { return EPOLLOUT; }
static inline uint32_t shoal_epollerr(void) { return EPOLLERR; }
static inline uint32_t shoal_epollhup(void) { return EPOLLHUP; }
/// accept4(2), which glibc declares only under _GNU_SOURCE (so Swift's Glibc module lacks it), with
/// the peer's sockaddr written to `address` (`*length` bytes of room in, the address's size out):
/// the address comes with the descriptor instead of costing a getpeername(2) per connection.
static inline int shoal_accept4(int fd, void *address, unsigned int *length, int flags) {
    return (int)syscall(SYS_accept4, fd, address, length, flags);
}

/// malloc_trim(3): glibc-specific, not in Swift's Glibc module.
static inline int shoal_malloc_trim(size_t pad) { return malloc_trim(pad); }
/// Bytes the heap has handed out and not yet been given back (mallinfo2's uordblks + hblkhd).
static inline size_t shoal_heap_in_use(void) { struct mallinfo2 m = mallinfo2(); return m.uordblks + m.hblkhd; }

/// prctl(PR_SET_NAME): the calling thread's name, which top and /proc/PID/comm show for the
/// main thread (the kernel keeps its first 15 bytes). prctl is variadic, which Swift cannot call.
#include <sys/prctl.h>
static inline int shoal_set_thread_name(const char *name) { return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }

#endif
