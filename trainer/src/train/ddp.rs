//! Data-parallel training with nnU-Net's `-num_gpus` semantics, over a
//! [`ProcessGroup`](crate::distributed::ProcessGroup):
//!
//! - the plan's batch is split over the ranks with per-rank foreground oversampling
//!   ([`rank_batch`], nnU-Net's `_set_batch_size_and_oversample`);
//! - rank 0's weights (and buffers) are broadcast before the first step ([`broadcast_weights`],
//!   as DDP's constructor does);
//! - after each backward pass the gradients are averaged ([`average_gradients`], DDP's
//!   all-reduce), before clipping and the optimiser step, so every rank takes the same step; on
//!   CUDA the loss scaler then sees the same gradients on every rank and every rank agrees to
//!   skip a step;
//! - the batch-Dice sums are all-reduced inside the loss (`crate::loss::across_ranks`, nnU-Net's
//!   `MemoryEfficientSoftDiceLoss(ddp=True)`);
//! - every rank draws its own random streams ([`DataParallel::stream`]);
//! - the epoch's losses and pseudo-Dice counts are summed over the ranks; rank 0 alone writes.

use std::fmt;
use std::sync::Arc;

use tch::{nn, Tensor};

use super::{StopRequest, TrainError};
use crate::distributed::ProcessGroup;
use crate::optim::defined_grads;

/// This run's place in a data-parallel group.
#[derive(Clone)]
pub struct DataParallel(pub Arc<ProcessGroup>);

impl fmt::Debug for DataParallel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for DataParallel {
    fn eq(&self, other: &DataParallel) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl DataParallel {
    /// This rank.
    pub fn rank(&self) -> usize {
        self.0.rank()
    }

    /// Ranks in the group.
    pub fn world_size(&self) -> usize {
        self.0.world_size()
    }

    /// The random stream `stream` of this rank: rank 0 keeps a single process's streams, rank
    /// `r` takes stream `stream + 16 r` (an epoch uses streams 0 to 2).
    pub fn stream(&self, stream: u64) -> u64 {
        stream + 16 * self.rank() as u64
    }
}

/// The random stream `stream` of this rank (`stream` itself in a single process).
pub(super) fn rank_stream(group: Option<&DataParallel>, stream: u64) -> u64 {
    group.map_or(stream, |g| g.stream(stream))
}

/// Whether this process writes the run's files: a single process, or rank 0.
pub(super) fn is_main(group: Option<&DataParallel>) -> bool {
    group.is_none_or(|g| g.rank() == 0)
}

/// The stop asked for from outside, agreed over the ranks: every rank stops at the same
/// iteration when any rank was asked to (with its own exit code, else SIGINT's 130).
pub(super) fn stop_agreed(
    group: Option<&DataParallel>,
    stop: &StopRequest,
) -> Result<Option<u8>, TrainError> {
    let own = stop.requested();
    match group {
        None => Ok(own),
        Some(g) => Ok(g.0.any(own.is_some())?.then(|| own.unwrap_or(130))),
    }
}

/// Sums `values` over the ranks (the values themselves in a single process).
pub(super) fn sum_over_ranks(
    group: Option<&DataParallel>,
    values: Vec<f64>,
) -> Result<Vec<f64>, TrainError> {
    match group {
        None => Ok(values),
        Some(g) => Ok(g.0.sum_f64(&values)?),
    }
}

/// nnU-Net's `_set_batch_size_and_oversample`: rank `rank`'s share of the plan's
/// `global_batch` (the first `global_batch % world` ranks take one more) and its foreground
/// oversampling share, such that the ranks together oversample the samples a single process
/// would (the last `global_batch - round(global_batch (1 - share))` of the global batch).
///
/// # Errors
/// [`TrainError::Job`] when the batch is smaller than the group (nnU-Net: "Cannot run DDP if
/// the batch size is smaller than the number of GPUs").
pub fn rank_batch(
    global_batch: usize,
    world: usize,
    rank: usize,
    share: f64,
    configuration: &str,
) -> Result<(usize, f64), TrainError> {
    if global_batch < world {
        return Err(TrainError::Job {
            configuration: configuration.to_string(),
            fault: format!(
                "the plan's batch size {global_batch} is smaller than the {world} ranks: each \
                 rank needs at least one sample (raise batch_size in plans.toml or use fewer ranks)"
            ),
        });
    }
    let per_rank: Vec<usize> = (0..world)
        .map(|i| {
            let base = global_batch / world;
            if base * world + i < global_batch {
                base + 1
            } else {
                base
            }
        })
        .collect();
    let low: usize = per_rank[..rank].iter().sum();
    let high: usize = per_rank[..=rank].iter().sum();
    let random = python_round(global_batch as f64 * (1.0 - share));
    let g = global_batch as f64;
    let percent = if (high as f64) / g < 1.0 - share {
        0.0
    } else if (low as f64) / g > 1.0 - share {
        1.0
    } else {
        let oversampled = (low..high).filter(|&i| i >= random).count();
        oversampled as f64 / per_rank[rank] as f64
    };
    Ok((per_rank[rank], percent))
}

/// Python's `round` (half to even) of a non-negative value, as an index bound.
fn python_round(x: f64) -> usize {
    let r = x.round_ties_even();
    if r <= 0.0 {
        0
    } else {
        r as usize
    }
}

/// Copies rank 0's parameters and buffers into every rank's (all flattened into one tensor per
/// kind, as DDP's constructor does).
pub(super) fn broadcast_weights(group: &DataParallel, vs: &nn::VarStore) -> Result<(), TrainError> {
    let _no_grad = tch::no_grad_guard();
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let by_kind = |want_float: bool| -> Vec<Tensor> {
        named
            .iter()
            .filter(|(_, t)| t.is_floating_point() == want_float)
            .map(|(_, t)| t.shallow_clone())
            .collect()
    };
    for tensors in [by_kind(true), by_kind(false)] {
        if tensors.is_empty() {
            continue;
        }
        let mut flat = flatten(&tensors)?;
        group.0.broadcast(&mut flat, 0)?;
        unflatten_into(&flat, &tensors)?;
    }
    Ok(())
}

/// DDP's gradient all-reduce: every defined gradient of `params` becomes the mean over the
/// ranks (one flat all-reduce; a parameter without gradient has none on any rank).
pub(super) fn average_gradients(group: &DataParallel, params: &[Tensor]) -> Result<(), TrainError> {
    let _no_grad = tch::no_grad_guard();
    let grads = defined_grads(params);
    if grads.is_empty() {
        return Ok(());
    }
    let mut flat = flatten(&grads)?;
    group.0.all_reduce_sum(&mut flat)?;
    let mean = flat.f_div_scalar(group.world_size() as f64)?;
    unflatten_into(&mean, &grads)?;
    Ok(())
}

/// The tensors, flattened and concatenated (they share one kind and device).
fn flatten(tensors: &[Tensor]) -> Result<Tensor, TrainError> {
    let views = tensors
        .iter()
        .map(|t| t.f_reshape([-1]))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Tensor::f_cat(&views, 0)?)
}

