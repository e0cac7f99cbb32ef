// levattn-vit checkpoints: one file holding the model's shape, its parameters, the optimizer's
// state and a JSON record of the training run (options, step, curves), written atomically.
#pragma once

#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "vit.hpp"

namespace levattn::vit {

struct Checkpoint {
  Vit model{nullptr};
  nlohmann::json record;                                    // "config" (the VitConfig) and whatever the trainer stored
  std::optional<torch::serialize::InputArchive> optimizer;  // absent if none was saved
};

// Writes model, optimizer (if given) and record (its "config" is set from the model) to path,
// atomically. Throws Error{failure} when the file cannot be written.
void save_checkpoint(const std::string& path, Vit& model, torch::optim::Optimizer* optimizer, nlohmann::json record);

// Loads a checkpoint written by save_checkpoint. Throws Error{bad_input} naming the path when the
// file is missing, not a levattn-vit checkpoint, or its parameters do not fit its config.
Checkpoint load_checkpoint(const std::string& path);

nlohmann::json config_json(const VitConfig& config);
VitConfig config_from_json(const nlohmann::json& j);

}  // namespace levattn::vit
