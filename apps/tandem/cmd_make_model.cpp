// `tandem make-model`: writes a deterministic test model directory (HF format) from a preset.
#include <cstdio>

#include "model/model_writer.h"
#include "tandem/commands.h"

namespace tandem::app {

void register_make_model(CLI::App& app, int& exit_code) {
  struct Flags {
    std::string preset = "tiny";
    std::string out;
    uint64_t seed = 0;
    std::string rope_scaling;
    float rope_factor = 0.0f;
    std::string tie = "false";
    int num_kv_heads = 0;
    int num_layers = 0;
    std::string dtype = "bfloat16";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("make-model", "Write a deterministic random Llama test model (HF directory)");
  cmd->add_option("--preset", flags->preset, "tiny | small")->capture_default_str();
  cmd->add_option("--out", flags->out, "Output directory")->required();
  cmd->add_option("--seed", flags->seed, "Seed of the random weights")->capture_default_str();
  cmd->add_option("--rope-scaling", flags->rope_scaling, "none | linear | llama3 (default llama3)");
  cmd->add_option("--rope-factor", flags->rope_factor, "RoPE scaling factor (default: linear 2, llama3 8)");
  cmd->add_option("--tie-word-embeddings", flags->tie, "true | false")->capture_default_str();
  cmd->add_option("--num-kv-heads", flags->num_kv_heads, "KV heads (0: preset default)");
  cmd->add_option("--num-layers", flags->num_layers, "Layers (0: preset default)");
  cmd->add_option("--dtype", flags->dtype, "Weight dtype: bfloat16 | float16 | float32")->capture_default_str();
  cmd->callback([flags, &exit_code] {
    ModelWriterOptions o;
    o.rope_scaling = flags->rope_scaling;
    o.rope_scaling_factor = flags->rope_factor;
    if (flags->tie != "true" && flags->tie != "false") {
      std::fprintf(stderr, "error: --tie-word-embeddings must be true or false, got '%s'\n", flags->tie.c_str());
      exit_code = 2;
      return;
    }
    o.tie_word_embeddings = flags->tie == "true";
    o.num_kv_heads = flags->num_kv_heads;
    o.num_layers = flags->num_layers;
    auto dt = parse_dtype(flags->dtype);
    if (!dt.ok()) {
      std::fprintf(stderr, "error: --dtype: %s\n", dt.status().message().c_str());
      exit_code = 2;
      return;
    }
    o.dtype = *dt;
    Status st = write_preset_model(flags->preset, flags->out, flags->seed, o);
    if (!st.ok()) {
      std::fprintf(stderr, "error: %s\n", st.to_string().c_str());
      exit_code = 1;
      return;
    }
    std::printf("wrote %s model to %s\n", flags->preset.c_str(), flags->out.c_str());
  });
}

}  // namespace tandem::app
