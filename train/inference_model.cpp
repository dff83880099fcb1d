#include "train/inference_model.h"

#include "framework/safetensors.h"
#include "inq/packed_model.h"
#include "layers/inference_prep.h"
#include "layers/init.h"

namespace inq {

InferenceModel load_inference_model(const std::string& arch, const ModelOptions& options, const std::string& weights,
                                    const WeightChecks& checks) {
  SafetensorsFile file = read_safetensors(weights);
  InferenceModel out;
  if (!is_packed_model(file)) {
    out.model = create_model(arch, options);
    load_model_weights(file, *out.model, optional_weight_names(*out.model), checks);
    prepare_for_inference(*out.model);  // also sets eval mode
    return out;
  }
  {
    // The float weights the packed ones replace are allocated but never written, so they never
    // take physical memory; everything else is overwritten by the load below (strictly: a tensor the
    // file lacks is an error, except optional ones, which inference_options does not build).
    SkipParameterInitGuard skip;
    out.model = create_model(arch, options);
  }
  const NamePredicate optional = optional_weight_names(*out.model);
  out.packed_summary = load_packed_for_inference(std::move(file), *out.model, optional, checks.arch);
  out.packed = true;
  NamedTensorList loaded;
  for (const auto& t : out.model->state_dict()) loaded.emplace_back(t.name, t.tensor);
  check_loaded_weights_finite(loaded, weights, checks.allow_non_finite);
  prepare_for_inference(*out.model);  // the convolutions left in float (excluded from INQ); eval mode
  return out;
}

}  // namespace inq
