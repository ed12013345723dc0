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
