//! The ternary 2-D convolution on the device: a direct convolution on the packed filters,
//! one output per unit (a cube of 256 units over output positions × output channels, shaped
//! by the [`ConvVariant`]; one cube layer per image), zero padding, stride, dilation and
//! groups. Float activations accumulate in f32; int8 activations (quantized once per image by
//! [`quantize_rows`], one row per image) accumulate exact `i32` sums. [`ConvStrategy::Autotune`]
//! times every cube shape on the device on the first conv of a geometry and keeps the fastest.
//! Not tiled through shared memory yet: choosing those tiles needs a GPU to measure on.

use cubecl::prelude::*;
use cubecl::server::Handle;
use cubecl::tune::{LocalTuner, Tunable, TunableSet, local_tuner};

#[cfg(doc)]
use super::quantize_rows;
use super::{
    BLOCK, BLOCK_WORDS, DeviceActivations, DeviceMatrix, SLICE, TuneId, group_scale, row_scale,
    row_words, store_w2a8,
};

/// The shape of a conv cube: 256 units over (output positions, output channels). Every
/// variant computes the same values (W2A8: the same exact sums; float: the same f32 order,
/// since each output is one unit's own loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvVariant {
    /// 16 positions × 16 channels.
    Pos16Ch16,
    /// 32 positions × 8 channels: for few output channels over large planes.
    Pos32Ch8,
    /// 64 positions × 4 channels.
    Pos64Ch4,
    /// 8 positions × 32 channels: for many channels over small planes.
    Pos8Ch32,
}

impl ConvVariant {
    /// Every variant, in the order autotune measures them.
    pub const ALL: [ConvVariant; 4] = [
        ConvVariant::Pos16Ch16,
        ConvVariant::Pos32Ch8,
        ConvVariant::Pos64Ch4,
        ConvVariant::Pos8Ch32,
    ];

    /// A stable name (autotune results are recorded under it).
    pub fn name(self) -> &'static str {
        match self {
            ConvVariant::Pos16Ch16 => "conv-pos16-ch16",
            ConvVariant::Pos32Ch8 => "conv-pos32-ch8",
            ConvVariant::Pos64Ch4 => "conv-pos64-ch4",
            ConvVariant::Pos8Ch32 => "conv-pos8-ch32",
        }
    }

    /// `(positions, channels)` units per cube.
    fn dims(self) -> (usize, usize) {
        match self {
            ConvVariant::Pos16Ch16 => (16, 16),
            ConvVariant::Pos32Ch8 => (32, 8),
            ConvVariant::Pos64Ch4 => (64, 4),
            ConvVariant::Pos8Ch32 => (8, 32),
        }
    }
}

impl core::fmt::Display for ConvVariant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.pad(self.name())
    }
}

/// How a conv picks its cube shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConvStrategy {
    /// [`ConvVariant::Pos16Ch16`].
    #[default]
    Auto,
    /// CubeCL's autotuner, per device and [`ConvTuneKey`] (as [`super::Strategy::Autotune`]).
    Autotune,
    /// Always this variant.
    Fixed(ConvVariant),
}

impl ConvStrategy {
    fn variant(self) -> ConvVariant {
        match self {
            ConvStrategy::Auto | ConvStrategy::Autotune => ConvVariant::Pos16Ch16,
            ConvStrategy::Fixed(v) => v,
        }
    }
}

/// The filter's ternary value (code − 1, as −1, 0 or +1 in `i32`) at column `col` of the
/// packed row starting at word `row0` (the `I2` layout of the module docs).
#[cube]
fn conv_tap(w: &[u32], row0: usize, col: usize) -> i32 {
    let word = w[row0 + (col / BLOCK) * BLOCK_WORDS + (col % SLICE) / 4];
    let shift = 8 * (col % 4) + 2 * ((col % BLOCK) / SLICE);
    i32::cast_from((word >> shift as u32) & 3u32) - 1i32
}

/// The input index `iy·w + ix` within its plane of tap `(ky, kx)` for output row `oy`,
/// column `ox`, or `-1` when it falls in the zero padding.
#[cube]
#[allow(clippy::too_many_arguments)]
fn conv_pixel(
    iy0: i32,
    ix0: i32,
    ky: usize,
    kx: usize,
    dh: usize,
    dw: usize,
    h: usize,
    wd: usize,
) -> i32 {
    let iy = iy0 + i32::cast_from(ky * dh);
    let ix = ix0 + i32::cast_from(kx * dw);
    let inside = iy >= 0 && ix >= 0 && iy < i32::cast_from(h) && ix < i32::cast_from(wd);
    select(inside, iy * i32::cast_from(wd) + ix, -1i32)
}

