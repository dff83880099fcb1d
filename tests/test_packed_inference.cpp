// Inference straight from packed codes (inq/packed_matrix.h, inq/packed_inference.h): the fast
// kernels against their naive twin (packed_matmul_reference) on odd shapes at every bit-width,
// batch 1 and several, all-zero tensors and subnormal codebooks; packed Linear and Conv2d layers
// against the float layers on the unpacked weights; a whole model loaded from a packed file against
// the same model loaded with float weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "app_testing.h"
#include "error_testing.h"
#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/panel_gemm.h"
#include "inq/packed.h"
#include "inq/packed_inference.h"
#include "inq/packed_matrix.h"
#include "inq/packed_model.h"
#include "layers/init.h"
#include "models/registry.h"

using namespace inq;

namespace {

using test::expect_error;

Codebook codebook(int bits, int n1) { return Codebook{.bits = bits, .n1 = n1, .n2 = n1 + 1 - (1 << (bits - 2))}; }

// A tensor of `shape` whose entries are drawn from the codebook's levels, about a third of them 0.
Tensor random_levels(const Shape& shape, const Codebook& cb, std::mt19937& rng) {
  const std::vector<float> levels = cb.levels();
  std::uniform_int_distribution<size_t> pick(0, levels.size() - 1);
  std::bernoulli_distribution zero(1.0 / 3);
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = zero(rng) ? 0.0f : levels[pick(rng)];
  return t;
}

Tensor random_tensor(const Shape& shape, std::mt19937& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> u(-scale, scale);
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = u(rng);
  return t;
}

// |got - want| within `rel` of the sum of the absolute products (the scale of the dot product's
// rounding), entry by entry.
void expect_close_products(const std::vector<float>& got, const std::vector<float>& want, const std::vector<double>& scale,
                           double rel, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_LE(std::fabs(static_cast<double>(got[i]) - want[i]), rel * scale[i] + 1e-30) << what << " entry " << i;
}

// sum over c of |w(r, c) * x(n, c)| + |bias(r)|, per output.
std::vector<double> product_scale(const Tensor& w, const Tensor& x, const float* bias) {
  const int64_t rows = w.size(0), cols = w.size(1), N = x.size(0);
  std::vector<double> s(static_cast<size_t>(N * rows));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t r = 0; r < rows; ++r) {
      double a = bias ? std::fabs(bias[r]) : 0.0;
      for (int64_t c = 0; c < cols; ++c) a += std::fabs(double(w.data()[r * cols + c]) * x.data()[n * cols + c]);
      s[static_cast<size_t>(n * rows + r)] = a;
    }
  return s;
}

}  // namespace

// Every bit-width the packer supports, odd shapes (tails of 1..15 codes, rows not a multiple of the
// kernels' row blocks), batches on both sides of the GEMV / panel switch: the fast kernel matches the
// naive twin, and decoding gives back exactly the packed values.
TEST(PackedMatrix, MatchesTheNaiveTwinAtEveryBitWidthOnOddShapes) {
  std::mt19937 rng(7);
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1}, {3, 17}, {5, 33}, {17, 100}, {9, 16}, {6, 250}, {35, 7}};
  for (int bits = 2; bits <= 10; ++bits) {
    // At 10 bits the 256 exponents need n1 >= 106 for 2^n2 to be a float.
    const Codebook cb = codebook(bits, bits == 10 ? 110 : -1);
    for (const auto& [rows, cols] : shapes) {
      const Tensor w = random_levels({rows, cols}, cb, rng);
      const PackedMatrix m = PackedMatrix::from_packed("w", pack_tensor("w", w, cb), rows, cols);
      // Decoding is exact: every code back to its value, bit for bit.
      std::vector<float> decoded(static_cast<size_t>(rows * cols));
      m.decode_rows(0, rows, decoded.data(), cols);
      for (int64_t i = 0; i < rows * cols; ++i) {
        ASSERT_EQ(decoded[i], w.data()[i]) << "bits " << bits << " index " << i;
        ASSERT_EQ(m.at(i / cols, i % cols), w.data()[i]);
      }
      for (int64_t N : {1, 2, 3, 5, 8, 9, 13}) {
        const Tensor x = random_tensor({N, cols}, rng);
        const Tensor bias = random_tensor({rows}, rng);
        std::vector<float> fast(static_cast<size_t>(N * rows)), ref(fast.size());
        m.matmul_transposed(x.data(), N, bias.data(), fast.data());
        packed_matmul_reference(m, x.data(), N, bias.data(), ref.data());
        expect_close_products(fast, ref, product_scale(w, x, bias.data()), 1e-5,
                              fmt::format("bits {} shape {}x{} N {}", bits, rows, cols, N));
        // And without a bias.
        m.matmul_transposed(x.data(), N, nullptr, fast.data());
        packed_matmul_reference(m, x.data(), N, nullptr, ref.data());
        expect_close_products(fast, ref, product_scale(w, x, nullptr), 1e-5,
                              fmt::format("bits {} shape {}x{} N {} (no bias)", bits, rows, cols, N));
      }
    }
  }
}

