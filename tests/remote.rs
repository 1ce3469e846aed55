//! Packed ternary layers on Burn's Remote backend, over loopback: each test starts its own
//! `burn-ternary serve --port 0` (the CLI binary, as a user would), connects a client device
//! to it, and stops it when the test ends (the process is killed on drop). Every wait is
//! bounded, so a server that hangs fails the test instead of stalling it.
#![cfg(feature = "remote")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::tensor::{DType, Device, Distribution, FloatDType, Tensor, Tolerance};
use burn_ternary::nn::{TernaryConv2dConfig, TernaryLinear, TernaryLinearConfig, freeze};
use burn_ternary::ops::{ConvEpilogue, FusedMaxPool, TernaryConvOptions, ternary_conv2d};
use burn_ternary::quant::{ActivationQuant, Granularity};
use burn_ternary::{DeviceError, parse_device};

/// What a client process started by [`a_client_killed_mid_request_leaves_the_server_serving`]
/// reads its server's address from.
const CLIENT_ENV: &str = "BURN_TERNARY_TEST_REMOTE_CLIENT";

/// What a client reads when its session ended on the server (Burn's words; they do not
/// name the op, the server's log does).
const CLIENT_SEES: &str = "Failed to read tensor";

/// A `burn-ternary serve` child process and the lines it has printed.
struct Server {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    /// `ws://127.0.0.1:PORT`.
    url: String,
}

impl Server {
    fn start(devices: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_burn-ternary"))
            .args(["serve", "--port", "0", "--device", devices])
            .env("RUST_LOG", "info,wgpu=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start burn-ternary serve");
        let (tx, lines) = channel();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut server = Server {
            child,
            lines,
            seen: vec![],
            url: String::new(),
        };
        let line = server.wait_for("listening on ws://", Duration::from_secs(120));
        server.url = line["listening on ".len()..].trim().to_string();
        server
    }

    /// The first line (printed since the start) containing `needle`; panics after `timeout`
    /// with everything the server printed.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.seen.push(line.clone());
                    if hit {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "the server did not print {needle:?} within {timeout:?}; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A child process killed (and reaped) when the test ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Runs `f` on its own thread and fails the test if it takes longer than `timeout`.
fn within<T: Send + 'static>(timeout: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        tx.send(f()).ok();
    });
    match rx.recv_timeout(timeout) {
        Ok(v) => v,
        Err(RecvTimeoutError::Timeout) => panic!("no answer within {timeout:?}"),
        // The thread's own panic message is printed above this one.
        Err(RecvTimeoutError::Disconnected) => panic!("the call panicked"),
    }
}

fn pool() -> ConvEpilogue {
    ConvEpilogue {
        relu: true,
        max_pool: Some(FusedMaxPool {
            kernel_size: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
            dilation: [1, 1],
        }),
    }
}

#[test]
fn packed_layers_on_a_flex_server_equal_local_flex_bit_for_bit() {
    let server = Server::start("flex");
    let url = server.url.clone();
    within(Duration::from_secs(600), move || flex_server_cases(&url));
}

