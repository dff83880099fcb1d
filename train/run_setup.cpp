#include "train/run_setup.h"

#include "framework/error.h"

namespace inq {

ModelOptions model_options_for(const DataConfig& config, const Dataset& dataset) {
  const int64_t classes = config.num_classes > 0 ? config.num_classes : dataset.num_classes();
  INQ_CHECK(dataset.num_classes() <= classes,
            "Given --num-classes {}, expected at least the dataset's {} classes", classes, dataset.num_classes());
  return ModelOptions{.num_classes = classes, .in_channels = dataset.image_shape()[0]};
}

void check_dataset_input_size(const std::string& arch, const DataConfig& config, const Dataset& dataset) {
  const std::string given =
      config.dataset == "imagefolder"
          ? fmt::format("--data '{}' (imagefolder) cropped to --image-size {}", config.data_dir, config.image_size)
          : fmt::format("--data '{}' ({})", config.data_dir, config.dataset);
  check_input_size(arch, dataset.image_shape()[1], dataset.image_shape()[2], given);
}

std::unique_ptr<DataLoader> make_loader(const Dataset& dataset, const TrainConfig& config, bool train,
                                        TransformPipeline transforms, int64_t shard_rank, int64_t shard_count) {
  return std::make_unique<DataLoader>(
      dataset, DataLoaderOptions{.batch_size = train ? config.data.batch_size : config.data.eval_batch_size,
                                 .shuffle = train,
                                 .drop_last = false,
                                 .seed = config.run.seed,
                                 .workers = config.data.workers,
                                 .prefetch_batches = 0,
                                 .transforms = std::move(transforms),
                                 .shard_rank = shard_rank,
                                 .shard_count = shard_count});
}

}  // namespace inq
