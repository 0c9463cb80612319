// The few pieces of liburing and the kernel ABI that Swift cannot import directly:
// macros with expressions (flag bits), and field access into unions / flexible arrays.
// Everything else is imported straight from liburing.h. Prefix: shoal_.
#ifndef SHOAL_CLIBURING_SHIM_H
#define SHOAL_CLIBURING_SHIM_H

// liburing.h defines _XOPEN_SOURCE and _GNU_SOURCE before it includes system headers. Included
// first, under those macros, the system headers would define types (fd_set, sigset_t) differently
// from Swift's Glibc module, and a clean build fails on the mismatch. So the system headers come
// first, with the same macros as Glibc's module; liburing's own includes then hit their guards.
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/swab.h>
#include <liburing.h>

/// IOSQE_BUFFER_SELECT is `1U << IOSQE_BUFFER_SELECT_BIT`, an expression Swift does not import.
static inline unsigned shoal_iosqe_buffer_select(void) { return IOSQE_BUFFER_SELECT; }

/// IOSQE_FIXED_FILE (`1U << IOSQE_FIXED_FILE_BIT`): the SQE's fd field is an index into the
/// ring's registered file table (a "direct descriptor"), not a descriptor of the process.
static inline unsigned shoal_iosqe_fixed_file(void) { return IOSQE_FIXED_FILE; }

/// IOSQE_CQE_SKIP_SUCCESS (Linux 5.17): the operation posts a completion only when it fails.
static inline unsigned shoal_iosqe_cqe_skip_success(void) { return IOSQE_CQE_SKIP_SUCCESS; }

/// IORING_RECVSEND_BUNDLE (Linux 6.10; liburing 2.3's header predates it, so the value is given
/// here): in a receive's ioprio, with IOSQE_BUFFER_SELECT, one completion may fill several provided
/// buffers. Its result is the byte count; its buffer id is the first buffer's, and the others are
/// the ones that followed it in the buffer ring, each filled before the next.
static inline unsigned short shoal_recvsend_bundle(void) {
#ifdef IORING_RECVSEND_BUNDLE
    return IORING_RECVSEND_BUNDLE;
#else
    return 1U << 4;
#endif
}

/// IORING_FEAT_RECVSEND_BUNDLE (Linux 6.10): set in io_uring_params.features when the kernel
/// takes IORING_RECVSEND_BUNDLE.
static inline unsigned shoal_feat_recvsend_bundle(void) {
#ifdef IORING_FEAT_RECVSEND_BUNDLE
    return IORING_FEAT_RECVSEND_BUNDLE;
#else
    return 1U << 14;
#endif
}

/// IORING_CQE_F_MORE: a multishot request stays armed after this completion.
static inline unsigned shoal_cqe_f_more(void) { return IORING_CQE_F_MORE; }

/// IORING_CQE_F_BUFFER: the completion carries a provided-buffer id in its upper flag bits.
static inline unsigned shoal_cqe_f_buffer(void) { return IORING_CQE_F_BUFFER; }

/// The provided-buffer id carried by a recv completion.
static inline unsigned shoal_cqe_buffer_id(const struct io_uring_cqe *cqe) { return cqe->flags >> IORING_CQE_BUFFER_SHIFT; }

/// Sets the buffer-group field of an SQE (a union member Swift cannot name reliably).
static inline void shoal_sqe_set_buf_group(struct io_uring_sqe *sqe, unsigned short group) { sqe->buf_group = group; }

/// Size in bytes of a provided-buffer ring with `entries` slots (the struct ends in a flexible array).
static inline size_t shoal_buf_ring_size(unsigned entries) { return (size_t)entries * sizeof(struct io_uring_buf); }

/// IORING_SETUP_* flags that may be absent from older headers; 0 when the header does not know them.
static inline unsigned shoal_setup_single_issuer(void) {
#ifdef IORING_SETUP_SINGLE_ISSUER
    return IORING_SETUP_SINGLE_ISSUER;
#else
    return 0;
#endif
}
static inline unsigned shoal_setup_coop_taskrun(void) {
#ifdef IORING_SETUP_COOP_TASKRUN
    return IORING_SETUP_COOP_TASKRUN;
#else
    return 0;
#endif
}
static inline unsigned shoal_setup_submit_all(void) {
#ifdef IORING_SETUP_SUBMIT_ALL
    return IORING_SETUP_SUBMIT_ALL;
#else
    return 0;
#endif
}
static inline unsigned shoal_setup_cqsize(void) { return IORING_SETUP_CQSIZE; }

/// IORING_SETUP_DEFER_TASKRUN (Linux 6.1): the kernel runs a ring's completion work only when its
/// issuer enters io_uring_enter with GETEVENTS, not at any syscall or interrupt; needs SINGLE_ISSUER.
static inline unsigned shoal_setup_defer_taskrun(void) {
#ifdef IORING_SETUP_DEFER_TASKRUN
    return IORING_SETUP_DEFER_TASKRUN;
#else
    return 0;
#endif
}

/// IORING_SETUP_R_DISABLED: the ring is created disabled, so the thread that enables it (with
/// shoal_enable_rings) becomes its single issuer, not the thread that created it.
static inline unsigned shoal_setup_r_disabled(void) { return IORING_SETUP_R_DISABLED; }

/// Enables a ring created with IORING_SETUP_R_DISABLED (IORING_REGISTER_ENABLE_RINGS); under
/// SINGLE_ISSUER the calling thread becomes the only one allowed to submit. liburing 2.3 declares
/// io_uring_enable_rings but does not export it (it is missing from the library's symbol map), so
/// the call is made here. 0 or a negated errno.
static inline int shoal_enable_rings(struct io_uring *ring) {
    int rc = (int)syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    return rc < 0 ? -errno : rc;
}

#endif
