#include "apps/checkpoint.h"

#include "framework/error.h"
#include "framework/state_dict.h"
#include "inq/inq_state.h"

namespace inq {

namespace {
const std::string kModelPrefix = "model.";
const std::string kOptimizerPrefix = "optimizer.";

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

bool is_checkpoint(const SafetensorsFile& file) {
  auto it = file.metadata.find("format");
  return it != file.metadata.end() && it->second == kCheckpointFormat;
}
}  // namespace

void save_checkpoint(const std::string& path, const Module& model, const Optimizer* optimizer,
                     const CheckpointContents& contents) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& t : model.state_dict()) tensors.emplace_back(kModelPrefix + t.name, t.tensor);
  if (optimizer)
    for (auto& [name, t] : optimizer->state_tensors()) tensors.emplace_back(kOptimizerPrefix + name, t);
  std::map<std::string, std::string> metadata = {
      {"format", kCheckpointFormat},
      {"format_version", std::to_string(kCheckpointVersion)},
      {"arch", contents.arch},
      {"config", to_json(contents.config).dump()},
      {"training_state", contents.training_state.dump()},
  };
  if (!contents.inq_state.empty()) metadata["inq_state"] = contents.inq_state;
  write_safetensors(path, tensors, metadata);
}

CheckpointContents read_checkpoint_info(const SafetensorsFile& file) {
  INQ_CHECK(is_checkpoint(file), "Given '{}', expected an inq checkpoint (metadata format = '{}'), but it has none",
            file.source, kCheckpointFormat);
  const auto& m = file.metadata;
  auto get = [&](const char* key) -> const std::string& {
    auto it = m.find(key);
    INQ_CHECK(it != m.end(), "Given checkpoint '{}', expected metadata key '{}', but it is missing", file.source, key);
    return it->second;
  };
  INQ_CHECK(get("format_version") == std::to_string(kCheckpointVersion),
            "Given checkpoint '{}', expected format version {}, but got '{}' instead", file.source,
            kCheckpointVersion, get("format_version"));
  CheckpointContents c;
  c.arch = get("arch");
  try {
    c.config = train_config_from_json(nlohmann::json::parse(get("config")));
    c.training_state = nlohmann::json::parse(get("training_state"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("Given checkpoint '{}', expected valid JSON in its metadata, but got: {}", file.source,
                            e.what()));
  }
  if (auto it = m.find("inq_state"); it != m.end()) c.inq_state = it->second;
  INQ_CHECK(c.training_state.is_object(), "Given checkpoint '{}', expected training_state to be a JSON object",
            file.source);
  return c;
}

nlohmann::json to_json(const TrainingProgress& p) {
  return {{"epoch", p.epoch},
          {"iteration", p.iteration},
          {"best_acc1", p.best_acc1},
          {"generator", p.generator},
          {"train_seconds", p.train_seconds},
          {"train_images", p.train_images},
          {"phase_start_iteration", p.phase_start_iteration},
          {"fp32_acc1", p.fp32_acc1},
          {"inq_steps", p.inq_steps}};
}

TrainingProgress read_training_progress(const CheckpointContents& contents, const std::string& source) {
  TrainingProgress p;
  try {
    const auto& s = contents.training_state;
    p.epoch = s.at("epoch").get<int64_t>();
    p.iteration = s.at("iteration").get<int64_t>();
    p.best_acc1 = s.at("best_acc1").get<double>();
    p.generator = s.at("generator").get<std::string>();
    p.train_seconds = s.at("train_seconds").get<double>();
    p.train_images = s.at("train_images").get<int64_t>();
    p.phase_start_iteration = s.at("phase_start_iteration").get<int64_t>();
    p.fp32_acc1 = s.at("fp32_acc1").get<double>();
    p.inq_steps = s.at("inq_steps");
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("Given checkpoint '{}', expected complete training state, but got: {}", source, e.what()));
  }
  return p;
}

QuantizedTensors read_quantized_tensors(const SafetensorsFile& file, const CheckpointContents& contents) {
  const std::string& path = file.source;
  INQ_CHECK(!contents.inq_state.empty(), "Given '{}', expected a checkpoint of an INQ run (with inq_state metadata)",
            path);
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(contents.inq_state);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("Given '{}', expected JSON inq_state metadata, but got: {}", path, e.what()));
  }
  QuantizedTensors out;
  try {
    for (const auto& [name, t] : meta.at("tensors").items()) {
      Codebook cb{.bits = t.at("bits").get<int>(), .n1 = t.at("n1").get<int>(), .n2 = t.at("n2").get<int>()};
      cb.validate(name);
      const StoredTensor* w = file.find(kModelPrefix + name);
      INQ_CHECK(w != nullptr && w->dtype == StoredDtype::F32, "Given '{}', expected the quantized tensor 'model.{}'",
                path, name);
      Tensor values = w->f32.clone();
      if (const StoredTensor* mask = file.find(kOptimizerPrefix + name + kInqMaskSuffix)) {
        INQ_CHECK(mask->numel() == values.numel(), "Given '{}', expected the mask of '{}' to match its weight", path,
                  name);
        for (int64_t i = 0; i < values.numel(); ++i)
          if (mask->f32.data()[i] != 0.0f) values.data()[i] = 0.0f;
      }
      out.codebooks.emplace(name, cb);
      out.tensors.emplace_back(name, values);
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("Given '{}', expected inq_state metadata with per-tensor bits, n1 and n2: {}", path,
                            e.what()));
  }
  return out;
}

void load_model_weights(const SafetensorsFile& file, Module& model) {
  NamedTensorList destination;
  for (const auto& t : model.state_dict()) destination.emplace_back(t.name, t.tensor);
  if (!is_checkpoint(file)) {
    load_state_dict(destination, file, /*strict=*/true);
    return;
  }
  // Keep only the model's entries, with the prefix removed.
  SafetensorsFile weights;
  weights.source = file.source;
  for (const auto& [name, t] : file.tensors)
    if (starts_with(name, kModelPrefix)) weights.tensors.emplace_back(name.substr(kModelPrefix.size()), t);
  load_state_dict(destination, weights, /*strict=*/true);
}

void load_optimizer_state(const SafetensorsFile& file, Optimizer& optimizer) {
  optimizer.load_state_tensors(optimizer_state_tensors(file));
}

NamedTensorList optimizer_state_tensors(const SafetensorsFile& file) {
  NamedTensorList state;
  for (const auto& [name, t] : file.tensors) {
    if (!starts_with(name, kOptimizerPrefix)) continue;
    INQ_CHECK(t.dtype == StoredDtype::F32, "Given checkpoint '{}', expected F32 optimizer state for '{}'", file.source,
              name);
    state.emplace_back(name.substr(kOptimizerPrefix.size()), t.f32);
  }
  return state;
}

}  // namespace inq
