// Conv2d: geometry, im2col/col2im, the im2col+sgemm kernels against a naive direct convolution
// (forward and backward, every path and chunk size), autograd plumbing, the layer, and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "framework/autograd.h"
#include "error_testing.h"
#include "framework/error.h"
#include "framework/dot_gemm.h"
#include "framework/im2col.h"
#include "framework/panel_gemm.h"
#include "framework/random.h"
#include "framework/threading.h"
#include "gradcheck.h"
#include "layers/conv2d.h"

using namespace inq;
using inq::test::random_tensor;

namespace {

// ---- naive references, straight from the definition, in double ----
// y[n][k][oh][ow] = b[k] + sum_{c in group(k), r, s} x[n][c][oh*sh - ph + r*dh][ow*sw - pw + s*dw] *
// w[k][c'][r][s]

// Calls f(x_index, w_index, y_index) for every in-range multiply-add y[yi] += x[xi] * w[wi].
template <class F>
void for_each_tap(const Conv2dGeometry& g, F f) {
  const int64_t Cg = g.channels_per_group(), Kg = g.outputs_per_group();
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t k = 0; k < g.K; ++k)
      for (int64_t cl = 0; cl < Cg; ++cl)
        for (int64_t r = 0; r < g.R; ++r)
          for (int64_t s = 0; s < g.S; ++s)
            for (int64_t oh = 0; oh < g.OH; ++oh)
              for (int64_t ow = 0; ow < g.OW; ++ow) {
                const int64_t ih = oh * g.stride.h - g.padding.h + r * g.dilation.h;
                const int64_t iw = ow * g.stride.w - g.padding.w + s * g.dilation.w;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                const int64_t c = (k / Kg) * Cg + cl;
                const int64_t xi = ((n * g.C + c) * g.H + ih) * g.W + iw;
                const int64_t wi = ((k * Cg + cl) * g.R + r) * g.S + s;
                const int64_t yi = ((n * g.K + k) * g.OH + oh) * g.OW + ow;
                f(xi, wi, yi);
              }
}

std::vector<double> naive_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* b) {
  std::vector<double> y(static_cast<size_t>(shape_numel(g.output_shape())), 0.0);
  const int64_t P = g.output_pixels();
  if (b)
    for (size_t i = 0; i < y.size(); ++i) y[i] = b[(static_cast<int64_t>(i) / P) % g.K];
  for_each_tap(g, [&](int64_t xi, int64_t wi, int64_t yi) { y[yi] += static_cast<double>(x[xi]) * w[wi]; });
  return y;
}

struct NaiveGrads {
  std::vector<double> dx, dw, db;
};

NaiveGrads naive_backward(const Conv2dGeometry& g, const float* dy, const float* x, const float* w) {
  NaiveGrads r;
  r.dx.assign(static_cast<size_t>(shape_numel(g.input_shape())), 0.0);
  r.dw.assign(static_cast<size_t>(shape_numel(g.weight_shape())), 0.0);
  r.db.assign(static_cast<size_t>(g.K), 0.0);
  for_each_tap(g, [&](int64_t xi, int64_t wi, int64_t yi) {
    r.dx[xi] += static_cast<double>(dy[yi]) * w[wi];
    r.dw[wi] += static_cast<double>(dy[yi]) * x[xi];
  });
  const int64_t P = g.output_pixels();
  for (int64_t i = 0; i < shape_numel(g.output_shape()); ++i) r.db[(i / P) % g.K] += dy[i];
  return r;
}

// Runs its scope with 2 threads (so a parallel path really splits), then restores the count.
struct TwoThreads {
  TwoThreads() : saved(get_num_threads()) { set_num_threads(2); }
  ~TwoThreads() { set_num_threads(saved); }
  int saved;
};

// Runs the im2col path's GEMMs on one engine (this project's kernels or sgemm) for a scope.
struct Im2colGemmScope {
  explicit Im2colGemmScope(Im2colGemm mode) : saved(im2col_gemm()) { set_im2col_gemm(mode); }
  ~Im2colGemmScope() { set_im2col_gemm(saved); }
  Im2colGemm saved;
};
// Runs the im2col path for a scope: the dispatcher would send the narrow cases here (8 channels
// and fewer, stride 1) to the direct kernels, which have tests of their own.
struct Im2colScope {
  Im2colScope() : saved(conv2d_algorithm()) { set_conv2d_algorithm(Conv2dAlgorithm::Im2col); }
  ~Im2colScope() { set_conv2d_algorithm(saved); }
  Conv2dAlgorithm saved;
};
// The SCOPED_TRACE label of one run of a case: chunk size, parallel images, GEMM engine.
// How the im2col path shares a layer's chunks of images between threads: one chunk at a time
// (each GEMM over the team), every direction on whole chunks per thread (parallel_images), or the
// forward and input gradient on whole chunks per thread and the weight gradient one chunk at a time
// (parallel_data_chunks).
enum class ChunkSchedule { Serial, ParallelImages, ParallelDataChunks };
constexpr ChunkSchedule kChunkSchedules[] = {ChunkSchedule::Serial, ChunkSchedule::ParallelImages,
                                             ChunkSchedule::ParallelDataChunks};

void set_schedule(Conv2dGeometry& g, ChunkSchedule schedule) {
  g.parallel_images = schedule == ChunkSchedule::ParallelImages;
  g.parallel_data_chunks = schedule == ChunkSchedule::ParallelDataChunks;
}

std::string path_label(const std::string& name, int64_t chunk, ChunkSchedule schedule, Im2colGemm engine) {
  const char* how = schedule == ChunkSchedule::ParallelImages       ? " parallel images"
                    : schedule == ChunkSchedule::ParallelDataChunks ? " parallel data chunks"
                                                                    : "";
  return name + " chunk " + std::to_string(chunk) + how + (engine == Im2colGemm::Blas ? " sgemm" : " own kernels");
}

