//! One GEMM call on slices, with bounds checked, for the CPU custom ops:
//! our AVX-512 kernel ([`super::avx512`]) where the CPU has AVX-512F, else
//! the `gemm` crate (the GEMM candle itself uses).

use std::mem::MaybeUninit;

/// Columns of the right operand that the AVX-512 kernel computes at once
/// (three vectors): a product's last, partly padded panel of columns costs
/// as much as a full one, so callers that choose `n` pick multiples of it.
/// (Elsewhere the `gemm` crate's narrower panels divide it.)
#[cfg(target_arch = "x86_64")]
pub(crate) const PANEL_COLS: usize = super::avx512::NR;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const PANEL_COLS: usize = 48;

/// Rows that [`PackedLhs::build`] asks for at once (the AVX-512 kernel's
/// row panel).
#[cfg(target_arch = "x86_64")]
pub(crate) const BUILD_ROWS: usize = super::avx512::MR;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const BUILD_ROWS: usize = 8;

/// `a · bᵀ` for row-major `a: [m, k]` and `b: [n, k]`, as a row-major
/// `[m, n]`, threaded: by dot products along the rows of `b`
/// ([`super::dot`]) when `a` has only a few rows and the CPU has AVX-512F
/// (f32 precision), else by the GEMM. (The linear layer's forward: `b` is
/// its weight.)
pub(crate) fn product_nt(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if m <= super::dot::MAX_ROWS && super::avx512::available() && !super::precision::bf16() {
        return super::dot::x_wt(a, b, m, k, n);
    }
    Gemm {
        m,
        n,
        k,
        acc: false,
    }
    .product((a, k, 1), (b, 1, k))
}

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
    /// `N` operands of `[m, k]` from `f(i0, p)`: column `p` of rows
    /// `i0..i0 + BUILD_ROWS` of every operand (see
    /// [`super::avx512::PackedA::build`]; lanes past row `m` are ignored),
    /// each element computed once and written straight into the form it is
    /// kept in; in parallel.
    pub(crate) fn build<const N: usize>(
        m: usize,
        k: usize,
        f: impl Fn(usize, usize) -> [[f32; BUILD_ROWS]; N] + Sync,
    ) -> Vec<PackedLhs> {
        #[cfg(target_arch = "x86_64")]
        if super::avx512::available() {
            let packed = super::avx512::PackedA::build(m, k, super::precision::bf16(), f);
            return packed.into_iter().map(PackedLhs::Avx512).collect();
        }
        use rayon::prelude::*;
        // Row blocks of every operand, row-major within each.
        let blocks: Vec<[Vec<f32>; N]> = (0..m.div_ceil(BUILD_ROWS))
            .into_par_iter()
            .map(|b| {
                let (i0, rows) = (b * BUILD_ROWS, BUILD_ROWS.min(m - b * BUILD_ROWS));
                let cols: Vec<[[f32; BUILD_ROWS]; N]> = (0..k).map(|p| f(i0, p)).collect();
                std::array::from_fn(|j| {
                    (0..rows)
                        .flat_map(|i| cols.iter().map(move |col| col[j][i]))
                        .collect()
                })
            })
            .collect();
        (0..N)
            .map(|j| PackedLhs::Plain {
                a: blocks.iter().flat_map(|b| b[j].iter().copied()).collect(),
                m,
                k,
            })
            .collect()
    }

    /// The bits of what is kept, in its order (for tests comparing two
    /// ways of building the same operand).
    #[cfg(test)]
    pub(crate) fn bits(&self) -> Vec<u32> {
        match self {
            PackedLhs::Plain { a, .. } => a.iter().map(|v| v.to_bits()).collect(),
            #[cfg(target_arch = "x86_64")]
            PackedLhs::Avx512(p) => p.bits(),
        }
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

    /// `dst = lhs · rhs` into a destination that need not be initialised
    /// (`acc` must be false): every element of the `[m, n]` product is
    /// written, so a fresh output needs no zero-fill first (the backward's
    /// weight gradients: 411 MB for `classifier.0`).
    pub(crate) fn run_uninit(
        &self,
        dst: &mut [MaybeUninit<f32>],
        lhs: (&[f32], usize, usize),
        rhs: (&[f32], usize, usize),
        threaded: bool,
    ) {
        assert!(
            !self.acc,
            "an uninitialised destination cannot be accumulated into"
        );
        if self.k == 0 {
            // The empty sum, written here: not every backend writes it.
            for v in dst.iter_mut().take(self.m * self.n) {
                v.write(0.0);
            }
            return;
        }
        // SAFETY: `dst` is borrowed mutably, so nothing else reaches it and
        // it overlaps neither operand; its length bounds the writes.
        unsafe {
            self.run_raw(
                dst.as_mut_ptr().cast(),
                dst.len(),
                Lhs::Slice(lhs),
                rhs,
                threaded,
            )
        }
    }

    /// `lhs · rhs` as a new row-major `[m, n]` vector, written once (no
    /// zero-fill first; see [`Gemm::run_uninit`]), threaded.
    pub(crate) fn product(
        &self,
        lhs: (&[f32], usize, usize),
        rhs: (&[f32], usize, usize),
    ) -> Vec<f32> {
        let len = self.m * self.n;
        let mut dst = Vec::with_capacity(len);
        self.run_uninit(&mut dst.spare_capacity_mut()[..len], lhs, rhs, true);
        // SAFETY: `run_uninit` wrote all `m · n` elements.
        unsafe { dst.set_len(len) };
        dst
    }

    fn run_on(&self, dst: &mut [f32], lhs: Lhs, rhs: (&[f32], usize, usize), threaded: bool) {
        // SAFETY: as in `run_uninit`; `dst` is initialised, so reading it
        // (`acc`) is sound too.
        unsafe { self.run_raw(dst.as_mut_ptr(), dst.len(), lhs, rhs, threaded) }
    }

    /// The product into `dst_len` floats at `dst`.
    ///
    /// # Safety
    /// `dst` is valid for writes of `dst_len` floats (and reads, with
    /// `acc`), overlaps neither operand, and nothing else touches it during
    /// the call. With `acc` false and `k > 0` every element of the product
    /// is written without being read first.
    unsafe fn run_raw(
        &self,
        dst: *mut f32,
        dst_len: usize,
        lhs: Lhs,
        rhs: (&[f32], usize, usize),
        threaded: bool,
    ) {
        let (m, n, k) = (self.m, self.n, self.k);
        if m == 0 || n == 0 {
            return;
        }
        let last = |rows: usize, cols: usize, rs: usize, cs: usize| {
            (rows.max(1) - 1) * rs + (cols.max(1) - 1) * cs + 1
        };
        // The GEMM reads through raw pointers: check every element it touches is in bounds.
        assert!(dst_len >= last(m, n, n, 1), "gemm dst out of bounds");
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
        // Read once, here: every block of one product has the same arithmetic.
        #[cfg(target_arch = "x86_64")]
        let bf16 = super::precision::bf16();
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
            dst: dst as usize,
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
                        bf16,
                    )
                };
                return;
            }
            // SAFETY: the asserts above keep every access of the whole product
            // within the three slices; each block touches a disjoint part of
            // `dst`, which overlaps neither operand (caller).
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

