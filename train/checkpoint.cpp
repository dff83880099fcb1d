#include "train/checkpoint.h"

#include <algorithm>
#include <cmath>

#include "framework/json_value.h"
#include "inq/packed_model.h"
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
  if (!contents.prune_state.empty()) metadata["prune_state"] = contents.prune_state;
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
  // The shared strict reader (framework/json_value.h): a key given twice is refused, not overwritten.
  const nlohmann::json config = parse_json_object(get("config"), fmt::format("checkpoint '{}' metadata 'config'",
                                                                             file.source));
  c.training_state = parse_json_object(get("training_state"),
                                       fmt::format("checkpoint '{}' metadata 'training_state'", file.source));
  try {
    c.config = train_config_from_json(config);
  } catch (const Error& e) {
    // A bad value read from the file, not a flag: say whose configuration it is.
    const std::string message = e.what();
    const std::string generic = "Given a training configuration with ";
    throw Error(message.rfind(generic, 0) == 0
                    ? fmt::format("Given checkpoint '{}', its stored configuration has {}", file.source,
                                  message.substr(generic.size()))
                    : fmt::format("Given checkpoint '{}', its stored configuration is refused: {}", file.source,
                                  message));
  }
  if (auto it = m.find("inq_state"); it != m.end()) c.inq_state = it->second;
  if (auto it = m.find("prune_state"); it != m.end()) c.prune_state = it->second;
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

TrainingProgress read_training_progress(const CheckpointContents& contents, const std::string& source,
                                        int inq_steps_begun) {
  const nlohmann::json& s = contents.training_state;
  auto field = [&](const char* key) -> const nlohmann::json& {
    INQ_CHECK(s.is_object() && s.contains(key),
              "Given checkpoint '{}', expected complete training state, but '{}' is missing", source, key);
    return s.at(key);
  };
  auto what = [&](const char* key) { return fmt::format("checkpoint '{}' training_state key '{}'", source, key); };
  TrainingProgress p;
  p.epoch = json_value<int64_t>(field("epoch"), what("epoch"));
  p.iteration = json_value<int64_t>(field("iteration"), what("iteration"));
  p.best_acc1 = json_value<double>(field("best_acc1"), what("best_acc1"));
  p.generator = json_value<std::string>(field("generator"), what("generator"));
  p.train_seconds = json_value<double>(field("train_seconds"), what("train_seconds"));
  p.train_images = json_value<int64_t>(field("train_images"), what("train_images"));
  p.phase_start_iteration = json_value<int64_t>(field("phase_start_iteration"), what("phase_start_iteration"));
  p.fp32_acc1 = json_value<double>(field("fp32_acc1"), what("fp32_acc1"));
  p.inq_steps = field("inq_steps");
  INQ_CHECK(p.epoch >= 0 && p.iteration >= 0 && p.train_images >= 0 && p.phase_start_iteration >= 0 &&
                p.phase_start_iteration <= p.iteration,
            "Given checkpoint '{}', expected non-negative counters with phase_start_iteration <= iteration, but "
            "got epoch {}, iteration {}, phase_start_iteration {}, train_images {}",
            source, p.epoch, p.iteration, p.phase_start_iteration, p.train_images);
  // The trainer appends to the last row after each re-training epoch, so the rows must be exactly
  // one object per INQ step begun.
  const bool rows_ok = p.inq_steps.is_array() && p.inq_steps.size() == static_cast<size_t>(inq_steps_begun) &&
                       std::all_of(p.inq_steps.begin(), p.inq_steps.end(), [](const auto& r) { return r.is_object(); });
  INQ_CHECK(rows_ok,
            "Given checkpoint '{}', expected training_state inq_steps to be {} object(s), one per INQ step begun, "
            "but got {} instead",
            source, inq_steps_begun, p.inq_steps.dump());
  // The trainer compares the last row's bn_batches (the BatchNorm re-estimation done after the last
  // step) with its configuration, so it must be a count when present.
  for (const auto& row : p.inq_steps) {
    if (!row.contains("bn_batches")) continue;
    const auto n = json_value<int64_t>(row.at("bn_batches"), what("inq_steps[].bn_batches"));
    INQ_CHECK(n >= 0 && n <= kMaxBnBatches, "Given checkpoint '{}', expected inq_steps bn_batches in [0, {}], but got {}",
              source, kMaxBnBatches, n);
  }
  return p;
}

