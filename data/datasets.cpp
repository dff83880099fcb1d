#include "data/datasets.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iterator>

#include "data/cifar10.h"
#include "data/image_folder.h"
#include "framework/error.h"

namespace inq {

namespace fs = std::filesystem;

namespace {

// The first `count` examples of another dataset (for quick runs and tests).
class PrefixDataset final : public Dataset {
 public:
  PrefixDataset(std::shared_ptr<Dataset> base, int64_t count) : base_(std::move(base)), count_(count) {}
  int64_t size() const override { return count_; }
  Shape image_shape() const override { return base_->image_shape(); }
  int64_t num_classes() const override { return base_->num_classes(); }
  void get(int64_t index, float* image_out, int64_t* label_out) const override {
    check_dataset_index(index, count_, "PrefixDataset");
    base_->get(index, image_out, label_out);
  }
  void get_with_generator(int64_t index, Generator& gen, float* image_out, int64_t* label_out) const override {
    check_dataset_index(index, count_, "PrefixDataset");
    base_->get_with_generator(index, gen, image_out, label_out);
  }
  const Dataset& base() const { return *base_; }

 private:
  std::shared_ptr<Dataset> base_;
  int64_t count_;
};

std::shared_ptr<Dataset> limited(std::shared_ptr<Dataset> full, int64_t limit) {
  if (limit > 0 && limit < full->size()) return std::make_shared<PrefixDataset>(std::move(full), limit);
  return full;
}

const ImageFolder* as_image_folder(const Dataset& d) {
  if (const auto* prefix = dynamic_cast<const PrefixDataset*>(&d)) return as_image_folder(prefix->base());
  return dynamic_cast<const ImageFolder*>(&d);
}

bool is_directory_path(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

// torchvision's ImageNet normalization (references/classification/presets.py).
const ChannelStats& imagenet_stats() {
  static const ChannelStats stats{{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
  return stats;
}

}  // namespace

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names = {"fashion-mnist", "mnist", "cifar10", "imagefolder"};
  return names;
}

std::string infer_dataset(const std::string& data_dir) {
  const fs::path dir(data_dir);
  for (const char* name : {"train-images-idx3-ubyte", "t10k-images-idx3-ubyte"}) {
    if (path_exists(dir / name) || path_exists(dir / (std::string(name) + ".gz"))) return "fashion-mnist";
  }
  for (const fs::path& d : {dir, dir / "cifar-10-batches-bin"}) {
    if (path_exists(d / "test_batch.bin") || path_exists(d / "data_batch_1.bin")) return "cifar10";
  }
  return is_directory_path(dir) ? "imagefolder" : "fashion-mnist";
}

std::string image_folder_split_root(const std::string& data_dir, bool train) {
  const fs::path dir(data_dir);
  if (train) {
    INQ_CHECK(is_directory_path(dir / "train"),
              "Given --data '{}' for training on an image folder, expected it to hold train/ and val/ folders "
              "(root/train/<class>/<image>), but there is no '{}'",
              data_dir, (dir / "train").string());
    return (dir / "train").string();
  }
  if (is_directory_path(dir / "val")) return (dir / "val").string();
  INQ_CHECK(!is_directory_path(dir / "train"),
            "Given --data '{}' holding train/, expected a val/ folder beside it for evaluation, but there is no '{}'",
            data_dir, (dir / "val").string());
  return data_dir;
}

namespace {
// Normalization divides by the training split's per-channel standard deviation: a split whose
// pixels are all the same in a channel is the data's fault, so name the data.
void check_normalization(const DataConfig& config, const ChannelStats* stats) {
  if (stats == nullptr) return;
  for (size_t c = 0; c < stats->std.size(); ++c)
    INQ_CHECK(std::isfinite(stats->mean[c]) && std::isfinite(stats->std[c]) && stats->std[c] > 0,
              "Given --data '{}' ({}), expected training images whose pixels vary in every channel (normalization "
              "divides by their standard deviation), but channel {} has mean {} and standard deviation {}",
              config.data_dir, config.dataset, c, stats->mean[c], stats->std[c]);
}
}  // namespace

std::shared_ptr<Dataset> load_dataset(const DataConfig& config, bool train, ChannelStats* normalization) {
  INQ_CHECK(std::find(dataset_names().begin(), dataset_names().end(), config.dataset) != dataset_names().end(),
            "Given --dataset '{}', expected one of {}", config.dataset, fmt::join(dataset_names(), ", "));
  const int64_t limit = train ? config.train_limit : config.test_limit;
  const Split split = train ? Split::Train : Split::Test;
  if (config.dataset == "imagefolder") {
    ImageFolderOptions options;
    options.preprocessing.crop_size = config.image_size;
    options.preprocessing.resize_size = config.resize_size;
    if (train && config.augment) options.preprocessing.kind = ImagePreprocessing::Kind::RandomResizedCrop;
    // Evaluation never skips: an accuracy over fewer images than the folder holds would be misleading.
    options.max_bad_images = train ? config.skip_bad_images : 0;
    if (normalization) *normalization = imagenet_stats();
    return limited(std::make_shared<ImageFolder>(image_folder_split_root(config.data_dir, train), options), limit);
  }
  if (config.dataset == "cifar10") {
    auto full = std::make_shared<Cifar10>(config.data_dir, split);
    if (normalization) *normalization = train ? full->pixel_stats() : Cifar10::train_stats(config.data_dir);
    check_normalization(config, normalization);
    return limited(full, limit);
  }
  // Fashion-MNIST and MNIST share the IDX layout and file names.
  auto full = std::make_shared<FashionMnist>(config.data_dir, split);
  // Normalization uses the statistics of the whole training split (docs/REPRODUCTION.md section 1).
  if (normalization) *normalization = train ? full->pixel_stats() : FashionMnist::train_stats(config.data_dir);
  check_normalization(config, normalization);
  return limited(full, limit);
}

TransformPipeline dataset_transforms(const DataConfig& config, bool train, const ChannelStats& normalization) {
  TransformPipeline t;
  // Augmentation works on the [0, 1] image so a crop's zero padding is black; normalization follows.
  if (train && config.augment) {
    if (config.dataset == "cifar10") {
      t.add(random_crop(4));
    } else if (config.dataset != "imagefolder") {
      t.add(random_crop(2));  // imagefolder's RandomResizedCrop happens while loading
    }
    t.add(random_horizontal_flip(0.5));
  }
  t.add(normalize(normalization.mean, normalization.std));
  return t;
}

void check_same_classes(const Dataset& train, const Dataset& test) {
  INQ_CHECK(train.image_shape()[0] == test.image_shape()[0],
            "Given training images with {} channels, expected test images with the same, but they have {}",
            train.image_shape()[0], test.image_shape()[0]);
  const ImageFolder* a = as_image_folder(train);
  const ImageFolder* b = as_image_folder(test);
  if (a == nullptr || b == nullptr) return;
  const auto& ca = a->listing().classes;
  const auto& cb = b->listing().classes;
  if (ca == cb) return;
  std::vector<std::string> only_train, only_test;
  std::set_difference(ca.begin(), ca.end(), cb.begin(), cb.end(), std::back_inserter(only_train));
  std::set_difference(cb.begin(), cb.end(), ca.begin(), ca.end(), std::back_inserter(only_test));
  throw Error(fmt::format(
      "Given image folders '{}' ({} classes) and '{}' ({} classes), expected the same class folders so labels agree, "
      "but only the first has [{}] and only the second has [{}]",
      a->listing().root, ca.size(), b->listing().root, cb.size(), fmt::join(only_train, ", "),
      fmt::join(only_test, ", ")));
}

}  // namespace inq
