#pragma once
// The two workloads every throughput comparison with PyTorch runs, built once here so that the
// Google Benchmark programs (bench_train_step, bench_eval) and the one-workload-per-process program
// that `make bench-compare` drives (bench_model) time exactly the same thing:
//   TrainStep    forward, softmax cross-entropy, backward, SGD (momentum 0.9, weight decay 5e-4)
//   EvalForward  one eval-mode forward pass without autograd
// on a fixed random batch. The PyTorch twins live in bench/pytorch_model.py.
// GoogLeNet is built without its auxiliary heads (torchvision's aux_logits=False) on both sides, so
// the two frameworks run the same graph.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "framework/autograd.h"
#include "framework/random.h"
#include "layers/inference_prep.h"
#include "layers/loss.h"
#include "models/registry.h"
#include "optim/sgd.h"

namespace inq::bench {

struct WorkloadShape {
  int64_t batch = 128;
  int64_t channels = 1;
  int64_t size = 28;  // height = width
  int64_t classes = 10;
};

inline ModelOptions model_options(const WorkloadShape& s) {
  ModelOptions options{.num_classes = s.classes, .in_channels = s.channels};
  options.aux_logits = false;
  return options;
}

// A standard-normal batch and uniform labels from a fixed seed.
inline Tensor random_batch(const WorkloadShape& s, std::vector<int64_t>* labels) {
  Generator gen(1);
  Tensor x = Tensor::empty({s.batch, s.channels, s.size, s.size});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(gen.normal());
  if (labels) {
    labels->resize(static_cast<size_t>(s.batch));
    for (auto& label : *labels) label = static_cast<int64_t>(gen.uniform_int(static_cast<uint64_t>(s.classes)));
  }
  return x;
}

class TrainStep {
 public:
  TrainStep(const std::string& arch, const WorkloadShape& s) {
    seed_all(0);
    model_ = create_model(arch, model_options(s));
    sgd_ = std::make_unique<Sgd>(make_param_groups(model_->named_parameters(), 5e-4),
                                 SgdOptions{.lr = 0.01, .momentum = 0.9, .dampening = 0, .nesterov = false});
    x_ = random_batch(s, &y_);
    model_->train();
  }
  // Returns the loss (a handle the caller may keep from being optimized away).
  float run() {
    Tensor loss = cross_entropy(model_->forward(x_), y_);
    model_->zero_grad();
    loss.backward();
    sgd_->step();
    return loss.item();
  }

 private:
  std::shared_ptr<Module> model_;
  std::unique_ptr<Sgd> sgd_;
  Tensor x_;
  std::vector<int64_t> y_;
};

class EvalForward {
 public:
  EvalForward(const std::string& arch, const WorkloadShape& s) {
    seed_all(0);
    model_ = create_model(arch, model_options(s));
    prepare_for_inference(*model_);  // as the inference commands load a model (eval mode)
    x_ = random_batch(s, nullptr);
  }
  float run() {
    NoGradGuard no_grad;
    return model_->forward(x_).data()[0];
  }

 private:
  std::shared_ptr<Module> model_;
  Tensor x_;
};

}  // namespace inq::bench
