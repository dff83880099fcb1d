#pragma once
// The datasets the `inq` tool reads, chosen by DataConfig::dataset, with the preprocessing each
// trains and evaluates with:
//   fashion-mnist, mnist  IDX files in --data; normalized with the training split's mean and std;
//                         train augmentation: random crop (zero pad 2) + horizontal flip
//   cifar10               the binary batches in --data; normalized with the training split's
//                         per-channel statistics; train augmentation: random crop (pad 4) + flip
//   imagefolder           --data holds train/ and val/ (torchvision's ImageNet layout); evaluation
//                         alone also takes a val folder itself. Evaluation: Resize(resize_size) +
//                         CenterCrop(image_size); training: RandomResizedCrop(image_size) + flip
//                         (without augmentation, the evaluation preprocessing); ImageNet mean
//                         (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) (torchvision's
//                         reference scripts). Only training skips bad images (skip_bad_images).
#include <memory>
#include <string>
#include <vector>

#include "data/data_config.h"
#include "data/dataset.h"
#include "data/fashion_mnist.h"
#include "data/transforms.h"

namespace inq {

const std::vector<std::string>& dataset_names();
// The dataset a --data directory holds, for commands given no --dataset: fashion-mnist when it
// holds the IDX files (or does not exist: loading then names the missing files), cifar10 when it
// holds the CIFAR-10 batches, imagefolder for any other directory.
std::string infer_dataset(const std::string& data_dir);
// The folder of an ImageFolder split under data_dir: train/ for training; for evaluation val/, or
// data_dir itself when it has neither val/ nor train/ (a validation folder given directly).
std::string image_folder_split_root(const std::string& data_dir, bool train);

// Loads the train or test split a config names (limited by train_limit / test_limit) and, when
// `normalization` is given, the per-channel mean and std to normalize with (the whole training
// split's statistics, or ImageNet's for imagefolder).
std::shared_ptr<Dataset> load_dataset(const DataConfig& config, bool train, ChannelStats* normalization = nullptr);
// The float transforms the DataLoader applies after loading: the split's augmentation (training
// with config.augment) and then normalization.
TransformPipeline dataset_transforms(const DataConfig& config, bool train, const ChannelStats& normalization);
// Throws unless a training and a test split label the same classes the same way (two
// ImageFolders must list the same class names).
void check_same_classes(const Dataset& train, const Dataset& test);

}  // namespace inq