// The twin itself, on a product worked by hand: 3-bit codes of {0, +-0.5, +-0.25}.
TEST(PackedMatrix, NaiveTwinOnAProductWorkedByHand) {
  const Codebook cb = codebook(3, -1);
  const Tensor w = Tensor::from_vector({2, 3}, {0.5f, -0.25f, 0.0f, -0.5f, 0.25f, 0.5f});
  const PackedMatrix m = PackedMatrix::from_packed("w", pack_tensor("w", w, cb), 2, 3);
  const float x[3] = {4.0f, 8.0f, -2.0f};
  const float bias[2] = {1.0f, 0.0f};
  float y[2] = {};
  packed_matmul_reference(m, x, 1, bias, y);
  EXPECT_EQ(y[0], 1.0f + 2.0f - 2.0f + 0.0f);   // 1
  EXPECT_EQ(y[1], 0.0f - 2.0f + 2.0f - 1.0f);   // -1
  m.matmul_transposed(x, 1, bias, y);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -1.0f);
}

TEST(PackedMatrix, AllZeroTensorGivesTheBias) {
  std::mt19937 rng(3);
  for (int bits : {2, 5, 9}) {
    const Codebook cb = make_codebook(0.0f, bits, "zeros");  // s = 0: n1 = 0
    const Tensor w = Tensor::zeros({19, 37});
    const PackedMatrix m = PackedMatrix::from_packed("zeros", pack_tensor("zeros", w, cb), 19, 37);
    for (int64_t N : {1, 4, 11}) {
      const Tensor x = random_tensor({N, 37}, rng);
      const Tensor bias = random_tensor({19}, rng);
      std::vector<float> y(static_cast<size_t>(N * 19));
      m.matmul_transposed(x.data(), N, bias.data(), y.data());
      for (int64_t n = 0; n < N; ++n)
        for (int64_t r = 0; r < 19; ++r) ASSERT_EQ(y[n * 19 + r], bias.data()[r]) << bits << " " << N;
    }
  }
}

// Codebooks whose smallest levels are subnormal floats (2^-149 .. 2^-127): decoded exactly, and
// multiplied by large inputs the products are normal numbers the twin agrees with.
TEST(PackedMatrix, SubnormalLevels) {
  std::mt19937 rng(11);
  for (int bits : {5, 8}) {
    const Codebook cb = codebook(bits, bits == 8 ? -86 : -125);
    ASSERT_LT(cb.n2, -126);
    const Tensor w = random_levels({13, 45}, cb, rng);
    const PackedMatrix m = PackedMatrix::from_packed("tiny", pack_tensor("tiny", w, cb), 13, 45);
    std::vector<float> decoded(13 * 45);
    m.decode_rows(0, 13, decoded.data(), 45);
    for (size_t i = 0; i < decoded.size(); ++i) ASSERT_EQ(decoded[i], w.data()[i]);
    for (int64_t N : {1, 3, 10}) {
      const Tensor x = random_tensor({N, 45}, rng, std::ldexp(1.0f, 100));
      std::vector<float> fast(static_cast<size_t>(N * 13)), ref(fast.size());
      m.matmul_transposed(x.data(), N, nullptr, fast.data());
      packed_matmul_reference(m, x.data(), N, nullptr, ref.data());
      expect_close_products(fast, ref, product_scale(w, x, nullptr), 1e-5, fmt::format("bits {} N {}", bits, N));
    }
  }
}

