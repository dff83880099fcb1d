#include "framework/im2col.h"

#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "framework/error.h"
#include "framework/threading.h"

namespace inq {

Conv2dGeometry Conv2dGeometry::make(const Shape& input, const Shape& weight, Size2 stride, Size2 padding,
                                    Size2 dilation, int64_t groups) {
  // Every message carries the whole configuration: a wrong layer is found by its shapes.
  const auto where = [&] {
    return fmt::format(
        "input of shape {} and weight of shape {} (stride {}x{}, padding {}x{}, dilation {}x{}, "
        "groups {})",
        shape_str(input), shape_str(weight), stride.h, stride.w, padding.h, padding.w, dilation.h, dilation.w,
        groups);
  };
  INQ_CHECK(input.size() == 4, "Given {}, expected a 4-D input (N, C, H, W), but got {} dims instead",
            where(), input.size());
  INQ_CHECK(weight.size() == 4,
            "Given {}, expected a 4-D weight (K, C/groups, R, S), but got {} dims instead", where(),
            weight.size());
  for (int64_t d : input) INQ_CHECK(d > 0, "Given {}, expected every input dim to be positive", where());
  for (int64_t d : weight) INQ_CHECK(d > 0, "Given {}, expected every weight dim to be positive", where());
  INQ_CHECK(stride.h >= 1 && stride.w >= 1, "Given {}, expected stride >= 1", where());
  INQ_CHECK(dilation.h >= 1 && dilation.w >= 1, "Given {}, expected dilation >= 1", where());
  INQ_CHECK(padding.h >= 0 && padding.w >= 0, "Given {}, expected padding >= 0", where());
  INQ_CHECK(groups >= 1, "Given {}, expected groups >= 1", where());

  Conv2dGeometry g;
  g.N = input[0], g.C = input[1], g.H = input[2], g.W = input[3];
  g.K = weight[0], g.R = weight[2], g.S = weight[3];
  g.stride = stride, g.padding = padding, g.dilation = dilation, g.groups = groups;
  INQ_CHECK(g.C % groups == 0, "Given {}, expected input channels {} to be divisible by groups {}", where(),
            g.C, groups);
  INQ_CHECK(g.K % groups == 0, "Given {}, expected output channels {} to be divisible by groups {}", where(),
            g.K, groups);
  INQ_CHECK(
      weight[1] == g.C / groups,
      "Given {}, expected weight dim 1 to be input channels / groups = {} / {} = {}, but got {} instead",
      where(), g.C, groups, g.C / groups, weight[1]);
  // The extent of a dilated kernel must fit in the padded input, else there is no output pixel
  // (checked before dividing: C++ division truncates negative numerators towards zero).
  const int64_t extent_h = g.dilation.h * (g.R - 1) + 1, extent_w = g.dilation.w * (g.S - 1) + 1;
  INQ_CHECK(
      extent_h <= g.H + 2 * g.padding.h && extent_w <= g.W + 2 * g.padding.w,
      "Given {}, expected the dilated kernel ({}x{}) to fit in the padded input ({}x{}), but the output "
      "size would be <= 0",
      where(), extent_h, extent_w, g.H + 2 * g.padding.h, g.W + 2 * g.padding.w);
  g.OH = (g.H + 2 * g.padding.h - extent_h) / g.stride.h + 1;
  g.OW = (g.W + 2 * g.padding.w - extent_w) / g.stride.w + 1;
  shape_numel(g.output_shape());  // throws on 64-bit overflow
  shape_numel({g.col_rows(), g.output_pixels()});
  g.images_per_gemm = choose_images_per_gemm(g);
  g.parallel_images = choose_parallel_images(g);
  g.parallel_data_chunks = choose_parallel_data_chunks(g);
  return g;
}

bool Conv2dGeometry::is_pointwise() const {
  return R == 1 && S == 1 && stride == Size2(1) && padding == Size2(0);
}

double Conv2dGeometry::forward_flops() const {
  return 2.0 * static_cast<double>(N) * static_cast<double>(K) * static_cast<double>(group_col_rows()) *
         static_cast<double>(output_pixels());
}

std::string Conv2dGeometry::str() const {
  return fmt::format("N={} C={} H={} W={} K={} R={} S={} stride={}x{} pad={}x{} dil={}x{} groups={}", N, C, H,
                     W, K, R, S, stride.h, stride.w, padding.h, padding.w, dilation.h, dilation.w, groups);
}

namespace {
// images_per_gemm within the batch.
int64_t gemm_chunk_images(const Conv2dGeometry& g) {
  return std::clamp<int64_t>(g.images_per_gemm, 1, std::max<int64_t>(1, g.N));
}
}  // namespace

bool choose_parallel_images(const Conv2dGeometry& g) {
  const int64_t threads = get_num_threads();
  const int64_t chunk = gemm_chunk_images(g);
  const int64_t chunks = (g.N + chunk - 1) / chunk;
  const bool small_images = g.forward_flops() <= kParallelImagesMaxFlops * static_cast<double>(g.N);
  const bool small_buffers = g.K * g.group_col_rows() <= kParallelImagesMaxWeightFloats &&
                             chunk * g.col_rows() * g.output_pixels() <= kParallelImagesMaxColFloats;
  return threads > 1 && chunks >= 2 * threads && (small_images || small_buffers);
}

int64_t data_chunk_images(const Conv2dGeometry& g) {
  const int64_t threads = std::max<int64_t>(1, get_num_threads());
  const int64_t chunk = gemm_chunk_images(g);
  if (g.N % (chunk * threads) == 0 || g.N <= chunk) return chunk;  // even, or one GEMM for the team
  return g.N % threads == 0 ? g.N / threads : chunk;
}

int64_t weight_chunk_images(const Conv2dGeometry& g) {
  const int64_t chunk = gemm_chunk_images(g);
  // A 1x1 layer's image is its own col matrix: with rows this long, one image per GEMM skips the
  // copies of x and dy a wider chunk needs (see the header).
  if (g.is_pointwise() && chunk == 1 && g.output_pixels() >= kWeightChunkOwnImagePixels) return 1;
  const int64_t fit = kWeightChunkColFloats / std::max<int64_t>(1, g.col_rows() * g.output_pixels());
  return std::clamp<int64_t>(fit, chunk, std::max<int64_t>(1, g.N));
}

bool choose_parallel_data_chunks(const Conv2dGeometry& g) {
  const int64_t threads = get_num_threads(), chunk = data_chunk_images(g);
  return !g.parallel_images && threads > 1 && g.N % (chunk * threads) == 0 &&
         chunk * g.output_pixels() <= kNarrowGemmColumns;
}

int64_t choose_images_per_gemm(const Conv2dGeometry& g) {
  // From bench/bench_conv.cpp's ChunkForward/ChunkBackward sweeps (one thread, CPU time, so the
  // shared machine's load distorts it least). Two effects pull in opposite directions:
  // - every GEMM re-packs the weights, so narrow GEMMs (7x7 and 14x14 images, one at a time) pay
  //   that copy per image; it is what makes the 512-channel 7x7 layers and the 1x1 512->2048 layer
  //   10-25% faster with 4-8 images per GEMM;
  // - a col matrix that falls out of cache makes the lowering and the GEMM's packing of it slow;
  //   layers with few channels (ResNet-20's 16-64) were fastest with 1-4 images per GEMM and lost
  //   up to half their speed at 64-128.
  // So: enough images for kTargetColumns GEMM columns, no more than fit in kMaxColFloats.
  constexpr int64_t kTargetColumns = 256;
  constexpr int64_t kMaxColFloats = int64_t(1) << 20;  // 4 MiB
  const int64_t pixels = g.output_pixels();
  const int64_t per_image = g.col_rows() * pixels;
  int64_t n = (kTargetColumns + pixels - 1) / pixels;
  n = std::min(n, kMaxColFloats / std::max<int64_t>(1, per_image));
  return std::clamp<int64_t>(n, 1, std::max<int64_t>(1, g.N));
}

namespace {

// Output positions [lo, hi) read an in-range input position for kernel offset `off`
// (i = o * stride + off), along one axis; the rest read padding.
struct ValidRange {
  int64_t lo, hi;
};

ValidRange valid_outputs(int64_t off, int64_t stride, int64_t in_size, int64_t out_size) {
  // ow * stride + off >= 0  <=>  ow >= ceil(-off / stride);  ow * stride + off <= in_size - 1.
  int64_t lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
  int64_t hi = in_size - 1 - off < 0 ? 0 : (in_size - 1 - off) / stride + 1;
  lo = std::min(lo, out_size);
  hi = std::clamp(hi, lo, out_size);
  return {lo, hi};
}

// The valid output ranges of every kernel row (vertical) and column (horizontal), computed once per
// call rather than once per plane: the divisions in valid_outputs cost more than copying a 7x7
// plane's rows.
struct Ranges {
  std::vector<ValidRange> rows, cols;  // (R), (S)
  explicit Ranges(const Conv2dGeometry& g) {
    for (int64_t r = 0; r < g.R; ++r)
      rows.push_back(valid_outputs(r * g.dilation.h - g.padding.h, g.stride.h, g.H, g.OH));
    for (int64_t s = 0; s < g.S; ++s)
      cols.push_back(valid_outputs(s * g.dilation.w - g.padding.w, g.stride.w, g.W, g.OW));
  }
};

// Stride-2 rows, the lowering of ResNet's downsampling layers: dst[i] = src[2 i] (copy) and
// dst[2 i] += src[i] (the adjoint) for i < n. With AVX-512, 16 outputs at a time: two masked loads
// of the 31 floats they span and one permute picking the even ones (or spreading 16 values onto
// even lanes, added and stored through an even-lane mask, so the odd floats between are never
// rewritten); no load reaches past src[2 (n - 1)] or dst[2 (n - 1)]. The same values as the
// scalar loops, which builds without AVX-512 run. (im2col and col2im were 7% of a ResNet-20
// training step at 1 thread on an Intel Xeon, 2026-12-03, with the scalar loops.)
void copy_even_floats(float* dst, const float* src, int64_t n) {
#if defined(__AVX512F__)
  const __m512i evens = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  for (int64_t i = 0; i < n; i += 16) {
    const int64_t k = std::min<int64_t>(16, n - i), span = 2 * k - 1;
    const __mmask16 lo_mask = span >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << span) - 1u);
    const __mmask16 hi_mask = span > 16 ? static_cast<__mmask16>((1u << (span - 16)) - 1u) : 0;
    const __m512 lo = _mm512_maskz_loadu_ps(lo_mask, src + 2 * i);
    const __m512 hi = _mm512_maskz_loadu_ps(hi_mask, src + 2 * i + 16);
    _mm512_mask_storeu_ps(dst + i, static_cast<__mmask16>((1u << k) - 1u), _mm512_permutex2var_ps(lo, evens, hi));
  }
#else
  for (int64_t i = 0; i < n; ++i) dst[i] = src[2 * i];
#endif
}