fn flex_server_cases(url: &str) {
    let remote = parse_device(url).unwrap();
    let cpu = Device::flex();
    // Linear: every scale granularity, both activation modes, GEMV and GEMM sizes. The server
    // runs the same Flex kernels on the same values, so the results are identical.
    for activation in [ActivationQuant::None, ActivationQuant::Int8PerToken] {
        for granularity in [
            Granularity::PerTensor,
            Granularity::PerChannel,
            Granularity::PerGroup { group_size: 128 },
        ] {
            let layer = TernaryLinearConfig::new(300, 70)
                .with_granularity(granularity)
                .with_activation(activation)
                .with_bias(true)
                .init(&cpu);
            let packed: TernaryLinear = freeze(layer).unwrap();
            let there = packed.clone().to_device(&remote);
            for m in [1, 9] {
                let x = Tensor::<2>::random([m, 300], Distribution::Normal(0.0, 1.0), &cpu);
                let want = packed.forward(x.clone()).into_data();
                let got = there.forward(x.to_device(&remote)).into_data();
                assert_eq!(got, want, "linear {activation:?} {granularity:?} m = {m}");
            }
            // The dequantized weights (the op the straight-through backward uses).
            assert_eq!(
                there.effective_weight().into_data(),
                packed.effective_weight().into_data()
            );
        }
    }
    // Conv: plain, with the fused epilogue, with a residual, and the epilogue alone.
    for activation in [ActivationQuant::None, ActivationQuant::Int8PerImage] {
        let layer = TernaryConv2dConfig::new([6, 8], [3, 3])
            .with_padding([1, 1])
            .with_stride([1, 2])
            .with_groups(2)
            .with_bias(true)
            .with_granularity(Granularity::PerChannel)
            .with_activation(activation)
            .init(&cpu);
        let packed = layer.freeze().unwrap();
        let x = Tensor::<4>::random([2, 6, 9, 8], Distribution::Normal(0.0, 1.0), &cpu);
        for epilogue in [ConvEpilogue::default(), pool()] {
            let packed = packed.clone().with_epilogue(epilogue);
            let there = packed.clone().to_device(&remote);
            let want = packed.forward(x.clone());
            let got = there.forward(x.clone().to_device(&remote));
            assert_eq!(got.into_data(), want.into_data(), "conv {epilogue:?}");
            let plain = packed.clone().with_epilogue(ConvEpilogue::default());
            let r = Tensor::<4>::random(
                plain.forward(x.clone()).dims(),
                Distribution::Normal(0.0, 1.0),
                &cpu,
            );
            let want = packed.forward_residual(x.clone(), r.clone());
            let got = there.forward_residual(x.clone().to_device(&remote), r.to_device(&remote));
            assert_eq!(got.into_data(), want.into_data(), "residual {epilogue:?}");
        }
        let y = Tensor::<4>::random([2, 5, 7, 6], Distribution::Normal(0.0, 1.0), &cpu);
        assert_eq!(
            pool().apply(y.clone().to_device(&remote)).into_data(),
            pool().apply(y).into_data()
        );
        // The plain conv op (the layer always takes the fused one), with and without bias,
        // at 64-column scale groups (K = 6·9 = 54: one ragged group; 8·9 = 72 per group of
        // the grouped conv: two).
        for (ci, groups) in [(6, 1), (16, 2)] {
            let layer = TernaryConv2dConfig::new([ci, 4], [3, 3])
                .with_padding([1, 1])
                .with_groups(groups)
                .with_bias(true)
                .with_granularity(Granularity::PerGroup { group_size: 64 })
                .with_activation(activation)
                .init(&cpu)
                .freeze()
                .unwrap();
            let x = Tensor::<4>::random([2, ci, 6, 5], Distribution::Normal(0.0, 1.0), &cpu);
            let options = TernaryConvOptions {
                kernel_size: [3, 3],
                stride: [1, 1],
                padding: [1, 1],
                dilation: [1, 1],
                groups,
            };
            let int8 = activation != ActivationQuant::None;
            let there = layer.clone().to_device(&remote);
            for bias in [None, layer.bias.as_ref().map(|b| b.val())] {
                let want = ternary_conv2d(
                    x.clone(),
                    layer.packed.val(),
                    layer.scales.val(),
                    bias.clone(),
                    options,
                    int8,
                );
                let got = ternary_conv2d(
                    x.clone().to_device(&remote),
                    there.packed.val(),
                    there.scales.val(),
                    bias.map(|b| b.to_device(&remote)),
                    options,
                    int8,
                );
                assert_eq!(
                    got.into_data(),
                    want.into_data(),
                    "plain conv {ci} {groups}"
                );
            }
            // Through the layer (the fused op) at this granularity too.
            assert_eq!(
                there.forward(x.clone().to_device(&remote)).into_data(),
                layer.forward(x).into_data()
            );
        }
    }
    // f16 activations: the output is f16 on the server too (what the client declares).
    let layer: TernaryLinear =
        freeze(TernaryLinearConfig::new(64, 8).with_bias(true).init(&cpu)).unwrap();
    let x = Tensor::<2>::random([3, 64], Distribution::Normal(0.0, 1.0), &cpu);
    let want = layer.forward(x.clone()).into_data();
    let got = layer
        .to_device(&remote)
        .forward(x.to_device(&remote).cast(FloatDType::F16));
    assert_eq!(got.dtype(), DType::F16);
    // Followed by another op, so that a buffer of another type would be misread.
    let got = (got * 1.0).cast(FloatDType::F32).into_data();
    got.assert_approx_eq::<f32>(&want, Tolerance::rel_abs(2e-2, 5e-2));
}