TEST(PackedMatrix, RefusesInvalidCodesPaddingAndShapes) {
  const Codebook cb = codebook(3, -1);
  const Tensor w = Tensor::from_vector({2, 2}, {0.5f, 0.0f, -0.25f, 0.25f});
  PackedTensor p = pack_tensor("w", w, cb);
  expect_error([&] { PackedMatrix::from_packed("w", p, 3, 2); }, {"'w'", "3 x 2"});
  PackedTensor bad = p;
  bad.codes[0] = static_cast<uint8_t>((bad.codes[0] & ~0x7) | 0x4);  // sign bit over a zero offset
  expect_error([&] { PackedMatrix::from_packed("w", bad, 2, 2); }, {"'w'", "code [0] = 4"});
  PackedTensor padded = p;
  padded.codes.back() |= 0x80;  // 4 codes * 3 bits = 12 bits: bit 15 is padding
  expect_error([&] { PackedMatrix::from_packed("w", padded, 2, 2); }, {"'w'", "padding"});
  PackedTensor short_codes = p;
  short_codes.codes.pop_back();
  expect_error([&] { PackedMatrix::from_packed("w", short_codes, 2, 2); }, {"'w'", "bytes of codes"});
}

// A Linear layer whose weight is replaced by its codes gives what the float layer gives.
TEST(PackedLayers, LinearMatchesTheFloatLayer) {
  std::mt19937 rng(5);
  for (int bits : {2, 4, 5, 7, 10}) {
    Linear layer(LinearOptions{.in_features = 77, .out_features = 21});
    const Codebook cb = bits == 10 ? codebook(10, 110) : make_codebook(layer.weight, bits, "weight");
    layer.weight.copy_from(random_levels({21, 77}, cb, rng));
    const Tensor w = layer.weight.clone();
    for (int64_t N : {1, 6, 20}) {
      const Tensor x = random_tensor({N, 77}, rng);
      NoGradGuard no_grad;
      const Tensor want = layer.forward(x);
      Linear packed_layer(LinearOptions{.in_features = 77, .out_features = 21});
      packed_layer.bias.copy_from(layer.bias);
      packed_layer.replace_weight(
          std::make_shared<PackedLinearKernel>(PackedMatrix::from_packed("weight", pack_tensor("weight", w, cb), 21, 77)));
      EXPECT_FALSE(packed_layer.weight.defined());
      EXPECT_EQ(packed_layer.named_parameters().size(), 1u);  // only the bias is left
      const Tensor got = packed_layer.forward(x);
      expect_close_products(got.to_vector(), want.to_vector(), product_scale(w, x, layer.bias.data()), 1e-5,
                            fmt::format("bits {} N {}", bits, N));
    }
  }
}