/// Direct 2-D convolution on the packed filters, float activations: unit `(p, o)` of cube
/// `(bx, by, b)` computes output position `bx·P + p` of channel `by·C + o` of image `b`
/// (`P × C` units per cube, the [`ConvVariant`]),
/// adding or subtracting (in f32) each input pixel its filter tap is ±1 for, column order
/// `[c, ky, kx]`, then `· w_scale[o]`. NCHW in and out; zero padding; groups.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn conv2d_float_kernel<F: Float>(
    x: &[F],
    w: &[u32],
    ws: &[f32],
    out: &mut [F],
    c_in: usize,
    c_out: usize,
    groups: usize,
    h: usize,
    wd: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    dh: usize,
    dw: usize,
    row_words: usize,
    k_groups: usize,
    #[comptime] per_channel: bool,
    #[comptime] pos_units: usize,
    #[comptime] ch_units: usize,
    #[comptime] group: usize,
) {
    let p = CUBE_POS_X as usize * pos_units + UNIT_POS_X as usize;
    let o = CUBE_POS_Y as usize * ch_units + UNIT_POS_Y as usize;
    let b = CUBE_POS_Z as usize;
    if p < oh * ow && o < c_out {
        let cg = c_in / groups;
        let c0 = (o / (c_out / groups)) * cg;
        let (oy, ox) = (p / ow, p % ow);
        let iy0 = i32::cast_from(oy * sh) - i32::cast_from(ph);
        let ix0 = i32::cast_from(ox * sw) - i32::cast_from(pw);
        let mut acc = 0.0f32;
        // With group scales: finished groups, scaled; `acc` holds the current group `cur`.
        let mut done = 0.0f32;
        let mut cur = 0usize;
        for c in 0..cg {
            let plane = (b * c_in + c0 + c) * h * wd;
            for ky in 0..kh {
                for kx in 0..kw {
                    let col = (c * kh + ky) * kw + kx;
                    if group > 0 && col / group != cur {
                        done += acc * group_scale(ws, o, cur * group, k_groups, group);
                        acc = 0.0f32;
                        cur = col / group;
                    }
                    let pixel = conv_pixel(iy0, ix0, ky, kx, dh, dw, h, wd);
                    let t = conv_tap(w, o * row_words, col);
                    if pixel >= 0 && t != 0 {
                        let v = f32::cast_from(x[plane + usize::cast_from(pixel)]);
                        acc += select(t > 0, v, -v);
                    }
                }
            }
        }
        let index = ((b * c_out + o) * oh + oy) * ow + ox;
        if group > 0 {
            out[index] =
                F::cast_from(done + acc * group_scale(ws, o, cur * group, k_groups, group));
        } else {
            out[index] = F::cast_from(acc * row_scale(ws, o, per_channel));
        }
    }
}

