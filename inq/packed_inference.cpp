#include "inq/packed_inference.h"

#include <algorithm>
#include <map>

#include "framework/error.h"
#include "framework/gemm.h"
#include "framework/im2col.h"
#include "framework/workspace.h"
#include "inq/packed_model.h"
#include "framework/panel_gemm.h"
#include "layers/conv2d_panels.h"
#include "layers/conv2d_winograd.h"

namespace inq {

Tensor PackedLinearKernel::forward(const Tensor& x, const Tensor& bias) const {
  INQ_CHECK(x.defined() && x.dim() == 2 && x.size(1) == weight_.cols(),
            "Given an input of shape {} to a packed Linear of {} x {} weights, expected shape [N, {}]",
            x.defined() ? shape_str(x.shape()) : "(undefined)", weight_.rows(), weight_.cols(), weight_.cols());
  INQ_CHECK(!bias.defined() || bias.shape() == Shape{weight_.rows()},
            "Given a packed Linear of {} outputs, expected a bias of shape [{}], but got {}", weight_.rows(),
            weight_.rows(), shape_str(bias.shape()));
  const int64_t N = x.size(0);
  Tensor y = Tensor::empty({N, weight_.rows()});
  weight_.matmul_transposed(x.data(), N, bias.defined() ? bias.data() : nullptr, y.data());
  return y;
}

namespace {

// Floats of lowered columns per band: 8 MiB, a few output rows of the largest layers.
constexpr int64_t kBandFloats = int64_t{1} << 21;
// Floats per decoded panel of weight rows: 4 MiB, inside the last-level cache while sgemm reads it.
// (1 MiB panels made ResNet-18 slower: more, narrower sgemm calls.)
constexpr int64_t kPanelFloats = int64_t{1} << 20;
// Floats per decoded panel of a Winograd layer's filters: 256 KiB, still in L2 when the filter
// transform reads them right after decoding.
constexpr int64_t kWinogradPanelFloats = int64_t{1} << 16;

// A layer sent to Winograd without the panel kernel (a build without AVX-512): the filters are
// decoded a panel of output channels at a time (decode_rows(r0, r1, out) writes rows [r0, r1)
// row-major, C*3*3 floats each) and each panel is transformed into U at once
// (layers/conv2d_winograd.h), so the float weight never exists whole; U (4x the weight's floats)
// lives in the thread's operand workspace for this call only, so the process holds one U, the
// largest layer's (VGG-16's 512 x 512: 38 MB); then the float layer's forward (sgemm on U).
template <class DecodeRows>
Tensor winograd_forward(const DecodeRows& decode_rows, const Tensor& x, const float* bias, const Conv2dGeometry& g,
                        int m) {
  Tensor y = Tensor::empty(g.output_shape());
  float* U = thread_operand_workspace().floats(winograd_filter_floats(g, m));
  const int64_t inner = g.col_rows();  // C * 3 * 3
  const int64_t panel_rows = std::clamp<int64_t>(kWinogradPanelFloats / inner, 1, g.K);
  float* panel = thread_workspace().floats(round_up_to_line(panel_rows * inner));
  for (int64_t r0 = 0; r0 < g.K; r0 += panel_rows) {
    const int64_t r1 = std::min(g.K, r0 + panel_rows);
    decode_rows(r0, r1, panel);
    winograd_transform_filter_range(U, panel, g, m, r0 * g.C, r1 * g.C);
  }
  // (the workspace is the kernel's from here on; the panel is no longer needed)
  winograd_conv2d_forward(y.data(), x.data(), nullptr, bias, g, WinogradConfig{.m = m, .filters = U});
  return y;
}

}  // namespace

PackedConv2dKernel::PackedConv2dKernel(const PackedMatrix& weight, Shape weight_shape, const Conv2dOptions& options)
    : weight_shape_(std::move(weight_shape)), groups_(options.groups) {
  INQ_CHECK(weight_shape_.size() == 4 && weight.rows() == weight_shape_[0] &&
                weight.cols() == weight_shape_[1] * weight_shape_[2] * weight_shape_[3],
            "Given a packed matrix of {} x {} codes for a Conv2d weight of shape {}, expected (K, C/groups * R * S)",
            weight.rows(), weight.cols(), shape_str(weight_shape_));
  if (panel_gemm_supported() && groups_ == 1) {
    panels_ = weight.as_panels(kPanelRows);
  } else {
    rows_ = weight;
  }
}

Tensor PackedConv2dKernel::forward(const Tensor& x, const Tensor& bias, const Conv2dOptions& options) const {
  INQ_CHECK(x.defined(), "Given an undefined input to a packed Conv2d, expected a tensor");
  const Conv2dGeometry g = Conv2dGeometry::make(x.shape(), weight_shape_, options.stride, options.padding,
                                                options.dilation, options.groups);
  INQ_CHECK(g.groups == groups_, "Given a packed Conv2d of {} groups, expected options with groups {}, but got {}",
            groups_, groups_, g.groups);
  INQ_CHECK(!bias.defined() || bias.shape() == Shape{g.K},
            "Given a packed Conv2d of {} output channels, expected a bias of shape [{}], but got {}", g.K, g.K,
            shape_str(bias.shape()));
  const float* b = bias.defined() ? bias.data() : nullptr;
  if (!holds_panels()) return forward_by_rows(x, b, g);
  Tensor y = Tensor::empty(g.output_shape());
  const int64_t panel_floats = kPanelRows * g.col_rows();
  const auto decode_panel = [&](int64_t p, float* out) { panels_.decode_rows(p, p + 1, out, panel_floats); };
  // Winograd where a frozen float layer runs it with kept filters (F(2x2) on small images too):
  // the streamed forward keeps no whole U either, only one transformed panel per thread.
  if (const Conv2dPlan plan = choose_conv2d_algorithm(g, /*filters_kept=*/true); plan.winograd_forward) {
    winograd_conv2d_forward_streamed(y.data(), x.data(), decode_panel, b, g, plan.tile);
    return y;
  }
  conv2d_forward_panels(
      y.data(), x.data(),
      [&](int64_t p, float* scratch) {
        decode_panel(p, scratch);
        return static_cast<const float*>(scratch);
      },
      b, g);
  return y;
}

Tensor PackedConv2dKernel::forward_by_rows(const Tensor& x, const float* b, const Conv2dGeometry& g) const {
  if (const Conv2dPlan plan = choose_conv2d_algorithm(g); plan.winograd_forward)
    return winograd_forward([&](int64_t r0, int64_t r1, float* out) { rows_.decode_rows(r0, r1, out, g.col_rows()); },
                            x, b, g, plan.tile);
  const int64_t P = g.output_pixels(), image = g.C * g.H * g.W;
  const int64_t Kg = g.outputs_per_group(), inner = g.group_col_rows();
  const bool direct = g.is_pointwise();
  const int64_t panel_rows = std::clamp<int64_t>(kPanelFloats / std::max<int64_t>(inner, 1), 16, Kg);
  // Output rows per band: as many as fit in kBandFloats of columns (at least one); the whole image
  // when the image is its own col matrix.
  const int64_t band_rows =
      direct ? g.OH : std::clamp<int64_t>(kBandFloats / std::max<int64_t>(g.col_rows() * g.OW, 1), 1, g.OH);
  // Several small images per GEMM when a whole image is one band: their columns side by side make
  // the GEMM wider (ResNet's 7x7 and 14x14 layers at batch 8), as conv2d_forward does for floats.
  const int64_t images_per_gemm =
      band_rows == g.OH ? std::clamp<int64_t>(kBandFloats / std::max<int64_t>(g.col_rows() * P, 1), 1, g.N) : 1;
  const bool chunked = images_per_gemm > 1;
  const int64_t col_floats =
      chunked ? round_up_to_line(g.col_rows() * images_per_gemm * P)
              : direct ? 0 : round_up_to_line(g.col_rows() * band_rows * g.OW);
  const int64_t staged_floats = chunked ? round_up_to_line(g.K * images_per_gemm * P) : 0;
  float* base = thread_workspace().floats(col_floats + staged_floats + round_up_to_line(panel_rows * inner));
  float* col_buffer = base;
  float* staged = base + col_floats;
  float* panel = staged + staged_floats;

  Tensor y = Tensor::empty(g.output_shape());
  // Multiplies every panel of decoded weight rows into `col` (group g's rows at col + g * inner * ld,
  // `cols` columns, row stride ld), adding into out (row r at out + r * ldo).
  auto multiply = [&](const float* col, int64_t cols, int64_t ld, float* out, int64_t ldo) {
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      for (int64_t r0 = grp * Kg; r0 < (grp + 1) * Kg; r0 += panel_rows) {
        const int64_t r1 = std::min((grp + 1) * Kg, r0 + panel_rows);
        rows_.decode_rows(r0, r1, panel, inner);
        // out rows [r0, r1) (r1-r0, cols) += panel (r1-r0, inner) * col_g (inner, cols)
        sgemm(false, false, r1 - r0, cols, inner, 1.0f, panel, inner, col + grp * inner * ld, ld, 1.0f, out + r0 * ldo,
              ldo);
      }
    }
  };
  if (chunked) {
    for (int64_t n0 = 0; n0 < g.N; n0 += images_per_gemm) {
      const int64_t n = std::min(images_per_gemm, g.N - n0), ld = n * P;
      // col (C*R*S, n*P): column block i is image n0 + i (framework/im2col.h).
      im2col(col_buffer, x.data() + n0 * image, n, g);
      std::fill(staged, staged + g.K * ld, 0.0f);
      multiply(col_buffer, ld, ld, staged, ld);
      // y (n, K, P) = staged (K, n*P) + bias.
      for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < g.K; ++k) {
          const float* src = staged + k * ld + i * P;
          float* dst = y.data() + ((n0 + i) * g.K + k) * P;
          const float add = b ? b[k] : 0.0f;
          for (int64_t p = 0; p < P; ++p) dst[p] = src[p] + add;
        }
    }
    return y;
  }
  for (int64_t n = 0; n < g.N; ++n) {
    const float* xn = x.data() + n * image;
    float* yn = y.data() + n * g.K * P;
    // Start from the bias and let every GEMM add onto it (beta = 1).
    for (int64_t k = 0; k < g.K; ++k) std::fill(yn + k * P, yn + (k + 1) * P, b ? b[k] : 0.0f);
    for (int64_t oh0 = 0; oh0 < g.OH; oh0 += band_rows) {
      const int64_t oh1 = std::min(g.OH, oh0 + band_rows), cols = (oh1 - oh0) * g.OW;
      const float* col = xn;
      if (!direct) {
        im2col_rows(col_buffer, xn, g, oh0, oh1);
        col = col_buffer;
      }
      // The band's pixels of y rows [r0, r1) start at yn + r * P + oh0 * OW.
      multiply(col, cols, cols, yn + oh0 * g.OW, P);
    }
  }
  return y;
}

