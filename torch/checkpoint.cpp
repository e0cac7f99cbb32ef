// Checkpoints (see checkpoint.hpp).
#include "checkpoint.hpp"

#include <filesystem>
#include <sstream>

#include "levattn/core/error.hpp"
#include "levattn/io/atomic_file.hpp"

namespace levattn::vit {

nlohmann::json config_json(const VitConfig& c) {
  return {{"patch", c.patch}, {"width", c.width}, {"depth", c.depth}, {"heads", c.heads}, {"mlp", c.mlp}};
}

VitConfig config_from_json(const nlohmann::json& j) {
  VitConfig c;
  c.patch = j.at("patch").get<std::int64_t>();
  c.width = j.at("width").get<std::int64_t>();
  c.depth = j.at("depth").get<std::int64_t>();
  c.heads = j.at("heads").get<std::int64_t>();
  c.mlp = j.at("mlp").get<std::int64_t>();
  check_config(c);
  return c;
}

void save_checkpoint(const std::string& path, Vit& model, torch::optim::Optimizer* optimizer, nlohmann::json record) {
  record["config"] = config_json(model->config());
  torch::serialize::OutputArchive archive, weights;
  model->save(weights);
  archive.write("model", weights);
  if (optimizer) {
    torch::serialize::OutputArchive state;
    optimizer->save(state);
    archive.write("optimizer", state);
  }
  archive.write("record", c10::IValue(record.dump()));
  archive.write("format", c10::IValue(std::string("levattn-vit checkpoint 1")));
  std::ostringstream bytes;
  archive.save_to(bytes);
  const std::string data = bytes.str();
  io::AtomicFile file(path);
  file.write(data.data(), data.size());
  file.commit();
}

Checkpoint load_checkpoint(const std::string& path) {
  require(std::filesystem::exists(path), "checkpoint " + path + " does not exist");
  const std::string bad = path + " is not a levattn-vit checkpoint";
  Checkpoint out;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    c10::IValue format, record;
    require(
        archive.try_read("format", format) && format.isString() && format.toStringRef() == "levattn-vit checkpoint 1",
        bad);
    require(archive.try_read("record", record) && record.isString(), bad + " (no record)");
    out.record = nlohmann::json::parse(record.toStringRef());
    out.model = Vit(config_from_json(out.record.at("config")));
    torch::serialize::InputArchive weights;
    require(archive.try_read("model", weights), bad + " (no parameters)");
    out.model->load(weights);
    torch::serialize::InputArchive state;
    if (archive.try_read("optimizer", state)) out.optimizer = std::move(state);
  } catch (const c10::Error& e) {
    throw Error(ErrorKind::bad_input, bad + " (" + e.what_without_backtrace() + ")");
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::bad_input, bad + " (record: " + e.what() + ")");
  }
  return out;
}

}  // namespace levattn::vit