void add_to_even_floats(float* dst, const float* src, int64_t n) {
#if defined(__AVX512F__)
  const __m512i first_half = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
  const __m512i second_half = _mm512_add_epi32(first_half, _mm512_set1_epi32(8));
  constexpr __mmask16 kEven = 0x5555;
  for (int64_t i = 0; i < n; i += 16) {
    const int64_t k = std::min<int64_t>(16, n - i), span = 2 * k - 1;
    const __mmask16 lo_mask = (span >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << span) - 1u)) & kEven;
    const __mmask16 hi_mask = (span > 16 ? static_cast<__mmask16>((1u << (span - 16)) - 1u) : 0) & kEven;
    const __m512 values = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << k) - 1u), src + i);
    float* d = dst + 2 * i;
    const __m512 lo = _mm512_maskz_loadu_ps(lo_mask, d);
    _mm512_mask_storeu_ps(d, lo_mask, _mm512_add_ps(lo, _mm512_maskz_permutexvar_ps(kEven, first_half, values)));
    if (hi_mask) {
      const __m512 hi = _mm512_maskz_loadu_ps(hi_mask, d + 16);
      _mm512_mask_storeu_ps(d + 16, hi_mask, _mm512_add_ps(hi, _mm512_maskz_permutexvar_ps(kEven, second_half, values)));
    }
  }