// Convolutions of every path: im2col with stride, padding and dilation, groups, and the pointwise
// one that uses the image as it is; odd channel counts and sizes; batch 1 and several.
TEST(PackedLayers, Conv2dMatchesTheFloatLayer) {
  std::mt19937 rng(9);
  const std::vector<Conv2dOptions> cases = {
      {.in_channels = 3, .out_channels = 5, .kernel_size = 3, .stride = 1, .padding = 1},
      {.in_channels = 6, .out_channels = 9, .kernel_size = {3, 5}, .stride = 2, .padding = {1, 2}, .dilation = {1, 2},
       .groups = 3},
      {.in_channels = 13, .out_channels = 70, .kernel_size = 1, .bias = false},
      {.in_channels = 300, .out_channels = 40, .kernel_size = 3, .stride = 1, .padding = 1},  // panels of rows
      // 2304 col rows x 40 columns per output row: two bands of output rows (8 MiB of columns each).
      {.in_channels = 256, .out_channels = 8, .kernel_size = 3, .stride = 1, .padding = 1},
      // 2295 col rows x 360 pixels (20 x 18): a whole image per band, two images per GEMM, so batch 3 is two chunks.
      {.in_channels = 255, .out_channels = 6, .kernel_size = 3, .stride = 1, .padding = 1},
  };
  for (int bits : {3, 5, 6}) {
    for (const Conv2dOptions& o : cases) {
      Conv2d layer(o);
      const Codebook cb = make_codebook(layer.weight, bits, "weight");
      layer.weight.copy_from(random_levels(layer.weight.shape(), cb, rng));
      const Tensor w = layer.weight.clone();
      Conv2d packed_layer(o);
      if (o.bias) packed_layer.bias.copy_from(layer.bias);
      const int64_t K = w.size(0), cols = w.numel() / K;
      const PackedMatrix codes = PackedMatrix::from_packed("weight", pack_tensor("weight", w, cb), K, cols);
      auto kernel = std::make_shared<PackedConv2dKernel>(codes, w.shape(), o);
      // Panels for one group where the kernel exists, codes by rows otherwise: one layout only.
      EXPECT_EQ(kernel->holds_panels(), panel_gemm_supported() && o.groups == 1);
      EXPECT_EQ(kernel->code_bytes(),
                kernel->holds_panels() ? codes.as_panels(kPanelRows).code_bytes() : codes.code_bytes());
      packed_layer.replace_weight(kernel);
      for (int64_t N : {1, 3}) {
        const int64_t size = o.in_channels == 256 ? 40 : o.in_channels == 255 ? 20 : 11;
        const Tensor x = random_tensor({N, o.in_channels, size, size - 2}, rng);
        NoGradGuard no_grad;
        const Tensor want = layer.forward(x);
        const Tensor got = packed_layer.forward(x);
        ASSERT_EQ(got.shape(), want.shape());
        // Both sum the same products in different orders; bound by the products' scale, computed
        // once more with |w| and |x| through the float layer itself.
        Conv2d abs_layer(o);
        abs_layer.weight.copy_from(w);
        for (int64_t i = 0; i < w.numel(); ++i) abs_layer.weight.data()[i] = std::fabs(w.data()[i]);
        if (o.bias)
          for (int64_t i = 0; i < K; ++i) abs_layer.bias.data()[i] = std::fabs(layer.bias.data()[i]);
        Tensor ax = x.clone();
        for (int64_t i = 0; i < ax.numel(); ++i) ax.data()[i] = std::fabs(ax.data()[i]);
        const std::vector<float> scale_f = abs_layer.forward(ax).to_vector();
        const std::vector<double> scale(scale_f.begin(), scale_f.end());
        expect_close_products(got.to_vector(), want.to_vector(), scale, 1e-5,
                              fmt::format("bits {} N {} K {}", bits, N, o.out_channels));
      }
    }
  }
}

// Layers the dispatcher sends to Winograd F(4x4) (3x3, stride 1, C and K >= 16, enough tiles) run
// as Winograd from the codes, bit-identical to the float layer on the decoded weights: channel
// counts that are not multiples of 16 or of the 14-channel panels, several decode panels with a
// partial last one, every bit-width band. (Smaller images, where a packed layer runs F(2x2) as a
// frozen float layer does and the trainable one im2col, are in Conv2dMatchesTheFloatLayer.)
TEST(PackedLayers, Conv2dOnWinogradShapesIsBitIdenticalToTheFloatLayer) {
  std::mt19937 rng(19);
  struct Case {
    Conv2dOptions o;
    Shape x;
  };
  const std::vector<Case> cases = {
      {{.in_channels = 16, .out_channels = 24, .kernel_size = 3, .padding = 1}, {5, 16, 21, 19}},
      {{.in_channels = 33, .out_channels = 17, .kernel_size = 3, .padding = 0, .bias = false}, {1, 33, 50, 46}},
      {{.in_channels = 64, .out_channels = 128, .kernel_size = 3, .padding = 1}, {2, 64, 36, 36}},
  };
  for (int bits : {2, 5, 7}) {
    for (const Case& c : cases) {
      Conv2d layer(c.o);
      const Codebook cb = make_codebook(layer.weight, bits, "weight");
      layer.weight.copy_from(random_levels(layer.weight.shape(), cb, rng));
      const Tensor w = layer.weight.clone();
      Conv2d packed_layer(c.o);
      if (c.o.bias) packed_layer.bias.copy_from(layer.bias);
      const int64_t K = w.size(0), cols = w.numel() / K;
      auto kernel = std::make_shared<PackedConv2dKernel>(
          PackedMatrix::from_packed("weight", pack_tensor("weight", w, cb), K, cols), w.shape(), c.o);
      EXPECT_EQ(kernel->holds_panels(), panel_gemm_supported());
      packed_layer.replace_weight(kernel);
      const Conv2dGeometry g = Conv2dGeometry::make(c.x, w.shape(), 1, c.o.padding);
      const Conv2dPlan plan = choose_conv2d_algorithm(g), kept = choose_conv2d_algorithm(g, /*filters_kept=*/true);
      ASSERT_TRUE(plan.winograd_forward && kept.winograd_forward && plan.tile == 4 && kept.tile == 4) << g.str();
      const Tensor x = random_tensor(c.x, rng);
      NoGradGuard no_grad;
      // The float layer on the same weights. With AVX-512 both hand the transformed filters to the
      // panel kernel (the float layer lays them out per call, the packed one a panel per thread).
      const std::vector<float> want = layer.forward(x).to_vector(), got = packed_layer.forward(x).to_vector();
      ASSERT_EQ(got.size(), want.size());
      EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)))
          << "bits " << bits << " " << g.str();
    }
  }
}

