//! Known answers of the process group: torchrun's variables, and two ranks over Gloo on
//! loopback (threads of one process, each with its own store client and group).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tch::Tensor;

use super::{Culprit, DistError, ProcessGroup, Rendezvous};

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

const T: Duration = Duration::from_secs(60);

#[test]
fn torchrun_variables_make_a_rendezvous() {
    let env = vars(&[
        ("WORLD_SIZE", "4"),
        ("RANK", "3"),
        ("LOCAL_RANK", "1"),
        ("MASTER_ADDR", "node7"),
        ("MASTER_PORT", "29500"),
        ("TORCHELASTIC_USE_AGENT_STORE", "True"),
        ("TORCHELASTIC_RESTART_COUNT", "2"),
    ]);
    let r = Rendezvous::from_vars(env, T).unwrap().unwrap();
    assert_eq!((r.rank, r.world_size, r.local_rank), (3, 4, 1));
    assert_eq!(r.address(), "node7:29500");
    assert!(r.agent_store);
    assert_eq!(r.store_prefix(), "autoseg/attempt_2");
}

#[test]
fn no_world_or_a_world_of_one_is_a_single_process() {
    assert_eq!(Rendezvous::from_vars(vars(&[]), T).unwrap(), None);
    let one = vars(&[("WORLD_SIZE", "1")]);
    assert_eq!(Rendezvous::from_vars(one, T).unwrap(), None);
}

#[test]
fn bad_variables_are_named() {
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("WORLD_SIZE", "two")], "WORLD_SIZE"),
        (
            &[
                ("WORLD_SIZE", "2"),
                ("MASTER_ADDR", "h"),
                ("MASTER_PORT", "1"),
            ],
            "RANK",
        ),
        (
            &[
                ("WORLD_SIZE", "2"),
                ("RANK", "2"),
                ("MASTER_ADDR", "h"),
                ("MASTER_PORT", "1"),
            ],
            "RANK",
        ),
        (
            &[("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_PORT", "1")],
            "MASTER_ADDR",
        ),
        (
            &[
                ("WORLD_SIZE", "2"),
                ("RANK", "0"),
                ("MASTER_ADDR", "h"),
                ("MASTER_PORT", "70000"),
            ],
            "MASTER_PORT",
        ),
    ];
    for (pairs, variable) in cases {
        match Rendezvous::from_vars(vars(pairs), T) {
            Err(DistError::Environment { variable: v, .. }) => assert_eq!(v, variable, "{pairs:?}"),
            other => panic!("{pairs:?}: {other:?}"),
        }
    }
}

/// A free loopback port (bound, then released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Rendezvous of `rank` of a `world_size` group on loopback `port`.
pub(crate) fn loopback(port: u16, rank: usize, world_size: usize) -> Rendezvous {
    Rendezvous::loopback(port, rank, world_size, T)
}

/// Joins a loopback group of `world_size` ranks from as many threads.
pub(crate) fn loopback_group(world_size: usize) -> Vec<Arc<ProcessGroup>> {
    let port = free_port();
    let joins: Vec<_> = (0..world_size)
        .map(|rank| {
            std::thread::spawn(move || ProcessGroup::join(&loopback(port, rank, world_size)))
        })
        .collect();
    joins
        .into_iter()
        .map(|j| j.join().unwrap().unwrap())
        .collect()
}

#[test]
fn two_ranks_sum_broadcast_and_meet() {
    let groups = loopback_group(2);
    let runs: Vec<_> = groups
        .into_iter()
        .map(|pg| {
            std::thread::spawn(move || {
                let r = pg.rank() as f32;
                let mut t = Tensor::from_slice(&[1.0_f32 + r, 10.0 * r, -2.0]);
                pg.all_reduce_sum(&mut t).unwrap();
                let sum = Vec::<f32>::try_from(&t).unwrap();
                let mut b = Tensor::from_slice(&[r + 5.0, r]);
                pg.broadcast(&mut b, 1).unwrap();
                let broadcast = Vec::<f32>::try_from(&b).unwrap();
                pg.barrier().unwrap();
                let any = pg.any(pg.rank() == 1).unwrap();
                let none = pg.any(false).unwrap();
                let sums = pg.sum_f64(&[0.5, pg.rank() as f64]).unwrap();
                (sum, broadcast, any, none, sums)
            })
        })
        .collect();
    for run in runs {
        let (sum, broadcast, any, none, sums) = run.join().unwrap();
        assert_eq!(sum, vec![3.0, 10.0, -4.0]);
        assert_eq!(broadcast, vec![6.0, 1.0]);
        assert!(any && !none);
        assert_eq!(sums, vec![1.0, 1.0]);
    }
}

#[test]
fn a_rank_that_leaves_is_named_by_the_survivor() {
    let mut groups = loopback_group(2);
    let survivor = groups.remove(0);
    // Rank 1 leaves: its group closes its connections and its heartbeat stops.
    drop(groups);
    let started = Instant::now();
    let mut t = Tensor::from_slice(&[1.0_f32]);
    let err = survivor.all_reduce_sum(&mut t).unwrap_err();
    match &err {
        DistError::Collective {
            rank: 0,
            culprit: Culprit::Ranks(ranks),
            ..
        } => {
            assert_eq!(ranks, &vec![1], "{err}");
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string().contains("rank 1 stopped answering"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_unreachable_store_is_a_rendezvous_error() {
    let mut r = loopback(free_port(), 1, 2);
    r.timeout = Duration::from_secs(2);
    let err = ProcessGroup::join(&r).unwrap_err();
    assert!(
        matches!(err, DistError::Rendezvous { rank: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("127.0.0.1:"), "{err}");
}
