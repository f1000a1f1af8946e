//! A global allocator that survives impossible allocation sizes taken from the wire.
//!
//! # Why
//!
//! `kafka-protocol` 0.18 decodes every array with `Vec::with_capacity(count)`, `count`
//! read from the request. A 9-byte Metadata body claiming 2^31-1 topics asks for ~154 GB
//! before the decoder notices the topics are missing. Under Linux's default overcommit
//! heuristic `malloc` refuses that (it exceeds RAM + swap), Rust's `handle_alloc_error`
//! aborts the process, and one unauthenticated packet has killed the broker. A frame size
//! limit does not help: the bytes claim, they do not carry. Patching the crate is not an
//! option, so the allocator makes the claim harmless instead.
//!
//! # How
//!
//! Allocations of at least [`DEFAULT_THRESHOLD`] (256 MiB) are served by an anonymous
//! `mmap(PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE)`. With
//! `MAP_NORESERVE` the kernel neither charges the mapping against the commit limit nor
//! applies the "obvious overcommit" check, so 154 GB only reserves address space (there
//! is 128 TiB of it). Nothing touches those pages: the decoder fails on the first missing
//! element, the `Vec` is dropped, and `munmap` returns the range. Resident memory never
//! moves. Everything smaller goes to [`std::alloc::System`] unchanged.
//!
//! Pages of a mapping are zero until written, so `alloc_zeroed` needs no memset (which
//! would have touched every page). `realloc` within the mapped class uses `mremap`;
//! across the threshold it allocates in the new class, copies and frees the old block.
//! Which class a block belongs to is a pure function of its size and alignment, so
//! `dealloc` (which gets the same layout as `alloc`) always frees it the right way.
//! Alignments above 4096 (the smallest page size Linux uses, hence the weakest
//! alignment `mmap` guarantees) always go to `System`.
//!
//! # Threshold
//!
//! 256 MiB sits above every legitimate allocation the broker makes on the heap: request
//! frames are capped by `socket.request.max.bytes` (100 MiB by default), record batches
//! by `message.max.bytes`, and segment indexes are file mappings, not heap. So in normal
//! operation this allocator is `System` plus one comparison; only a hostile or absurd
//! size reaches `mmap`. (glibc would mmap such a size too, but without `MAP_NORESERVE`,
//! which is the whole difference.)
//!
//! # Cost and limits
//!
//! `MAP_NORESERVE` is honoured when `vm.overcommit_memory` is 0 (the default heuristic)
//! or 1 (always overcommit). Under 2 (strict accounting) the kernel charges the full
//! size anyway, the mmap fails and the process aborts as before; so does it under an
//! `RLIMIT_AS` (`ulimit -v`) smaller than the claim. Pages written to a `MAP_NORESERVE`
//! mapping are not backed by a commit reservation: if a legitimate >= 256 MiB buffer is
//! filled while the machine is out of memory, the OOM killer acts at page-fault time
//! rather than `malloc` failing. On non-Linux targets the allocator is plain `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations of at least this many bytes are served by `mmap` (see the module docs).
pub const DEFAULT_THRESHOLD: usize = 256 * 1024 * 1024;

/// The largest alignment a fresh anonymous mapping is guaranteed to have.
const MAP_ALIGN: usize = 4096;

/// Whether this target has the `mmap` path.
const MMAP_SUPPORTED: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// `System`, except that very large allocations are lazily-backed anonymous mappings.
/// Install it in the binary:
///
/// ```no_run
/// #[global_allocator]
/// static ALLOC: strom_server::MmapAlloc = strom_server::MmapAlloc::new();
///
/// fn main() {
///     // A wire-controlled capacity costs address space, not memory.
///     let v: Vec<[u8; 72]> = Vec::with_capacity(i32::MAX as usize);
///     assert!(v.capacity() >= i32::MAX as usize);
/// }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MmapAlloc {
    threshold: usize,
}

impl MmapAlloc {
    /// The allocator with [`DEFAULT_THRESHOLD`].
    pub const fn new() -> Self {
        Self::with_threshold(DEFAULT_THRESHOLD)
    }

    /// An allocator that maps allocations of at least `threshold` bytes (raised to one
    /// page, so zero-size and tiny allocations never reach `mmap`).
    pub const fn with_threshold(threshold: usize) -> Self {
        let threshold = if threshold < MAP_ALIGN {
            MAP_ALIGN
        } else {
            threshold
        };
        MmapAlloc { threshold }
    }

    /// Whether a block of `size` bytes aligned to `align` lives in a mapping.
    fn is_mapped(&self, size: usize, align: usize) -> bool {
        MMAP_SUPPORTED && size >= self.threshold && align <= MAP_ALIGN
    }
}