// |got - want| <= 1e-4 * max(1, |want|): inner sizes here are < 200 terms of N(0, 1) products.
void expect_close(const float* got, const std::vector<double>& want, const std::string& what) {
  int bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double tol = 1e-4 * std::max(1.0, std::fabs(want[i]));
    if (std::fabs(got[i] - want[i]) > tol && ++bad <= 5)
      ADD_FAILURE() << what << " differs at flat index " << i << ": got " << got[i] << ", want " << want[i];
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << want.size() << " entries differ";
}

struct Case {
  std::string name;
  Shape x, w;
  Size2 stride = 1, padding = 0, dilation = 1;
  int64_t groups = 1;
  bool bias = true;
};

std::vector<Case> cases() {
  return {
      {"3x3_pad1", {2, 3, 7, 6}, {4, 3, 3, 3}, 1, 1},
      {"3x3_stride2_pad1", {3, 4, 9, 8}, {5, 4, 3, 3}, 2, 1},
      {"3x3_stride2_nopad_nobias", {3, 2, 8, 9}, {3, 2, 3, 3}, 2, 0, 1, 1, false},
      // 6 images: chunks of 2 do not divide among 2 threads, so data chunks take 3 images each.
      {"3x3_stride2_batch6", {6, 3, 9, 8}, {5, 3, 3, 3}, 2, 1},
      {"dilation2_pad2", {2, 2, 9, 10}, {3, 2, 3, 3}, 1, 2, 2},
      {"dilation_2x3_stride_2x1", {2, 3, 11, 12}, {2, 3, 3, 2}, {2, 1}, {1, 0}, {2, 3}},
      {"groups2", {2, 4, 6, 7}, {6, 2, 3, 3}, 1, 1, 1, 2},
      {"groups3_stride2_nobias", {3, 6, 7, 7}, {3, 2, 3, 3}, 2, 1, 1, 3, false},
      {"depthwise", {2, 4, 6, 6}, {4, 1, 3, 3}, 1, 1, 1, 4},
      {"depthwise_multiplier2_stride2", {3, 3, 7, 5}, {6, 1, 3, 3}, 2, 1, 1, 3},
      {"pointwise_1x1", {3, 5, 4, 6}, {7, 5, 1, 1}},
      {"pointwise_1x1_nobias", {2, 6, 3, 5}, {4, 6, 1, 1}, 1, 0, 1, 1, false},
      {"pointwise_1x1_groups2", {3, 4, 5, 3}, {6, 2, 1, 1}, 1, 0, 1, 2},
      // 400 pixels per image: the weight gradient's team dot-product path (kDotWeightMinPixels).
      {"pointwise_1x1_20x20", {3, 6, 20, 20}, {5, 6, 1, 1}},
      {"1x1_stride2", {3, 5, 7, 6}, {4, 5, 1, 1}, 2},
      {"1x1_pad1", {2, 3, 4, 4}, {2, 3, 1, 1}, 1, 1},
      {"nonsquare_kernel_2x5", {2, 2, 7, 11}, {3, 2, 2, 5}, {2, 1}, {1, 2}},
      {"nonsquare_kernel_5x1_asym_pad", {3, 3, 6, 4}, {4, 3, 5, 1}, 1, {2, 0}},
      {"kernel_covers_input", {2, 3, 5, 4}, {4, 3, 5, 4}},
      {"padding_larger_than_kernel", {2, 2, 3, 3}, {3, 2, 3, 3}, 2, 3},
      {"stride3_single_pixel_rows", {4, 2, 4, 10}, {3, 2, 2, 2}, 3, 0},
      // Stride-2 rows of 8, 16, 17 and 21 outputs (im2col's vector path: full, partial and two
      // vectors per row), and a 1x1 stride-2 downsampling layer as ResNet's.
      {"3x3_stride2_rows_of_21", {2, 3, 9, 41}, {4, 3, 3, 3}, 2, 1},
      {"3x3_stride2_rows_of_16_nopad", {2, 2, 5, 33}, {3, 2, 3, 3}, 2, 0},
      {"2x2_stride2_rows_of_17", {1, 2, 6, 34}, {2, 2, 2, 2}, 2, 0},
      {"1x1_stride2_rows_of_8", {3, 4, 16, 16}, {8, 4, 1, 1}, 2, 0},
      // Large enough (576 x 2304 col entries per image) that im2col/col2im run in parallel.
      {"parallel_lowering_64c_48x48", {2, 64, 48, 48}, {4, 64, 3, 3}, 1, 1},
      // Caffe's LeNet second layer: several weight panels and a tail (50 filters), a long inner
      // dimension (500), and enough images for the parallel-images path.
      {"lenet5_caffe_conv2_20to50_5x5", {5, 20, 12, 12}, {50, 20, 5, 5}},
  };
}

Conv2dGeometry geometry_of(const Case& c) {
  return Conv2dGeometry::make(c.x, c.w, c.stride, c.padding, c.dilation, c.groups);
}

Conv2dOptions options_of(const Case& c) {
  return {.in_channels = c.x[1],
          .out_channels = c.w[0],
          .kernel_size = {c.w[2], c.w[3]},
          .stride = c.stride,
          .padding = c.padding,
          .dilation = c.dilation,
          .groups = c.groups,
          .bias = c.bias};
}

