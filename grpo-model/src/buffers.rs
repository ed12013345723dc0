//! Activation buffers kept between forward passes ([`crate::Model::recycle`]).
//!
//! A training step's forward allocates hundreds of MB of activations (C2: ~0.5 GB) and frees
//! them after the backward. Freshly allocated large buffers come from `mmap`, so every step
//! page-faults them in again (measured on C2: ~50,000 faults, ~0.1 s of CPU per step).
//! Buffers handed back with `recycle` are reused by the next forward instead; they are only
//! used for outputs that are overwritten in full, so their stale contents are never read.

use std::sync::Mutex;

/// Buffers smaller than this many floats are not kept (cheap to allocate).
const MIN_KEEP: usize = 1 << 14;

/// A free list of f32 buffers (see the module doc). Cloning gives an empty pool.
#[derive(Debug, Default)]
pub(crate) struct BufferPool(Mutex<Vec<Vec<f32>>>);

impl Clone for BufferPool {
    fn clone(&self) -> Self {
        BufferPool::default()
    }
}

impl BufferPool {
    /// A buffer of `n` floats whose contents are unspecified (stale values from an earlier
    /// use, or zeros): only for outputs that are overwritten in full. Takes the smallest kept
    /// buffer that can hold `n` floats, else allocates.
    pub(crate) fn take(&self, n: usize) -> Vec<f32> {
        if n >= MIN_KEEP
            && let Ok(mut pool) = self.0.lock()
        {
            let best = pool
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= n)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            if let Some(i) = best {
                let mut v = pool.swap_remove(i);
                v.resize(n, 0.0);
                return v;
            }
        }
        vec![0.0; n]
    }

    /// A buffer holding a copy of `src` (see [`BufferPool::take`]).
    pub(crate) fn copy_of(&self, src: &[f32]) -> Vec<f32> {
        let mut v = self.take(src.len());
        par_copy(&mut v, src);
        v
    }

    /// Keeps `v` for a later [`BufferPool::take`] (small buffers are dropped).
    pub(crate) fn give(&self, v: Vec<f32>) {
        if v.capacity() >= MIN_KEEP
            && let Ok(mut pool) = self.0.lock()
        {
            pool.push(v);
        }
    }

    /// Frees every kept buffer.
    pub(crate) fn clear(&self) {
        if let Ok(mut pool) = self.0.lock() {
            pool.clear();
        }
    }

    /// Floats held.
    pub(crate) fn held(&self) -> usize {
        self.0
            .lock()
            .map(|p| p.iter().map(Vec::capacity).sum())
            .unwrap_or(0)
    }
}

/// A free list of reusable scratch objects (e.g. the backward's temporaries), kept between
/// calls like [`BufferPool`]'s buffers. Cloning gives an empty list.
#[derive(Debug)]
pub(crate) struct ScratchPool<T>(Mutex<Vec<T>>);

impl<T> Default for ScratchPool<T> {
    fn default() -> Self {
        ScratchPool(Mutex::new(Vec::new()))
    }
}

impl<T> Clone for ScratchPool<T> {
    fn clone(&self) -> Self {
        ScratchPool::default()
    }
}

impl<T: Default> ScratchPool<T> {
    /// A kept object, or a new one.
    pub(crate) fn take(&self) -> T {
        self.0
            .lock()
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_default()
    }

    /// Keeps `x` for a later [`ScratchPool::take`].
    pub(crate) fn give(&self, x: T) {
        if let Ok(mut v) = self.0.lock() {
            v.push(x);
        }
    }

    /// Drops every kept object.
    pub(crate) fn clear(&self) {
        if let Ok(mut v) = self.0.lock() {
            v.clear();
        }
    }
}

/// Floats per task of [`par_copy`] (256 kB).
const COPY_CHUNK: usize = 1 << 16;

/// `dst.copy_from_slice(src)` split across the pool (a C2 residual copy is 12 MB: serial,
/// it leaves a core idle for ~2 ms per layer).
pub(crate) fn par_copy(dst: &mut [f32], src: &[f32]) {
    use rayon::prelude::*;
    dst.par_chunks_mut(COPY_CHUNK)
        .zip(src.par_chunks(COPY_CHUNK))
        .for_each(|(d, s)| d.copy_from_slice(s));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_the_smallest_fitting_buffer() {
        let pool = BufferPool::default();
        let (a, b) = (vec![1.0f32; MIN_KEEP * 4], vec![2.0f32; MIN_KEEP * 2]);
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        pool.give(a);
        pool.give(b);
        pool.give(vec![3.0; 8]); // too small to keep
        assert_eq!(pool.held(), MIN_KEEP * 6);
        let v = pool.take(MIN_KEEP + 1);
        assert_eq!((v.as_ptr(), v.len()), (pb, MIN_KEEP + 1));
        let w = pool.take(MIN_KEEP * 3);
        assert_eq!((w.as_ptr(), w.len()), (pa, MIN_KEEP * 3));
        let fresh = pool.take(MIN_KEEP);
        assert!(fresh.iter().all(|&x| x == 0.0));
        pool.give(v);
        pool.clear();
        assert_eq!(pool.held(), 0);
    }
}
