#include "framework/im2col.h"

#include <algorithm>
#include <cstring>

#include "framework/error.h"

namespace inq {

Conv2dGeometry Conv2dGeometry::make(const Shape& input, const Shape& weight, Size2 stride, Size2 padding,
                                    Size2 dilation, int64_t groups) {
  // Every message carries the whole configuration: a wrong layer is found by its shapes.
  const auto where = [&] {
    return fmt::format("input of shape {} and weight of shape {} (stride {}x{}, padding {}x{}, dilation {}x{}, "
                       "groups {})",
                       shape_str(input), shape_str(weight), stride.h, stride.w, padding.h, padding.w, dilation.h,
                       dilation.w, groups);
  };
  INQ_CHECK(input.size() == 4, "Given {}, expected a 4-D input (N, C, H, W), but got {} dims instead", where(),
            input.size());
  INQ_CHECK(weight.size() == 4, "Given {}, expected a 4-D weight (K, C/groups, R, S), but got {} dims instead",
            where(), weight.size());
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
  INQ_CHECK(g.C % groups == 0, "Given {}, expected input channels {} to be divisible by groups {}", where(), g.C,
            groups);
  INQ_CHECK(g.K % groups == 0, "Given {}, expected output channels {} to be divisible by groups {}", where(), g.K,
            groups);
  INQ_CHECK(weight[1] == g.C / groups,
            "Given {}, expected weight dim 1 to be input channels / groups = {} / {} = {}, but got {} instead",
            where(), g.C, groups, g.C / groups, weight[1]);
  // The extent of a dilated kernel must fit in the padded input, else there is no output pixel
  // (checked before dividing: C++ division truncates negative numerators towards zero).
  const int64_t extent_h = g.dilation.h * (g.R - 1) + 1, extent_w = g.dilation.w * (g.S - 1) + 1;
  INQ_CHECK(extent_h <= g.H + 2 * g.padding.h && extent_w <= g.W + 2 * g.padding.w,
            "Given {}, expected the dilated kernel ({}x{}) to fit in the padded input ({}x{}), but the output "
            "size would be <= 0",
            where(), extent_h, extent_w, g.H + 2 * g.padding.h, g.W + 2 * g.padding.w);
  g.OH = (g.H + 2 * g.padding.h - extent_h) / g.stride.h + 1;
  g.OW = (g.W + 2 * g.padding.w - extent_w) / g.stride.w + 1;
  shape_numel(g.output_shape());  // throws on 64-bit overflow
  shape_numel({g.col_rows(), g.output_pixels()});
  g.images_per_gemm = choose_images_per_gemm(g);
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
  return fmt::format("N={} C={} H={} W={} K={} R={} S={} stride={}x{} pad={}x{} dil={}x{} groups={}", N, C, H, W, K,
                     R, S, stride.h, stride.w, padding.h, padding.w, dilation.h, dilation.w, groups);
}

int64_t choose_images_per_gemm(const Conv2dGeometry& g) {
  // Measured in bench/bench_conv.cpp (BM_ConvForwardChunk): OpenBLAS reaches its full rate once
  // the GEMM's column count (n * OH * OW) is in the high hundreds; below that, packing overheads
  // and thread imbalance dominate. So lower as many images as needed to reach kTargetColumns,
  // but keep the col matrix (which is re-read by the GEMM) within kMaxColFloats.
  constexpr int64_t kTargetColumns = 1024;
  constexpr int64_t kMaxColFloats = int64_t(4) << 20;  // 16 MiB
  const int64_t pixels = g.output_pixels();
  int64_t n = (kTargetColumns + pixels - 1) / pixels;
  const int64_t per_image = g.col_rows() * pixels;
  n = std::min(n, std::max<int64_t>(1, kMaxColFloats / std::max<int64_t>(1, per_image)));
  return std::clamp<int64_t>(n, 1, std::max<int64_t>(1, g.N));
}

namespace {

// Output columns [lo, hi) read an in-range input column for kernel column offset `off`
// (iw = ow * stride + off); the rest read padding.
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

// One channel plane (H, W) into its R*S rows of col, each row `ld` floats apart.
void im2col_plane(float* col, int64_t ld, const float* plane, const Conv2dGeometry& g) {
  const int64_t OW = g.OW;
  for (int64_t r = 0; r < g.R; ++r) {
    const int64_t ih_off = r * g.dilation.h - g.padding.h;
    for (int64_t s = 0; s < g.S; ++s) {
      const int64_t iw_off = s * g.dilation.w - g.padding.w;
      const ValidRange v = valid_outputs(iw_off, g.stride.w, g.W, OW);
      float* row = col + (r * g.S + s) * ld;
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        float* dst = row + oh * OW;
        const int64_t ih = oh * g.stride.h + ih_off;
        if (ih < 0 || ih >= g.H) {
          std::memset(dst, 0, static_cast<size_t>(OW) * sizeof(float));
          continue;
        }
        const float* src = plane + ih * g.W;
        for (int64_t ow = 0; ow < v.lo; ++ow) dst[ow] = 0.0f;
        if (g.stride.w == 1) {
          std::memcpy(dst + v.lo, src + v.lo + iw_off, static_cast<size_t>(v.hi - v.lo) * sizeof(float));
        } else {
          for (int64_t ow = v.lo; ow < v.hi; ++ow) dst[ow] = src[ow * g.stride.w + iw_off];
        }
        for (int64_t ow = v.hi; ow < OW; ++ow) dst[ow] = 0.0f;
      }
    }
  }
}

// The adjoint of im2col_plane: adds the R*S rows back into one channel plane.
void col2im_plane(float* plane, const float* col, int64_t ld, const Conv2dGeometry& g) {
  const int64_t OW = g.OW;
  for (int64_t r = 0; r < g.R; ++r) {
    const int64_t ih_off = r * g.dilation.h - g.padding.h;
    for (int64_t s = 0; s < g.S; ++s) {
      const int64_t iw_off = s * g.dilation.w - g.padding.w;
      const ValidRange v = valid_outputs(iw_off, g.stride.w, g.W, OW);
      const float* row = col + (r * g.S + s) * ld;
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        const int64_t ih = oh * g.stride.h + ih_off;
        if (ih < 0 || ih >= g.H) continue;
        const float* src = row + oh * OW;
        float* dst = plane + ih * g.W;
        if (g.stride.w == 1) {
          for (int64_t ow = v.lo; ow < v.hi; ++ow) dst[ow + iw_off] += src[ow];
        } else {
          for (int64_t ow = v.lo; ow < v.hi; ++ow) dst[ow * g.stride.w + iw_off] += src[ow];
        }
      }
    }
  }
}

// Parallelizing pays only when there is enough copying to amortize waking the team.
constexpr int64_t kMinParallelFloats = 32768;

}  // namespace

void im2col(float* col, const float* images, int64_t count, const Conv2dGeometry& g) {
  const int64_t pixels = g.output_pixels(), ld = count * pixels, rows = g.R * g.S;
  const int64_t tasks = count * g.C;
  const bool parallel = g.col_rows() * ld >= kMinParallelFloats;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t b = t / g.C, c = t % g.C;
    im2col_plane(col + c * rows * ld + b * pixels, ld, images + (b * g.C + c) * g.H * g.W, g);
  }
}

void col2im(float* images, const float* col, int64_t count, const Conv2dGeometry& g) {
  const int64_t pixels = g.output_pixels(), ld = count * pixels, rows = g.R * g.S;
  const int64_t tasks = count * g.C;
  const bool parallel = g.col_rows() * ld >= kMinParallelFloats;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t b = t / g.C, c = t % g.C;
    col2im_plane(images + (b * g.C + c) * g.H * g.W, col + c * rows * ld + b * pixels, ld, g);
  }
}

}  // namespace inq
