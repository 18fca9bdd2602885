//! SIMD f32 distance kernels with run-time instruction-set dispatch.
//!
//! Each kernel body is written once, generically over [`pulp::Simd`], and monomorphized per
//! instruction set inside pulp's `#[target_feature]` trampolines. The free functions here pick
//! the best path this CPU supports through a [`pulp::Arch`] that is detected once and cached in
//! a static, so each call pays a couple of well-predicted branches, not feature probing. The
//! `_batch` forms dispatch once for the whole batch, not once per row.
//!
//! Paths, best first (see [`Isa`]):
//! - `avx512` — pulp's x86 V4 (AVX-512F/BW/CD/DQ/VL), 16 lanes. Compiled with the crate
//!   feature `x86-v4`, on by default (stable since Rust 1.89). It gains ~1.3x over AVX2 on
//!   cache-resident vectors (graph search, codes) and nothing once rows stream from memory.
//!   Some older CPUs downclock under AVX-512; build with `default-features = false` to keep
//!   to AVX2 there.
//! - `avx2-fma` — pulp's x86 V3 (AVX2 + FMA), 8 lanes.
//! - `neon` — aarch64 NEON, 4 lanes.
//! - `scalar` — pulp's portable fallback, one lane per accumulator.
//!
//! Every path keeps four independent accumulators: FMA has ~4 cycles of latency, so a
//! single accumulator chain would stall the loop well below load throughput. Tails shorter than
//! a vector are read with a masked (zero-filling) load, which adds nothing to any of the sums.
//!
//! The summation order differs from [`crate::scalar`] (and between paths), so results agree
//! with the reference only up to rounding, not bit for bit.

use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;

use pulp::{Simd, WithSimd};

use crate::QuantizeError;

/// Independent accumulators per kernel: enough to cover FMA latency at one or two FMAs per
/// cycle, few enough to leave registers for the loaded operands on every ISA.
const UNROLL: usize = 4;

/// An instruction-set path the kernels can run on.
///
/// Every variant exists on every target so code matching on it is portable;
/// [`Isa::is_supported`] says whether a path is compiled in and usable on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// x86-64 AVX-512 (pulp V4). Needs the crate feature `x86-v4`.
    Avx512,
    /// x86-64 AVX2 + FMA (pulp V3).
    Avx2Fma,
    /// aarch64 NEON.
    Neon,
    /// Portable fallback; always supported.
    Scalar,
}

impl Isa {
    /// Every path, in the order dispatch prefers them.
    pub const ALL: [Isa; 4] = [Isa::Avx512, Isa::Avx2Fma, Isa::Neon, Isa::Scalar];

