//! A Python pickle reader that never executes anything: nnU-Net's files (`checkpoint_*.pth`'s
//! `data.pkl`, `postprocessing.pkl`) are pickles, and a pickle is a program that may name any
//! Python function and call it. This reader runs the program on its own stack machine, knows
//! the handful of globals a checkpoint needs (the set `torch.load(weights_only=True)` allows,
//! plus the numpy scalars nnU-Net's training logs hold) and interprets those itself; any other
//! global is refused with its name unless the caller lists it as an inert value (postprocessing
//! function names), and a call of anything it does not interpret is refused too.
//!
//! Hostile input gets an error, never a panic or an unbounded allocation: lengths are checked
//! against the bytes present, nesting is capped, and shared references are expanded under a
//! budget (a "billion laughs" pickle is refused).
//!
//! ```
//! use autoseg_planner::pickle::{unpickle, Policy, Value};
//! // pickle.dumps({"a": [1, 2.5]}, protocol=2)
//! let bytes = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00es.";
//! let value = unpickle(bytes, &Policy::default())?;
//! let entry = value.get("a").unwrap();
//! assert_eq!(entry, &Value::List(vec![Value::Int(1), Value::Float(2.5)]));
//! # Ok::<(), autoseg_planner::pickle::PickleError>(())
//! ```
//!
//! [`to_pickle`] writes the same kinds of values back (protocol 2, as `torch.save` does).

mod globals;
mod machine;
mod value;
mod write;

pub use machine::unpickle;
pub use value::{Dtype, StorageRef, TensorRef, Value};
pub use write::to_pickle;

/// Which globals a pickle may name beyond those the reader interprets itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// `(module, name)` pairs accepted as inert [`Value::Global`]s (never called), e.g. the
    /// postprocessing functions `postprocessing.pkl` refers to.
    pub value_globals: &'static [(&'static str, &'static str)],
}

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PickleError {
    /// The pickle names a global this reader does not allow; nothing was loaded or run.
    #[error("refers to the Python global {module}.{name}, which is not allowed in this file (loading it would import and possibly run code)")]
    ForbiddenGlobal {
        /// The module.
        module: String,
        /// The attribute.
        name: String,
    },
    /// The pickle calls a global this reader does not interpret.
    #[error("calls {module}.{name}, which this reader does not run")]
    ForbiddenCall {
        /// The module.
        module: String,
        /// The attribute.
        name: String,
    },
    /// An opcode this reader does not support (old protocols, extensions, out-of-band buffers).
    #[error("unsupported pickle opcode 0x{opcode:02x} at byte {at}")]
    Opcode {
        /// The opcode.
        opcode: u8,
        /// Its offset.
        at: usize,
    },
    /// The program ends before `STOP`, or an argument runs past the end.
    #[error("truncated pickle: {what} at byte {at} runs past the end")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Its offset.
        at: usize,
    },
    /// The program is not well formed (stack underflow, a missing mark, a bad memo index, a
    /// call with arguments of the wrong kind).
    #[error("malformed pickle at byte {at}: {what}")]
    Malformed {
        /// What is wrong.
        what: String,
        /// The offset of the opcode.
        at: usize,
    },
    /// Nesting or shared references expand past the reader's limits.
    #[error(
        "the pickle expands beyond {limit} (nested too deeply or references repeated too often)"
    )]
    TooLarge {
        /// The limit passed.
        limit: &'static str,
    },
    /// [`to_pickle`] was given something it does not write.
    #[error("cannot write a {kind} as a pickle")]
    Unwritable {
        /// What it was.
        kind: &'static str,
    },
}
