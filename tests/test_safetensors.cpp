// safetensors reader and writer: round trips, byte-level layout, every rejection rule of
// docs/FORMATS_AND_RELIABILITY.md, and atomic replacement of existing files.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "framework/atomic_file.h"
#include "framework/error.h"
#include "framework/safetensors.h"

using namespace inq;
using namespace std::string_literals;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            fmt::format("inq_{}_{}_{}", info->test_suite_name(), info->name(), ::getpid());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }
  // Every entry of the directory (to prove no temporary file is left behind).
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  fs::path path_;
};

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void append_u64(std::vector<uint8_t>* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void append_u32(std::vector<uint8_t>* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// A file image built by hand: little-endian length, header text, buffer.
std::vector<uint8_t> image(const std::string& header, const std::vector<uint8_t>& buffer) {
  std::vector<uint8_t> out;
  append_u64(&out, header.size());
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), buffer.begin(), buffer.end());
  return out;
}

// Asserts that parsing `bytes` throws an Error whose message names the source and contains `needle`.
void expect_rejected(const std::vector<uint8_t>& bytes, const std::string& needle) {
  try {
    parse_safetensors(bytes, "bad.safetensors");
    ADD_FAILURE() << "accepted a file that should be rejected for: " << needle;
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("bad.safetensors"), std::string::npos) << m;
    EXPECT_NE(m.find(needle), std::string::npos) << "expected '" << needle << "' in: " << m;
  }
}

// A one-tensor header with the given fields spliced in.
std::string one_entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"t":{"dtype":)" + dtype + R"(,"shape":)" + shape + R"(,"data_offsets":)" + offsets + "}}";
}

std::vector<uint8_t> zeros(size_t n) { return std::vector<uint8_t>(n, 0); }

}  // namespace

TEST(Safetensors, RoundTripKeepsDtypesShapesOrderAndMetadata) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  StoredTensors tensors;
  tensors.emplace_back("conv.weight",
                       StoredTensor::from_tensor(Tensor::from_vector({2, 1, 2}, {1.5f, -2, 0.25f, 3e-8f})));
  tensors.emplace_back("bn.num_batches_tracked", StoredTensor::from_int64({}, {123456789012LL}));
  tensors.emplace_back("scalar", StoredTensor::from_tensor(Tensor::full({}, -7.5f)));
  tensors.emplace_back("empty", StoredTensor::from_tensor(Tensor::zeros({0, 3})));
  tensors.emplace_back("ids", StoredTensor::from_int64({3}, {-1, 0, INT64_MAX}));
  tensors.emplace_back("codes", StoredTensor::from_uint8({5}, {0, 1, 127, 128, 255}));
  const std::map<std::string, std::string> metadata{{"format", "pt"}, {"note", "µ ünïcode"}};
  write_safetensors(path, tensors, metadata);

  SafetensorsFile f = read_safetensors(path);
  EXPECT_EQ(f.source, path);
  EXPECT_EQ(f.metadata, metadata);
  ASSERT_EQ(f.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, want] = tensors[i];
    const auto& [got_name, got] = f.tensors[i];
    EXPECT_EQ(got_name, name);  // file order is the written order
    EXPECT_EQ(got.dtype, want.dtype) << name;
    EXPECT_EQ(got.shape, want.shape) << name;
    if (want.dtype == StoredDtype::F32) {
      EXPECT_EQ(got.f32.shape(), want.shape);
      EXPECT_EQ(got.f32.to_vector(), want.f32.to_vector()) << name;
      EXPECT_TRUE(got.i64.empty());
    } else {
      EXPECT_EQ(got.i64, want.i64) << name;
      EXPECT_EQ(got.u8, want.u8) << name;
      EXPECT_FALSE(got.f32.defined());
    }
  }
  ASSERT_NE(f.find("scalar"), nullptr);
  EXPECT_EQ(f.find("scalar")->f32.item(), -7.5f);
  EXPECT_EQ(f.find("nope"), nullptr);

  // The in-memory serializer and parser agree with the file versions.
  const std::vector<uint8_t> bytes = serialize_safetensors(tensors, metadata);
  EXPECT_EQ(bytes, read_bytes(path));
  EXPECT_EQ(parse_safetensors(bytes).find("ids")->i64, (std::vector<int64_t>{-1, 0, INT64_MAX}));

  // A file with no tensors at all is valid too.
  EXPECT_TRUE(parse_safetensors(serialize_safetensors({})).tensors.empty());
}