PackedInferenceSummary load_packed_for_inference(SafetensorsFile file, Module& model, const NamePredicate& optional,
                                                 const std::string& arch) {
  const std::string path = file.source;
  const CheckedPackedModel checked = check_packed_model(file);
  INQ_CHECK(arch.empty() || arch == checked.arch,
            "Given packed model '{}' of arch '{}' with --arch '{}', expected the arch the file was packed for "
            "(--arch {})",
            path, checked.arch, arch, checked.arch);
  PackedInferenceSummary summary;
  summary.arch = checked.arch;

  // Where each tensor sits in the file, so its codes can be moved out and dropped one at a time.
  std::map<std::string, size_t> position;
  for (size_t i = 0; i < file.tensors.size(); ++i) position[file.tensors[i].first] = i;
  std::vector<bool> consumed(file.tensors.size(), false);

  // Codes of tensor `name` as a matrix of rows x cols, checked against the layer's shape.
  auto take_matrix = [&](const std::string& name, const Shape& layer_shape, int64_t rows, int64_t cols) {
    const PackedLayout& layout = checked.quantized.at(name);
    INQ_CHECK(layout.shape == layer_shape,
              "Given packed model '{}', expected '{}' of shape {} (the model's), but the file packs shape {} (size "
              "mismatch for {})",
              path, name, shape_str(layer_shape), shape_str(layout.shape), name);
    const size_t i = position.at(name);
    consumed[i] = true;
    // A sparse or entropy-coded tensor becomes the dense code layout here, one tensor at a time
    // (dense_codes names the file itself).
    const PackedTensor packed{.shape = layout.shape, .codebook = layout.codebook,
                              .codes = dense_codes(path, name, layout, std::move(file.tensors[i].second.u8))};
    try {
      PackedMatrix m = PackedMatrix::from_packed(name, packed, rows, cols);
      summary.packed_layers += 1;
      summary.packed_weights += rows * cols;
      return m;
    } catch (const Error& e) {
      throw Error(fmt::format("Given packed model '{}': {}", path, e.what()));
    }
  };

  for_each_module(model, [&](const std::string& prefix, Module& m) {
    const std::string name = prefix + "weight";
    if (checked.quantized.count(name) == 0) return;
    if (auto* linear = dynamic_cast<Linear*>(&m)) {
      const LinearOptions& o = linear->options();
      const Shape shape{o.out_features, o.in_features};
      auto kernel = std::make_shared<PackedLinearKernel>(take_matrix(name, shape, o.out_features, o.in_features));
      summary.code_bytes += kernel->weight().code_bytes();
      linear->replace_weight(kernel);
    } else if (auto* conv = dynamic_cast<Conv2d*>(&m)) {
      const Conv2dOptions& o = conv->options();
      const Shape shape{o.out_channels, o.in_channels / o.groups, o.kernel_size.h, o.kernel_size.w};
      auto kernel = std::make_shared<PackedConv2dKernel>(
          take_matrix(name, shape, shape[0], shape[1] * shape[2] * shape[3]), shape, o);
      summary.code_bytes += kernel->code_bytes();
      conv->replace_weight(kernel);
    }
  });

  // What is left loads as floats: tensors stored as F32 / I64, and quantized tensors that are not the
  // weight of a Conv2d or Linear (decoded here; INQ quantizes only those, so normally there are none).
  SafetensorsFile rest;
  rest.source = path;
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    if (consumed[i]) continue;
    auto& [name, t] = file.tensors[i];
    auto q = checked.quantized.find(name);
    if (q == checked.quantized.end()) {
      rest.tensors.emplace_back(name, std::move(t));
      continue;
    }
    const PackedTensor p{.shape = q->second.shape, .codebook = q->second.codebook,
                         .codes = dense_codes(path, name, q->second, std::move(t.u8))};
    try {
      rest.tensors.emplace_back(name, StoredTensor::from_tensor(unpack_tensor(name, p)));
    } catch (const Error& e) {
      throw Error(fmt::format("Given packed model '{}': {}", path, e.what()));
    }
    summary.unpacked_tensors += 1;
  }
  NamedTensorList destination;
  for (const auto& t : model.state_dict()) destination.emplace_back(t.name, t.tensor);
  const LoadStateReport report = load_state_dict(destination, rest, /*strict=*/true, optional);
  if (const std::string note = report.optional_missing_note(path); !note.empty()) fmt::print(stderr, "{}\n", note);
  return summary;
}

}  // namespace inq
