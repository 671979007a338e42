//! The pickle reader on files written by Python (`scripts/make_nnunet_pickle_fixtures.py`): a
//! torch checkpoint laid out as nnU-Net's, read with its known values, and pickles that would
//! run code under Python, refused by name with nothing run.

use std::path::{Path, PathBuf};

use autoseg_planner::pickle::{unpickle, PickleError, Policy, Value};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/data/nnunet")
        .join(name)
}

fn read(name: &str) -> Result<Value, PickleError> {
    unpickle(&std::fs::read(fixture(name)).unwrap(), &Policy::default())
}

#[test]
fn a_torch_checkpoint_reads_with_its_tensors_logs_and_arguments() {
    let ckpt = read("tiny_checkpoint.data.pkl").unwrap();
    assert_eq!(
        ckpt.get("trainer_name").and_then(Value::as_str),
        Some("nnUNetTrainer")
    );
    assert_eq!(ckpt.get("current_epoch").and_then(Value::as_int), Some(2));
    let axes = ckpt.get("inference_allowed_mirroring_axes").unwrap();
    assert_eq!(
        axes,
        &Value::Tuple(vec![Value::Int(0), Value::Int(1), Value::Int(2)])
    );
    // numpy float64 scalars in the training log, and the best EMA.
    let ema = ckpt
        .get("logging")
        .and_then(|l| l.get("ema_fg_dice"))
        .unwrap();
    assert_eq!(
        ema,
        &Value::List(vec![Value::Float(0.25), Value::Float(0.275)])
    );
    assert_eq!(ckpt.get("_best_ema"), Some(&Value::Float(0.275)));
    let init = ckpt.get("init_args").unwrap();
    assert_eq!(
        init.get("configuration").and_then(Value::as_str),
        Some("3d_fullres")
    );
    assert_eq!(init.get("device").and_then(Value::as_str), Some("cpu"));
    let patch = init
        .get("plans")
        .and_then(|p| p.get("configurations"))
        .and_then(|c| c.get("3d_fullres"))
        .and_then(|c| c.get("patch_size"))
        .unwrap();
    assert_eq!(
        patch,
        &Value::List(vec![Value::Int(8), Value::Int(16), Value::Int(16)])
    );

    let Some(Value::Dict(weights)) = ckpt.get("network_weights") else {
        panic!("network_weights is not a dict");
    };
    let names: Vec<&str> = weights.iter().filter_map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "encoder.stages.0.0.convs.0.conv.weight",
            "encoder.stages.0.0.convs.0.conv.bias",
            "decoder.seg_layers.0.weight",
            "norm.num_batches_tracked",
            "half",
            "view"
        ]
    );
    let tensor = |i: usize| match &weights[i].1 {
        Value::Tensor(t) => t.clone(),
        other => panic!("entry {i} is a {}", other.kind()),
    };
    let w = tensor(0);
    assert_eq!(
        (w.storage.class.as_str(), w.storage.numel),
        ("FloatStorage", 24)
    );
    assert_eq!(
        (w.size, w.stride, w.offset),
        (vec![2, 1, 3, 4], vec![12, 12, 4, 1], 0)
    );
    assert_eq!(tensor(3).storage.class, "LongStorage");
    assert!(tensor(3).size.is_empty());
    assert_eq!(tensor(4).storage.class, "HalfStorage");
    // base[4:16].view(3, 4)[:, 1:3]: offset 5, strides (4, 1), a 20-element storage.
    let view = tensor(5);
    assert_eq!(
        (view.offset, view.size, view.stride),
        (5, vec![3, 2], vec![4, 1])
    );
    assert_eq!(view.storage.numel, 20);
    // Each storage its own archive entry.
    let keys: Vec<String> = (0..6).map(|i| tensor(i).storage.key).collect();
    assert_eq!(keys, ["0", "1", "2", "3", "4", "5"]);
}

#[test]
fn pickles_that_would_run_code_are_refused_by_name() {
    let marker = Path::new("/tmp/autoseg-pickle-was-run");
    let _ = std::fs::remove_file(marker);
    for (file, module, name) in [
        ("malicious_shell.pkl", "posix", "system"),
        ("malicious_eval.pkl", "builtins", "eval"),
        // Protocol 2 writes subprocess.Popen under its Python 2 name.
        ("malicious_popen.pkl", "commands", "Popen"),
    ] {
        let err = read(file).unwrap_err();
        assert_eq!(
            err,
            PickleError::ForbiddenGlobal {
                module: module.into(),
                name: name.into()
            },
            "{file}"
        );
        assert!(
            err.to_string().contains(&format!("{module}.{name}")),
            "{err}"
        );
    }
    assert!(!marker.exists(), "a pickle ran code");
}

#[test]
fn allowed_names_are_values_never_calls() {
    // pickle.dumps((os.system,), protocol=2): a reference without a call.
    let reference = b"\x80\x02cposix\nsystem\nq\x00\x85q\x01.";
    let policy = Policy {
        value_globals: &[("posix", "system")],
    };
    let value = unpickle(reference, &policy).unwrap();
    assert_eq!(
        value,
        Value::Tuple(vec![Value::Global {
            module: "posix".into(),
            name: "system".into()
        }])
    );
    // Allowed as a value is not allowed as a call.
    let shell = std::fs::read(fixture("malicious_shell.pkl")).unwrap();
    assert_eq!(
        unpickle(&shell, &policy).unwrap_err(),
        PickleError::ForbiddenCall {
            module: "posix".into(),
            name: "system".into()
        }
    );
}

#[test]
fn hostile_programs_are_refused_without_panicking() {
    let policy = Policy::default();
    // A length far past the end, a truncated program, a stack underflow, a reference to
    // nothing, an unsupported opcode.
    let cases: [(&[u8], &str); 6] = [
        (b"\x80\x02X\xff\xff\xff\x7fabc", "truncated"),
        (b"\x80\x02]q\x00", "truncated"),
        (b"\x80\x02a.", "malformed"),
        (b"\x80\x02h\x07.", "never stored"),
        (b"\x80\x02i", "opcode"),
        (b"\x80\x02\x8b\xff\xff\xff\xff", "truncated"),
    ];
    for (bytes, expected) in cases {
        let err = unpickle(bytes, &policy).unwrap_err().to_string();
        assert!(err.contains(expected), "{bytes:?}: {err}");
    }
    // A billion laughs: each list holds the previous one ten times.
    let mut laughs = b"\x80\x02]q\x00".to_vec();
    for level in 1..=12u8 {
        laughs.extend(b"(");
        laughs.extend(std::iter::repeat_n([b'h', level - 1], 10).flatten());
        laughs.extend([b'l', b'q', level]);
    }
    laughs.push(b'.');
    let err = unpickle(&laughs, &policy).unwrap_err();
    assert!(matches!(err, PickleError::TooLarge { .. }), "{err}");
    // Nesting past the depth limit.
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b']', 1000));
    deep.extend(std::iter::repeat_n(b'a', 999));
    deep.push(b'.');
    let err = unpickle(&deep, &policy).unwrap_err();
    assert!(matches!(err, PickleError::TooLarge { .. }), "{err}");
}

#[test]
fn mutations_of_a_real_checkpoint_never_panic() {
    let seed = std::fs::read(fixture("tiny_checkpoint.data.pkl")).unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut accepted = 0;
    for _ in 0..5000 {
        let mut bytes = seed.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        if next() % 4 == 0 {
            bytes.truncate((next() % bytes.len() as u64) as usize);
        }
        accepted += usize::from(unpickle(&bytes, &Policy::default()).is_ok());
    }
    assert!(accepted < 5000, "every mutation was accepted");
}