// Chunk sizes worth testing for N images: one at a time, a size that leaves a partial last chunk,
// and all at once.
std::vector<int64_t> chunk_sizes(int64_t N) {
  std::vector<int64_t> out{1};
  if (N > 2) out.push_back(2);
  if (N > 1) out.push_back(N);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST(Conv2dGeometry, OutputSizesAndDerivedQuantities) {
  // ResNet-50 stem: 224 -> 112 with a 7x7 kernel, stride 2, padding 3.
  Conv2dGeometry g = Conv2dGeometry::make({8, 3, 224, 224}, {64, 3, 7, 7}, 2, 3);
  EXPECT_EQ(g.output_shape(), (Shape{8, 64, 112, 112}));
  EXPECT_EQ(g.col_rows(), 3 * 7 * 7);
  EXPECT_FALSE(g.is_pointwise());
  EXPECT_DOUBLE_EQ(g.forward_flops(), 2.0 * 8 * 64 * 147 * 112 * 112);
  // Dilation: extent 2*(3-1)+1 = 5 on a 9-wide input, no padding -> 5; non-square everything.
  g = Conv2dGeometry::make({1, 4, 9, 12}, {6, 2, 3, 2}, {1, 2}, {0, 1}, {2, 1}, 2);
  EXPECT_EQ(g.OH, 5);
  EXPECT_EQ(g.OW, 7);  // (12 + 2 - 2) / 2 + 1
  EXPECT_EQ(g.channels_per_group(), 2);
  EXPECT_EQ(g.outputs_per_group(), 3);
  EXPECT_EQ(g.group_col_rows(), 2 * 3 * 2);
  EXPECT_EQ(g.weight_shape(), (Shape{6, 2, 3, 2}));
  EXPECT_TRUE(Conv2dGeometry::make({2, 8, 5, 5}, {4, 8, 1, 1}).is_pointwise());
  EXPECT_FALSE(Conv2dGeometry::make({2, 8, 5, 5}, {4, 8, 1, 1}, 2).is_pointwise());
  EXPECT_FALSE(Conv2dGeometry::make({2, 8, 5, 5}, {4, 8, 1, 1}, 1, 1).is_pointwise());
}

TEST(Conv2dGeometry, ChunkPolicyWidensSmallImagesOnly) {
  // Small spatial sizes get several images per GEMM; large ones one; never more than N.
  const Conv2dGeometry small = Conv2dGeometry::make({128, 64, 7, 7}, {64, 64, 3, 3}, 1, 1);
  EXPECT_GT(small.images_per_gemm, 1);
  EXPECT_LE(small.images_per_gemm, 128);
  EXPECT_EQ(Conv2dGeometry::make({8, 64, 56, 56}, {64, 64, 3, 3}, 1, 1).images_per_gemm, 1);
  EXPECT_EQ(Conv2dGeometry::make({3, 4, 2, 2}, {4, 4, 1, 1}).images_per_gemm, 3);
  // A col matrix that would not fit the budget stays one image per GEMM.
  EXPECT_EQ(Conv2dGeometry::make({8, 2048, 7, 7}, {512, 2048, 3, 3}, 1, 1).images_per_gemm, 1);
  EXPECT_EQ(choose_images_per_gemm(small), small.images_per_gemm);
}

TEST(Conv2dGeometry, Size2ConvertsFromOneOrTwoIntegers) {
  Conv2dOptions o{.in_channels = 1, .out_channels = 1, .kernel_size = 3, .stride = {2, 1}};
  EXPECT_EQ(o.kernel_size, Size2(3, 3));
  EXPECT_EQ(o.stride.h, 2);
  EXPECT_EQ(o.stride.w, 1);
  EXPECT_EQ(o.padding, Size2(0));
  EXPECT_EQ(o.dilation, Size2(1));
}

TEST(Im2col, KnownSmallExample) {
  // One 3x3 image 1..9, 2x2 kernel, no padding: four output pixels, rows (r, s).
  const Conv2dGeometry g = Conv2dGeometry::make({1, 1, 3, 3}, {1, 1, 2, 2});
  std::vector<float> x{1, 2, 3, 4, 5, 6, 7, 8, 9}, col(16);
  im2col(col.data(), x.data(), 1, g);
  EXPECT_EQ(col, (std::vector<float>{1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9}));
  // With padding 1 and stride 2: output 2x2, taps at (-1,-1), (-1,1), (1,-1), (1,1) for r=s=0.
  const Conv2dGeometry p = Conv2dGeometry::make({1, 1, 3, 3}, {1, 1, 2, 2}, 2, 1);
  im2col(col.data(), x.data(), 1, p);
  EXPECT_EQ(std::vector<float>(col.begin(), col.begin() + 4), (std::vector<float>{0, 0, 0, 5}));
  EXPECT_EQ(std::vector<float>(col.begin() + 12, col.end()), (std::vector<float>{1, 3, 7, 9}));
}

TEST(Im2col, MatchesTheNaiveLoweringAndItsAdjointForEveryCase) {
  // col[(c, r, s)][(b, oh, ow)] = x[b][c][oh * sh - ph + r * dh][ow * sw - pw + s * dw] (0 outside),
  // and col2im adds each entry back onto that pixel: both written out entry by entry here.
  Generator gen(12);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const Conv2dGeometry g = geometry_of(c);
    const int64_t n = g.N, P = g.output_pixels(), ld = n * P;
    const Tensor x = random_tensor(g.input_shape(), gen);
    const Tensor cvals = random_tensor({g.col_rows(), ld}, gen);
    std::vector<float> col(static_cast<size_t>(g.col_rows() * ld), 7.0f);
    im2col(col.data(), x.data(), n, g);
    const Tensor start = random_tensor(g.input_shape(), gen);
    Tensor back = start.clone();
    col2im(back.data(), cvals.data(), n, g);
    std::vector<double> want_back(start.data(), start.data() + start.numel());
    const int64_t Cg = g.C;  // col rows cover every input channel (groups split them later)
    for (int64_t ci = 0; ci < Cg; ++ci)
      for (int64_t r = 0; r < g.R; ++r)
        for (int64_t s2 = 0; s2 < g.S; ++s2)
          for (int64_t b = 0; b < n; ++b)
            for (int64_t oh = 0; oh < g.OH; ++oh)
              for (int64_t ow = 0; ow < g.OW; ++ow) {
                const int64_t ih = oh * g.stride.h - g.padding.h + r * g.dilation.h;
                const int64_t iw = ow * g.stride.w - g.padding.w + s2 * g.dilation.w;
                const bool inside = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
                const int64_t pixel = ((b * g.C + ci) * g.H + ih) * g.W + iw;
                const int64_t at = ((ci * g.R + r) * g.S + s2) * ld + b * P + oh * g.OW + ow;
                ASSERT_EQ(col[static_cast<size_t>(at)], inside ? x.data()[pixel] : 0.0f)
                    << "im2col at channel " << ci << " tap (" << r << ", " << s2 << ") image " << b << " output ("
                    << oh << ", " << ow << ")";
                if (inside) want_back[static_cast<size_t>(pixel)] += cvals.data()[at];
              }
    for (int64_t i = 0; i < back.numel(); ++i)
      ASSERT_NEAR(back.data()[i], want_back[static_cast<size_t>(i)], 1e-4 * std::max(1.0, std::fabs(want_back[i])))
          << "col2im at flat index " << i;
  }
}

