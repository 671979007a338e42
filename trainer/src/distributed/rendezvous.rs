//! Where the ranks meet: torchrun's environment (`MASTER_ADDR`, `MASTER_PORT`, `RANK`,
//! `WORLD_SIZE`, `LOCAL_RANK`; `TORCHELASTIC_USE_AGENT_STORE` when torchrun's agent hosts the
//! store, `TORCHELASTIC_RESTART_COUNT` for the attempt), read as torch's `env://` rendezvous
//! reads it (`torch.distributed.rendezvous._env_rendezvous_handler`).

use std::time::Duration;

use super::DistError;

/// torch's default timeout of a process group (`default_pg_timeout`, 30 minutes).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How this process meets the other ranks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendezvous {
    /// Host of the store (`MASTER_ADDR`).
    pub master_addr: String,
    /// Port of the store (`MASTER_PORT`).
    pub master_port: u16,
    /// This process's rank (`RANK`).
    pub rank: usize,
    /// Ranks in the group (`WORLD_SIZE`).
    pub world_size: usize,
    /// This process's rank on its machine (`LOCAL_RANK`; the CUDA device it uses).
    pub local_rank: usize,
    /// torchrun's agent hosts the store, so every rank is its client.
    pub agent_store: bool,
    /// torchrun's restart count: each attempt meets under its own key prefix.
    pub attempt: u32,
    /// Bound of the rendezvous and of every collective.
    pub timeout: Duration,
}

impl Rendezvous {
    /// The rendezvous torchrun's variables describe; `None` when `WORLD_SIZE` is unset or 1 (a
    /// single process).
    ///
    /// # Errors
    /// [`DistError::Environment`] naming a missing or malformed variable.
    pub fn from_env(timeout: Duration) -> Result<Option<Rendezvous>, DistError> {
        Rendezvous::from_vars(|name| std::env::var(name).ok(), timeout)
    }

    /// [`Rendezvous::from_env`] over any source of variables.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        timeout: Duration,
    ) -> Result<Option<Rendezvous>, DistError> {
        let Some(world_size) = var("WORLD_SIZE") else {
            return Ok(None);
        };
        let world_size: usize = parse("WORLD_SIZE", &world_size)?;
        if world_size == 0 {
            return Err(DistError::Environment {
                variable: "WORLD_SIZE",
                fault: "is 0: a group needs at least one rank".into(),
            });
        }
        if world_size == 1 {
            return Ok(None);
        }
        let required = |name: &'static str| {
            var(name)
                .filter(|v| !v.is_empty())
                .ok_or(DistError::Environment {
                    variable: name,
                    fault: format!(
                        "is not set, but WORLD_SIZE={world_size} asks for a data-parallel run \
                         (torchrun sets it; or use `--nproc`)"
                    ),
                })
        };
        let rank: usize = parse("RANK", &required("RANK")?)?;
        if rank >= world_size {
            return Err(DistError::Environment {
                variable: "RANK",
                fault: format!("is {rank}, not below WORLD_SIZE={world_size}"),
            });
        }
        let local_rank = match var("LOCAL_RANK") {
            Some(v) => parse("LOCAL_RANK", &v)?,
            None => rank,
        };
        let attempt = match var("TORCHELASTIC_RESTART_COUNT") {
            Some(v) => parse("TORCHELASTIC_RESTART_COUNT", &v)?,
            None => 0,
        };
        Ok(Some(Rendezvous {
            master_addr: required("MASTER_ADDR")?,
            master_port: parse("MASTER_PORT", &required("MASTER_PORT")?)?,
            rank,
            world_size,
            local_rank,
            agent_store: var("TORCHELASTIC_USE_AGENT_STORE").as_deref() == Some("True"),
            attempt,
            timeout,
        }))
    }

    /// Rank `rank` of `world_size` ranks on this machine, meeting at `127.0.0.1:port` (rank 0
    /// hosts the store), as `train --nproc` starts them.
    pub fn loopback(port: u16, rank: usize, world_size: usize, timeout: Duration) -> Rendezvous {
        Rendezvous {
            master_addr: "127.0.0.1".into(),
            master_port: port,
            rank,
            world_size,
            local_rank: rank,
            agent_store: false,
            attempt: 0,
            timeout,
        }
    }

    /// `MASTER_ADDR:MASTER_PORT`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.master_addr, self.master_port)
    }

    /// The key prefix of this attempt's rendezvous in the store.
    pub(super) fn store_prefix(&self) -> String {
        format!("autoseg/attempt_{}", self.attempt)
    }
}

fn parse<T: std::str::FromStr>(variable: &'static str, text: &str) -> Result<T, DistError> {
    text.trim().parse().map_err(|_| DistError::Environment {
        variable,
        fault: format!("is {text:?}, not a number in range"),
    })
}