namespace {

// A LeNet-5 whose Conv2d and Linear weights are quantized at `bits`, written as a plain weights file,
// and its codebooks (all but `excluded`).
std::map<std::string, Codebook> quantized_lenet(Module& model, int bits, const std::string& excluded, std::mt19937& rng) {
  std::map<std::string, Codebook> codebooks;
  for (auto& p : model.named_parameters()) {
    if (p.role != ParamRole::Weight || p.name == excluded) continue;
    const Codebook cb = make_codebook(p.tensor, bits, p.name);
    Tensor values = random_levels(p.tensor.shape(), cb, rng);
    p.tensor.copy_from(values);
    codebooks[p.name] = cb;
  }
  return codebooks;
}

}  // namespace

// A model loaded from a packed file runs from codes and gives the float model's logits; a tensor
// excluded from INQ (stored as floats) keeps its float layer.
TEST(PackedInference, LoadedModelMatchesTheFloatModel) {
  std::mt19937 rng(21);
  auto model = create_model("lenet5", {.num_classes = 10, .in_channels = 1});
  const auto codebooks = quantized_lenet(*model, 5, "classifier.2.weight", rng);
  StoredTensors tensors;
  for (const auto& t : model->state_dict()) tensors.emplace_back(t.name, StoredTensor::from_tensor(t.tensor));
  const std::string plain = test::temp_path("packed_inf_plain") + ".safetensors";
  const std::string packed = test::temp_path("packed_inf_packed") + ".safetensors";
  write_safetensors(plain, tensors);
  pack_model(read_safetensors(plain), codebooks, "lenet5", packed);

  std::shared_ptr<Module> packed_model;
  {
    SkipParameterInitGuard skip;
    packed_model = create_model("lenet5", {.num_classes = 10, .in_channels = 1});
  }
  const PackedInferenceSummary s = load_packed_for_inference(read_safetensors(packed), *packed_model, {}, "lenet5");
  EXPECT_EQ(s.arch, "lenet5");
  EXPECT_EQ(s.packed_layers, static_cast<int64_t>(codebooks.size()));
  EXPECT_EQ(s.unpacked_tensors, 0);
  int64_t float_weights = 0;
  for (const auto& p : packed_model->named_parameters()) float_weights += p.role == ParamRole::Weight ? 1 : 0;
  EXPECT_EQ(float_weights, 1);  // the excluded classifier.2.weight

  model->eval();
  packed_model->eval();
  NoGradGuard no_grad;
  for (int64_t N : {1, 7, 16}) {
    const Tensor x = random_tensor({N, 1, 28, 28}, rng);
    const std::vector<float> want = model->forward(x).to_vector();
    const std::vector<float> got = packed_model->forward(x).to_vector();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], want[i], 1e-5 * std::max(1.0f, std::fabs(want[i]))) << "N " << N << " logit " << i;
  }
  // The wrong arch, and a file that is not packed, are refused naming the file.
  auto other = create_model("lenet5", {.num_classes = 10, .in_channels = 1});
  expect_error([&] { load_packed_for_inference(read_safetensors(packed), *other, {}, "resnet20"); },
               {packed, "'lenet5'", "'resnet20'"});
  expect_error([&] { load_packed_for_inference(read_safetensors(plain), *other); }, {plain, "inq-packed"});
  // A model of another shape: the mismatch names the tensor.
  auto wider = create_model("lenet5", {.num_classes = 12, .in_channels = 1});
  expect_error([&] { load_packed_for_inference(read_safetensors(packed), *wider); }, {packed, "classifier"});
  std::filesystem::remove(plain);
  std::filesystem::remove(packed);
}