TEST(Im2col, Col2imIsTheAdjointOfIm2colForEveryCase) {
  // <im2col(x), c> == <x, col2im(c)> for all x, c: the defining property of the adjoint.
  Generator gen(11);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    Conv2dGeometry g = geometry_of(c);
    const int64_t n = g.N;  // lower the whole batch as one chunk
    Tensor x = random_tensor(g.input_shape(), gen);
    Tensor cvals = random_tensor({g.col_rows(), n * g.output_pixels()}, gen);
    std::vector<float> col(static_cast<size_t>(cvals.numel()));
    im2col(col.data(), x.data(), n, g);
    Tensor back = random_tensor(g.input_shape(), gen);  // col2im adds: start from noise
    Tensor before = back.clone();
    col2im(back.data(), cvals.data(), n, g);
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < col.size(); ++i) lhs += static_cast<double>(col[i]) * cvals.data()[i];
    for (int64_t i = 0; i < x.numel(); ++i)
      rhs += static_cast<double>(x.data()[i]) * (static_cast<double>(back.data()[i]) - before.data()[i]);
    EXPECT_NEAR(lhs, rhs, 1e-3 * std::max(1.0, std::fabs(lhs)));
  }
}

TEST(Conv2dKernels, ForwardMatchesNaiveForEveryCaseAndChunkSize) {
  Generator gen(1);
  for (const Case& c : cases()) {
    Conv2dGeometry g = geometry_of(c);
    Tensor x = random_tensor(g.input_shape(), gen), w = random_tensor(g.weight_shape(), gen);
    Tensor b = random_tensor({g.K}, gen);
    const float* bp = c.bias ? b.data() : nullptr;
    const std::vector<double> want = naive_forward(g, x.data(), w.data(), bp);
    for (int64_t chunk : chunk_sizes(g.N)) {
      for (ChunkSchedule schedule : kChunkSchedules) {
        for (Im2colGemm engine : {Im2colGemm::OwnKernels, Im2colGemm::Blas}) {
          SCOPED_TRACE(path_label(c.name, chunk, schedule, engine));
          g.images_per_gemm = chunk;
          set_schedule(g, schedule);
          TwoThreads threads;
          Im2colGemmScope gemm(engine);
          Im2colScope im2col_path;
          Tensor y = Tensor::full(g.output_shape(), 1e30f);  // the forward overwrites
          conv2d_forward(y.data(), x.data(), w.data(), bp, g);
          expect_close(y.data(), want, "y");
        }
      }
    }
  }
}

TEST(Conv2dKernels, BackwardMatchesNaiveAndAccumulates) {
  Generator gen(2);
  for (const Case& c : cases()) {
    Conv2dGeometry g = geometry_of(c);
    Tensor x = random_tensor(g.input_shape(), gen), w = random_tensor(g.weight_shape(), gen);
    Tensor dy = random_tensor(g.output_shape(), gen);
    NaiveGrads want = naive_backward(g, dy.data(), x.data(), w.data());
    // Gradients accumulate: start every buffer at a known non-zero value and expect it added to.
    Tensor px = random_tensor(g.input_shape(), gen), pw = random_tensor(g.weight_shape(), gen);
    Tensor pb = random_tensor({g.K}, gen);
    for (size_t i = 0; i < want.dx.size(); ++i) want.dx[i] += px.data()[i];
    for (size_t i = 0; i < want.dw.size(); ++i) want.dw[i] += pw.data()[i];
    for (size_t i = 0; i < want.db.size(); ++i) want.db[i] += pb.data()[i];
    for (int64_t chunk : chunk_sizes(g.N)) {
     for (ChunkSchedule schedule : kChunkSchedules) {
     for (Im2colGemm engine : {Im2colGemm::OwnKernels, Im2colGemm::Blas}) {
      SCOPED_TRACE(path_label(c.name, chunk, schedule, engine));
      g.images_per_gemm = chunk;
      set_schedule(g, schedule);
      TwoThreads threads;
      Im2colGemmScope gemm(engine);
      Im2colScope im2col_path;
      Tensor dx = px.clone(), dw = pw.clone(), db = pb.clone();
      conv2d_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), g);
      expect_close(dx.data(), want.dx, "dx");
      expect_close(dw.data(), want.dw, "dw");
      expect_close(db.data(), want.db, "db");
      // Each gradient alone (null outputs skipped, x/w only needed for the other gradient).
      Tensor dx_only = px.clone(), dw_only = pw.clone();
      conv2d_backward(dx_only.data(), nullptr, nullptr, dy.data(), nullptr, w.data(), g);
      conv2d_backward(nullptr, dw_only.data(), nullptr, dy.data(), x.data(), nullptr, g);
      EXPECT_EQ(dx_only.to_vector(), dx.to_vector());
      EXPECT_EQ(dw_only.to_vector(), dw.to_vector());
      // accumulate = false writes every entry: buffers full of NaN come out as the plain gradients.
      const float nan = std::numeric_limits<float>::quiet_NaN();
      Tensor wx = Tensor::full(g.input_shape(), nan), ww = Tensor::full(g.weight_shape(), nan),
             wb = Tensor::full({g.K}, nan);
      conv2d_backward(wx.data(), ww.data(), wb.data(), dy.data(), x.data(), w.data(), g, /*accumulate=*/false);
      std::vector<double> plain_dx(want.dx), plain_dw(want.dw), plain_db(want.db);
      for (size_t i = 0; i < plain_dx.size(); ++i) plain_dx[i] -= px.data()[i];
      for (size_t i = 0; i < plain_dw.size(); ++i) plain_dw[i] -= pw.data()[i];
      for (size_t i = 0; i < plain_db.size(); ++i) plain_db[i] -= pb.data()[i];
      expect_close(wx.data(), plain_dx, "written dx");
      expect_close(ww.data(), plain_dw, "written dw");
      expect_close(wb.data(), plain_db, "written db");
     }
     }
    }
  }
}