TEST(Safetensors, HeaderIsPaddedWithSpacesToAMultipleOf8) {
  for (int len = 1; len <= 9; ++len) {
    StoredTensors t;
    t.emplace_back(std::string(len, 'x'), StoredTensor::from_tensor(Tensor::full({1}, 1.0f)));
    const std::vector<uint8_t> bytes = serialize_safetensors(t);
    uint64_t n;
    std::memcpy(&n, bytes.data(), 8);
    EXPECT_EQ(n % 8, 0u) << "name length " << len;
    EXPECT_EQ(bytes.size(), 8 + n + 4);
    const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n));
    const size_t close = header.rfind('}');
    EXPECT_LT(n - (close + 1), 8u);
    for (size_t i = close + 1; i < n; ++i) EXPECT_EQ(header[i], ' ');
  }
}

TEST(Safetensors, WriterBytesMatchTheSpecExactly) {
  StoredTensors t;
  t.emplace_back("a", StoredTensor::from_tensor(Tensor::from_vector({2}, {1.0f, -2.0f})));
  const std::vector<uint8_t> got = serialize_safetensors(t);

  // 54 bytes of JSON padded to 56; data 1.0f = 0x3F800000, -2.0f = 0xC0000000, little-endian.
  const std::string json = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_EQ(json.size(), 54u);
  std::vector<uint8_t> want = {56, 0, 0, 0, 0, 0, 0, 0};
  want.insert(want.end(), json.begin(), json.end());
  want.push_back(' ');
  want.push_back(' ');
  for (uint8_t b : {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0}) want.push_back(b);
  EXPECT_EQ(got, want);

  // Metadata comes first, as a plain string -> string object.
  const std::vector<uint8_t> with_meta = serialize_safetensors(t, {{"k", "v"}});
  const std::string header(with_meta.begin() + 8, with_meta.end() - 8);
  EXPECT_EQ(header.rfind(R"({"__metadata__":{"k":"v"},"a":{)", 0), 0u) << header;
}

TEST(Safetensors, ReadsAHandBuiltFile) {
  // Header keys in the opposite order to the data, no padding (N not a multiple of 8), whitespace
  // inside the JSON: all allowed by the format.
  const std::string header = R"({"n": {"dtype":"I64","shape":[],"data_offsets":[12,20]}, )"
                             R"("w":{"shape":[1, 3],"dtype":"F32","data_offsets":[0,12]}})";
  ASSERT_NE(header.size() % 8, 0u);
  std::vector<uint8_t> buffer;
  append_u32(&buffer, 0x3F800000);             // 1.0
  append_u32(&buffer, 0xC0200000);             // -2.5
  append_u32(&buffer, 0x00000001);             // smallest denormal
  append_u64(&buffer, 0xFFFFFFFFFFFFFFF9ull);  // -7
  const std::vector<uint8_t> bytes = image(header, buffer);
  SafetensorsFile f = parse_safetensors(bytes, "hand.safetensors");
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].first, "w");  // ordered by buffer position
  EXPECT_EQ(f.tensors[1].first, "n");
  const StoredTensor& w = f.tensors[0].second;
  EXPECT_EQ(w.dtype, StoredDtype::F32);
  EXPECT_EQ(w.shape, (Shape{1, 3}));
  EXPECT_EQ(w.f32.data()[0], 1.0f);
  EXPECT_EQ(w.f32.data()[1], -2.5f);
  EXPECT_EQ(w.f32.data()[2], std::numeric_limits<float>::denorm_min());
  const StoredTensor& n = f.tensors[1].second;
  EXPECT_EQ(n.dtype, StoredDtype::I64);
  EXPECT_EQ(n.shape, Shape{});
  EXPECT_EQ(n.i64, std::vector<int64_t>{-7});
  EXPECT_TRUE(f.metadata.empty());

  // The same bytes from disk.
  TempDir dir;
  write_bytes(dir.file("hand.safetensors"), bytes);
  EXPECT_EQ(read_safetensors(dir.file("hand.safetensors")).find("n")->i64, std::vector<int64_t>{-7});
}

