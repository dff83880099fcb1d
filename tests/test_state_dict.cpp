// load_state_dict: copies by name and reports every missing, unexpected and mis-shaped name.
#include <gtest/gtest.h>

#include "error_testing.h"
#include "framework/error.h"
#include "framework/state_dict.h"

using namespace inq;
using test::error_of;

namespace {

SafetensorsFile file_of(StoredTensors tensors) {
  SafetensorsFile f;
  f.source = "ckpt.safetensors";
  f.tensors = std::move(tensors);
  return f;
}

StoredTensor f32(const Shape& shape, float value) {
  return StoredTensor::from_tensor(Tensor::full(shape, value));
}

}  // namespace

TEST(LoadStateDict, LoadsByNameRegardlessOfOrder) {
  Tensor a = Tensor::zeros({2}), b = Tensor::zeros({1, 3});
  LoadStateReport r =
      load_state_dict({{"a", a}, {"b", b}}, file_of({{"b", f32({1, 3}, 2)}, {"a", f32({2}, 1)}}));
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.loaded, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(a.to_vector(), (std::vector<float>{1, 1}));
  EXPECT_EQ(b.to_vector(), (std::vector<float>{2, 2, 2}));
  EXPECT_EQ(r.message("x"), "");
}

TEST(LoadStateDict, StrictReportsEveryProblemAndLoadsNothing) {
  Tensor a = Tensor::zeros({2}), b = Tensor::zeros({3}), c = Tensor::zeros({}), e = Tensor::zeros({4});
  const NamedTensorList dst{{"a", a}, {"b", b}, {"c", c}, {"e", e}};
  const SafetensorsFile f =
      file_of({{"a", f32({2}, 1)}, {"b", f32({4}, 1)}, {"d", f32({1}, 1)}, {"x", f32({1}, 1)}});
  const std::string m = error_of([&] { load_state_dict(dst, f, /*strict=*/true); });
  EXPECT_NE(m.find("ckpt.safetensors"), std::string::npos) << m;
  EXPECT_NE(m.find(R"(Missing key(s) in file: "c", "e".)"), std::string::npos) << m;
  EXPECT_NE(m.find(R"(Unexpected key(s) in file: "d", "x".)"), std::string::npos) << m;
  EXPECT_NE(m.find("size mismatch for b: copying a F32 tensor with shape [4] from the file, the shape in the "
                   "model is [3]"),
            std::string::npos)
      << m;
  EXPECT_EQ(a.to_vector(), (std::vector<float>{0, 0}));  // nothing copied

  // Missing and unexpected names alone are enough to fail a strict load.
  EXPECT_NE(error_of([&] { load_state_dict({{"a", a}, {"c", c}}, file_of({{"a", f32({2}, 1)}}), true); })
                .find(R"("c")"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_state_dict({{"a", a}}, file_of({{"a", f32({2}, 1)}, {"z", f32({2}, 1)}}), true); })
                .find(R"("z")"),
            std::string::npos);
  EXPECT_EQ(a.to_vector(), (std::vector<float>{0, 0}));
}

TEST(LoadStateDict, NonStrictLoadsWhatMatchesAndReportsTheRest) {
  Tensor a = Tensor::zeros({2}), c = Tensor::zeros({1});
  LoadStateReport r =
      load_state_dict({{"a", a}, {"c", c}}, file_of({{"a", f32({2}, 5)}, {"d", f32({1}, 1)}}), false);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.missing, std::vector<std::string>{"c"});
  EXPECT_EQ(r.unexpected, std::vector<std::string>{"d"});
  EXPECT_EQ(r.loaded, std::vector<std::string>{"a"});
  EXPECT_EQ(a.to_vector(), (std::vector<float>{5, 5}));
  EXPECT_NE(r.message("src").find("src"), std::string::npos);

  // A shape mismatch is an error even when not strict (as in PyTorch): loading it is impossible.
  EXPECT_NE(error_of([&] { load_state_dict({{"a", a}}, file_of({{"a", f32({1, 2}, 1)}}), false); })
                .find("size mismatch for a"),
            std::string::npos);
}