TEST(Conv2dGeometry, Im2colGemmsGoToSgemmOnLargeLayersOnlyWithAvx512Blas) {
  const bool panels = panel_gemm_supported(), dot = dot_gemm_supported();
  const auto plan = [](const Shape& x, const Shape& w, int64_t stride, int64_t pad, bool avx512) {
    return choose_im2col_gemms(Conv2dGeometry::make(x, w, stride, pad), avx512);
  };
  // ResNet-50's 512->2048c 1x1 layer (a 4 MiB weight) and its 7x7 stem (9408 weights, 12544 pixels).
  const Shape r50_x{8, 512, 7, 7}, r50_w{2048, 512, 1, 1}, stem_x{8, 3, 224, 224}, stem_w{64, 3, 7, 7};
  // ResNet-20's 32->64c stride-2 layer: small enough for this project's kernels either way.
  const Shape r20_x{128, 32, 14, 14}, r20_w{64, 32, 3, 3};
  for (bool avx512 : {false, true}) {
    SCOPED_TRACE(avx512 ? "AVX-512 BLAS" : "other BLAS");
    EXPECT_EQ(plan(r50_x, r50_w, 1, 0, avx512).weight_panels, panels && !avx512);
    EXPECT_EQ(plan(r50_x, r50_w, 1, 0, avx512).weight_gradient_dot, dot && !avx512);
    EXPECT_EQ(plan(stem_x, stem_w, 2, 3, avx512).weight_panels, panels);  // a small weight
    EXPECT_EQ(plan(stem_x, stem_w, 2, 3, avx512).weight_gradient_dot, dot && !avx512);  // 118M multiply-adds
    EXPECT_EQ(plan(r20_x, r20_w, 2, 1, avx512).weight_panels, panels);
    EXPECT_EQ(plan(r20_x, r20_w, 2, 1, avx512).weight_gradient_dot, dot);
    {
      Im2colGemmScope own(Im2colGemm::OwnKernels);
      EXPECT_EQ(plan(r50_x, r50_w, 1, 0, avx512).weight_panels, panels);
      EXPECT_EQ(plan(r50_x, r50_w, 1, 0, avx512).weight_gradient_dot, dot);
    }
    Im2colGemmScope blas(Im2colGemm::Blas);
    EXPECT_FALSE(plan(r20_x, r20_w, 2, 1, avx512).weight_panels);
    EXPECT_FALSE(plan(r20_x, r20_w, 2, 1, avx512).weight_gradient_dot);
  }
  // Grouped convolutions always run one sgemm per group.
  const Conv2dGeometry grouped = Conv2dGeometry::make({2, 8, 9, 9}, {8, 4, 3, 3}, 1, 1, 1, 2);
  EXPECT_FALSE(choose_im2col_gemms(grouped, false).weight_panels);
  EXPECT_FALSE(choose_im2col_gemms(grouped, false).weight_gradient_dot);
}

TEST(Conv2dGeometry, ParallelImagesPolicyTakesSmallLayersWithEnoughImages) {
  TwoThreads threads;
  // ResNet-20's 16-channel 3x3 layer, batch 128: 3.6 MFLOP per image, 128 chunks.
  EXPECT_TRUE(Conv2dGeometry::make({128, 16, 28, 28}, {16, 16, 3, 3}, 1, 1).parallel_images);
  // ResNet-50's 64-channel 3x3 layer at 56x56: 231 MFLOP per image stays on multi-threaded BLAS.
  EXPECT_FALSE(Conv2dGeometry::make({8, 64, 56, 56}, {64, 64, 3, 3}, 1, 1).parallel_images);
  // Too few images to give each of the 2 threads two chunks.
  EXPECT_FALSE(Conv2dGeometry::make({3, 16, 28, 28}, {16, 16, 3, 3}, 1, 1).parallel_images);
  // Larger layers whose weight (2^19 floats at most) and chunk of lowered images (2^20) are small:
  // ResNet-18's 3x3/2 64->128c layer at 56x56 (116 MFLOP per image, weight 73728, col 451584) and
  // ResNet-50's 1x1/2 512->1024c at 28x28 (weight 524288, two images per chunk: col 200704).
  EXPECT_TRUE(Conv2dGeometry::make({8, 64, 56, 56}, {128, 64, 3, 3}, 2, 1).parallel_images);
  EXPECT_TRUE(Conv2dGeometry::make({8, 512, 28, 28}, {1024, 512, 1, 1}, 2, 0).parallel_images);
  // ResNet-50's 3x3/2 256c layer (weight 589824) and AlexNet's conv2 (col 1600 x 729) are not.
  EXPECT_FALSE(Conv2dGeometry::make({8, 256, 28, 28}, {256, 256, 3, 3}, 2, 1).parallel_images);
  EXPECT_FALSE(Conv2dGeometry::make({8, 64, 27, 27}, {192, 64, 5, 5}, 1, 2).parallel_images);
  set_num_threads(1);
  EXPECT_FALSE(Conv2dGeometry::make({128, 16, 28, 28}, {16, 16, 3, 3}, 1, 1).parallel_images);
}