#else
  for (int64_t i = 0; i < n; ++i) dst[2 * i] += src[i];
#endif
}

// One channel plane (H, W) into its R*S rows of col, each row `ld` floats apart.
void im2col_plane(float* col, int64_t ld, const float* plane, const Conv2dGeometry& g, const Ranges& ranges) {
  const int64_t OH = g.OH, OW = g.OW, W = g.W;
  // Unit strides and OW == W ("same" padding): output rows and the input rows they read are
  // equally spaced, so each (r, s) row of col is one contiguous copy of the plane, shifted, with
  // the padding columns zeroed afterwards. This is most 3x3 convolutions, and it turns the many
  // short row copies of a 7x7 or 14x14 image into one.
  const bool rows_line_up = g.stride == Size2(1) && OW == W;
  for (int64_t r = 0; r < g.R; ++r) {
    const int64_t ih_off = r * g.dilation.h - g.padding.h;
    const ValidRange vh = ranges.rows[r];
    for (int64_t s = 0; s < g.S; ++s) {
      const int64_t iw_off = s * g.dilation.w - g.padding.w;
      const ValidRange v = ranges.cols[s];
      float* row = col + (r * g.S + s) * ld;
      // Output rows that read padding only, above and below.
      std::fill(row, row + vh.lo * OW, 0.0f);
      std::fill(row + vh.hi * OW, row + OH * OW, 0.0f);
      if (v.lo == v.hi) {
        std::fill(row + vh.lo * OW, row + vh.hi * OW, 0.0f);
        continue;
      }
      if (rows_line_up) {
        if (vh.lo == vh.hi) continue;
        // dst index d = oh * OW + ow reads plane[d + ih_off * W + iw_off]; copy from the first
        // valid pixel to the last, then clear the padding columns of every row.
        const int64_t first = vh.lo * OW + v.lo, last = (vh.hi - 1) * OW + v.hi;
        std::memcpy(row + first, plane + first + ih_off * W + iw_off,
                    static_cast<size_t>(last - first) * sizeof(float));
        for (int64_t oh = vh.lo; oh < vh.hi; ++oh) {
          float* dst = row + oh * OW;
          for (int64_t ow = 0; ow < v.lo; ++ow) dst[ow] = 0.0f;
          for (int64_t ow = v.hi; ow < OW; ++ow) dst[ow] = 0.0f;
        }
        continue;
      }
      for (int64_t oh = vh.lo; oh < vh.hi; ++oh) {
        float* dst = row + oh * OW;
        const float* src = plane + (oh * g.stride.h + ih_off) * W;
        for (int64_t ow = 0; ow < v.lo; ++ow) dst[ow] = 0.0f;
        if (g.stride.w == 1) {
          for (int64_t ow = v.lo; ow < v.hi; ++ow) dst[ow] = src[ow + iw_off];
        } else if (g.stride.w == 2) {
          copy_even_floats(dst + v.lo, src + 2 * v.lo + iw_off, v.hi - v.lo);
        } else {
          for (int64_t ow = v.lo; ow < v.hi; ++ow) dst[ow] = src[ow * g.stride.w + iw_off];
        }
        for (int64_t ow = v.hi; ow < OW; ++ow) dst[ow] = 0.0f;
      }
    }
  }
}