    /// Stable lower-case name: `"avx512"`, `"avx2-fma"`, `"neon"` or `"scalar"`.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2Fma => "avx2-fma",
            Isa::Neon => "neon",
            Isa::Scalar => "scalar",
        }
    }

    /// The path named `name` (as [`name`](Self::name) spells it; `"avx2"` and `"portable"`
    /// are accepted for `"avx2-fma"` and `"scalar"`), whether or not it is supported here.
    pub fn from_name(name: &str) -> Option<Isa> {
        match name.trim().to_ascii_lowercase().as_str() {
            "avx512" => Some(Isa::Avx512),
            "avx2-fma" | "avx2" => Some(Isa::Avx2Fma),
            "neon" => Some(Isa::Neon),
            "scalar" | "portable" => Some(Isa::Scalar),
            _ => None,
        }
    }

    /// Whether this path is compiled into this build and the running CPU can execute it.
    pub fn is_supported(self) -> bool {
        Kernels::for_isa(self).is_some()
    }

    /// The supported paths, best first. The first one is what dispatch uses.
    pub fn supported() -> impl Iterator<Item = Isa> {
        Self::ALL.into_iter().filter(|isa| isa.is_supported())
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The kernels bound to one instruction-set path.
///
/// [`Kernels::detected`] is what the free functions use. [`Kernels::for_isa`] lets tests and
/// benchmarks run a specific path, so every path the CPU supports can be checked against
/// [`crate::scalar`], not only the one dispatch happens to pick.
#[derive(Debug, Clone, Copy)]
pub struct Kernels {
    arch: pulp::Arch,
    isa: Isa,
}

/// The environment variable that forces the path [`Kernels::detected`] picks (`avx512`,
/// `avx2-fma`, `neon`, `scalar`), so tests of every crate can run under each path this CPU
/// supports, not only the best one (`.ci/run` does). A path this build or CPU lacks, or a name
/// it does not know, is reported once on stderr and ignored.
pub const ISA_OVERRIDE_VAR: &str = "STRATA_ISA";

/// Detected once, so feature probing stays off the per-call path.
static DETECTED: LazyLock<Kernels> = LazyLock::new(|| {
    let forced =
        std::env::var(ISA_OVERRIDE_VAR).ok().filter(|name| !name.is_empty()).and_then(|name| {
            let kernels = Isa::from_name(&name).and_then(Kernels::for_isa);
            if kernels.is_none() {
                eprintln!(
                    "{ISA_OVERRIDE_VAR}={name}: not a kernel path this build and CPU run; ignored"
                );
            }
            kernels
        });
    forced.unwrap_or_else(|| {
        Isa::ALL
            .into_iter()
            .find_map(Kernels::for_isa)
            .expect("the scalar path is always available")
    })
});

impl Kernels {
    /// The best path for this CPU, or the one [`ISA_OVERRIDE_VAR`] names (cached after the first
    /// call).
    #[inline]
    pub fn detected() -> &'static Kernels {
        &DETECTED
    }

    /// The kernels for `isa`, or `None` if that path is not compiled in or the CPU lacks it.
    pub fn for_isa(isa: Isa) -> Option<Kernels> {
        let arch = match isa {
            #[cfg(all(feature = "x86-v4", any(target_arch = "x86", target_arch = "x86_64")))]
            Isa::Avx512 => pulp::Arch::V4(pulp::x86::V4::try_new()?),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Isa::Avx2Fma => pulp::Arch::V3(pulp::x86::V3::try_new()?),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => pulp::Arch::Neon(pulp::aarch64::Neon::try_new()?),
            Isa::Scalar => pulp::Arch::Scalar,
            _ => return None,
        };
        Some(Kernels { arch, isa })
    }

    /// The pulp level behind this path, for kernels that match on it.
    #[inline]
    pub(crate) fn arch(&self) -> pulp::Arch {
        self.arch
    }

    /// Which path these kernels run on.
    #[inline]
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Inner product `Σ aᵢ·bᵢ`. See [`dot`].
    #[inline]
    #[track_caller]
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_same_len("dot", a, b);
        self.arch.dispatch(PairReduce::<DotStep>::new(a, b))
    }

    /// Squared Euclidean distance. See [`l2_squared`].
    #[inline]
    #[track_caller]
    pub fn l2_squared(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_same_len("l2_squared", a, b);
        self.arch.dispatch(PairReduce::<L2Step>::new(a, b))
    }

    /// Squared Euclidean norm. See [`norm_squared`].
    #[inline]
    pub fn norm_squared(&self, a: &[f32]) -> f32 {
        self.arch.dispatch(PairReduce::<DotStep>::new(a, a))
    }

    /// Batched inner product. See [`dot_batch`].
    #[inline]
    #[track_caller]
    pub fn dot_batch(&self, query: &[f32], rows: &[f32], out: &mut [f32]) {
        assert_batch_shape("dot_batch", query, rows, out);
        self.arch.dispatch(BatchReduce::<DotStep>::new(query, rows, out));
    }

    /// Batched squared Euclidean distance. See [`l2_squared_batch`].
    #[inline]
    #[track_caller]
    pub fn l2_squared_batch(&self, query: &[f32], rows: &[f32], out: &mut [f32]) {
        assert_batch_shape("l2_squared_batch", query, rows, out);
        self.arch.dispatch(BatchReduce::<L2Step>::new(query, rows, out));
    }
}

impl Kernels {
    /// Runs `op` at this path's SIMD level. Code inside `op` calls the generic kernels
    /// ([`dot_simd`], [`l2_squared_simd`], [`crate::Metric::distance_simd`]) fully inlined, so an
    /// operation that computes thousands of distances (a graph search, an insert) pays for
    /// dispatch once instead of once per distance, which at d = 128 costs as much as the
    /// distance itself.
    #[inline]
    pub fn dispatch<Op: WithSimd>(&self, op: Op) -> Op::Output {
        self.arch.dispatch(op)
    }
}

/// [`dot`] at the SIMD level `simd`, for use inside [`Kernels::dispatch`].
///
/// # Panics
/// If `a.len() != b.len()`.
#[inline(always)]
#[track_caller]
pub fn dot_simd<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    assert_same_len("dot", a, b);
    reduce_pairs::<S, DotStep>(simd, a, b)
}

/// [`l2_squared`] at the SIMD level `simd`, for use inside [`Kernels::dispatch`].
///
/// # Panics
/// If `a.len() != b.len()`.
#[inline(always)]
#[track_caller]
pub fn l2_squared_simd<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    assert_same_len("l2_squared", a, b);
    reduce_pairs::<S, L2Step>(simd, a, b)
}

/// Asks the CPU to start loading the first cache lines of `data` (up to 256 bytes) into L1.
///
/// A graph search knows which vectors it reads next a few distance computations before it
/// needs them; this hides part of the memory latency, as hnswlib does. A hint only: it never
/// faults and does nothing on targets without a prefetch instruction.
#[inline(always)]
pub fn prefetch<T>(data: &[T]) {
    prefetch_lines(data, 4);
}

