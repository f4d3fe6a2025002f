//! One GEMM call on slices, with bounds checked, for the CPU custom ops:
//! our AVX-512 kernel ([`super::avx512`]) where the CPU has AVX-512F, else
//! the `gemm` crate (the GEMM candle itself uses).

/// Columns of the right operand that the AVX-512 kernel computes at once
/// (three vectors): a product's last, partly padded panel of columns costs
/// as much as a full one, so callers that choose `n` pick multiples of it.
/// (Elsewhere the `gemm` crate's narrower panels divide it.)
#[cfg(target_arch = "x86_64")]
pub(crate) const PANEL_COLS: usize = super::avx512::NR;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const PANEL_COLS: usize = 48;

/// A row-major `[m, n]` destination, `[m, k]` and `[k, n]` operands given by
/// their (row, column) strides; `acc` adds to the destination instead of
/// overwriting it.
pub(crate) struct Gemm {
    pub(crate) m: usize,
    pub(crate) n: usize,
    pub(crate) k: usize,
    pub(crate) acc: bool,
}

/// A row-major `[m, k]` left operand prepared once for many products with
/// [`Gemm::run_packed`]: packed for the AVX-512 kernel where it runs, else
/// kept as it is.
pub(crate) enum PackedLhs {
    /// The matrix as given, for the `gemm` crate.
    Plain { a: Vec<f32>, m: usize, k: usize },
    /// Packed panels for [`super::avx512`].
    #[cfg(target_arch = "x86_64")]
    Avx512(super::avx512::PackedA),
}

impl PackedLhs {
    /// `N` operands of `[m, k]`, element `(i, p)` of operand `j` being
    /// `f(i, p)[j]`, each computed once and written straight into the form
    /// it is kept in (see [`super::avx512::PackedA::build`]); in parallel.
    pub(crate) fn build<const N: usize>(
        m: usize,
        k: usize,
        f: impl Fn(usize, usize) -> [f32; N] + Sync,
    ) -> Vec<PackedLhs> {
        #[cfg(target_arch = "x86_64")]
        if super::avx512::available() {
            let packed = super::avx512::PackedA::build(m, k, f);
            return packed.into_iter().map(PackedLhs::Avx512).collect();
        }
        use rayon::prelude::*;
        let rows: Vec<Vec<[f32; N]>> = (0..m)
            .into_par_iter()
            .map(|i| (0..k).map(|p| f(i, p)).collect())
            .collect();
        (0..N)
            .map(|j| PackedLhs::Plain {
                a: rows
                    .iter()
                    .flat_map(|row| row.iter().map(|v| v[j]))
                    .collect(),
                m,
                k,
            })
            .collect()
    }

    fn dims(&self) -> (usize, usize) {
        match self {
            PackedLhs::Plain { m, k, .. } => (*m, *k),
            #[cfg(target_arch = "x86_64")]
            PackedLhs::Avx512(p) => (p.rows(), p.cols()),
        }
    }
}

impl Gemm {
    /// `dst = (acc ? dst : 0) + lhs · rhs` with a prepared `lhs` (whose
    /// shape must be `[m, k]`), threaded over columns when `threaded`.
    pub(crate) fn run_packed(
        &self,
        dst: &mut [f32],
        lhs: &PackedLhs,
        rhs: (&[f32], usize, usize),
        threaded: bool,
    ) {
        assert_eq!(lhs.dims(), (self.m, self.k), "packed operand shape");
        match lhs {
            PackedLhs::Plain { a, k, .. } => {
                self.run_on(dst, Lhs::Slice((a, *k, 1)), rhs, threaded)
            }
            #[cfg(target_arch = "x86_64")]
            PackedLhs::Avx512(p) => self.run_on(dst, Lhs::Packed(p), rhs, threaded),
        }
    }

    /// `dst = (acc ? dst : 0) + lhs · rhs`, each operand as `(slice, row stride, column stride)`,
    /// split across the current rayon pool when it is big enough.
    pub(crate) fn run(
        &self,
        dst: &mut [f32],
        lhs: (&[f32], usize, usize),
        rhs: (&[f32], usize, usize),
    ) {
        self.run_on(dst, Lhs::Slice(lhs), rhs, true);
    }

    /// Like [`run`](Gemm::run), on the calling thread only (for callers that
    /// parallelise around it).
    pub(crate) fn run_serial(
        &self,
        dst: &mut [f32],
        lhs: (&[f32], usize, usize),
        rhs: (&[f32], usize, usize),
    ) {
        self.run_on(dst, Lhs::Slice(lhs), rhs, false);
    }

