//! Token embedding gather (forward) and scatter-add (backward).
//!
//! # Contract
//!
//! `table`/`dtable`: `[vocab, d]` f32 row-major (`vocab = table.len() / d`); `ids`: `[t]`;
//! `out`/`dout`: `[t, d]`.
//!
//! - [`embedding_fwd`]: `out[i, :] = table[ids[i], :]`, `out` overwritten.
//! - [`embedding_bwd`]: `dtable[ids[i], :] += dout[i, :]` for every `i` (repeated ids add up),
//!   `dtable` **accumulated**.
//!
//! An id `>= vocab` is [`KernelError::TokenOutOfRange`] naming the id and its position; nothing
//! is written in that case.

use crate::error::{check_len, checked_size, invalid};
use crate::{KernelError, Result};
use rayon::prelude::*;

fn check_ids(op: &'static str, ids: &[u32], vocab: usize) -> Result<()> {
    match ids
        .iter()
        .enumerate()
        .find(|(_, id)| **id as usize >= vocab)
    {
        Some((position, &id)) => Err(KernelError::TokenOutOfRange {
            op,
            id,
            position,
            vocab,
        }),
        None => Ok(()),
    }
}

fn vocab_of(op: &'static str, arg: &'static str, len: usize, d: usize) -> Result<usize> {
    if d == 0 {
        return Err(invalid(op, "d", "embedding width must be positive"));
    }
    if !len.is_multiple_of(d) {
        return Err(invalid(
            op,
            arg,
            format!("length {len} is not a multiple of d = {d}"),
        ));
    }
    Ok(len / d)
}

/// Gathers `table` rows for `ids` into `out[t, d]`.
pub fn embedding_fwd(out: &mut [f32], table: &[f32], ids: &[u32], d: usize) -> Result<()> {
    const OP: &str = "embedding_fwd";
    let vocab = vocab_of(OP, "table", table.len(), d)?;
    check_len(
        OP,
        "out",
        out.len(),
        checked_size(OP, "out", &[ids.len(), d])?,
    )?;
    check_ids(OP, ids, vocab)?;
    out.par_chunks_mut(d)
        .zip(ids.par_iter())
        .with_min_len(64)
        .for_each(|(row, &id)| {
            let s = id as usize * d;
            row.copy_from_slice(&table[s..s + d]);
        });
    Ok(())
}

/// Scatter-adds `dout[t, d]` into `dtable[vocab, d]` rows `ids`.
pub fn embedding_bwd(dtable: &mut [f32], dout: &[f32], ids: &[u32], d: usize) -> Result<()> {
    const OP: &str = "embedding_bwd";
    let vocab = vocab_of(OP, "dtable", dtable.len(), d)?;
    check_len(
        OP,
        "dout",
        dout.len(),
        checked_size(OP, "dout", &[ids.len(), d])?,
    )?;
    check_ids(OP, ids, vocab)?;
    // Parallel over column blocks so repeated ids never race; each task walks all tokens.
    const COLS: usize = 64;
    let col_blocks = d.div_ceil(COLS);
    if ids.len() * d < 1 << 16 || col_blocks == 1 {
        for (row, &id) in dout.chunks(d).zip(ids) {
            let s = id as usize * d;
            for (x, y) in dtable[s..s + d].iter_mut().zip(row) {
                *x += y;
            }
        }
        return Ok(());
    }
    let ptr = SendPtr(dtable.as_mut_ptr());
    (0..col_blocks).into_par_iter().for_each(|cb| {
        let c0 = cb * COLS;
        let c1 = (c0 + COLS).min(d);
        let base = ptr;
        for (row, &id) in dout.chunks(d).zip(ids) {
            let s = id as usize * d;
            for c in c0..c1 {
                // SAFETY: ids were checked < vocab so s + c < vocab * d = dtable.len(); tasks
                // own disjoint column ranges [c0, c1), so no two tasks write the same element,
                // and `dtable` is exclusively borrowed for the whole call.
                unsafe { *base.0.add(s + c) += row[c] };
            }
        }
    });
    Ok(())
}

/// Raw pointer that may cross rayon tasks (writes are to disjoint elements).
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only in `embedding_bwd`, where tasks write disjoint columns.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_and_scatter_with_repeats() {
        let table = [0.0f32, 1.0, 10.0, 11.0, 20.0, 21.0];
        let mut out = [0.0f32; 6];
        embedding_fwd(&mut out, &table, &[2, 0, 2], 2).unwrap();
        assert_eq!(out, [20.0, 21.0, 0.0, 1.0, 20.0, 21.0]);
        let mut dt = [0.0f32; 6];
        embedding_bwd(&mut dt, &[1.0; 6], &[2, 0, 2], 2).unwrap();
        assert_eq!(dt, [1.0, 1.0, 0.0, 0.0, 2.0, 2.0]);
    }

    #[test]
    fn out_of_range_names_id_and_position() {
        let err = embedding_fwd(&mut [0.0; 4], &[0.0; 4], &[1, 7], 2).unwrap_err();
        assert_eq!(
            err,
            KernelError::TokenOutOfRange {
                op: "embedding_fwd",
                id: 7,
                position: 1,
                vocab: 2
            }
        );
        assert!(err.to_string().contains("7") && err.to_string().contains("position 1"));
    }
}