/// Direct 2-D convolution on the packed filters, int8 activations quantized once per image
/// ([`quantize_rows`] with one row per image of `C·H·W` values): exact `i32` sums `Σ w·x̃`,
/// then `· (x_scale[b] · w_scale[o])` — or, with `raw`, the sums' bits. Layout as
/// [`conv2d_float_kernel()`].
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn conv2d_w2a8_kernel<O: Float>(
    x: &[u32],
    xs: &[f32],
    w: &[u32],
    ws: &[f32],
    out: &mut [O],
    c_in: usize,
    c_out: usize,
    groups: usize,
    h: usize,
    wd: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    dh: usize,
    dw: usize,
    row_words: usize,
    image_words: usize,
    k_groups: usize,
    #[comptime] per_channel: bool,
    #[comptime] raw: bool,
    #[comptime] pos_units: usize,
    #[comptime] ch_units: usize,
    #[comptime] group: usize,
) {
    let p = CUBE_POS_X as usize * pos_units + UNIT_POS_X as usize;
    let o = CUBE_POS_Y as usize * ch_units + UNIT_POS_Y as usize;
    let b = CUBE_POS_Z as usize;
    if p < oh * ow && o < c_out {
        let cg = c_in / groups;
        let c0 = (o / (c_out / groups)) * cg;
        let (oy, ox) = (p / ow, p % ow);
        let iy0 = i32::cast_from(oy * sh) - i32::cast_from(ph);
        let ix0 = i32::cast_from(ox * sw) - i32::cast_from(pw);
        let mut acc = 0i32;
        // With group scales: finished groups' exact sums, scaled; `acc` is group `cur`'s.
        let mut done = 0.0f32;
        let mut cur = 0usize;
        for c in 0..cg {
            let plane = (c0 + c) * h * wd;
            for ky in 0..kh {
                for kx in 0..kw {
                    let col = (c * kh + ky) * kw + kx;
                    if group > 0 && col / group != cur {
                        done +=
                            f32::cast_from(acc) * group_scale(ws, o, cur * group, k_groups, group);
                        acc = 0i32;
                        cur = col / group;
                    }
                    let pixel = conv_pixel(iy0, ix0, ky, kx, dh, dw, h, wd);
                    let t = conv_tap(w, o * row_words, col);
                    if pixel >= 0 && t != 0 {
                        // Byte `i` of the image's row of int8 values, sign-extended.
                        let i = plane + usize::cast_from(pixel);
                        let byte = (x[b * image_words + i / 4] >> (8 * (i % 4)) as u32) & 0xffu32;
                        let v = i32::cast_from(byte) - select(byte >= 128u32, 256i32, 0i32);
                        acc += select(t > 0, v, -v);
                    }
                }
            }
        }
        let index = ((b * c_out + o) * oh + oy) * ow + ox;
        if group > 0 {
            let last = f32::cast_from(acc) * group_scale(ws, o, cur * group, k_groups, group);
            out[index] = O::cast_from((done + last) * xs[b]);
        } else {
            let wso = row_scale(ws, o, per_channel);
            store_w2a8::<O>(out, index, acc, 0i32, xs[b], wso, raw);
        }
    }
}

/// The launch grid of a conv: `variant`'s units per cube over (output positions, output
/// channels), one cube layer per image.
fn conv_grid(
    client: &Client,
    p: &crate::Conv2dParams,
    positions: usize,
    variant: ConvVariant,
) -> CubeCount {
    let max = client.properties().hardware.max_cube_count;
    let (pu, cu) = variant.dims();
    let (x, y, z) = (positions.div_ceil(pu), p.out_channels.div_ceil(cu), p.batch);
    assert!(
        x as u64 <= u64::from(max.0)
            && y as u64 <= u64::from(max.1)
            && z as u64 <= u64::from(max.2),
        "ternary GPU conv: a grid of {x} × {y} × {z} cubes exceeds the device limit {max:?}"
    );
    CubeCount::Static(x as u32, y as u32, z as u32)
}

/// Why `variant`'s grid for `p` does not fit the device, if it does not (autotune skips it).
fn conv_grid_fits(
    client: &Client,
    p: &crate::Conv2dParams,
    variant: ConvVariant,
) -> Result<(), String> {
    let (oh, ow) = p.out_hw().map_err(|e| e.to_string())?;
    let max = client.properties().hardware.max_cube_count;
    let (pu, cu) = variant.dims();
    let (x, y, z) = ((oh * ow).div_ceil(pu), p.out_channels.div_ceil(cu), p.batch);
    if x as u64 <= u64::from(max.0) && y as u64 <= u64::from(max.1) && z as u64 <= u64::from(max.2)
    {
        Ok(())
    } else {
        Err(format!(
            "{variant}: a grid of {x} × {y} × {z} cubes exceeds the device limit {max:?}"
        ))
    }
}

/// Checks a conv's parameters against its weights; returns `(OH, OW)`.
fn conv_check(p: &crate::Conv2dParams, w: &DeviceMatrix) -> (usize, usize) {
    assert!(
        !p.relu && !p.residual,
        "ternary GPU conv: the fused ReLU / residual of the CPU kernels are not run here \
         (relu {}, residual {}): apply them after the conv",
        p.relu,
        p.residual
    );
    let (oh, ow) = p
        .out_hw()
        .unwrap_or_else(|e| panic!("ternary GPU conv: {e} ({p:?})"));
    w.check_group();
    assert!(
        w.n == p.out_channels && w.k == p.k(),
        "ternary GPU conv: weights [{}, {}] do not match out_channels {} and k {}",
        w.n,
        w.k,
        p.out_channels,
        p.k()
    );
    (oh, ow)
}