TEST(Conv2dGeometry, ParallelDataChunksTakeLargeLayersWhoseChunksSplitEvenly) {
  TwoThreads threads;
  // ResNet-50 at batch 8: the 3x3 512c 7x7 layer lowers 4 images per GEMM (2 chunks), one chunk
  // per thread. The 1x1 1024->256c 14x14 layer (2 images per GEMM, 4 chunks) would qualify too, but
  // its weight is small enough for parallel_images, which comes first.
  const Conv2dGeometry r50_512c = Conv2dGeometry::make({8, 512, 7, 7}, {512, 512, 3, 3}, 1, 1);
  ASSERT_EQ(r50_512c.images_per_gemm, 4);
  EXPECT_TRUE(r50_512c.parallel_data_chunks);
  const Conv2dGeometry r50_reduce = Conv2dGeometry::make({8, 1024, 14, 14}, {256, 1024, 1, 1}, 1, 0);
  EXPECT_TRUE(r50_reduce.parallel_images);
  EXPECT_FALSE(r50_reduce.parallel_data_chunks);
  // The 1x1 512->2048c 7x7 layer lowers 6 images per GEMM, an uneven split (6 + 2): its data chunks
  // are 4 + 4 instead (196 columns each); the weight gradient multiplies all 8 at once.
  const Conv2dGeometry r50_expand = Conv2dGeometry::make({8, 512, 7, 7}, {2048, 512, 1, 1}, 1, 0);
  ASSERT_EQ(r50_expand.images_per_gemm, 6);
  EXPECT_EQ(data_chunk_images(r50_expand), 4);
  EXPECT_EQ(weight_chunk_images(r50_expand), 8);
  // A 56x56 image with 64 channels lowered by a 3x3 kernel (576 x 3136 floats) fits the weight
  // gradient's 2^21 floats once: one image at a time, as images_per_gemm says.
  EXPECT_EQ(weight_chunk_images(Conv2dGeometry::make({8, 64, 56, 56}, {64, 64, 3, 3}, 1, 1)), 1);
  EXPECT_TRUE(r50_expand.parallel_data_chunks);
  // Batch 7 cannot be shared equally: one chunk at a time over the team.
  EXPECT_FALSE(Conv2dGeometry::make({7, 512, 7, 7}, {2048, 512, 1, 1}, 1, 0).parallel_data_chunks);
  // Wide GEMMs stay on the team: AlexNet's first layer, 3025 pixels per image, 8 chunks.
  EXPECT_FALSE(Conv2dGeometry::make({8, 3, 227, 227}, {64, 3, 11, 11}, 4, 0).parallel_data_chunks);
  // One chunk in all (batch 4 of the 512c layer); small layers already run parallel_images.
  EXPECT_FALSE(Conv2dGeometry::make({4, 512, 7, 7}, {512, 512, 3, 3}, 1, 1).parallel_data_chunks);
  const Conv2dGeometry r20 = Conv2dGeometry::make({128, 16, 28, 28}, {16, 16, 3, 3}, 1, 1);
  EXPECT_TRUE(r20.parallel_images);
  EXPECT_FALSE(r20.parallel_data_chunks);
  set_num_threads(1);
  EXPECT_FALSE(Conv2dGeometry::make({8, 512, 7, 7}, {512, 512, 3, 3}, 1, 1).parallel_data_chunks);
}

namespace {
// {y, dx, dw, db} of one forward and backward through g's path (gradients accumulated from zero).
std::vector<std::vector<float>> forward_and_gradients(const Conv2dGeometry& g, const Tensor& x, const Tensor& w,
                                                      const Tensor& b, const Tensor& dy) {
  Tensor y = Tensor::empty(g.output_shape());
  Tensor dx = Tensor::zeros(g.input_shape()), dw = Tensor::zeros(g.weight_shape()), db = Tensor::zeros({g.K});
  conv2d_forward(y.data(), x.data(), w.data(), b.data(), g);
  conv2d_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), g);
  return {y.to_vector(), dx.to_vector(), dw.to_vector(), db.to_vector()};
}
}  // namespace

TEST(Conv2dKernels, ParallelImagesAreDeterministicAndAgreeWithTheSerialPath) {
  // ResNet-20-like layer with enough images for both threads; the serial path is the reference
  // (checked against the naive convolution above), the parallel one must repeat bit for bit.
  // The second layer's chunks are 408 pixels long: a thread's weight gradient then runs tiled.
  Generator gen(11);
  TwoThreads threads;
  Im2colScope im2col_path;
  for (Conv2dGeometry g : {Conv2dGeometry::make({13, 6, 9, 7}, {10, 6, 3, 3}, 1, 1),
                           Conv2dGeometry::make({5, 7, 48, 34}, {9, 7, 3, 3}, 2, 1)}) {
    SCOPED_TRACE(g.str());
    Tensor x = random_tensor(g.input_shape(), gen), w = random_tensor(g.weight_shape(), gen);
    Tensor b = random_tensor({g.K}, gen), dy = random_tensor(g.output_shape(), gen);
    std::vector<std::vector<float>> results[3];
    for (int i = 0; i < 3; ++i) {
      g.parallel_images = i > 0;
      g.parallel_data_chunks = false;
      results[i] = forward_and_gradients(g, x, w, b, dy);
    }
    for (int t = 0; t < 4; ++t) {
      EXPECT_TRUE(results[1][t] == results[2][t]) << "output " << t << " differs between two parallel runs";
      std::vector<double> want(results[0][t].begin(), results[0][t].end());
      expect_close(results[1][t].data(), want, "output " + std::to_string(t));
    }
  }
}

TEST(Conv2dKernels, ChunkedAndPerImagePathsAgreeOnLargeShapes) {
  // Big enough that the scatter, gather and bias-sum loops run in parallel (4 x 128 x 1024 floats);
  // the naive reference would be slow here, so the per-image path (checked above) is the reference.
  Generator gen(6);
  Im2colScope im2col_path;
  Conv2dGeometry g = Conv2dGeometry::make({4, 8, 32, 32}, {128, 8, 3, 3}, 1, 1);
  Tensor x = random_tensor(g.input_shape(), gen), w = random_tensor(g.weight_shape(), gen);
  Tensor b = random_tensor({g.K}, gen), dy = random_tensor(g.output_shape(), gen);
  std::vector<std::vector<float>> results[2];
  for (int i = 0; i < 2; ++i) {
    g.images_per_gemm = i == 0 ? 1 : 4;
    results[i] = forward_and_gradients(g, x, w, b, dy);
  }
  const char* names[] = {"y", "dx", "dw", "db"};
  for (int t = 0; t < 4; ++t) {
    std::vector<double> want(results[0][t].begin(), results[0][t].end());
    // dw sums 4096 products per entry: allow for float rounding that grows with it.
    if (t == 2) {
      for (size_t i = 0; i < want.size(); ++i)
        EXPECT_NEAR(results[1][t][i], want[i], 1e-3 * std::max(1.0, std::fabs(want[i])))
            << names[t] << " " << i;
    } else {
      expect_close(results[1][t].data(), want, names[t]);
    }
  }
}