TEST(Safetensors, RejectsBadHeaderLengths) {
  std::vector<uint8_t> huge;
  append_u64(&huge, 100'000'001);
  huge.resize(64, ' ');
  expect_rejected(huge, "at most 100000000");

  std::vector<uint8_t> past_end;
  append_u64(&past_end, 17);
  const std::string h = "{}              ";  // 16 bytes, one short
  past_end.insert(past_end.end(), h.begin(), h.end());
  expect_rejected(past_end, "file size - 8");

  std::vector<uint8_t> wrapped;  // would wrap around in 64-bit addition
  append_u64(&wrapped, ~uint64_t(0));
  expect_rejected(wrapped, "header length");

  expect_rejected({1, 2, 3}, "at least the 8-byte header length");
  expect_rejected({}, "at least the 8-byte header length");
}

TEST(Safetensors, RejectsInvalidUtf8AndJson) {
  for (const std::string& bad :
       {std::string("\xC3\x28"), std::string("\xC0\xAF"), std::string("\xED\xA0\x80"),
        std::string("\xF4\x90\x80\x80"), std::string("\xE2\x82"), std::string("\xFF")}) {
    expect_rejected(image(R"({"__metadata__":{"k":")" + bad + R"("}})", {}), "invalid byte sequence");
  }
  expect_rejected(image(R"({"t":{"dtype":"F32")", {}), "JSON header");
  expect_rejected(image(R"({} x)", {}), "JSON header");
  expect_rejected(image("{}\0\0\0\0\0\0"s, {}), "NUL byte");  // NUL padding is not whitespace
  expect_rejected(image(R"({"__metadata__":{"k":"v)" + "\0"s + R"("}})", {}), "NUL byte");
  expect_rejected(image(R"({"a":1,})", {}), "JSON header");
  expect_rejected(image(R"([])", {}), "JSON object");
  expect_rejected(image(R"("x")", {}), "JSON object");
  expect_rejected(image(R"({"t":[[[[1]]]]})", {}), "nested");
  expect_rejected(image(R"({"t":5})", {}), "to be an object");
}

TEST(Safetensors, RejectsDuplicateNamesAtEveryLevel) {
  const std::string entry = R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  expect_rejected(image(R"({"t":)" + entry + R"(,"t":)" + entry + "}", zeros(4)),
                  "'t' appears more than once");
  expect_rejected(image(R"({"t":{"dtype":"F32","dtype":"I64","shape":[1],"data_offsets":[0,4]}})", zeros(4)),
                  "'dtype' appears more than once");
  expect_rejected(image(R"({"__metadata__":{"a":"1","a":"2"}})", {}), "'a' appears more than once");
  expect_rejected(image(R"({"__metadata__":{},"__metadata__":{}})", {}),
                  "'__metadata__' appears more than once");
  // Same key in different objects is fine.
  EXPECT_NO_THROW(parse_safetensors(image(R"({"__metadata__":{"t":"x"},"t":)" + entry + "}", zeros(4))));
}

