//! Devices by name: what the examples' `--device` / `--devices` flags and `burn-ternary serve`
//! accept, in one parser.

use burn::tensor::Device;
#[cfg(any(feature = "wgpu", feature = "vulkan"))]
use burn::tensor::DeviceKind;

/// Why a device name could not be turned into a device.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// Not a name [`parse_device`] knows.
    #[error(
        "unknown device {name:?} (flex, wgpu, wgpu:cpu, wgpu:N, vulkan, vulkan:N, ws://HOST:PORT[#N])"
    )]
    Unknown {
        /// The name given.
        name: String,
    },
    /// The part after `wgpu:` / `vulkan:` (or `#` of a remote host) is not an index.
    #[error("device {name:?}: {what}")]
    BadIndex {
        /// The name given.
        name: String,
        /// What was expected.
        what: &'static str,
    },
    /// A remote address that is not `ws://HOST:PORT` (an explicit port is required).
    #[error("remote device {name:?}: expected ws://HOST:PORT or ws://HOST:PORT#N")]
    BadAddress {
        /// The name given.
        name: String,
    },
    /// The device needs a cargo feature this build does not have.
    #[error(
        "device {name:?} needs the `{feature}` feature of burn-ternary (cargo run --features {feature})"
    )]
    NotBuilt {
        /// The name given.
        name: String,
        /// The feature.
        feature: &'static str,
    },
    /// The remote server could not be reached or refused the session.
    #[cfg(feature = "remote")]
    #[error("remote device {name:?}: {source}")]
    Connect {
        /// The name given.
        name: String,
        /// Burn Remote's reason.
        source: burn::remote::ConnectError,
    },
    /// A device that cannot host a `burn-remote` server (only Flex and Cube devices can).
    #[error("device {name} cannot host a server (flex, wgpu or vulkan devices can)")]
    CannotServe {
        /// The device.
        name: String,
    },
    /// A server hosts devices of one backend; these are of several.
    #[error("a server hosts devices of one backend: {devices} are not")]
    MixedBackends {
        /// The devices.
        devices: String,
    },
}

/// The device a name gives:
///
/// | name | device |
/// |---|---|
/// | `flex` (or `cpu`) | [`Device::flex`]: the CPU SIMD kernels |
/// | `wgpu`, `wgpu:cpu`, `wgpu:N` | wgpu's default adapter, its CPU adapter (e.g. Mesa's lavapipe), the N-th discrete GPU (feature `wgpu`) |
/// | `vulkan`, `vulkan:N` | Burn's native Vulkan device (feature `vulkan`) |
/// | `ws://HOST:PORT`, `ws://HOST:PORT#N` | device 0 (or N) of a `burn-ternary serve` server (feature `remote`); connects at once |
///
/// Surrounding blanks are ignored, and the local names are case-insensitive.
///
/// # Errors
/// [`DeviceError`] naming the input: an unknown name, a bad index, a remote address without a
/// port, a device of a feature this build lacks, or (remote) a server that cannot be reached
/// or has no device `N`.
pub fn parse_device(name: &str) -> Result<Device, DeviceError> {
    let name = name.trim();
    if name.starts_with("ws://") {
        return remote(name);
    }
    let lower = name.to_ascii_lowercase();
    let (api, which) = match lower.split_once(':') {
        Some((api, which)) => (api, Some(which)),
        None => (lower.as_str(), None),
    };
    match api {
        "flex" | "cpu" if which.is_none() => Ok(Device::flex()),
        "flex" | "cpu" => Err(DeviceError::BadIndex {
            name: name.into(),
            what: "the CPU device takes no index",
        }),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(kind(name, which)?)),
        #[cfg(feature = "vulkan")]
        "vulkan" => Ok(Device::vulkan(kind(name, which)?)),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" => Err(not_built(name, "wgpu")),
        #[cfg(not(feature = "vulkan"))]
        "vulkan" => Err(not_built(name, "vulkan")),
        _ => Err(DeviceError::Unknown { name: name.into() }),
    }
}

/// The adapter after `wgpu:` / `vulkan:` (`which`, lower-cased) of device `name`.
#[cfg(any(feature = "wgpu", feature = "vulkan"))]
fn kind(name: &str, which: Option<&str>) -> Result<DeviceKind, DeviceError> {
    Ok(match which {
        None => DeviceKind::DefaultDevice,
        Some("cpu") => DeviceKind::Cpu,
        Some(n) => DeviceKind::DiscreteGpu(n.parse().map_err(|_| DeviceError::BadIndex {
            name: name.into(),
            what: "give a GPU index or `cpu` after the colon",
        })?),
    })
}

#[cfg(not(all(feature = "wgpu", feature = "vulkan")))]
fn not_built(name: &str, feature: &'static str) -> DeviceError {
    DeviceError::NotBuilt {
        name: name.into(),
        feature,
    }
}

#[cfg(feature = "remote")]
fn remote(name: &str) -> Result<Device, DeviceError> {
    use burn::remote::RemoteHost;
    let (url, index) = match name.split_once('#') {
        Some((url, n)) => (
            url,
            n.parse::<usize>().map_err(|_| DeviceError::BadIndex {
                name: name.into(),
                what: "give the server's device index after `#`",
            })?,
        ),
        None => (name, 0),
    };
    // Without a port the websocket client would dial port 80.
    let has_port = url["ws://".len()..]
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !has_port {
        return Err(DeviceError::BadAddress { name: name.into() });
    }
    Device::remote_options(&RemoteHost::websocket(url))
        .device_index(index)
        .init()
        .map_err(|source| DeviceError::Connect {
            name: name.into(),
            source,
        })
}

#[cfg(not(feature = "remote"))]
fn remote(name: &str) -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt {
        name: name.into(),
        feature: "remote",
    })
}

/// A `burn-remote` server hosting `devices` with the ternary ops registered
/// ([`backend::remote::register`](crate::backend::remote::register)) for their backend; start
/// it with `serve` (blocks until Ctrl+C / SIGTERM) or `serve_async` (stops when dropped).
/// Clients pick a device by its position in `devices`.
///
/// Nothing is bound or connected until the server is started.
///
/// # Errors
/// [`DeviceError::CannotServe`] for a device that is not Flex or Cube (a remote device, for
/// one); [`DeviceError::MixedBackends`] for devices of several backends.
#[cfg(feature = "remote")]
pub fn ternary_server(devices: Vec<Device>) -> Result<burn::server::RemoteServer, DeviceError> {
    use crate::backend::remote::register;
    use burn::backend::DispatchDevice;
    let inner: Vec<Device> = devices.iter().map(|d| d.clone().inner()).collect();
    let backend = |d: &Device| std::mem::discriminant(d.as_dispatch());
    if inner.iter().any(|d| backend(d) != backend(&inner[0])) {
        return Err(DeviceError::MixedBackends {
            devices: format!("{inner:?}"),
        });
    }
    let server = burn::server::RemoteServer::new(devices);
    let first = inner.first();
    match first.map(Device::as_dispatch) {
        Some(DispatchDevice::Flex(_)) => Ok(register::<burn::backend::Flex>(server)),
        #[cfg(feature = "cube")]
        Some(DispatchDevice::Cube(_)) => Ok(register::<burn::backend::Cube>(server)),
        // No device: Burn's own `NoDevices` error when it starts.
        None => Ok(server),
        Some(other) => Err(DeviceError::CannotServe {
            name: format!("{other:?}"),
        }),
    }
}