// The adjoint of im2col_plane: adds the R*S rows back into one channel plane (padding entries of
// col are dropped, so no contiguous shortcut here).
void col2im_plane(float* plane, const float* col, int64_t ld, const Conv2dGeometry& g, const Ranges& ranges) {
  const int64_t OW = g.OW, W = g.W;
  for (int64_t r = 0; r < g.R; ++r) {
    const int64_t ih_off = r * g.dilation.h - g.padding.h;
    const ValidRange vh = ranges.rows[r];
    for (int64_t s = 0; s < g.S; ++s) {
      const int64_t iw_off = s * g.dilation.w - g.padding.w;
      const ValidRange v = ranges.cols[s];
      const float* row = col + (r * g.S + s) * ld;
      for (int64_t oh = vh.lo; oh < vh.hi; ++oh) {
        const float* src = row + oh * OW;
        float* dst = plane + (oh * g.stride.h + ih_off) * W;
        if (g.stride.w == 1) {
          for (int64_t ow = v.lo; ow < v.hi; ++ow) dst[ow + iw_off] += src[ow];
        } else if (g.stride.w == 2) {
          add_to_even_floats(dst + 2 * v.lo + iw_off, src + v.lo, v.hi - v.lo);
        } else {
          for (int64_t ow = v.lo; ow < v.hi; ++ow) dst[ow * g.stride.w + iw_off] += src[ow];
        }
      }
    }
  }
}

