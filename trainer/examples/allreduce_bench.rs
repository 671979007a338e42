//! The cost of data-parallel training's gradient all-reduce over Gloo on loopback: two ranks
//! (threads of this process, each with its own store client and process group, talking TCP
//! through 127.0.0.1 as two processes would) all-reduce f32 buffers of 1 to 128 MB; prints the
//! mean milliseconds per call and per MB. A 3d_fullres PlainConvUNet of nnU-Net's default plan
//! has about 31 M parameters (124 MB of gradients), the 2d one about 20 M.
//!
//! Usage: `cargo run --release -p autoseg-trainer --example allreduce_bench -- [ROUNDS]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use autoseg_trainer::distributed::{ProcessGroup, Rendezvous};
use tch::{Kind, Tensor};

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let world_size = 2;
    let groups: Vec<Arc<ProcessGroup>> = (0..world_size)
        .map(|rank| {
            std::thread::spawn(move || {
                let timeout = Duration::from_secs(120);
                ProcessGroup::join(&Rendezvous::loopback(port, rank, world_size, timeout))
                    .expect("the ranks meet")
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|j| j.join().expect("rank thread"))
        .collect();
    println!("| MB | ms per all-reduce | ms per MB |");
    println!("|---|---|---|");
    for mb in [1_i64, 4, 16, 64, 128] {
        let n = mb * 1024 * 1024 / 4;
        let runs: Vec<_> = groups
            .iter()
            .map(|g| {
                let g = Arc::clone(g);
                std::thread::spawn(move || {
                    let mut t = Tensor::ones([n], (Kind::Float, tch::Device::Cpu));
                    g.all_reduce_sum(&mut t).expect("warm-up");
                    g.barrier().expect("barrier");
                    let start = Instant::now();
                    for _ in 0..rounds {
                        g.all_reduce_sum(&mut t).expect("all-reduce");
                    }
                    start.elapsed().as_secs_f64() / rounds as f64
                })
            })
            .collect();
        let secs = runs
            .into_iter()
            .map(|r| r.join().expect("rank"))
            .fold(0.0, f64::max);
        println!(
            "| {mb} | {:.1} | {:.2} |",
            secs * 1e3,
            secs * 1e3 / mb as f64
        );
    }
}