TEST(Safetensors, RejectsUnknownDtypesAndMalformedEntries) {
  expect_rejected(image(one_entry(R"("F16")", "[2]", "[0,4]"), zeros(4)), "F32, I64 or U8, but got 'F16'");
  expect_rejected(image(one_entry(R"("f32")", "[1]", "[0,4]"), zeros(4)), "but got 'f32'");
  expect_rejected(image(one_entry("1", "[1]", "[0,4]"), zeros(4)), "dtype of tensor 't' to be a string");
  expect_rejected(image(R"({"t":{"dtype":"F32","shape":[1]}})", {}), "'data_offsets', but it is missing");
  expect_rejected(image(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", zeros(4)),
                  "'x' as well");
  expect_rejected(image(one_entry(R"("F32")", "3", "[0,12]"), zeros(12)),
                  "shape of tensor 't' to be an array");
  expect_rejected(image(one_entry(R"("F32")", "[1]", "[0,4,8]"), zeros(8)), "[begin, end]");
  expect_rejected(image(one_entry(R"("F32")", "[1]", "{}"), zeros(4)), "[begin, end]");
  expect_rejected(image(one_entry(R"("F32")", "[0]", "[4,0]"), zeros(4)), "begin <= end");
  expect_rejected(image(one_entry(R"("F32")", "[1]", "[-4,0]"), zeros(4)), "non-negative");
}

TEST(Safetensors, RejectsNegativeNonIntegerAndOverflowingShapes) {
  expect_rejected(image(one_entry(R"("F32")", "[-1]", "[0,0]"), {}), "non-negative, but got -1");
  expect_rejected(image(one_entry(R"("F32")", "[2.0]", "[0,8]"), zeros(8)), "to be integers");
  expect_rejected(image(one_entry(R"("F32")", "[2.5]", "[0,8]"), zeros(8)), "to be integers");
  expect_rejected(image(one_entry(R"("F32")", "[1e1]", "[0,40]"), zeros(40)), "to be integers");
  expect_rejected(image(one_entry(R"("F32")", R"(["2"])", "[0,8]"), zeros(8)), "to be integers");
  expect_rejected(image(one_entry(R"("F32")", "[null]", "[0,8]"), zeros(8)), "to be integers");
  // Above int64, above uint64 (nlohmann turns that into a double), product overflow, bytes overflow.
  expect_rejected(image(one_entry(R"("F32")", "[9223372036854775808]", "[0,0]"), {}), "fit in 64-bit");
  expect_rejected(image(one_entry(R"("F32")", "[18446744073709551616]", "[0,0]"), {}), "to be integers");
  expect_rejected(image(one_entry(R"("F32")", "[4294967296,4294967296]", "[0,0]"), {}), "element count");
  expect_rejected(image(one_entry(R"("I64")", "[4611686018427387904]", "[0,0]"), {}), "byte size");
  // A zero dim makes the product 0 even next to a huge one: that is valid.
  EXPECT_NO_THROW(parse_safetensors(image(one_entry(R"("F32")", "[0,9223372036854775807]", "[0,0]"), {})));
}

TEST(Safetensors, RejectsSizesThatDoNotMatchTheShape) {
  expect_rejected(image(one_entry(R"("F32")", "[3]", "[0,8]"), zeros(8)), "to span 12 bytes");
  expect_rejected(image(one_entry(R"("I64")", "[1]", "[0,4]"), zeros(4)), "to span 8 bytes");
  expect_rejected(image(one_entry(R"("U8")", "[3]", "[0,4]"), zeros(4)), "to span 3 bytes");
  // U8 has no alignment requirement: 3 bytes of codes, then nothing else.
  EXPECT_EQ(parse_safetensors(image(one_entry(R"("U8")", "[3]", "[0,3]"), {7, 8, 9})).find("t")->u8,
            (std::vector<uint8_t>{7, 8, 9}));
  expect_rejected(image(one_entry(R"("F32")", "[]", "[0,0]"), {}),
                  "to span 4 bytes");  // rank 0 is one element
}

TEST(Safetensors, RejectsGapsOverlapsAndBadBufferEnds) {
  const auto two = [](const std::string& a, const std::string& b) {
    return R"({"a":{"dtype":"F32","shape":[2],"data_offsets":)" + a +
           R"(},"b":{"dtype":"F32","shape":[2],"data_offsets":)" + b + "}}";
  };
  expect_rejected(image(two("[0,8]", "[12,20]"), zeros(20)), "a gap");
  expect_rejected(image(two("[0,8]", "[4,12]"), zeros(12)), "an overlap");
  expect_rejected(image(two("[0,8]", "[0,8]"), zeros(8)), "an overlap");
  expect_rejected(image(two("[4,12]", "[12,20]"), zeros(20)), "at the buffer start");
  expect_rejected(image(two("[0,8]", "[8,16]"), zeros(17)), "trailing bytes");
  expect_rejected(image(two("[0,8]", "[8,16]"), zeros(15)), "missing bytes");
  expect_rejected(image("{}", zeros(1)), "trailing bytes");
  EXPECT_NO_THROW(parse_safetensors(image(two("[8,16]", "[0,8]"), zeros(16))));
  // Zero-sized tensors take no room and may share an offset with their neighbour.
  EXPECT_NO_THROW(parse_safetensors(image(
      R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
      R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
      zeros(4))));
}

TEST(Safetensors, RejectsNonStringMetadata) {
  expect_rejected(image(R"({"__metadata__":{"epoch":3}})", {}), "values to be strings");
  expect_rejected(image(R"({"__metadata__":{"x":null}})", {}), "values to be strings");
  expect_rejected(image(R"({"__metadata__":{"x":{"y":"z"}}})", {}), "values to be strings");
  expect_rejected(image(R"({"__metadata__":["a"]})", {}), "__metadata__ to be an object");
  expect_rejected(image(R"({"__metadata__":"a"})", {}), "__metadata__ to be an object");
}

TEST(Safetensors, ReaderRejectsFilesOnDisk) {
  TempDir dir;
  try {
    read_safetensors(dir.file("missing.safetensors"));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_safetensors(dir.path().string()), Error);  // a directory
  std::vector<uint8_t> bytes = serialize_safetensors({{"w", StoredTensor::from_tensor(Tensor::zeros({4}))}});
  bytes.pop_back();  // truncated by one byte
  write_bytes(dir.file("short.safetensors"), bytes);
  try {
    read_safetensors(dir.file("short.safetensors"));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("short.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("missing bytes"), std::string::npos) << e.what();
  }
  std::vector<uint8_t> huge;
  append_u64(&huge, 1ull << 40);
  write_bytes(dir.file("huge.safetensors"), huge);
  EXPECT_THROW(read_safetensors(dir.file("huge.safetensors")), Error);
}

TEST(Safetensors, WriterValidatesItsInput) {
  const StoredTensor one = StoredTensor::from_tensor(Tensor::zeros({1}));
  EXPECT_THROW(serialize_safetensors({{"a", one}, {"a", one}}), Error);
  EXPECT_THROW(serialize_safetensors({{"__metadata__", one}}), Error);
  EXPECT_THROW(serialize_safetensors({{"bad\xFF", one}}), Error);
  EXPECT_THROW(serialize_safetensors({{"a", one}}, {{"k", "\xC3"}}), Error);
  StoredTensor wrong_shape = one;
  wrong_shape.shape = {2};
  EXPECT_THROW(serialize_safetensors({{"a", wrong_shape}}), Error);
  StoredTensor undefined;
  undefined.shape = {1};
  EXPECT_THROW(serialize_safetensors({{"a", undefined}}), Error);
  EXPECT_THROW(StoredTensor::from_int64({2}, {1}), Error);
}

TEST(SafetensorsAtomicWrite, MissingDirectoryThrowsAndNamesThePath) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/w.safetensors");
  try {
    write_safetensors(path, std::vector<std::pair<std::string, Tensor>>{{"w", Tensor::zeros({2})}});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_TRUE(dir.entries().empty());
}

TEST(SafetensorsAtomicWrite, OverwriteReplacesTheFile) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  write_safetensors(path, std::vector<std::pair<std::string, Tensor>>{{"w", Tensor::full({2}, 1.0f)}});
  write_safetensors(path, std::vector<std::pair<std::string, Tensor>>{{"v", Tensor::full({3}, 2.0f)}});
  SafetensorsFile f = read_safetensors(path);
  ASSERT_EQ(f.tensors.size(), 1u);
  EXPECT_EQ(f.tensors[0].first, "v");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"w.safetensors"});
}