/// 2-D convolution of NCHW float activations `x` (`F`, `batch · C · H · W` values) with the
/// packed filters `w` (`out_channels` rows of `K = C/groups · kh · kw`, columns `[c, ky, kx]`):
/// `out[b, o, oy, ox] = (Σ w·x) · w_scale[o]`, NCHW, in `F` (f32 accumulation). No bias, ReLU or
/// residual: the caller applies them. A direct convolution, one output per unit, cube shape
/// by `strategy`.
///
/// # Panics
/// When `p` is invalid, sets [`crate::Conv2dParams::relu`] or `residual`, or does not match
/// `w`, or the grid exceeds the device's limits.
pub fn conv2d_float<F: Float + CubeElement>(
    client: &Client,
    x: &Handle,
    p: &crate::Conv2dParams,
    w: &DeviceMatrix,
    strategy: ConvStrategy,
) -> Handle {
    let (oh, ow) = conv_check(p, w);
    let len = p.batch * p.out_channels * oh * ow;
    let out = client.empty(len.max(1) * size_of::<F>());
    if len == 0 {
        return out;
    }
    match strategy {
        ConvStrategy::Autotune => {
            let id = TuneId::new(client);
            let set = CONV_FLOAT_TUNER.init(&id, conv_float_tunables::<F>);
            let inputs = ConvFloatInputs {
                client: client.clone(),
                x: x.clone(),
                p: *p,
                w: w.clone(),
                out: out.clone(),
            };
            CONV_FLOAT_TUNER.execute(&id, client, set, inputs);
        }
        _ => launch_conv_float::<F>(client, x, p, w, &out, strategy.variant()),
    }
    out
}

fn launch_conv_float<F: Float + CubeElement>(
    client: &Client,
    x: &Handle,
    p: &crate::Conv2dParams,
    w: &DeviceMatrix,
    out: &Handle,
    variant: ConvVariant,
) {
    let (oh, ow) = conv_check(p, w);
    let len = p.batch * p.out_channels * oh * ow;
    let input = p.batch * p.in_channels * p.height * p.width;
    let (pu, cu) = variant.dims();
    // SAFETY: the kernel reads x below batch·C·H·W (pixels are bounds-checked against the
    // plane), w below out_channels·row_words, the scales below 1 or n, and writes out below
    // batch·out_channels·OH·OW.
    unsafe {
        conv2d_float_kernel::launch_unchecked::<F>(
            client,
            conv_grid(client, p, oh * ow, variant),
            CubeDim::new_2d(pu as u32, cu as u32),
            BufferArg::from_raw_parts(x.clone(), input.max(1)),
            BufferArg::from_raw_parts(w.words.clone(), (w.n * w.row_words()).max(1)),
            BufferArg::from_raw_parts(w.scales.clone(), w.scale_count().max(1)),
            BufferArg::from_raw_parts(out.clone(), len),
            p.in_channels,
            p.out_channels,
            p.groups,
            p.height,
            p.width,
            oh,
            ow,
            p.kernel[0],
            p.kernel[1],
            p.stride[0],
            p.stride[1],
            p.padding[0],
            p.padding[1],
            p.dilation[0],
            p.dilation[1],
            w.row_words(),
            w.groups(),
            w.per_row,
            pu,
            cu,
            w.group_size,
        );
    }
}

/// W2A8 2-D convolution: `x` holds the batch quantized once per image ([`quantize_rows`] with
/// `m = batch` rows of `k = C·H·W` values), `out[b, o, oy, ox] = (Σ w·x̃) · (x_scale[b] ·
/// w_scale[o])` in `O`, NCHW — or, with `raw`, the exact `i32` sums' bits (`O` 4 bytes wide).
/// No bias, ReLU or residual. The sums equal
/// [`conv2d_w2a8_i32_reference`](crate::cpu::conv2d_w2a8_i32_reference)'s bit for bit, for
/// every [`ConvVariant`].
///
/// # Panics
/// As [`conv2d_float`], when `x` is not `batch` rows of `C·H·W`, or with `raw` for an `O`
/// that is not 4 bytes wide.
pub fn conv2d_w2a8<O: Float + CubeElement>(
    client: &Client,
    x: &DeviceActivations,
    p: &crate::Conv2dParams,
    w: &DeviceMatrix,
    strategy: ConvStrategy,
    raw: bool,
) -> Handle {
    let (oh, ow) = conv_check(p, w);
    let image = p.in_channels * p.height * p.width;
    assert!(
        x.m == p.batch && x.k == image,
        "ternary GPU conv: activations [{}, {}] are not {} images of {image} values",
        x.m,
        x.k,
        p.batch
    );
    assert!(
        !raw || size_of::<O>() == 4,
        "raw i32 results need a 4-byte output type, not {} bytes",
        size_of::<O>()
    );
    assert!(
        !raw || w.group_size == 0,
        "raw i32 results are one sum per output: group scales ({} columns) have one per group",
        w.group_size
    );
    let len = p.batch * p.out_channels * oh * ow;
    let out = client.empty(len.max(1) * size_of::<O>());
    if len == 0 {
        return out;
    }
    match strategy {
        ConvStrategy::Autotune => {
            let id = TuneId::new(client);
            let set = CONV_W2A8_TUNER.init(&id, conv_w2a8_tunables::<O>);
            let inputs = ConvW2a8Inputs {
                client: client.clone(),
                x: x.clone(),
                p: *p,
                w: w.clone(),
                out: out.clone(),
                raw,
            };
            CONV_W2A8_TUNER.execute(&id, client, set, inputs);
        }
        _ => launch_conv_w2a8::<O>(client, x, p, w, &out, strategy.variant(), raw),
    }
    out
}

