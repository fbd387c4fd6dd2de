// SafetensorsCheckpoint: all weights of a model directory, from model.safetensors or from the shards
// listed in model.safetensors.index.json ("weight_map": tensor name -> shard file).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/safetensors_file.h"

namespace tandem {

class SafetensorsCheckpoint {
 public:
  static Result<std::unique_ptr<SafetensorsCheckpoint>> open_dir(const std::filesystem::path& model_dir);

  // The tensor and the file holding it; NotFound names the directory and the tensor.
  Result<const SafetensorsTensor*> get(const std::string& name) const;
  // Which file a tensor lives in ("" when absent), for error messages.
  std::string file_of(const std::string& name) const;
  bool contains(const std::string& name) const;
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> index_;  // tensor name -> file
};

}  // namespace tandem