#[test]
fn gradients_through_a_remote_device_equal_local_ones() {
    let server = Server::start("flex");
    let url = server.url.clone();
    within(Duration::from_secs(300), move || gradient_case(&url));
}

fn gradient_case(url: &str) {
    let remote = parse_device(url).unwrap().autodiff();
    let cpu = Device::flex().autodiff();
    // A training layer (fake quantization: Burn's own ops) and a packed one (its backward is
    // the straight-through dequantize op, shipped to the server), one after the other.
    let train = TernaryLinearConfig::new(64, 32).init(&cpu);
    let packed: TernaryLinear = freeze(TernaryLinearConfig::new(32, 8).init(&cpu)).unwrap();
    let x = Tensor::<2>::random([4, 64], Distribution::Default, &cpu).require_grad();
    let grads = packed.forward(train.forward(x.clone())).sum().backward();
    let (gw, gx) = (train.weight.grad(&grads).unwrap(), x.grad(&grads).unwrap());

    let (train, packed) = (train.fork(&remote), packed.fork(&remote));
    let x = Tensor::<2>::from_data(x.to_data(), &remote).require_grad();
    let grads = packed.forward(train.forward(x.clone())).sum().backward();
    let tol = Tolerance::rel_abs(1e-6, 1e-7);
    train
        .weight
        .grad(&grads)
        .unwrap()
        .into_data()
        .assert_approx_eq::<f32>(&gw.into_data(), tol);
    x.grad(&grads)
        .unwrap()
        .into_data()
        .assert_approx_eq::<f32>(&gx.into_data(), tol);
}

#[test]
#[cfg(feature = "wgpu")]
fn packed_layers_on_a_wgpu_server_equal_local_flex() {
    // lavapipe on CPU-only machines: the server's Cube handlers and the CubeCL kernels.
    let server = Server::start("wgpu:cpu");
    let url = server.url.clone();
    within(Duration::from_secs(600), move || wgpu_server_cases(&url));
}

#[cfg(feature = "wgpu")]
fn wgpu_server_cases(url: &str) {
    let remote = parse_device(url).unwrap();
    let cpu = Device::flex();
    let layer = TernaryLinearConfig::new(1000, 130)
        .with_granularity(Granularity::PerGroup { group_size: 128 })
        .with_activation(ActivationQuant::Int8PerToken)
        .init(&cpu);
    let packed: TernaryLinear = freeze(layer).unwrap();
    let there = packed.clone().to_device(&remote);
    for m in [1, 100] {
        let x = Tensor::<2>::random([m, 1000], Distribution::Normal(0.0, 1.0), &cpu);
        let want = packed.forward(x.clone()).into_data();
        let got = there.forward(x.to_device(&remote)).into_data();
        // W2A8 may round an exact activation tie differently: one int8 step.
        got.assert_approx_eq::<f32>(&want, Tolerance::rel_abs(1e-4, 1e-4));
    }
    let conv = TernaryConv2dConfig::new([4, 8], [3, 3])
        .with_padding([1, 1])
        .with_bias(true)
        .init(&cpu)
        .freeze()
        .unwrap()
        .with_epilogue(pool());
    let x = Tensor::<4>::random([2, 4, 7, 6], Distribution::Normal(0.0, 1.0), &cpu);
    let want = conv.forward(x.clone()).into_data();
    let got = conv.to_device(&remote).forward(x.to_device(&remote));
    got.into_data()
        .assert_approx_eq::<f32>(&want, Tolerance::rel_abs(1e-4, 1e-4));
}