fn launch_conv_w2a8<O: Float + CubeElement>(
    client: &Client,
    x: &DeviceActivations,
    p: &crate::Conv2dParams,
    w: &DeviceMatrix,
    out: &Handle,
    variant: ConvVariant,
    raw: bool,
) {
    let (oh, ow) = conv_check(p, w);
    let len = p.batch * p.out_channels * oh * ow;
    let image = p.in_channels * p.height * p.width;
    // `quantize_rows` writes padded_k(C·H·W) int8 values, four per word, per image.
    let image_words = row_words(image) * 4;
    let (pu, cu) = variant.dims();
    // SAFETY: as in `launch_conv_float`; the int8 image rows hold `image_words` words each,
    // the image scales `batch` values.
    unsafe {
        conv2d_w2a8_kernel::launch_unchecked::<O>(
            client,
            conv_grid(client, p, oh * ow, variant),
            CubeDim::new_2d(pu as u32, cu as u32),
            BufferArg::from_raw_parts(x.words.clone(), (p.batch * image_words).max(1)),
            BufferArg::from_raw_parts(x.scales.clone(), p.batch.max(1)),
            BufferArg::from_raw_parts(w.words.clone(), (w.n * w.row_words()).max(1)),
            BufferArg::from_raw_parts(w.scales.clone(), w.scale_count().max(1)),
            BufferArg::from_raw_parts(out.clone(), len),
            p.in_channels,
            p.out_channels,
            p.groups,
            p.height,
            p.width,
            oh,
            ow,
            p.kernel[0],
            p.kernel[1],
            p.stride[0],
            p.stride[1],
            p.padding[0],
            p.padding[1],
            p.dilation[0],
            p.dilation[1],
            w.row_words(),
            image_words,
            w.groups(),
            w.per_row,
            raw,
            pu,
            cu,
            w.group_size,
        );
    }
}

/// What conv autotune results are kept under: the geometry (batch rounded up to a power of
/// two, capped at 1024), the element type and scale layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ConvTuneKey {
    /// `w2a8` or `float`.
    pub op: String,
    /// The output (W2A8) or activation (float) element type, as Rust names it.
    pub elem: String,
    /// Images, rounded up to a power of two.
    pub batch: usize,
    /// `[in_channels, height, width, out_channels, groups]`.
    pub shape: [usize; 5],
    /// `[kh, kw, stride h, stride w, pad h, pad w, dilation h, dilation w]`.
    pub window: [usize; 8],
    /// Whether the filters carry one scale per output channel.
    pub per_row: bool,
    /// Whether the output is raw i32 sums (W2A8 only).
    pub raw: bool,
    /// Columns per scale group; 0 without group scales.
    #[serde(default)]
    pub group: usize,
}

impl ConvTuneKey {
    /// The same key for filters with `group`-column scale groups (0: none).
    pub fn with_group(self, group: usize) -> Self {
        Self { group, ..self }
    }

    /// The key of a conv with these parameters.
    pub fn new(op: &str, elem: &str, p: &crate::Conv2dParams, per_row: bool, raw: bool) -> Self {
        Self {
            op: op.to_string(),
            elem: elem.to_string(),
            batch: p.batch.max(1).next_power_of_two().min(1024),
            shape: [p.in_channels, p.height, p.width, p.out_channels, p.groups],
            window: [
                p.kernel[0],
                p.kernel[1],
                p.stride[0],
                p.stride[1],
                p.padding[0],
                p.padding[1],
                p.dilation[0],
                p.dilation[1],
            ],
            per_row,
            raw,
            group: 0,
        }
    }
}

