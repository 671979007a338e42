//! Data-parallel training's process group: libtorch's own c10d (a `TCPStore` for the
//! rendezvous, `ProcessGroupGloo` for the collectives, through the C++ shim of `ffi`), met the
//! way torchrun's processes meet ([`Rendezvous::from_env`]: `MASTER_ADDR`, `MASTER_PORT`,
//! `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, torchrun's agent store). Nothing else in autoseg talks to
//! sockets.
//!
//! Faults: every collective is bounded by the group's timeout, and a collective that fails is
//! explained by the ranks that went silent. Each rank bumps a counter in the store every
//! [`HEARTBEAT`] (module `heartbeat`); when a collective fails, the ranks whose counter has not moved
//! for a few beats are named ([`DistError::Collective`]), or the store's host when the store
//! itself is gone.

mod ffi;
mod heartbeat;
mod rendezvous;
#[cfg(test)]
pub(crate) mod tests;

use std::fmt;
use std::sync::Arc;

use tch::{Kind, Tensor};

use ffi::{Group, Store};
use heartbeat::Heartbeat;
pub use heartbeat::HEARTBEAT;
pub use rendezvous::{Rendezvous, DEFAULT_TIMEOUT};

/// A fault of the process group, naming the rank (or the environment variable) at fault.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// torchrun's environment is incomplete or malformed.
    #[error("data-parallel launch: {variable} {fault}")]
    Environment {
        /// The variable at fault.
        variable: &'static str,
        /// What is wrong with it.
        fault: String,
    },
    /// The ranks could not meet.
    #[error(
        "rank {rank} of {world_size} could not meet the other ranks at {address} \
         (MASTER_ADDR:MASTER_PORT): {message}"
    )]
    Rendezvous {
        /// This process's rank.
        rank: usize,
        /// Ranks in the group.
        world_size: usize,
        /// The store's `host:port`.
        address: String,
        /// libtorch's message.
        message: String,
    },
    /// A collective failed (a rank died, hangs past the timeout, or the store is gone).
    #[error("rank {rank} of {world_size}: {op} failed: {culprit} ({message})")]
    Collective {
        /// This process's rank.
        rank: usize,
        /// Ranks in the group.
        world_size: usize,
        /// The collective.
        op: &'static str,
        /// Who stopped answering, as far as the store tells.
        culprit: Culprit,
        /// libtorch's message.
        message: String,
    },
}

/// Who a failed collective is blamed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Culprit {
    /// These ranks stopped beating (their process died or hangs).
    Ranks(Vec<usize>),
    /// The store does not answer either: its host is gone.
    StoreHost {
        /// Rank 0 hosted it (`false`: torchrun's agent did).
        rank0: bool,
        /// The store's message.
        message: String,
    },
    /// Every rank still beats (a timeout or a fault of this rank's own).
    Unknown,
}

impl fmt::Display for Culprit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Culprit::Ranks(ranks) if ranks.len() == 1 => write!(
                f,
                "rank {} stopped answering (its process ended or hangs)",
                ranks[0]
            ),
            Culprit::Ranks(ranks) => {
                let list: Vec<String> = ranks.iter().map(usize::to_string).collect();
                write!(
                    f,
                    "ranks {} stopped answering (their processes ended or hang)",
                    list.join(", ")
                )
            }
            Culprit::StoreHost { rank0: true, .. } => write!(
                f,
                "rank 0 stopped answering (its process ended: it hosted the rendezvous store, \
                 which is gone too)"
            ),
            Culprit::StoreHost {
                rank0: false,
                message,
            } => write!(
                f,
                "the rendezvous store (torchrun's agent) is gone: {message}"
            ),
            Culprit::Unknown => write!(f, "every other rank still answers the store"),
        }
    }
}

/// This process's membership of a data-parallel group.
pub struct ProcessGroup {
    rank: usize,
    world_size: usize,
    group: Group,
    heartbeat: Heartbeat,
    rank0_hosts_store: bool,
    _store: Store,
}

impl fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProcessGroup(rank {} of {})", self.rank, self.world_size)
    }
}

impl ProcessGroup {
    /// Meets the other ranks of `rendezvous` (rank 0 hosts the store unless torchrun's agent
    /// does) and starts this rank's heartbeat.
    ///
    /// # Errors
    /// [`DistError::Rendezvous`] when the store cannot be reached or hosted, or the others do
    /// not arrive within the timeout.
    pub fn join(rendezvous: &Rendezvous) -> Result<Arc<ProcessGroup>, DistError> {
        let fault = |message: String| DistError::Rendezvous {
            rank: rendezvous.rank,
            world_size: rendezvous.world_size,
            address: rendezvous.address(),
            message,
        };
        let hosts_store = rendezvous.rank == 0 && !rendezvous.agent_store;
        let store = Store::connect(
            &rendezvous.master_addr,
            rendezvous.master_port,
            hosts_store,
            rendezvous.timeout,
            &rendezvous.store_prefix(),
        )
        .map_err(fault)?;
        let group = Group::gloo(
            &store,
            rendezvous.rank,
            rendezvous.world_size,
            rendezvous.timeout,
        )
        .map_err(fault)?;
        let beat_store = store.try_clone().map_err(fault)?;
        let heartbeat = Heartbeat::start(beat_store, rendezvous.rank, rendezvous.world_size);
        tracing::info!(
            rank = rendezvous.rank,
            world_size = rendezvous.world_size,
            address = rendezvous.address().as_str(),
            "joined the data-parallel group (c10d, Gloo)"
        );
        Ok(Arc::new(ProcessGroup {
            rank: rendezvous.rank,
            world_size: rendezvous.world_size,
            group,
            heartbeat,
            rank0_hosts_store: !rendezvous.agent_store,
            _store: store,
        }))
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Ranks in the group.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// Rank 0: the one that writes checkpoints, logs and curves.
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// Sums `tensor` over the ranks, in place.
    pub fn all_reduce_sum(&self, tensor: &mut Tensor) -> Result<(), DistError> {
        self.group
            .all_reduce_sum(tensor)
            .map_err(|m| self.fault("all-reduce", m))
    }

    /// Copies rank `root`'s `tensor` into every rank's, in place.
    pub fn broadcast(&self, tensor: &mut Tensor, root: usize) -> Result<(), DistError> {
        self.group
            .broadcast(tensor, root)
            .map_err(|m| self.fault("broadcast", m))
    }

    /// Returns once every rank has called it.
    pub fn barrier(&self) -> Result<(), DistError> {
        self.group.barrier().map_err(|m| self.fault("barrier", m))
    }

    /// The sums over the ranks of `values` (f64 on the CPU).
    pub fn sum_f64(&self, values: &[f64]) -> Result<Vec<f64>, DistError> {
        let mut tensor = Tensor::from_slice(values).to_kind(Kind::Double);
        self.all_reduce_sum(&mut tensor)?;
        Vec::<f64>::try_from(&tensor).map_err(|e| self.fault("all-reduce", e.to_string()))
    }

    /// Whether any rank says `flag`.
    pub fn any(&self, flag: bool) -> Result<bool, DistError> {
        Ok(self.sum_f64(&[f64::from(u8::from(flag))])?[0] > 0.0)
    }

    /// The error of a failed collective, with the ranks that went silent.
    fn fault(&self, op: &'static str, message: String) -> DistError {
        let culprit = self.heartbeat.culprit(self.rank0_hosts_store);
        DistError::Collective {
            rank: self.rank,
            world_size: self.world_size,
            op,
            culprit,
            message,
        }
    }
}