/// As [`prefetch`], for the first `lines` cache lines (64 bytes each) of `data`.
#[inline(always)]
pub fn prefetch_lines<T>(data: &[T], lines: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let bytes = size_of_val(data).min(lines * 64);
        let start = data.as_ptr().cast::<i8>();
        for offset in (0..bytes).step_by(64) {
            // SAFETY: a prefetch is a hint that never faults and never changes memory, whatever
            // the address; `wrapping_add` keeps the pointer arithmetic itself defined.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, lines);
}

/// Name of the path dispatch uses on this machine: `"avx512"`, `"avx2-fma"`, `"neon"` or
/// `"scalar"`.
pub fn isa() -> &'static str {
    Kernels::detected().isa().name()
}

/// Inner product `Σ aᵢ·bᵢ`.
///
/// # Panics
/// If `a.len() != b.len()`.
#[inline]
#[track_caller]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    Kernels::detected().dot(a, b)
}

/// Squared Euclidean distance `Σ (aᵢ - bᵢ)²`. Squared because ranking does not need the root.
///
/// # Panics
/// If `a.len() != b.len()`.
#[inline]
#[track_caller]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    Kernels::detected().l2_squared(a, b)
}

/// Squared Euclidean norm `Σ aᵢ²`.
#[inline]
pub fn norm_squared(a: &[f32]) -> f32 {
    Kernels::detected().norm_squared(a)
}

/// [`dot`] of `query` with each of `out.len()` contiguous row-major rows of `query.len()`
/// floats in `rows`; row `i`'s result goes to `out[i]`. Does not allocate.
///
/// # Panics
/// If `rows.len() != query.len() * out.len()`.
#[inline]
#[track_caller]
pub fn dot_batch(query: &[f32], rows: &[f32], out: &mut [f32]) {
    Kernels::detected().dot_batch(query, rows, out);
}

/// [`l2_squared`] of `query` against each of `out.len()` contiguous row-major rows of
/// `query.len()` floats in `rows`; row `i`'s result goes to `out[i]`. Does not allocate.
///
/// # Panics
/// If `rows.len() != query.len() * out.len()`.
#[inline]
#[track_caller]
pub fn l2_squared_batch(query: &[f32], rows: &[f32], out: &mut [f32]) {
    Kernels::detected().l2_squared_batch(query, rows, out);
}

/// Scales `v` in place to unit Euclidean norm (what [`crate::Metric::Cosine`] expects).
///
/// Vectors whose squared norm overflows or underflows `f32` (components beyond ~1e19 or
/// below ~1e-19) are rescaled by their largest component first, so they still normalize.
///
/// # Errors
/// [`QuantizeError::ZeroNorm`] if every component is zero (including the empty vector), and
/// [`QuantizeError::NonFiniteComponent`] if any component is NaN or infinite. `v` is left
/// unchanged on error.
pub fn normalize(v: &mut [f32]) -> Result<(), QuantizeError> {
    let norm_sq = norm_squared(v);
    if norm_sq.is_finite() && norm_sq >= f32::MIN_POSITIVE {
        let inv_norm = 1.0 / norm_sq.sqrt();
        v.iter_mut().for_each(|x| *x *= inv_norm);
        return Ok(());
    }
    normalize_rescaled(v)
}

/// Slow path of [`normalize`] for zero, non-finite, or out-of-range norms.
#[cold]
fn normalize_rescaled(v: &mut [f32]) -> Result<(), QuantizeError> {
    let mut max_abs = 0.0f32;
    for (index, &value) in v.iter().enumerate() {
        if !value.is_finite() {
            return Err(QuantizeError::NonFiniteComponent { index, value });
        }
        max_abs = max_abs.max(value.abs());
    }
    if max_abs == 0.0 {
        return Err(QuantizeError::ZeroNorm { dim: v.len() });
    }
    // Dividing (not multiplying by 1/max_abs, which overflows for subnormal max_abs) puts every
    // component in [-1, 1] with at least one at ±1, so the sum of squares is in [1, len].
    let scaled_norm = v
        .iter()
        .map(|&x| {
            let scaled = x / max_abs;
            scaled * scaled
        })
        .sum::<f32>()
        .sqrt();
    v.iter_mut().for_each(|x| *x = (*x / max_abs) / scaled_norm);
    Ok(())
}

#[inline]
#[track_caller]
pub(crate) fn assert_same_len(kernel: &str, a: &[f32], b: &[f32]) {
    assert!(
        a.len() == b.len(),
        "{kernel}: vectors have different lengths ({} vs {})",
        a.len(),
        b.len()
    );
}