// `inq pack --bits b --arch A` on a plain weights file quantized elsewhere: accepted when every conv
// and linear weight is in the codebook its maximum implies, refused naming the tensor, the index
// and the value otherwise; the result runs (`inq run`, `inq bench-model`) from its codes.
TEST(PackedInference, PackBitsAcceptsPlainQuantizedWeightsAndRefusesOthers) {
  std::mt19937 rng(4);
  auto model = create_model("lenet5", {.num_classes = 10, .in_channels = 1});
  for (auto& p : model->named_parameters()) {
    if (p.role != ParamRole::Weight) continue;
    const Codebook cb = make_codebook(p.tensor, 5, p.name);
    p.tensor.copy_from(random_levels(p.tensor.shape(), cb, rng));
    p.tensor.data()[0] = std::ldexp(1.0f, cb.n1);  // the maximum sits on the top level: its codebook is cb
  }
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& t : model->state_dict()) tensors.emplace_back(t.name, t.tensor);
  const std::string plain = test::temp_path("packbits_plain") + ".safetensors";
  const std::string packed = test::temp_path("packbits_packed") + ".safetensors";
  write_safetensors(plain, tensors);
  std::string out;
  ASSERT_EQ(test::run_cli(fmt::format("pack --bits 5 --arch lenet5 {} -o {}", plain, packed), &out), 0) << out;
  EXPECT_NE(out.find("5 quantized tensors"), std::string::npos) << out;
  const UnpackedModel unpacked = unpack_model(read_safetensors(packed));
  EXPECT_EQ(unpacked.arch, "lenet5");
  for (const auto& [name, t] : unpacked.weights.tensors) {  // bit for bit the plain file
    const auto it = std::find_if(tensors.begin(), tensors.end(), [&](const auto& e) { return e.first == name; });
    ASSERT_NE(it, tensors.end()) << name;
    ASSERT_EQ(t.f32.to_vector(), it->second.to_vector()) << name;
  }

  // bench-model runs it from its codes and reports speed and memory.
  ASSERT_EQ(test::run_cli(fmt::format("bench-model --arch lenet5 --weights {} --batch 3 --threads 1 --rounds 2 --warmup 1",
                                      packed),
                          &out),
            0)
      << out;
  EXPECT_NE(out.find("packed: 5 layers"), std::string::npos) << out;
  EXPECT_NE(out.find(" img/s ("), std::string::npos) << out;
  EXPECT_NE(out.find("peak resident memory: "), std::string::npos) << out;
  EXPECT_EQ(test::run_cli(fmt::format("bench-model --arch resnet20 --weights {} --rounds 1", packed), &out), 1) << out;
  EXPECT_NE(out.find(packed), std::string::npos) << out;
  EXPECT_NE(out.find("'lenet5'"), std::string::npos) << out;
  EXPECT_EQ(test::run_cli(fmt::format("bench-model --arch lenet5 --weights {} --batch 0", packed), &out), 2) << out;
  EXPECT_NE(out.find("--batch"), std::string::npos) << out;

  // Without --arch, with a value off the codebook, with the wrong bit-width: refused, nothing written.
  std::filesystem::remove(packed);
  EXPECT_EQ(test::run_cli(fmt::format("pack --bits 5 {} -o {}", plain, packed), &out), 1) << out;
  EXPECT_NE(out.find("--arch"), std::string::npos) << out;
  EXPECT_EQ(test::run_cli(fmt::format("pack --bits 3 --arch lenet5 {} -o {}", plain, packed), &out), 1) << out;
  EXPECT_NE(out.find(plain), std::string::npos) << out;
  EXPECT_NE(out.find("--bits 3"), std::string::npos) << out;
  tensors[0].second.data()[7] = 0.3f;  // features.0.weight: not a power of two
  write_safetensors(plain, tensors);
  EXPECT_EQ(test::run_cli(fmt::format("pack --bits 5 --arch lenet5 {} -o {}", plain, packed), &out), 1) << out;
  EXPECT_NE(out.find(plain), std::string::npos) << out;
  EXPECT_NE(out.find("'features.0.weight'"), std::string::npos) << out;
  EXPECT_NE(out.find("[7] = 0.300000012"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(packed));
  std::filesystem::remove(plain);
}