/// Copies consecutive pieces of `flat` back into `tensors`.
fn unflatten_into(flat: &Tensor, tensors: &[Tensor]) -> Result<(), TrainError> {
    let mut offset = 0_i64;
    for t in tensors {
        let n = t.numel() as i64;
        let piece = flat.f_narrow(0, offset, n)?.f_view(t.size().as_slice())?;
        t.shallow_clone().f_copy_(&piece)?;
        offset += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_and_oversampling_split_as_nnunet_splits_them() {
        // nnU-Net's `_set_batch_size_and_oversample`, run in Python for these cases
        // (batch, world, share) -> per rank (batch, oversample_percent).
        type Case = (usize, usize, f64, &'static [(usize, f64)]);
        let cases: [Case; 5] = [
            (2, 2, 0.33, &[(1, 0.0), (1, 1.0)]),
            (4, 2, 0.33, &[(2, 0.0), (2, 0.5)]),
            (5, 2, 0.33, &[(3, 0.0), (2, 1.0)]),
            (12, 3, 0.33, &[(4, 0.0), (4, 0.0), (4, 1.0)]),
            (7, 3, 0.33, &[(3, 0.0), (2, 0.0), (2, 1.0)]),
        ];
        for (batch, world, share, expected) in cases {
            for (rank, &(b, p)) in expected.iter().enumerate() {
                let got = rank_batch(batch, world, rank, share, "2d").unwrap();
                assert_eq!(got, (b, p), "batch {batch}, world {world}, rank {rank}");
            }
        }
        let err = rank_batch(2, 3, 0, 0.33, "2d").unwrap_err().to_string();
        assert!(
            err.contains("batch size 2 is smaller than the 3 ranks"),
            "{err}"
        );
    }
}
