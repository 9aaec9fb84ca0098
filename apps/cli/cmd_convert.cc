// rwkv-embed convert: copies a checkpoint (.pth, pytorch_model.bin, safetensors, sharded or not)
// to one safetensors file with the same tensor names, dtypes and bytes.
#include <iostream>
#include <memory>
#include <string>

#include "commands.h"
#include "io/checkpoint.h"

namespace rwkv_embed::cli {

Command RegisterConvert(CLI::App& app) {
  struct Args {
    std::string in, to = "safetensors", out;
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand(
      "convert", "Copy a checkpoint (.pth, pytorch_model.bin, safetensors) to a safetensors file");
  sub->add_option("--in", a->in, "checkpoint file or model folder")->required();
  sub->add_option("--to", a->to, "output format")
      ->check(CLI::IsMember({"safetensors"}))
      ->capture_default_str();
  sub->add_option("--out", a->out, "output file (written atomically via OUT.partial)")->required();
  return {sub, [a] {
            const CheckpointLocation source = LocateCheckpoint(a->in);
            const TensorStore store = OpenCheckpoint(source.path);
            WriteSafetensorsCopy(store, source, a->out, {{"format", "pt"}});
            std::cout << "wrote " << store.Names().size() << " tensors (" << store.TotalBytes()
                      << " bytes) from " << store.Describe() << " to " << a->out << "\n";
            return 0;
          }};
}

}  // namespace rwkv_embed::cli