impl Default for MmapAlloc {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every method either forwards to `System` with the caller's arguments (and so
// inherits its contract) or implements the contract with mmap/munmap/mremap: returned
// blocks are page-aligned (>= the requested align, which is <= 4096 on that path), at
// least `size` bytes, not aliased, and freed with the exact length they were mapped with.
// A block's class depends only on (size, align), which `dealloc`/`realloc` receive
// unchanged from the allocation, so a block is always freed by the allocator that made it.
unsafe impl GlobalAlloc for MmapAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.is_mapped(layout.size(), layout.align()) {
            sys::map(layout.size())
        } else {
            // SAFETY: same contract as ours; `layout` has non-zero size per caller.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if self.is_mapped(layout.size(), layout.align()) {
            // Fresh anonymous pages read as zero; writing zeros would commit them all.
            sys::map(layout.size())
        } else {
            // SAFETY: same contract as ours.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.is_mapped(layout.size(), layout.align()) {
            // SAFETY: the caller guarantees `ptr` came from `alloc*`/`realloc` with this
            // layout, which (same class) means from `sys::map` with this size.
            unsafe { sys::unmap(ptr, layout.size()) }
        } else {
            // SAFETY: by the same argument it came from `System` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        let was_mapped = self.is_mapped(layout.size(), align);
        let now_mapped = self.is_mapped(new_size, align);
        match (was_mapped, now_mapped) {
            // SAFETY: the block came from `System` with `layout`; caller guarantees
            // `new_size` is non-zero and valid for `align`.
            (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
            // SAFETY: the block is a mapping of `layout.size()` bytes made by `sys::map`.
            (true, true) => unsafe { sys::remap(ptr, layout.size(), new_size) },
            _ => {
                // SAFETY: the caller guarantees `new_size`, rounded up to `align`, does
                // not overflow isize, which is all `from_size_align_unchecked` needs.
                let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
                // SAFETY: `new_layout` has non-zero size (the caller's guarantee).
                let new_ptr = unsafe { self.alloc(new_layout) };
                if !new_ptr.is_null() {
                    // SAFETY: both blocks are valid for the copied length (the smaller of
                    // the two sizes) and distinct allocations, so they do not overlap; the
                    // old block is then freed with the layout it was allocated with.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new_ptr
            }
        }
    }
}

/// Keeps glibc `malloc` from giving request-sized blocks back to the kernel after every
/// request; call once at startup. Returns whether the settings took.
///
/// Produce requests arrive as 1-8 MiB frames, each allocated and freed once on whichever
/// worker thread read it. With glibc's defaults a freed block of that size is returned
/// to the kernel (`munmap`, or `madvise` when a thread arena shrinks), and the next
/// request faults every page back in and has it zeroed: page faults, `madvise` and
/// unmapping were ~13% of the broker's CPU in a produce profile (BENCHMARKS.md). Blocks
/// below 32 MiB (glibc's largest mmap threshold) now come from the arenas, and up to
/// 256 MiB of free memory stays there for the next request. The request memory budget
/// (`crate::budget`) still bounds how much is live at once.
pub fn keep_request_buffers() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes glibc's tuning parameters; both values are in
        // the ranges glibc accepts (it rejects others by returning 0).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod sys {
    use std::ptr;

    /// Maps `size` zeroed, lazily-backed bytes; null on failure (the allocator contract).
    pub(super) fn map(size: usize) -> *mut u8 {
        // SAFETY: an anonymous private mapping at an address the kernel chooses cannot
        // alias any existing memory; all arguments are valid, and failure is reported
        // as MAP_FAILED, which we turn into null.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            ptr::null_mut()
        } else {
            p.cast()
        }
    }

    /// Unmaps a block made by [`map`] or [`remap`].
    ///
    /// # Safety
    /// `ptr`/`size` must describe exactly one live mapping made by this module, not used
    /// after this call.
    pub(super) unsafe fn unmap(ptr: *mut u8, size: usize) {
        // SAFETY: per this function's contract the range is one of our mappings. munmap
        // can only fail on invalid arguments, which the contract rules out; an allocator
        // has no way to report it anyway.
        let _ = unsafe { libc::munmap(ptr.cast(), size) };
    }

    /// Resizes a mapping, moving it if needed; contents up to the smaller size are kept.
    /// Null on failure, in which case the old mapping is untouched.
    ///
    /// # Safety
    /// `ptr`/`old_size` must describe exactly one live mapping made by this module.
    pub(super) unsafe fn remap(ptr: *mut u8, old_size: usize, new_size: usize) -> *mut u8 {
        // SAFETY: per the contract the range is one of our private anonymous mappings;
        // MREMAP_MAYMOVE lets the kernel pick a new address, and on failure (MAP_FAILED)
        // the old mapping stays as it was, matching realloc's contract.
        let p = unsafe { libc::mremap(ptr.cast(), old_size, new_size, libc::MREMAP_MAYMOVE) };
        if p == libc::MAP_FAILED {
            ptr::null_mut()
        } else {
            p.cast()
        }
    }
}

