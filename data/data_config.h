#pragma once
// The data section of a run's configuration: which dataset, where, how it is batched, augmented
// and limited. Its keys in config.json and checkpoints are the field names below (flat, beside the
// other sections' keys: framework/config_fields.h); apps/ adds its command-line flags.
#include <cstdint>
#include <string>

namespace inq {

struct DataConfig {
  std::string dataset = "fashion-mnist";  // fashion-mnist | mnist | cifar10 | imagefolder
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  int64_t num_classes = 0;      // the model's classes; 0 = the dataset's
  int64_t image_size = 224;     // imagefolder: the crop fed to the model (image_size^2)
  int64_t resize_size = 256;    // imagefolder evaluation: shorter side before the center crop
  int64_t skip_bad_images = 0;  // imagefolder training: skip up to N undecodable files (0 = stop)
  int64_t batch_size = 128;
  int64_t eval_batch_size = 500;
  int workers = 2;              // background data threads
  bool augment = true;          // random crop (pad 2; CIFAR-10 pad 4; imagefolder RandomResizedCrop) + flip
  int64_t train_limit = 0;      // use only the first N training examples (0 = all)
  int64_t test_limit = 0;       // evaluate only the first N test examples (0 = all)

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& v) {
    v("dataset", s.dataset), v("data_dir", s.data_dir), v("num_classes", s.num_classes);
    v("image_size", s.image_size), v("resize_size", s.resize_size), v("skip_bad_images", s.skip_bad_images);
    v("batch_size", s.batch_size), v("eval_batch_size", s.eval_batch_size), v("workers", s.workers);
    v("augment", s.augment), v("train_limit", s.train_limit), v("test_limit", s.test_limit);
  }
  // Throws inq::Error naming the first key outside its range.
  void validate() const;
};

}  // namespace inq