// Parallelizing pays only when there is enough copying to amortize waking the team. Measured on
// the shared 2-core machine (OMP_WAIT_POLICY=PASSIVE): lowering up to ~1M floats in parallel was
// no faster than serially (waking the second thread costs about as much as it saves, and more when
// the machine is loaded); the 56x56 layers (1.8M floats per image) gained ~10%.
constexpr int64_t kMinParallelFloats = int64_t(1) << 19;

// im2col's tasks read planes an image apart (channel-major order): a 7x7 to 28x28 plane is too
// short a run for the hardware prefetcher, so each task prefetches the plane of the task this many
// ahead. The planes come from memory (activations saved by the forward for the backward, or written
// by the layer before). ResNet-20 training step, AMD EPYC VM, 1 thread, 2026-12-06, ms of lowering
// per step (timed around every call, 21 steps, the two builds run one after the other): the
// forward's chunks of 2-6 images 3.3 -> 2.6, the weight gradient's whole-batch lowerings 9.4 -> 6.5.
// Planes over kPrefetchMaxFloats (64x64 and up) are long enough runs for the hardware prefetcher,
// and prefetching all of a 224x224 plane ahead would only push the current one out of L1.
constexpr int64_t kPrefetchTasks = 2;
constexpr int64_t kPrefetchMaxFloats = 4096;

void prefetch_plane(const float* plane, int64_t floats) {
  const char* bytes = reinterpret_cast<const char*>(plane);
  for (int64_t off = 0; off < floats * static_cast<int64_t>(sizeof(float)); off += 64) __builtin_prefetch(bytes + off, 0, 3);
}

}  // namespace

void im2col(float* col, const float* images, int64_t count, const Conv2dGeometry& g) {
  const int64_t pixels = g.output_pixels(), ld = count * pixels, rows = g.R * g.S;
  const int64_t tasks = count * g.C;
  const bool parallel = g.col_rows() * ld >= kMinParallelFloats;
  const Ranges ranges(g);
  // Channel-major task order: consecutive tasks fill consecutive segments of the same col rows.
  // (Image-major order hops between rows ld floats apart; when ld is near a multiple of 4 KiB
  // those writes all land in the same cache sets, which made 7x7 lowering 2-3x slower.)
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t c = t / count, b = t % count;
    if (t + kPrefetchTasks < tasks && g.H * g.W <= kPrefetchMaxFloats) {
      const int64_t ahead = t + kPrefetchTasks;
      prefetch_plane(images + (ahead % count * g.C + ahead / count) * g.H * g.W, g.H * g.W);
    }
    im2col_plane(col + c * rows * ld + b * pixels, ld, images + (b * g.C + c) * g.H * g.W, g, ranges);
  }
}

void im2col_rows(float* col, const float* image, const Conv2dGeometry& g, int64_t oh0, int64_t oh1) {
  const int64_t band = (oh1 - oh0) * g.OW;
  const int64_t rows = g.C * g.R * g.S;
#pragma omp parallel for schedule(static) if (rows * band >= (int64_t{1} << 18))
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t c = row / (g.R * g.S), r = (row / g.S) % g.R, s = row % g.S;
    const float* plane = image + c * g.H * g.W;
    float* dst = col + row * band;
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      const int64_t ih = oh * g.stride.h - g.padding.h + r * g.dilation.h;
      float* out = dst + (oh - oh0) * g.OW;
      if (ih < 0 || ih >= g.H) {
        std::fill(out, out + g.OW, 0.0f);
        continue;
      }
      const float* in = plane + ih * g.W;
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const int64_t iw = ow * g.stride.w - g.padding.w + s * g.dilation.w;
        out[ow] = (iw >= 0 && iw < g.W) ? in[iw] : 0.0f;
      }
    }
  }
}


void col2im(float* images, const float* col, int64_t count, const Conv2dGeometry& g) {
  const int64_t pixels = g.output_pixels(), ld = count * pixels, rows = g.R * g.S;
  const int64_t tasks = count * g.C;
  const bool parallel = g.col_rows() * ld >= kMinParallelFloats;
  const Ranges ranges(g);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t t = 0; t < tasks; ++t) {  // channel-major, as in im2col
    const int64_t c = t / count, b = t % count;
    col2im_plane(images + (b * g.C + c) * g.H * g.W, col + c * rows * ld + b * pixels, ld, g, ranges);
  }
}

}  // namespace inq
