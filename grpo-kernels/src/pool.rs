//! Running compute on rayon's worker pool.

/// Runs `f` on a worker thread of rayon's global pool (directly when the caller already is
/// one) and returns its result.
///
/// A training or generation step is thousands of small parallel ops. Started from inside the
/// pool, the calling worker takes part in each op and only the other workers are woken;
/// started from an outside thread, every op is handed to the pool while the caller sleeps on
/// a lock until it is done: two context switches per op, measured as a third of the default
/// training run's CPU time going to the kernel. Entry points that run many ops (the CLI's
/// compute commands, `grpo_train::train`) wrap their work in this.
///
/// ```
/// let sum = grpo_kernels::on_pool(|| {
///     assert!(rayon::current_thread_index().is_some());
///     (1..=4).sum::<i32>()
/// });
/// assert_eq!(sum, 10);
/// ```
pub fn on_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    rayon::scope(|_| f())
}

thread_local! {
    /// Set by [`on_this_thread`].
    static ON_THIS_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every op it calls on this thread computed on this thread alone (matrix
/// products, norms, SwiGLU, attention), with the same bits as their parallel split: for
/// callers that already run many independent pieces in parallel (one task per sequence, or
/// per block of rows), where splitting each small op across the pool again costs more in
/// fork/join than it shares.
///
/// ```
/// use grpo_kernels::{on_this_thread, ops::gemm::matmul};
/// let (a, b) = ([1.0f32, 2.0], [3.0f32, 4.0]);
/// let mut out = [0.0f32; 1];
/// on_this_thread(|| matmul(&mut out, &a, &b, 1, 2, 1, false, false, false))?;
/// assert_eq!(out, [11.0]);
/// # Ok::<(), grpo_kernels::KernelError>(())
/// ```
pub fn on_this_thread<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ON_THIS_THREAD.set(self.0);
        }
    }
    let _restore = Restore(ON_THIS_THREAD.replace(true));
    f()
}

/// Whether the calling thread is inside [`on_this_thread`].
pub(crate) fn serial() -> bool {
    ON_THIS_THREAD.get()
}

/// Rayon's minimum items per task for the calling thread: 1 (split freely) or `usize::MAX`
/// (one task, run here) inside [`on_this_thread`].
pub(crate) fn min_len() -> usize {
    if serial() { usize::MAX } else { 1 }
}