    fn run_on(&self, dst: &mut [f32], lhs: Lhs, rhs: (&[f32], usize, usize), threaded: bool) {
        let (m, n, k) = (self.m, self.n, self.k);
        if m == 0 || n == 0 {
            return;
        }
        let last = |rows: usize, cols: usize, rs: usize, cs: usize| {
            (rows.max(1) - 1) * rs + (cols.max(1) - 1) * cs + 1
        };
        // The GEMM reads through raw pointers: check every element it touches is in bounds.
        assert!(dst.len() >= last(m, n, n, 1), "gemm dst out of bounds");
        if k > 0 {
            match lhs {
                Lhs::Slice(lhs) => assert!(
                    lhs.0.len() >= last(m, k, lhs.1, lhs.2),
                    "gemm lhs out of bounds"
                ),
                // Its shape was checked by `run_packed`.
                #[cfg(target_arch = "x86_64")]
                Lhs::Packed(_) => {}
            }
            assert!(
                rhs.0.len() >= last(k, n, rhs.1, rhs.2),
                "gemm rhs out of bounds"
            );
        }
        // gemm's own threading leaves shapes with few rows (64 output channels:
        // the 96x96 layers) on one core, so split the product ourselves into
        // column (or row) blocks, each a single-threaded GEMM. A few blocks per
        // thread let a core that another process slows down take fewer.
        let threads = rayon::current_num_threads();
        let flops = m * n * k;
        let (split_n, len) = if n >= m { (true, n) } else { (false, m) };
        // A packed operand is reached through itself, not these.
        let (lhs_ptr, lhs_rs, lhs_cs) = match lhs {
            Lhs::Slice(l) => (l.0.as_ptr() as usize, l.1, l.2),
            #[cfg(target_arch = "x86_64")]
            Lhs::Packed(_) => (0, 0, 0),
        };
        let parts = if !threaded || threads <= 1 || flops < (1 << 20) {
            1
        } else {
            (len / 128).clamp(1, 3 * threads)
        };
        let ptrs = Ptrs {
            dst: dst.as_mut_ptr() as usize,
            lhs: lhs_ptr,
            rhs: rhs.0.as_ptr() as usize,
        };
        let block = |t: usize| {
            // Block boundaries on multiples of 16 (the micro-kernel's row count).
            let edge = |t: usize| (len * t / parts).next_multiple_of(16).min(len);
            let (lo, hi) = (edge(t), edge(t + 1));
            if lo >= hi {
                return;
            }
            let f = std::mem::size_of::<f32>();
            let (d_p, l_p, r_p, mm, nn) = if split_n {
                (
                    ptrs.dst + lo * f,
                    ptrs.lhs,
                    ptrs.rhs + lo * rhs.2 * f,
                    m,
                    hi - lo,
                )
            } else {
                (
                    ptrs.dst + lo * n * f,
                    ptrs.lhs + lo * lhs_rs * f,
                    ptrs.rhs,
                    hi - lo,
                    n,
                )
            };
            #[cfg(target_arch = "x86_64")]
            if let Lhs::Packed(p) = lhs {
                let rows = if split_n { 0..m } else { lo..hi };
                // SAFETY: as below; the packed operand is `m x k` (checked),
                // and blocks start on multiples of 16.
                unsafe {
                    super::avx512::gemm_packed(
                        p,
                        rows,
                        nn,
                        d_p as *mut f32,
                        n,
                        self.acc,
                        super::avx512::Operand {
                            ptr: r_p as *const f32,
                            rs: rhs.1,
                            cs: rhs.2,
                        },
                    )
                };
                return;
            }
            #[cfg(target_arch = "x86_64")]
            if super::avx512::available() {
                use super::avx512::Operand;
                // SAFETY: as for `gemm::gemm` below; the CPU has AVX-512F.
                unsafe {
                    super::avx512::gemm(
                        mm,
                        nn,
                        k,
                        d_p as *mut f32,
                        n,
                        self.acc,
                        Operand {
                            ptr: l_p as *const f32,
                            rs: lhs_rs,
                            cs: lhs_cs,
                        },
                        Operand {
                            ptr: r_p as *const f32,
                            rs: rhs.1,
                            cs: rhs.2,
                        },
                    )
                };
                return;
            }
            // SAFETY: the asserts above keep every access of the whole product
            // within the three slices; each block touches a disjoint part of
            // `dst`, which is borrowed mutably, so it overlaps neither operand.
            unsafe {
                gemm::gemm(
                    mm,
                    nn,
                    k,
                    d_p as *mut f32,
                    1,
                    n as isize,
                    self.acc,
                    l_p as *const f32,
                    lhs_cs as isize,
                    lhs_rs as isize,
                    r_p as *const f32,
                    rhs.2 as isize,
                    rhs.1 as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        };
        if parts == 1 {
            block(0);
        } else {
            use rayon::prelude::*;
            (0..parts).into_par_iter().for_each(block);
        }
    }
}

/// The left operand of one product.
#[derive(Clone, Copy)]
enum Lhs<'a> {
    /// `(slice, row stride, column stride)`.
    Slice((&'a [f32], usize, usize)),
    #[cfg(target_arch = "x86_64")]
    Packed(&'a super::avx512::PackedA),
}

/// The three operands' addresses, as integers so the blocks can cross threads.
#[derive(Clone, Copy)]
struct Ptrs {
    dst: usize,
    lhs: usize,
    rhs: usize,
}

/// Runs `f` on the contiguous f32 data of a CPU tensor, without copying it.
pub(crate) fn with_cpu_f32<R>(
    t: &candle_core::Tensor,
    f: impl FnOnce(&[f32]) -> R,
) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("expected a CPU tensor");
    };
    Ok(f(contiguous_f32(cpu, layout)?))
}

/// A contiguous f32 slice of a CPU storage, honouring the layout's offset.
pub(crate) fn contiguous_f32<'a>(
    s: &'a candle_core::CpuStorage,
    l: &candle_core::Layout,
) -> candle_core::Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&s.as_slice::<f32>()?[start..end]),
        None => candle_core::bail!("expected a contiguous tensor"),
    }
}
