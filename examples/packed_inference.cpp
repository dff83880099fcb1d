// A complete program embedding this project's inference API (train/inference_session.h): load a
// model by architecture name from a packed INQ model (or a float weights file), run a batch, print
// each image's top class. Built with the project as build/packed_inference_example.
//
//   build/packed_inference_example alexnet alexnet-5bit.safetensors [batch] [threads]
//
// The images here are random (this example has no image decoding); see `inq run` for a batch read
// from a file, and data/ for the JPEG/PNG pipeline.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "framework/error.h"
#include "train/inference_session.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <arch> <weights.safetensors> [batch] [threads]\n", argv[0]);
    return 2;
  }
  const int64_t batch = argc > 3 ? std::atoll(argv[3]) : 1;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 0;
  try {
    inq::InferenceSession session(argv[1], argv[2], {.threads = threads});
    std::printf("%s: %s, %s\n", argv[2], session.arch().c_str(),
                session.packed() ? "running from its packed codes" : "float32 weights");
    // A batch of (N, C, H, W) floats, as a user would fill it from decoded and normalized images.
    const int64_t channels = session.arch() == "lenet5" ? 1 : 3;
    const int64_t size = session.arch() == "lenet5" ? 28 : session.arch() == "resnet20" ? 32 : 224;
    std::vector<float> images(static_cast<size_t>(batch * channels * size * size));
    std::mt19937 rng(0);
    std::normal_distribution<float> normal;
    for (float& v : images) v = normal(rng);

    const std::vector<float> logits = session.run(images.data(), {batch, channels, size, size});
    const int64_t classes = session.num_classes();
    for (int64_t i = 0; i < batch; ++i) {
      int64_t best = 0;
      for (int64_t k = 1; k < classes; ++k)
        if (logits[i * classes + k] > logits[i * classes + best]) best = k;
      std::printf("image %lld: class %lld (logit %.4f)\n", static_cast<long long>(i), static_cast<long long>(best),
                  logits[i * classes + best]);
    }
    return 0;
  } catch (const inq::Error& e) {
    // The message names the file or the shape that was wrong, as the inq commands print it.
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
