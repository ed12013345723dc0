//! [`BlockManager`]: which KV blocks are free and how many sequences hold each.
//!
//! The KV cache is a pool of fixed-size blocks (the storage lives with the model, see
//! [`crate::Lm`]); a sequence's cache is its block table. Blocks are reference counted so
//! the `n` samples of a prompt hold the prompt's blocks together: forking a table retains
//! each block, finishing a sequence releases them, and a block returns to the free list
//! when its count reaches zero. A block that a sequence must write while others still hold
//! it is copied first (copy on write, done by the scheduler with [`BlockManager::is_shared`]).
//!
//! The budget bounds the number of blocks in use. Ids are handed out from the free list
//! first (most recently freed first, so hot memory is reused), then new ids; with the
//! budget spent [`BlockManager::alloc`] returns `None` and the scheduler preempts someone,
//! except that [`BlockManager::alloc_over_budget`] lets the oldest sequence always make
//! progress.

/// Reference counts and the free list of a block pool.
#[derive(Debug, Clone, Default)]
pub struct BlockManager {
    refcount: Vec<u32>,
    free: Vec<u32>,
    budget: usize,
}

impl BlockManager {
    /// A manager that hands out at most `budget` blocks (soft limit, see the module doc).
    pub fn new(budget: usize) -> Self {
        Self {
            refcount: Vec::new(),
            free: Vec::new(),
            budget,
        }
    }

    /// Block ids created so far (the pool must hold this many blocks).
    pub fn total(&self) -> usize {
        self.refcount.len()
    }

    /// Blocks that can still be allocated within the budget.
    pub fn available(&self) -> usize {
        self.budget.saturating_sub(self.used())
    }

    /// Blocks held by at least one sequence.
    pub fn used(&self) -> usize {
        self.refcount.len() - self.free.len()
    }

    /// A block with reference count 1, or `None` when the budget is spent (the budget
    /// bounds the blocks in use, not the pool's size).
    pub fn alloc(&mut self) -> Option<u32> {
        if self.used() >= self.budget {
            return None;
        }
        Some(self.alloc_over_budget())
    }

    /// Like [`BlockManager::alloc`], but past the budget too.
    pub fn alloc_over_budget(&mut self) -> u32 {
        match self.free.pop() {
            Some(b) => {
                self.refcount[b as usize] = 1;
                b
            }
            None => {
                self.refcount.push(1);
                (self.refcount.len() - 1) as u32
            }
        }
    }

    /// One more holder of `block`.
    pub fn retain(&mut self, block: u32) {
        self.refcount[block as usize] += 1;
    }

    /// One holder fewer; the block is free again at zero.
    pub fn release(&mut self, block: u32) {
        let rc = &mut self.refcount[block as usize];
        debug_assert!(*rc > 0, "release of free block {block}");
        *rc = rc.saturating_sub(1);
        if *rc == 0 {
            self.free.push(block);
        }
    }

    /// Releases every block of a table and empties it.
    pub fn release_all(&mut self, table: &mut Vec<u32>) {
        for b in table.drain(..) {
            self.release(b);
        }
    }

    /// A copy of `table` whose blocks are retained once more (a fork).
    pub fn fork(&mut self, table: &[u32]) -> Vec<u32> {
        for &b in table {
            self.retain(b);
        }
        table.to_vec()
    }

    /// True when more than one sequence holds `block`.
    pub fn is_shared(&self, block: u32) -> bool {
        self.refcount[block as usize] > 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refcounts_free_and_reuse() {
        let mut m = BlockManager::new(3);
        let a = m.alloc().unwrap();
        let b = m.alloc().unwrap();
        let table = vec![a, b];
        let mut fork = m.fork(&table);
        assert!(m.is_shared(a) && m.is_shared(b));
        assert_eq!(m.available(), 1);
        m.release_all(&mut fork);
        assert!(!m.is_shared(a));
        assert_eq!(m.used(), 2);
        let c = m.alloc().unwrap();
        assert_eq!(m.alloc(), None, "budget of 3 spent");
        m.release(c);
        assert_eq!(m.alloc(), Some(c), "freed block is reused first");
        let over = m.alloc_over_budget();
        assert_eq!(over, 3);
        assert_eq!(m.total(), 4);
        assert_eq!(m.available(), 0);
        let mut t = table;
        m.release_all(&mut t);
        // Two of four blocks in use: one more fits the budget of 3, although two are free.
        assert_eq!(m.used(), 2);
        assert_eq!(m.available(), 1);
        assert!(m.alloc().is_some());
        assert_eq!(m.alloc(), None);
    }
}
