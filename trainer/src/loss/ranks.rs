//! The batch-Dice sums over the ranks of a data-parallel step (nnU-Net's
//! `MemoryEfficientSoftDiceLoss(ddp=True)`: `AllGatherGrad` of the intersections and sums, then
//! summed over the ranks).
//!
//! A data-parallel step runs its loss inside [`across_ranks`]; [`sum_over_ranks`] then gives the
//! soft Dice the sums of every rank's batch, so its value is the Dice of the global batch. The
//! gradient flows into this rank's own sums only, scaled by the number of ranks, as
//! `AllGatherGrad`'s backward (an all-reduce of the gradient) scales it: after DDP's gradient
//! mean, the Dice term's gradient is the single-process gradient of the global batch.

use std::cell::RefCell;
use std::sync::Arc;

use tch::Tensor;

use super::LossError;
use crate::distributed::ProcessGroup;

thread_local! {
    static GROUP: RefCell<Option<Arc<ProcessGroup>>> = const { RefCell::new(None) };
}

/// Runs `f` (a step's loss) with the batch-Dice sums all-reduced over `group`'s ranks; without
/// a group, `f` alone.
pub fn across_ranks<R>(group: Option<&Arc<ProcessGroup>>, f: impl FnOnce() -> R) -> R {
    let Some(group) = group else {
        return f();
    };
    let previous = GROUP.with(|g| g.replace(Some(Arc::clone(group))));
    let result = f();
    GROUP.with(|g| *g.borrow_mut() = previous);
    result
}

/// `stats` (this rank's batch sums) summed over the ranks when inside [`across_ranks`]: the
/// value of the global sums, the gradient of this rank's own sums times the number of ranks.
pub(super) fn sum_over_ranks(stats: Tensor) -> Result<Tensor, LossError> {
    let Some(group) = GROUP.with(|g| g.borrow().clone()) else {
        return Ok(stats);
    };
    let local = stats.detach();
    let mut total = local.f_contiguous()?.copy();
    group
        .all_reduce_sum(&mut total)
        .map_err(|e| LossError::Ranks(e.to_string()))?;
    let world = group.world_size() as f64;
    let others = total.f_sub(&local)?;
    // Value: stats + others = total. Gradient: world × d(stats).
    let scaled = stats
        .f_mul_scalar(world)?
        .f_sub(&local.f_mul_scalar(world - 1.0)?)?;
    Ok(scaled.f_add(&others)?)
}