/// Other targets never take the mapped path (`MMAP_SUPPORTED` is false), so these are
/// unreachable; they exist so the code above compiles everywhere.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod sys {
    pub(super) fn map(_size: usize) -> *mut u8 {
        std::ptr::null_mut()
    }
    pub(super) unsafe fn unmap(_ptr: *mut u8, _size: usize) {}
    pub(super) unsafe fn remap(_ptr: *mut u8, _old: usize, _new: usize) -> *mut u8 {
        std::ptr::null_mut()
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn strict_overcommit() -> bool {
        std::fs::read_to_string("/proc/sys/vm/overcommit_memory").is_ok_and(|s| s.trim() == "2")
    }

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    #[test]
    fn impossible_allocation_only_reserves_address_space() {
        if strict_overcommit() {
            eprintln!("skipped: vm.overcommit_memory=2 charges MAP_NORESERVE mappings");
            return;
        }
        let a = MmapAlloc::new();
        let before = rss_kib();
        // What a Metadata request claiming i32::MAX topics asks for, and more.
        let layout = Layout::from_size_align(1 << 40, 8).expect("layout");
        // SAFETY: non-zero size; the block is freed below with the same layout.
        unsafe {
            let p = a.alloc_zeroed(layout);
            assert!(!p.is_null(), "1 TiB NORESERVE mapping refused");
            // Touch one page at each end: readable, writable, zeroed.
            assert_eq!(*p, 0);
            *p = 1;
            *p.add(layout.size() - 1) = 2;
            a.dealloc(p, layout);
        }
        assert!(rss_kib() < before + 16 * 1024, "RSS grew");
    }

    #[test]
    fn small_and_overaligned_allocations_use_system() {
        let a = MmapAlloc::with_threshold(MIB);
        assert!(!a.is_mapped(MIB - 1, 8));
        assert!(a.is_mapped(MIB, 8));
        assert!(!a.is_mapped(2 * MIB, 2 * MAP_ALIGN));
        let layout = Layout::from_size_align(2 * MIB, 2 * MAP_ALIGN).expect("layout");
        // SAFETY: non-zero size, freed with the same layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            assert_eq!(p as usize % (2 * MAP_ALIGN), 0);
            a.dealloc(p, layout);
        }
        assert_eq!(MmapAlloc::with_threshold(0).threshold, MAP_ALIGN);
    }

    #[test]
    fn realloc_keeps_contents_across_and_within_the_threshold() {
        let a = MmapAlloc::with_threshold(MIB);
        let fill = |p: *mut u8, n: usize| {
            for i in 0..n {
                // SAFETY: callers pass a block of at least n bytes.
                unsafe { *p.add(i) = (i % 251) as u8 };
            }
        };
        let check = |p: *const u8, n: usize| {
            // SAFETY: callers pass a block of at least n initialised bytes.
            (0..n).all(|i| unsafe { *p.add(i) } == (i % 251) as u8)
        };
        let small = Layout::from_size_align(4096, 16).expect("layout");
        // SAFETY: each step passes the live block with the layout it currently has and
        // a non-zero new size; the final block is freed with its layout.
        unsafe {
            let p = a.alloc(small);
            fill(p, 4096);
            // System -> mapping.
            let p = a.realloc(p, small, 2 * MIB);
            assert!(!p.is_null() && check(p, 4096));
            fill(p, 2 * MIB);
            // Mapping -> bigger mapping (mremap).
            let big = Layout::from_size_align(2 * MIB, 16).expect("layout");
            let p = a.realloc(p, big, 8 * MIB);
            assert!(!p.is_null() && check(p, 2 * MIB));
            // Mapping -> System, truncating.
            let bigger = Layout::from_size_align(8 * MIB, 16).expect("layout");
            let p = a.realloc(p, bigger, 1000);
            assert!(!p.is_null() && check(p, 1000));
            a.dealloc(p, Layout::from_size_align(1000, 16).expect("layout"));
        }
    }

    #[test]
    fn vec_with_huge_capacity_is_cheap_through_the_global_allocator() {
        // The unit-test binary installs MmapAlloc (see lib.rs), so this is the exact
        // pattern kafka-protocol uses on a hostile count.
        if strict_overcommit() {
            return;
        }
        let v: Vec<[u64; 9]> = Vec::with_capacity(i32::MAX as usize);
        assert!(v.capacity() >= i32::MAX as usize);
    }
}
