// Linux headers that Glibc's Swift module does not export (eventfd, memfd, pidfd), and shims
// for the few of their macros Swift cannot import. Prefix: shoal_.
#ifndef SHOAL_CSHOALSYSTEM_H
#define SHOAL_CSHOALSYSTEM_H

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline int shoal_eventfd(unsigned int initial, int flags) { return eventfd(initial, flags); }
static inline int shoal_efd_nonblock(void) { return EFD_NONBLOCK; }
static inline int shoal_efd_cloexec(void) { return EFD_CLOEXEC; }

#endif
