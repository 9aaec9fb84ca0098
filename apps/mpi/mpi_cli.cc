#include "mpi_cli.h"

#include <mpi.h>

#include <exception>
#include <iostream>
#include <new>
#include <string>

#include "../cli/common.h"
#include "../cli/embed_args.h"
#include "core/error.h"

namespace rwkv_embed::mpi {

int RunShardedEmbed(const cli::EmbedArgs& a);  // sharded_embed.cc

ShardOptions& GetShardOptions() {
  static ShardOptions options;
  return options;
}

SweepOptions& GetSweepOptions() {
  static SweepOptions options;
  return options;
}

void AddMpiOptions(CLI::App& app) {
  CLI::App* embed = app.get_subcommand("embed");
  embed
      ->add_option("--shard-bytes", GetShardOptions().shard_bytes,
                   "MPI: bytes of input per shard, cut at line ends (default: input size / (16 x "
                   "ranks), within 4 KiB .. 4 MiB)")
      ->check(cli::IntegerIn(1, int64_t{1} << 40));
  cli::SetEmbedRunner(&RunShardedEmbed);
  for (const char* command : {"eval", "reproduce", "ablate"}) {
    app.get_subcommand(command)
        ->add_option("--schedule", GetSweepOptions().schedule,
                     "MPI: how the units (eval, reproduce: the baselines, each model with its "
                     "control; ablate: the intact model, each ablation) reach the ranks: dynamic "
                     "(the next unit to the first free rank) | round-robin (unit u on rank u mod "
                     "N)")
        ->capture_default_str()
        ->check(CLI::IsMember({"dynamic", "round-robin"}));
  }
  InstallSweepHook();
}

bool RunsOnEveryRank(const std::string& command) {
  return command == "embed" || command == "eval" || command == "reproduce" || command == "ablate";
}

int RunUnderMpi(const std::string& command, const std::function<int()>& run) {
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int code = 0;
  try {
    if (RunsOnEveryRank(command) || rank == 0) code = run();
  } catch (const std::exception& e) {
    if (size == 1) {
      MPI_Finalize();
      throw;
    }
    const bool oom = dynamic_cast<const std::bad_alloc*>(&e) != nullptr;
    // One write: mpirun forwards each write of each rank as it comes, and pieces written one
    // by one were seen interleaved with another rank's progress line.
    std::cerr << ("rwkv-embed: error (rank " + std::to_string(rank) + " of " +
                  std::to_string(size) + "): " + (oom ? "out of memory" : e.what()) + "\n")
              << std::flush;
    MPI_Abort(MPI_COMM_WORLD, oom ? kOutOfMemoryExit : ExitCodeFor(e));
  }
  MPI_Finalize();
  return code;
}

}  // namespace rwkv_embed::mpi
