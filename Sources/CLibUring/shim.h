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

/// IORING_SETUP_TASKRUN_FLAG (Linux 5.19; with COOP_TASKRUN or DEFER_TASKRUN): the kernel sets
/// IORING_SQ_TASKRUN in the SQ ring's flags when it queues completion work for the ring (under
/// DEFER_TASKRUN: io_req_local_work_add, on an empty list) and clears it when that work runs
/// (__io_run_local_work), so the loop can tell whether entering the kernel would find work to do.
static inline unsigned shoal_setup_taskrun_flag(void) {
#ifdef IORING_SETUP_TASKRUN_FLAG
    return IORING_SETUP_TASKRUN_FLAG;
#else
    return 0;
#endif
}

/// Whether the kernel holds completion work for the ring that runs when the loop next enters it
/// with GETEVENTS (IORING_SQ_TASKRUN; meaningful only on a ring set up with
/// IORING_SETUP_TASKRUN_FLAG, always false otherwise).
static inline bool shoal_taskrun_pending(const struct io_uring *ring) {
#ifdef IORING_SQ_TASKRUN
    return (IO_URING_READ_ONCE(*ring->sq.kflags) & IORING_SQ_TASKRUN) != 0;
#else
    return false;
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

/// IORING_FEAT_MIN_TIMEOUT (Linux 6.12): io_uring_enter takes a minimum wait (`min_wait_usec` in
/// the getevents argument, a field liburing 2.3's header still calls `pad`).
static inline unsigned shoal_feat_min_timeout(void) {
#ifdef IORING_FEAT_MIN_TIMEOUT
    return IORING_FEAT_MIN_TIMEOUT;
#else
    return 1U << 15;
#endif
}

/// The kernel's `struct io_uring_getevents_arg` since 6.12 (liburing 2.3 names `min_wait_usec`
/// `pad`, and has no call that sets it).
struct shoal_getevents_arg {
    __u64 sigmask;
    __u32 sigmask_sz;
    __u32 min_wait_usec;
    __u64 ts;
};

/// Submits the prepared entries and waits, in one io_uring_enter, for `wait_nr` completions; once
/// `min_wait_usec` has passed, for at least one (the kernel returns as soon as any is there, and
/// otherwise wakes on the first that arrives); and no longer than `timeout_ns` in all (relative;
/// -ETIME then). The kernel honours `min_wait_usec` only with a general timeout (without one it
/// returns at the minimum wait, completions or not), so one is always passed. Needs
/// IORING_FEAT_MIN_TIMEOUT; under SINGLE_ISSUER it must run on the ring's issuer thread, as every
/// submit does. `registered_ring`: the ring's descriptor was registered with
/// io_uring_register_ring_fd (its index is then in `enter_ring_fd`). Publishes the submission tail
/// as liburing's own submit does (without SQPOLL, which Shoal does not use). Returns the entries
/// submitted or a negated errno.
static inline int shoal_submit_and_wait_min(struct io_uring *ring, unsigned wait_nr, unsigned min_wait_usec,
                                            long long timeout_ns, bool registered_ring) {
    struct io_uring_sq *sq = &ring->sq;
    unsigned tail = sq->sqe_tail;
    if (sq->sqe_head != tail) {
        sq->sqe_head = tail;
        __atomic_store_n(sq->ktail, tail, __ATOMIC_RELEASE);
    }
    unsigned to_submit = tail - __atomic_load_n(sq->khead, __ATOMIC_ACQUIRE);
    struct __kernel_timespec ts = { .tv_sec = timeout_ns / 1000000000LL, .tv_nsec = timeout_ns % 1000000000LL };
    struct shoal_getevents_arg arg = {
        .sigmask = 0, .sigmask_sz = _NSIG / 8, .min_wait_usec = min_wait_usec, .ts = (__u64)(uintptr_t)&ts,
    };
    unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
    int fd = ring->ring_fd;
    if (registered_ring) {
        flags |= IORING_ENTER_REGISTERED_RING;
        fd = ring->enter_ring_fd;
    }
    int rc = (int)syscall(__NR_io_uring_enter, fd, to_submit, wait_nr, flags, &arg, sizeof arg);
    return rc < 0 ? -errno : rc;
}

#endif