TEST(SafetensorsAtomicWrite, ExistingFileSurvivesAWriteThatFailsHalfway) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  write_safetensors(path, std::vector<std::pair<std::string, Tensor>>{{"w", Tensor::full({2}, 1.0f)}});
  const std::vector<uint8_t> before = read_bytes(path);

  // A real mid-write failure: a file size limit makes write() fail with EFBIG after 4 KiB.
  struct rlimit old_limit {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit limit = old_limit;
  limit.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limit), 0);
  bool threw = false;
  std::string message;
  try {
    write_safetensors(path, std::vector<std::pair<std::string, Tensor>>{{"big", Tensor::zeros({1 << 16})}});
  } catch (const Error& e) {
    threw = true;
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_TRUE(threw);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"w.safetensors"});  // the temporary file is gone
}

TEST(SafetensorsAtomicWrite, FailedRenameLeavesNoTemporaryFile) {
  TempDir dir;
  // The target is a non-empty directory: the data is written and flushed, then rename() fails.
  const std::string path = dir.file("target");
  fs::create_directories(fs::path(path) / "child");
  EXPECT_THROW(
      write_safetensors(path, std::vector<std::pair<std::string, Tensor>>{{"w", Tensor::zeros({2})}}), Error);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"target"});
  EXPECT_TRUE(fs::is_directory(fs::path(path) / "child"));

  EXPECT_THROW(write_file_atomically("", std::span<const uint8_t>()), Error);
  EXPECT_THROW(write_file_atomically(dir.path().string() + "/", std::span<const uint8_t>()), Error);
}

