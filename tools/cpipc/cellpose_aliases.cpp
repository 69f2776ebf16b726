#include "cellpose_aliases.hpp"

#include "cli_help.hpp"

namespace cpipc::cli {

void add_cellpose_flags(CLI::App& cmd, CellposeFlags& f, std::vector<std::string>& images) {
  const auto group = [](CLI::Option* o) { return o->group(kCellposeGroup); };
  CLI::Option* chan = group(cmd.add_option("--chan", f.chan, "Cellpose: channel to segment (--channels SEG,0)"));
  CLI::Option* chan2 = group(cmd.add_option("--chan2", f.chan2, "Cellpose: nuclear channel (--channels 0,NUC)"));
  for (CLI::Option* o : {chan, chan2}) o->check(CLI::Range(0, 64))->excludes(cmd.get_option("--channels"));
  CLI::Option* gpu = group(cmd.add_flag("--use_gpu", f.use_gpu, "Cellpose: --device cuda"));
  gpu->excludes(cmd.get_option("--device"));
  group(cmd.add_option("--gpu_device", f.gpu_device, "Cellpose: with --use_gpu, --device cuda:N"))
      ->check(CLI::Range(0, 64));
  group(cmd.add_flag("--save_txt", f.save_txt, "Cellpose: outlines text (cpipc writes it unless --no-outlines)"))
      ->excludes(cmd.get_option("--no-outlines"));
  group(cmd.add_flag("--verbose", f.verbose, "Cellpose: log progress (cpipc reports each image anyway)"));
  group(cmd.add_option_function<std::string>(
      "--image_path", [&images](const std::string& path) { images.push_back(path); },
      "Cellpose: one image to segment (as a positional IMAGE)"));
}

void apply_cellpose_flags(const CellposeFlags& f, std::string& channels, std::string& device) {
  if (f.chan || f.chan2) channels = std::to_string(f.chan.value_or(0)) + "," + std::to_string(f.chan2.value_or(0));
  // Cellpose ignores --gpu_device without --use_gpu, and so does cpipc.
  if (f.use_gpu) device = f.gpu_device ? "cuda:" + std::to_string(*f.gpu_device) : "cuda";
}

}  // namespace cpipc::cli
