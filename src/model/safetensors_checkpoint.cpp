// SafetensorsCheckpoint: single-file or sharded (index.json) checkpoints.
#include "model/safetensors_checkpoint.h"

#include <set>

#include <nlohmann/json.hpp>

#include "common/file_util.h"

namespace tandem {

Result<std::unique_ptr<SafetensorsCheckpoint>> SafetensorsCheckpoint::open_dir(const std::filesystem::path& model_dir) {
  auto ck = std::make_unique<SafetensorsCheckpoint>();
  ck->dir_ = model_dir;
  const auto index_path = model_dir / "model.safetensors.index.json";
  const auto single_path = model_dir / "model.safetensors";
  std::error_code ec;
  if (std::filesystem::exists(index_path, ec)) {
    auto text = read_file(index_path);
    if (!text.ok()) return IoErrorError("cannot open {}", index_path.string());
    std::map<std::string, std::string> weight_map;
    try {
      auto j = nlohmann::json::parse(*text);
      auto wm = j.find("weight_map");
      if (wm == j.end() || !wm->is_object()) return InvalidArgumentError("{}: missing object field 'weight_map'", index_path.string());
      for (auto it = wm->begin(); it != wm->end(); ++it) {
        if (!it->is_string()) return InvalidArgumentError("{}: weight_map['{}'] is not a file name", index_path.string(), it.key());
        weight_map[it.key()] = it->get<std::string>();
      }
    } catch (const nlohmann::json::exception& e) {
      return InvalidArgumentError("{}: invalid JSON: {}", index_path.string(), e.what());
    }
    std::map<std::string, const SafetensorsFile*> shard_by_name;
    for (const auto& [tensor, shard] : weight_map) {
      if (shard.find('/') != std::string::npos || shard == "..") {
        return InvalidArgumentError("{}: weight_map['{}'] names a file outside the directory: {}", index_path.string(), tensor, shard);
      }
      if (!shard_by_name.count(shard)) {
        TANDEM_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open(model_dir / shard));
        shard_by_name[shard] = f.get();
        ck->files_.push_back(std::move(f));
      }
      const SafetensorsFile* f = shard_by_name[shard];
      if (!f->find(tensor)) {
        return NotFoundError("{}: tensor '{}' is listed in {} but missing from it", f->path().string(), tensor, index_path.string());
      }
      ck->index_[tensor] = f;
    }
  } else if (std::filesystem::exists(single_path, ec)) {
    TANDEM_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open(single_path));
    for (const auto& [name, t] : f->tensors()) ck->index_[name] = f.get();
    ck->files_.push_back(std::move(f));
  } else {
    return NotFoundError("{}: no model.safetensors or model.safetensors.index.json", model_dir.string());
  }
  return ck;
}

Result<const SafetensorsTensor*> SafetensorsCheckpoint::get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    std::string where = files_.size() == 1 ? files_[0]->path().string() : dir_.string();
    return NotFoundError("{}: missing tensor '{}'", where, name);
  }
  return it->second->find(name);
}

std::string SafetensorsCheckpoint::file_of(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? "" : it->second->path().string();
}

bool SafetensorsCheckpoint::contains(const std::string& name) const { return index_.count(name) > 0; }

}  // namespace tandem
