//! The runtime's memory budget: libc's allocator, counting bytes, refusing past the limit.
//!
//! QuickJS turns a refused allocation into a catchable "out of memory" error; the engine
//! does not rely on the contract letting it propagate: the refusal is recorded here, the
//! interrupt handler stops the engine at its next check, and the call fails with
//! `ContractError::MemoryLimit` whatever the contract did.

use rquickjs::allocator::Allocator;
use std::cell::Cell;
use std::rc::Rc;

/// Memory accounting shared by the allocator and the engine.
pub(super) struct AllocState {
    pub(super) used: Cell<usize>,
    pub(super) limit: usize,
    pub(super) exceeded: Cell<bool>,
}

impl AllocState {
    fn admit(&self, extra: usize) -> bool {
        if self.limit > 0 && self.used.get().saturating_add(extra) > self.limit {
            self.exceeded.set(true);
            return false;
        }
        true
    }
}

/// libc's allocator with a byte budget: allocations past the limit fail (QuickJS then throws
/// "out of memory") and mark the runtime as over budget.
pub(super) struct LimitedAlloc {
    pub(super) state: Rc<AllocState>,
}

// SAFETY: every pointer comes from libc's malloc family (aligned for any type, so for
// `usize`), is returned to it, and `usable_size` is libc's own answer for such pointers.
unsafe impl Allocator for LimitedAlloc {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        if !self.state.admit(size) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain malloc; the result is checked for null.
        unsafe {
            let p = libc::malloc(size.max(1)).cast::<u8>();
            if !p.is_null() {
                let got = libc::malloc_usable_size(p.cast());
                self.state.used.set(self.state.used.get() + got);
            }
            p
        }
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        let Some(total) = count.checked_mul(size) else {
            return std::ptr::null_mut();
        };
        if !self.state.admit(total) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain calloc; the result is checked for null.
        unsafe {
            let p = libc::calloc(count.max(1), size.max(1)).cast::<u8>();
            if !p.is_null() {
                let got = libc::malloc_usable_size(p.cast());
                self.state.used.set(self.state.used.get() + got);
            }
            p
        }
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8) {
        // SAFETY: the caller hands back a pointer from this allocator.
        unsafe {
            let got = libc::malloc_usable_size(ptr.cast());
            self.state
                .used
                .set(self.state.used.get().saturating_sub(got));
            libc::free(ptr.cast());
        }
    }

    unsafe fn realloc(&mut self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        if ptr.is_null() {
            return self.alloc(new_size);
        }
        // SAFETY: `ptr` comes from this allocator; the result is checked for null.
        unsafe {
            let old = libc::malloc_usable_size(ptr.cast());
            if new_size > old && !self.state.admit(new_size - old) {
                return std::ptr::null_mut();
            }
            let p = libc::realloc(ptr.cast(), new_size.max(1)).cast::<u8>();
            if !p.is_null() {
                let got = libc::malloc_usable_size(p.cast());
                let used = self.state.used.get().saturating_sub(old) + got;
                self.state.used.set(used);
            }
            p
        }
    }

    unsafe fn usable_size(ptr: *mut u8) -> usize {
        // SAFETY: the caller hands in a pointer from this allocator.
        unsafe { libc::malloc_usable_size(ptr.cast()) }
    }
}