#[test]
fn an_unknown_op_is_an_error_for_the_client_and_the_server_keeps_serving() {
    use burn::backend::ir::{CustomOpIr, OperationOutput, TensorIr};
    use burn::backend::{BackendTensor, DispatchDevice, DispatchTensor, DispatchTensorKind};
    use burn::remote::CustomOpClient;

    let mut server = Server::start("flex");
    let url = server.url.clone();
    // What a client built against another op set sends: an id the server has no handler for.
    let failed = within(Duration::from_secs(120), move || {
        let device = parse_device(&url).unwrap();
        let DispatchDevice::Remote(remote) = device.as_dispatch().clone() else {
            unreachable!()
        };
        let client = CustomOpClient::new(&remote);
        let out = TensorIr::uninit(
            client.create_empty_handle(),
            [2, 2].into(),
            burn::tensor::DType::F32,
        );
        let y = client
            .register(CustomOpIr::new("burn_ternary/0/no_such_op", &[], &[out]))
            .output();
        let y = Tensor::<2>::from_dispatch(DispatchTensor {
            kind: DispatchTensorKind::Remote(BackendTensor::Float(y)),
            autodiff: Default::default(),
        });
        y.try_into_data()
    });
    let err = failed.expect_err("an op the server does not know must fail");
    println!("client error: {err}");
    assert!(err.to_string().contains(CLIENT_SEES), "{err}");
    // The server names the op in its log, and keeps running for other clients.
    server.wait_for("burn_ternary/0/no_such_op", Duration::from_secs(30));
    assert!(server.is_running());
    let again = server.url.replace("127.0.0.1", "localhost"); // a new session
    let x = within(Duration::from_secs(120), move || {
        let device = parse_device(&again).unwrap();
        (Tensor::<1>::from_floats([1.0, 2.0], &device) * 2.0).into_data()
    });
    assert_eq!(x.try_to_vec::<f32>().unwrap(), [2.0, 4.0]);
}

/// Not a test on its own: the client process of the next test, which sets [`CLIENT_ENV`] and
/// kills it while its request runs. Returns at once when run without it.
#[test]
#[ignore = "a helper process of a_client_killed_mid_request_leaves_the_server_serving"]
fn remote_client_process() {
    let Ok(url) = std::env::var(CLIENT_ENV) else {
        return;
    };
    let device = parse_device(&url).unwrap();
    let layer: TernaryLinear =
        freeze(TernaryLinearConfig::new(2048, 2048).init(&Device::flex())).unwrap();
    let layer = layer.to_device(&device);
    let x = Tensor::<2>::random([256, 2048], Distribution::Default, &device);
    let mut y = layer.forward(x);
    for _ in 0..20 {
        y = layer.forward(y);
    }
    println!("requests sent");
    let _ = y.into_data();
}

