#include "data/data_config.h"

#include "data/image.h"
#include "framework/config_fields.h"

namespace inq {

void DataConfig::validate() const {
  check_config_range<int64_t>("batch_size", batch_size, 1, kMaxBatchSize);
  check_config_range<int64_t>("eval_batch_size", eval_batch_size, 1, kMaxBatchSize);
  check_config_range<int64_t>("num_classes", num_classes, 0, kMaxConfigCount);
  check_config_range<int64_t>("image_size", image_size, 1, kMaxImageSide);
  check_config_range<int64_t>("resize_size", resize_size, 1, kMaxImageSide);
  check_config_range<int64_t>("skip_bad_images", skip_bad_images, 0, kMaxConfigCount);
  check_config_range<int64_t>("train_limit", train_limit, 0, kMaxConfigCount);
  check_config_range<int64_t>("test_limit", test_limit, 0, kMaxConfigCount);
  check_config_range("workers", workers, 0, 64);
}

}  // namespace inq