TEST(Conv2dFunctional, AutogradGradientsMatchNaiveAndAccumulateIntoLeaves) {
  Generator gen(3);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const Conv2dGeometry g = geometry_of(c);
    Tensor x = random_tensor(g.input_shape(), gen), w = random_tensor(g.weight_shape(), gen);
    Tensor b = c.bias ? random_tensor({g.K}, gen) : Tensor();
    Tensor dy = random_tensor(g.output_shape(), gen);
    for (Tensor* t : {&x, &w, &b})
      if (t->defined()) t->set_requires_grad(true);
    Tensor px = random_tensor(x.shape(), gen), pw = random_tensor(w.shape(), gen);
    Tensor pb = random_tensor({g.K}, gen);
    x.set_grad(px.clone());
    w.set_grad(pw.clone());
    if (b.defined()) b.set_grad(pb.clone());

    Tensor y = conv2d(x, w, b, options_of(c));
    ASSERT_EQ(y.shape(), g.output_shape());
    ASSERT_TRUE(y.requires_grad());
    expect_close(y.data(), naive_forward(g, x.data(), w.data(), c.bias ? b.data() : nullptr), "y");
    y.backward(dy);

    NaiveGrads want = naive_backward(g, dy.data(), x.data(), w.data());
    for (size_t i = 0; i < want.dx.size(); ++i) want.dx[i] += px.data()[i];
    for (size_t i = 0; i < want.dw.size(); ++i) want.dw[i] += pw.data()[i];
    for (size_t i = 0; i < want.db.size(); ++i) want.db[i] += pb.data()[i];
    expect_close(x.grad().data(), want.dx, "x.grad");
    expect_close(w.grad().data(), want.dw, "w.grad");
    if (c.bias) expect_close(b.grad().data(), want.db, "b.grad");
  }
}

TEST(Conv2dFunctional, OnlyTheTensorsThatRequireGradGetGradients) {
  Generator gen(4);
  const Conv2dGeometry g = Conv2dGeometry::make({2, 3, 6, 6}, {4, 3, 3, 3}, 1, 1);
  const Conv2dOptions o{.stride = 1, .padding = 1};
  Tensor x = random_tensor(g.input_shape(), gen), w = random_tensor(g.weight_shape(), gen);
  Tensor b = random_tensor({4}, gen);
  Tensor dy = random_tensor(g.output_shape(), gen);
  const NaiveGrads want = naive_backward(g, dy.data(), x.data(), w.data());

  w.set_requires_grad(true);  // weight only (a frozen input, the usual first layer)
  conv2d(x, w, b, o).backward(dy);
  expect_close(w.grad().data(), want.dw, "w.grad");
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(b.grad().defined());

  Tensor x2 = x.clone(), w2 = w.detach().clone();
  x2.set_requires_grad(true);  // input only
  conv2d(x2, w2, Tensor(), o).backward(dy);
  expect_close(x2.grad().data(), want.dx, "x.grad");
  EXPECT_FALSE(w2.grad().defined());

  // Nothing requires grad, or grad mode is off: no graph is recorded.
  EXPECT_FALSE(conv2d(x, w2, b, o).requires_grad());
  NoGradGuard guard;
  EXPECT_FALSE(conv2d(x2, w, b, o).requires_grad());
}

TEST(Conv2dFunctional, DeterministicBitForBit) {
  // The same inputs twice (same thread count) give identical bits in the output and every gradient,
  // on a shape that takes the chunked path and one that takes the per-image path with a parallel
  // lowering.
  for (const auto& [xs, ws] : std::vector<std::pair<Shape, Shape>>{{{16, 8, 7, 7}, {16, 8, 3, 3}},
                                                                   {{2, 32, 48, 48}, {8, 32, 3, 3}}}) {
    Generator gen(5);
    Tensor x = random_tensor(xs, gen), w = random_tensor(ws, gen), b = random_tensor({ws[0]}, gen);
    const Conv2dGeometry g = Conv2dGeometry::make(xs, ws, 1, 1);
    Tensor dy = random_tensor(g.output_shape(), gen);
    std::vector<std::vector<float>> runs[2];
    for (auto& run : runs) {
      Tensor xr = x.clone(), wr = w.clone(), br = b.clone();
      for (Tensor* t : {&xr, &wr, &br}) t->set_requires_grad(true);
      Tensor y = conv2d(xr, wr, br, {.padding = 1});
      y.backward(dy);
      run = {y.to_vector(), xr.grad().to_vector(), wr.grad().to_vector(), br.grad().to_vector()};
    }
    for (size_t i = 0; i < 4; ++i) {
      ASSERT_EQ(runs[0][i].size(), runs[1][i].size());
      EXPECT_EQ(std::memcmp(runs[0][i].data(), runs[1][i].data(), runs[0][i].size() * sizeof(float)), 0)
          << "tensor " << i << " of " << shape_str(xs);
    }
  }
}

TEST(Conv2dModule, GradientCheckOnSmallShapes) {
  const std::vector<std::pair<Conv2dOptions, Shape>> configs = {
      {{.in_channels = 2, .out_channels = 3, .kernel_size = 3, .padding = 1}, {2, 2, 4, 5}},
      {{.in_channels = 4,
        .out_channels = 4,
        .kernel_size = {2, 3},
        .stride = 2,
        .padding = {1, 0},
        .groups = 2},
       {2, 4, 5, 6}},
      {{.in_channels = 3,
        .out_channels = 3,
        .kernel_size = 3,
        .padding = 2,
        .dilation = 2,
        .groups = 3,
        .bias = false},
       {1, 3, 5, 5}},
      {{.in_channels = 3, .out_channels = 2, .kernel_size = 1}, {3, 3, 2, 3}},
  };
  seed_all(9);
  Generator gen(10);
  for (const auto& [opt, shape] : configs) {
    Conv2d conv(opt);
    Tensor x = random_tensor(shape, gen);
    EXPECT_GT(test::check_module_gradients(conv, x), 0);
  }
}

