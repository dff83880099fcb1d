#pragma once
// Pieces of a run built from its configuration, shared by the Trainer and the commands that only
// evaluate.
#include <memory>

#include "data/dataloader.h"
#include "data/dataset.h"
#include "data/datasets.h"
#include "models/registry.h"
#include "train/train_config.h"

namespace inq {

// The model's input channels (from the dataset's images) and classes (config.num_classes, or the
// dataset's); throws when the dataset has more classes than the model would.
ModelOptions model_options_for(const DataConfig& config, const Dataset& dataset);

// Throws, naming --data (and --image-size for image folders), when the dataset's images are not a
// size `arch` takes (models/registry.h input_size_rule), before a forward pass fails inside a layer.
void check_dataset_input_size(const std::string& arch, const DataConfig& config, const Dataset& dataset);

// A loader over `dataset` with the configuration's batch size: training batches are shuffled (by
// seed and epoch) and transformed with `transforms`; evaluation batches are in order. A data-parallel
// rank passes its shard (data/dataloader.h DataLoaderOptions::shard_rank): the batch size stays global.
std::unique_ptr<DataLoader> make_loader(const Dataset& dataset, const TrainConfig& config, bool train,
                                        TransformPipeline transforms, int64_t shard_rank = 0, int64_t shard_count = 1);

}  // namespace inq