TEST(LoadStateDict, RankZeroInt64LoadsIntoARankZeroFloat) {
  Tensor nbt = Tensor::zeros({});
  load_state_dict({{"bn.num_batches_tracked", nbt}},
                  file_of({{"bn.num_batches_tracked", StoredTensor::from_int64({}, {12345})}}));
  EXPECT_EQ(nbt.item(), 12345.0f);

  // Values a float cannot hold exactly are refused, not rounded.
  const auto load_n = [&](const StoredTensor& stored) {
    return error_of([&] { load_state_dict({{"n", nbt}}, file_of({{"n", stored}}), true); });
  };
  const std::string m = load_n(StoredTensor::from_int64({}, {(1LL << 24) + 1}));
  EXPECT_NE(m.find("16777217"), std::string::npos) << m;
  EXPECT_NE(load_n(StoredTensor::from_int64({}, {INT64_MIN})), "");
  EXPECT_EQ(nbt.item(), 12345.0f);
  // Rank matters: [1] is not [].
  EXPECT_NE(load_n(StoredTensor::from_int64({1}, {1})).find("size mismatch"), std::string::npos);
}

TEST(LoadStateDict, RejectsDuplicateOrUndefinedDestinations) {
  Tensor a = Tensor::zeros({1});
  EXPECT_THROW(load_state_dict({{"a", a}, {"a", a}}, file_of({})), Error);
  EXPECT_THROW(load_state_dict({{"a", Tensor()}}, file_of({})), Error);
}

// Optional names (e.g. GoogLeNet's aux heads) may be absent from either side; every other name stays
// strict, and the destination's optional names load all or none.
TEST(LoadStateDict, OptionalNamesMayBeAbsentFromTheFileOrFromTheDestination) {
  const NamePredicate optional = [](const std::string& name) { return name.starts_with("aux."); };
  Tensor a = Tensor::zeros({2}), aux_w = Tensor::full({1}, 7), aux_b = Tensor::full({1}, 8);
  const NamedTensorList with_aux{{"a", a}, {"aux.w", aux_w}, {"aux.b", aux_b}};

  // The file lacks them: the destination's keep their values, and the report says so.
  LoadStateReport r = load_state_dict(with_aux, file_of({{"a", f32({2}, 1)}}), /*strict=*/true, optional);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.optional_missing, (std::vector<std::string>{"aux.w", "aux.b"}));
  EXPECT_EQ(a.to_vector(), (std::vector<float>{1, 1}));
  EXPECT_EQ(aux_w.item(), 7.0f);
  EXPECT_EQ(r.optional_missing_note("w.safetensors"),
            "=> note: weights 'w.safetensors' have no aux.* (2 tensors); the model keeps its initial values there");

  // The file has them: they load like any other.
  r = load_state_dict(with_aux, file_of({{"a", f32({2}, 2)}, {"aux.w", f32({1}, 3)}, {"aux.b", f32({1}, 4)}}), true,
                      optional);
  EXPECT_TRUE(r.optional_missing.empty());
  EXPECT_EQ(r.optional_missing_note("w"), "");
  EXPECT_EQ(aux_w.item(), 3.0f);
  EXPECT_EQ(aux_b.item(), 4.0f);

  // The destination lacks them: the file's are not loaded, and listed.
  r = load_state_dict({{"a", a}}, file_of({{"a", f32({2}, 5)}, {"aux.w", f32({1}, 3)}}), true, optional);
  EXPECT_EQ(r.optional_ignored, std::vector<std::string>{"aux.w"});
  EXPECT_EQ(a.to_vector(), (std::vector<float>{5, 5}));

  // Anything else is as strict as without the predicate.
  std::string m;
  try {
    load_state_dict(with_aux, file_of({{"aux.w", f32({1}, 3)}, {"aux.b", f32({1}, 4)}, {"z", f32({1}, 1)}}), true,
                    optional);
  } catch (const Error& e) {
    m = e.what();
  }
  EXPECT_NE(m.find(R"(Missing key(s) in file: "a".)"), std::string::npos) << m;
  EXPECT_NE(m.find(R"(Unexpected key(s) in file: "z".)"), std::string::npos) << m;
  // A shape mismatch in an optional tensor is still an error.
  m = "";
  try {
    load_state_dict(with_aux, file_of({{"a", f32({2}, 1)}, {"aux.w", f32({2}, 3)}, {"aux.b", f32({1}, 4)}}), true,
                    optional);
  } catch (const Error& e) {
    m = e.what();
  }
  EXPECT_NE(m.find("size mismatch for aux.w"), std::string::npos) << m;
  // Part of the optional tensors is an incomplete file: the rest are missing.
  m = "";
  try {
    load_state_dict(with_aux, file_of({{"a", f32({2}, 1)}, {"aux.w", f32({1}, 9)}}), true, optional);
  } catch (const Error& e) {
    m = e.what();
  }
  EXPECT_NE(m.find(R"(Missing key(s) in file: "aux.b".)"), std::string::npos) << m;
  EXPECT_EQ(aux_w.item(), 3.0f);  // nothing copied from the refused file
}