TEST(Conv2dModule, ParametersNamesRolesShapesAndInit) {
  seed_all(42);
  Conv2d conv({.in_channels = 8, .out_channels = 64, .kernel_size = {3, 5}, .groups = 2});
  auto params = conv.named_parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].name, "weight");
  EXPECT_EQ(params[0].role, ParamRole::Weight);
  EXPECT_EQ(params[1].name, "bias");
  EXPECT_EQ(params[1].role, ParamRole::Bias);
  EXPECT_TRUE(params[0].tensor.same_storage(conv.weight));
  EXPECT_EQ(conv.weight.shape(), (Shape{64, 4, 3, 5}));
  EXPECT_EQ(conv.bias.shape(), (Shape{64}));
  EXPECT_TRUE(conv.weight.requires_grad());
  EXPECT_EQ(conv.type_name(), "Conv2d");

  // U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = 4 * 3 * 5 = 60, for weight and bias.
  const double bound = 1.0 / std::sqrt(60.0);
  double sum = 0, sum_sq = 0, max_abs = 0;
  for (float v : conv.weight.to_vector()) {
    sum += v, sum_sq += double(v) * v, max_abs = std::max(max_abs, std::fabs(double(v)));
  }
  const double n = static_cast<double>(conv.weight.numel());
  EXPECT_LE(max_abs, bound);
  EXPECT_GT(max_abs, 0.95 * bound);
  EXPECT_NEAR(sum / n, 0.0, 0.05 * bound);
  EXPECT_NEAR(std::sqrt(sum_sq / n), bound / std::sqrt(3.0), 0.05 * bound);
  for (float v : conv.bias.to_vector()) EXPECT_LE(std::fabs(v), bound);

  // The seed fixes the initial weights.
  seed_all(42);
  Conv2d again({.in_channels = 8, .out_channels = 64, .kernel_size = {3, 5}, .groups = 2});
  EXPECT_EQ(again.weight.to_vector(), conv.weight.to_vector());
  EXPECT_EQ(again.bias.to_vector(), conv.bias.to_vector());

  Conv2d no_bias({.in_channels = 2, .out_channels = 2, .kernel_size = 3, .bias = false});
  EXPECT_FALSE(no_bias.bias.defined());
  ASSERT_EQ(no_bias.named_parameters().size(), 1u);
  EXPECT_EQ(no_bias.forward(Tensor::zeros({1, 2, 3, 3})).shape(), (Shape{1, 2, 1, 1}));
}

using test::expect_error;

TEST(Conv2dErrors, BadShapesThrowNamingEveryShape) {
  const Conv2dOptions o{};
  auto run = [&](Shape xs, Shape ws, Shape bs, Conv2dOptions opt) {
    return
        [=] { conv2d(Tensor::zeros(xs), Tensor::zeros(ws), bs.empty() ? Tensor() : Tensor::zeros(bs), opt); };
  };
  // Input not 4-D.
  expect_error(run({3, 5, 5}, {4, 3, 3, 3}, {}, o), {"[3, 5, 5]", "[4, 3, 3, 3]", "4-D"});
  // Channel mismatch.
  expect_error(run({1, 3, 5, 5}, {4, 2, 3, 3}, {4}, o),
                        {"[1, 3, 5, 5]", "[4, 2, 3, 3]", "channels"});
  // Output channels not divisible by groups.
  expect_error(run({1, 4, 5, 5}, {3, 2, 3, 3}, {}, {.groups = 2}),
                        {"[1, 4, 5, 5]", "[3, 2, 3, 3]", "groups"});
  // Input channels not divisible by groups.
  expect_error(run({1, 5, 5, 5}, {4, 2, 3, 3}, {}, {.groups = 2}), {"[1, 5, 5, 5]", "divisible"});
  // Kernel larger than the padded input: output size would be <= 0.
  expect_error(run({1, 1, 2, 2}, {1, 1, 5, 5}, {}, o), {"[1, 1, 2, 2]", "[1, 1, 5, 5]", "<= 0"});
  expect_error(run({1, 1, 4, 4}, {1, 1, 3, 3}, {}, {.dilation = 2}), {"[1, 1, 4, 4]", "dilated"});
  // Bias of the wrong shape.
  expect_error(run({1, 3, 5, 5}, {4, 3, 3, 3}, {5}, o),
                        {"[1, 3, 5, 5]", "[4, 3, 3, 3]", "[5]", "bias"});
  // Bad stride, padding, empty dims.
  expect_error(run({1, 3, 5, 5}, {4, 3, 3, 3}, {}, {.stride = {1, 0}}), {"stride"});
  expect_error(run({1, 3, 5, 5}, {4, 3, 3, 3}, {}, {.padding = -1}), {"padding"});
  expect_error(run({0, 3, 5, 5}, {4, 3, 3, 3}, {}, o), {"[0, 3, 5, 5]", "positive"});
  // Options that disagree with the tensors when fully specified.
  expect_error(
      run({1, 3, 5, 5}, {4, 3, 3, 3}, {4}, {.in_channels = 3, .out_channels = 4, .kernel_size = 5}),
      {"[4, 3, 3, 3]", "kernel 5x5"});
  EXPECT_THROW(conv2d(Tensor(), Tensor::zeros({1, 1, 1, 1}), Tensor(), o), Error);
}

TEST(Conv2dErrors, BadOptionsAndModuleInputs) {
  EXPECT_THROW(Conv2d({.in_channels = 3, .out_channels = 4, .kernel_size = 3, .groups = 2}), Error);
  EXPECT_THROW(Conv2d({.in_channels = 0, .out_channels = 4}), Error);
  EXPECT_THROW(Conv2d({.in_channels = 2, .out_channels = 4, .kernel_size = {3, 0}}), Error);
  EXPECT_THROW(Conv2d({.in_channels = 2, .out_channels = 4, .stride = 0}), Error);
  EXPECT_THROW(Conv2d({.in_channels = 2, .out_channels = 4, .dilation = {1, 0}}), Error);
  Conv2d conv({.in_channels = 3, .out_channels = 8, .kernel_size = 3});
  expect_error([&] { conv.forward(Tensor::zeros({2, 4, 8, 8})); }, {"[2, 4, 8, 8]", "[8, 3, 3, 3]"});
}