// A cheap stand-in for the fuzzer in unit tests: random byte flips, truncations and insertions of a
// valid file either parse or throw inq::Error; nothing else escapes (no json exceptions, no crash
// under the sanitizers).
TEST(Safetensors, CorruptedFilesParseOrThrowOurError) {
  StoredTensors t;
  t.emplace_back("layer.weight", StoredTensor::from_tensor(Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6})));
  t.emplace_back("bn.num_batches_tracked", StoredTensor::from_int64({}, {42}));
  const std::vector<uint8_t> valid = serialize_safetensors(t, {{"k", "v"}});
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&state](uint64_t n) {  // xorshift64*, deterministic
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return (state * 0x2545F4914F6CDD1Dull) % n;
  };
  const std::string tokens[] = {
      "\"",      "{",       "}",       "[",    "]", ",", ":", "-1", "1e9", "18446744073709551616",
      "\\u0000", "\"F32\"", "\"I64\"", "null", "0", "99"};
  int accepted = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<uint8_t> bytes = valid;
    const int edits = 1 + static_cast<int>(next(3));
    for (int e = 0; e < edits; ++e) {
      switch (next(4)) {
        case 0:  // flip a byte, mostly in the header
          if (!bytes.empty())
            bytes[next(std::min<uint64_t>(bytes.size(), 8 + 140))] ^= static_cast<uint8_t>(1 + next(255));
          break;
        case 1:  // truncate
          bytes.resize(next(bytes.size() + 1));
          break;
        case 2: {  // insert a JSON-ish token inside the header
          const std::string& tok = tokens[next(std::size(tokens))];
          if (bytes.size() < 9) break;
          const size_t at = 8 + next(std::min<uint64_t>(bytes.size(), 140) - 8);
          bytes.insert(bytes.begin() + static_cast<long>(at), tok.begin(), tok.end());
          break;
        }
        default:  // rewrite the length prefix
          if (bytes.size() >= 8) bytes[next(8)] = static_cast<uint8_t>(next(256));
          break;
      }
    }
    try {
      parse_safetensors(bytes, "fuzz");
      ++accepted;
    } catch (const Error&) {
    }
  }
  EXPECT_LT(accepted, 3000);
}