impl cubecl::tune::AutotuneKey for ConvTuneKey {}

impl core::fmt::Display for ConvTuneKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "conv-{}-{}-b{}-{:?}-{:?}-{}{}",
            self.op,
            self.elem,
            self.batch,
            self.shape,
            self.window,
            match (self.group, self.per_row) {
                (0, true) => "row".to_string(),
                (0, false) => "tensor".to_string(),
                (g, _) => format!("group{g}"),
            },
            if self.raw { "-raw" } else { "" }
        )
    }
}

static CONV_W2A8_TUNER: LocalTuner<ConvTuneKey, TuneId> = local_tuner!("conv-w2a8");
static CONV_FLOAT_TUNER: LocalTuner<ConvTuneKey, TuneId> = local_tuner!("conv-float");

#[derive(Clone)]
struct ConvW2a8Inputs {
    client: Client,
    x: DeviceActivations,
    p: crate::Conv2dParams,
    w: DeviceMatrix,
    out: Handle,
    raw: bool,
}

#[derive(Clone)]
struct ConvFloatInputs {
    client: Client,
    x: Handle,
    p: crate::Conv2dParams,
    w: DeviceMatrix,
    out: Handle,
}

fn conv_w2a8_tunables<O: Float + CubeElement>()
-> TunableSet<ConvTuneKey, ConvW2a8Inputs, (), ConvVariant> {
    let key = |i: &ConvW2a8Inputs| {
        ConvTuneKey::new(
            "w2a8",
            core::any::type_name::<O>(),
            &i.p,
            i.w.per_row,
            i.raw,
        )
        .with_group(i.w.group_size)
    };
    let mut set = TunableSet::new_cloning_inputs(key);
    for variant in ConvVariant::ALL {
        set = set.with(Tunable::identified(variant, move |i: ConvW2a8Inputs| {
            conv_grid_fits(&i.client, &i.p, variant)?;
            launch_conv_w2a8::<O>(&i.client, &i.x, &i.p, &i.w, &i.out, variant, i.raw);
            Ok::<(), String>(())
        }));
    }
    set
}

fn conv_float_tunables<F: Float + CubeElement>()
-> TunableSet<ConvTuneKey, ConvFloatInputs, (), ConvVariant> {
    let key = |i: &ConvFloatInputs| {
        ConvTuneKey::new(
            "float",
            core::any::type_name::<F>(),
            &i.p,
            i.w.per_row,
            false,
        )
        .with_group(i.w.group_size)
    };
    let mut set = TunableSet::new_cloning_inputs(key);
    for variant in ConvVariant::ALL {
        set = set.with(Tunable::identified(variant, move |i: ConvFloatInputs| {
            conv_grid_fits(&i.client, &i.p, variant)?;
            launch_conv_float::<F>(&i.client, &i.x, &i.p, &i.w, &i.out, variant);
            Ok::<(), String>(())
        }));
    }
    set
}

/// The cube shape [`ConvStrategy::Autotune`] settled on for W2A8 convs with these parameters
/// on `client`'s device, or `None` before the first such conv has been tuned.
pub fn tuned_conv2d_w2a8<O: Float + CubeElement>(
    client: &Client,
    p: &crate::Conv2dParams,
    per_row: bool,
    raw: bool,
) -> Option<ConvVariant> {
    let id = TuneId::new(client);
    let set = CONV_W2A8_TUNER.init(&id, conv_w2a8_tunables::<O>);
    let key = ConvTuneKey::new("w2a8", core::any::type_name::<O>(), p, per_row, raw);
    CONV_W2A8_TUNER.fastest_identity(&id, &set, &key)
}

/// As [`tuned_conv2d_w2a8`], for convs with float activations of type `F`.
pub fn tuned_conv2d_float<F: Float + CubeElement>(
    client: &Client,
    p: &crate::Conv2dParams,
    per_row: bool,
) -> Option<ConvVariant> {
    let id = TuneId::new(client);
    let set = CONV_FLOAT_TUNER.init(&id, conv_float_tunables::<F>);
    let key = ConvTuneKey::new("float", core::any::type_name::<F>(), p, per_row, false);
    CONV_FLOAT_TUNER.fastest_identity(&id, &set, &key)
}