#[cfg(test)]
mod tests {
    use std::mem::MaybeUninit;

    use super::Gemm;

    /// A product into a NaN-filled, uninitialised-typed destination writes
    /// every element, as the same product into zeros does, bit for bit:
    /// shapes across the kernel's row and column edges, several `KC`
    /// blocks, transposed operands, `k = 0`, threaded or not.
    #[test]
    fn uninitialised_destinations_are_written_in_full() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (17, 49, 3),
            (5, 300, 700),
            (130, 7, 33),
            (9, 11, 0),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37) % 101) as f32 * 0.01 - 0.5)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 53) % 97) as f32 * 0.02 - 1.0)
                .collect();
            for (lhs, rhs) in [
                ((&a[..], k, 1), (&b[..], n, 1)),
                ((&a[..], k, 1), (&b[..], 1, k)),
            ] {
                let g = Gemm {
                    m,
                    n,
                    k,
                    acc: false,
                };
                let mut want = vec![0f32; m * n];
                g.run(&mut want, lhs, rhs);
                for threaded in [false, true] {
                    let mut got = vec![MaybeUninit::new(f32::NAN); m * n];
                    g.run_uninit(&mut got, lhs, rhs, threaded);
                    // SAFETY: filled with NaN above, so initialised either way.
                    let got: Vec<u32> = got
                        .iter()
                        .map(|v| unsafe { v.assume_init() }.to_bits())
                        .collect();
                    let want: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
                    assert_eq!(got, want, "{:?} threaded {threaded}", (m, n, k));
                }
                assert_eq!(g.product(lhs, rhs), want, "{:?}", (m, n, k));
            }
        }
    }
}