QuantizedTensors read_quantized_tensors(const SafetensorsFile& file, const CheckpointContents& contents) {
  const std::string& path = file.source;
  INQ_CHECK(!contents.inq_state.empty(), "Given '{}', expected a checkpoint of an INQ run (with inq_state metadata)",
            path);
  const nlohmann::json meta = parse_json_object(contents.inq_state, fmt::format("'{}' metadata 'inq_state'", path));
  QuantizedTensors out;
  try {
    for (const auto& item : meta.at("tensors").items()) {
      // Named variables, not a structured binding: clang 14 (the fuzz build) cannot capture those.
      const std::string& name = item.key();
      const nlohmann::json& t = item.value();
      auto what = [&](const char* key) { return fmt::format("'{}' inq_state tensor '{}' key '{}'", path, name, key); };
      Codebook cb{.bits = json_value<int>(t.at("bits"), what("bits")),
                  .n1 = json_value<int>(t.at("n1"), what("n1")),
                  .n2 = json_value<int>(t.at("n2"), what("n2"))};
      try {
        cb.validate(name);
      } catch (const Error& e) {
        throw Error(fmt::format("Given checkpoint '{}': {}", path, e.what()));
      }
      const StoredTensor* w = file.find(kModelPrefix + name);
      INQ_CHECK(w != nullptr && w->dtype == StoredDtype::F32, "Given '{}', expected the quantized tensor 'model.{}'",
                path, name);
      Tensor values = w->f32.clone();
      if (const StoredTensor* mask = file.find(kOptimizerPrefix + name + kInqMaskSuffix)) {
        INQ_CHECK(mask->dtype == StoredDtype::F32 && mask->shape == w->shape,
                  "Given '{}', expected the mask of '{}' to be F32 of its weight's shape {}, but it is {} {}", path,
                  name, shape_str(w->shape), stored_dtype_name(mask->dtype), shape_str(mask->shape));
        for (int64_t i = 0; i < values.numel(); ++i) {
          if (mask->f32.data()[i] != 0.0f) {
            values.data()[i] = 0.0f;
            ++out.float_entries;
          }
        }
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

PrunedPositions read_pruned_positions(const SafetensorsFile& file) {
  PrunedPositions out;
  const std::string suffix = kInqPruneMaskSuffix;
  for (const auto& [key, mask] : file.tensors) {
    if (!starts_with(key, kOptimizerPrefix) || key.size() <= kOptimizerPrefix.size() + suffix.size() ||
        key.compare(key.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string name = key.substr(kOptimizerPrefix.size(), key.size() - kOptimizerPrefix.size() - suffix.size());
    const StoredTensor* w = file.find(kModelPrefix + name);
    INQ_CHECK(w != nullptr && w->dtype == StoredDtype::F32 && mask.dtype == StoredDtype::F32 && w->shape == mask.shape,
              "Given '{}', expected the pruning mask '{}' to be F32 with the shape of an F32 weight 'model.{}', but "
              "it is not", file.source, key, name);
    ++out.tensors;
    for (int64_t i = 0; i < mask.f32.numel(); ++i) {
      if (mask.f32.data()[i] != 0.0f) continue;
      ++out.pruned;
      if (w->f32.data()[i] != 0.0f) out.nonzero.emplace_back(name, i);
    }
  }
  return out;
}

void load_model_weights(const SafetensorsFile& file, Module& model, const NamePredicate& optional,
                        const WeightChecks& checks) {
  NamedTensorList destination;
  for (const auto& t : model.state_dict()) destination.emplace_back(t.name, t.tensor);
  LoadStateReport report;
  if (is_packed_model(file)) {
    const UnpackedModel unpacked = unpack_model(file);
    INQ_CHECK(checks.arch.empty() || checks.arch == unpacked.arch,
              "Given packed model '{}' of arch '{}' with --arch '{}', expected the arch the file was packed for "
              "(--arch {})",
              file.source, unpacked.arch, checks.arch, unpacked.arch);
    report = load_state_dict(destination, unpacked.weights, /*strict=*/true, optional);
  } else {
    report = is_checkpoint(file) ? load_state_dict(destination, checkpoint_model_tensors(file), /*strict=*/true, optional)
                                 : load_state_dict(destination, file, /*strict=*/true, optional);
  }
  if (const std::string note = report.optional_missing_note(file.source); !note.empty())
    fmt::print(stderr, "{}\n", note);
  check_loaded_weights_finite(destination, file.source, checks.allow_non_finite);
}

void check_loaded_weights_finite(const NamedTensorList& destination, const std::string& source,
                                 bool allow_non_finite) {
  // NaN or Inf in the weights gives NaN logits (accuracy 0, silently): refuse, or warn when allowed.
  int64_t non_finite = 0, tensors_with = 0;
  std::string first;
  for (const auto& [name, tensor] : destination) {
    const float* p = tensor.data();
    int64_t here = 0;
    for (int64_t i = 0; i < tensor.numel(); ++i) {
      if (std::isfinite(p[i])) continue;
      if (non_finite + here == 0) first = fmt::format("tensor '{}' (shape {}) entry {} is {}", name,
                                                       shape_str(tensor.shape()), i, p[i]);
      ++here;
    }
    non_finite += here;
    tensors_with += here > 0 ? 1 : 0;
  }
  if (non_finite == 0) return;
  const std::string summary = fmt::format("{}; {} non-finite value{} in {} tensor{}", first, non_finite,
                                          non_finite == 1 ? "" : "s", tensors_with, tensors_with == 1 ? "" : "s");
  INQ_CHECK(allow_non_finite,
            "Given weights file '{}', expected finite weights (no NaN or Inf), but {}\n(pass --allow-non-finite to "
            "inq eval or inq run to load them anyway)",
            source, summary);
  fmt::print(stderr, "warning: {}: loading non-finite weights (--allow-non-finite): {}\n", source, summary);
}

SafetensorsFile checkpoint_model_tensors(const SafetensorsFile& file) {
  SafetensorsFile weights;
  weights.source = file.source;
  for (const auto& [name, t] : file.tensors)
    if (starts_with(name, kModelPrefix)) weights.tensors.emplace_back(name.substr(kModelPrefix.size()), t);
  return weights;
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