#[test]
fn a_client_killed_mid_request_leaves_the_server_serving() {
    let mut server = Server::start("flex");
    let mut client = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "remote_client_process",
                "--ignored",
                "--nocapture",
            ])
            .env(CLIENT_ENV, &server.url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = BufReader::new(client.0.stdout.take().unwrap());
    let sent = within(Duration::from_secs(300), move || {
        out.lines()
            .map_while(Result::ok)
            .any(|l| l.contains("requests sent"))
    });
    assert!(sent, "the client process ended before sending its requests");
    // The client is waiting for the result of 21 GEMMs of 256 × 2048 × 2048 (seconds of work
    // on the server): kill it, so that its connection drops mid-request.
    std::thread::sleep(Duration::from_millis(300));
    client.0.kill().unwrap();
    client.0.wait().unwrap();
    // The server logs the broken session and goes on serving a new client.
    server.wait_for("failed WebSocket remote session", Duration::from_secs(300));
    assert!(server.is_running());
    let url = server.url.clone();
    let x = within(Duration::from_secs(300), move || {
        let device = parse_device(&url).unwrap();
        let layer: TernaryLinear =
            freeze(TernaryLinearConfig::new(8, 2).init(&Device::flex())).unwrap();
        let x = Tensor::<2>::ones([1, 8], &Device::flex());
        let want = layer.forward(x.clone()).into_data();
        let got = layer.to_device(&device).forward(x.to_device(&device));
        (got.into_data(), want)
    });
    assert_eq!(x.0, x.1);
}

#[test]
#[cfg(unix)]
fn sigterm_stops_the_server_cleanly() {
    let mut server = Server::start("flex");
    let url = server.url.clone();
    within(Duration::from_secs(120), move || {
        let device = parse_device(&url).unwrap();
        (Tensor::<1>::ones([3], &device) + 1.0).into_data()
    });
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop within 60 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    server.wait_for("server stopped", Duration::from_secs(10));
}

#[test]
fn bad_device_names_and_unreachable_servers_are_typed_errors() {
    assert!(matches!(
        parse_device("tpu"),
        Err(DeviceError::Unknown { name }) if name == "tpu"
    ));
    #[cfg(feature = "wgpu")]
    assert!(matches!(
        parse_device("wgpu:first"),
        Err(DeviceError::BadIndex { .. })
    ));
    assert!(matches!(
        parse_device("ws://127.0.0.1:1#x"),
        Err(DeviceError::BadIndex { .. })
    ));
    assert!(matches!(
        parse_device("flex:0"),
        Err(DeviceError::BadIndex { .. })
    ));
    // Without a port the websocket client would dial port 80.
    for name in ["ws://127.0.0.1", "ws://:3000", "ws://host:port"] {
        assert!(
            matches!(parse_device(name), Err(DeviceError::BadAddress { .. })),
            "{name}"
        );
    }
    // Blanks (`--devices "flex, flex"`) and case do not matter for local names.
    assert!(parse_device(" FLEX ").is_ok());
    #[cfg(feature = "wgpu")]
    assert!(matches!(
        burn_ternary::device::ternary_server(vec![
            Device::flex(),
            Device::wgpu(burn::tensor::DeviceKind::Cpu)
        ]),
        Err(DeviceError::MixedBackends { .. })
    ));
    // Nothing listens on port 1.
    let err = within(Duration::from_secs(120), || {
        parse_device("ws://127.0.0.1:1").map(|_| ())
    })
    .unwrap_err();
    assert!(matches!(err, DeviceError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("ws://127.0.0.1:1"), "{err}");
    // A server with one device has no device #1.
    let server = Server::start("flex");
    let name = format!("{}#1", server.url);
    let err = within(Duration::from_secs(120), move || {
        parse_device(&name).map(|_| ())
    })
    .unwrap_err();
    assert!(err.to_string().contains("#1"), "{err}");
    // The CLI refuses an unknown device before it listens.
    let out = Command::new(env!("CARGO_BIN_EXE_burn-ternary"))
        .args(["serve", "--port", "0", "--device", "tpu"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown device \"tpu\""));
    // ... and a remote device, which it would otherwise connect to first.
    let out = Command::new(env!("CARGO_BIN_EXE_burn-ternary"))
        .args(["serve", "--port", "0", "--device", "ws://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a remote device"));
}