#[inline]
#[track_caller]
pub(crate) fn assert_batch_shape(kernel: &str, query: &[f32], rows: &[f32], out: &[f32]) {
    assert!(
        query.len().checked_mul(out.len()) == Some(rows.len()),
        "{kernel}: rows holds {} floats, expected query.len() * out.len() = {} * {}",
        rows.len(),
        query.len(),
        out.len()
    );
}

/// One accumulation step of a pairwise reduction, per SIMD vector.
trait Accumulate {
    fn step<S: Simd>(simd: S, acc: S::f32s, x: S::f32s, y: S::f32s) -> S::f32s;
}

/// `acc + x·y`.
enum DotStep {}

impl Accumulate for DotStep {
    #[inline(always)]
    fn step<S: Simd>(simd: S, acc: S::f32s, x: S::f32s, y: S::f32s) -> S::f32s {
        simd.mul_add_e_f32s(x, y, acc)
    }
}

/// `acc + (x - y)²`.
enum L2Step {}

impl Accumulate for L2Step {
    #[inline(always)]
    fn step<S: Simd>(simd: S, acc: S::f32s, x: S::f32s, y: S::f32s) -> S::f32s {
        let diff = simd.sub_f32s(x, y);
        simd.mul_add_e_f32s(diff, diff, acc)
    }
}

/// Reduces `Σ step(aᵢ, bᵢ)` over two equal-length slices.
///
/// `#[inline(always)]` matters: this must be inlined into pulp's `#[target_feature]`
/// trampoline, or it would be compiled for the baseline ISA.
#[inline(always)]
fn reduce_pairs<S: Simd, Step: Accumulate>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let (a_vecs, a_tail) = S::as_simd_f32s(a);
    let (b_vecs, b_tail) = S::as_simd_f32s(b);
    let (a_blocks, a_rest) = pulp::as_arrays::<UNROLL, _>(a_vecs);
    let (b_blocks, b_rest) = pulp::as_arrays::<UNROLL, _>(b_vecs);

    let mut acc = [simd.splat_f32s(0.0); UNROLL];
    for (xs, ys) in a_blocks.iter().zip(b_blocks) {
        for ((acc, &x), &y) in acc.iter_mut().zip(xs).zip(ys) {
            *acc = Step::step(simd, *acc, x, y);
        }
    }
    // Fewer than UNROLL whole vectors remain; still spread them over separate chains.
    for ((acc, &x), &y) in acc.iter_mut().zip(a_rest).zip(b_rest) {
        *acc = Step::step(simd, *acc, x, y);
    }
    if !a_tail.is_empty() {
        // Masked loads zero the missing lanes, and zero contributes nothing to either sum.
        let x = simd.partial_load_f32s(a_tail);
        let y = simd.partial_load_f32s(b_tail);
        acc[UNROLL - 1] = Step::step(simd, acc[UNROLL - 1], x, y);
    }

    // Pairwise tree: log2(UNROLL) dependent adds instead of UNROLL - 1.
    let mut width = UNROLL;
    while width > 1 {
        width /= 2;
        let (low, high) = acc[..2 * width].split_at_mut(width);
        for (low, &high) in low.iter_mut().zip(&*high) {
            *low = simd.add_f32s(*low, high);
        }
    }
    simd.reduce_sum_f32s(acc[0])
}

/// A single pairwise reduction, as a pulp operation.
struct PairReduce<'a, Step> {
    a: &'a [f32],
    b: &'a [f32],
    step: PhantomData<fn() -> Step>,
}

impl<'a, Step> PairReduce<'a, Step> {
    #[inline(always)]
    fn new(a: &'a [f32], b: &'a [f32]) -> Self {
        Self { a, b, step: PhantomData }
    }
}

impl<Step: Accumulate> WithSimd for PairReduce<'_, Step> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        reduce_pairs::<S, Step>(simd, self.a, self.b)
    }
}

/// A reduction of one query against many rows, dispatched once for the whole batch.
struct BatchReduce<'a, Step> {
    query: &'a [f32],
    rows: &'a [f32],
    out: &'a mut [f32],
    step: PhantomData<fn() -> Step>,
}

impl<'a, Step> BatchReduce<'a, Step> {
    #[inline(always)]
    fn new(query: &'a [f32], rows: &'a [f32], out: &'a mut [f32]) -> Self {
        Self { query, rows, out, step: PhantomData }
    }
}

impl<Step: Accumulate> WithSimd for BatchReduce<'_, Step> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let dim = self.query.len();
        if dim == 0 {
            // Empty vectors are at distance 0 from each other; `chunks_exact(0)` would panic.
            self.out.fill(0.0);
            return;
        }
        for (row, slot) in self.rows.chunks_exact(dim).zip(self.out.iter_mut()) {
            *slot = reduce_pairs::<S, Step>(simd, self.query, row);
        }
    }
}
