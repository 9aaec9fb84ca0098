#include "mpi_cli.h"

#include <mpi.h>

#include <exception>
#include <iostream>
#include <new>

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
  for (const char* command : {"eval", "reproduce"}) {
    app.get_subcommand(command)
        ->add_option("--schedule", GetSweepOptions().schedule,
                     "MPI: how the method groups (baselines; each model with its control) reach "
                     "the ranks: dynamic (the next group to the first free rank) | round-robin "
                     "(group g on rank g mod N)")
        ->capture_default_str()
        ->check(CLI::IsMember({"dynamic", "round-robin"}));
  }
  InstallSweepHook();
}

bool RunsOnEveryRank(const std::string& command) {
  return command == "embed" || command == "eval" || command == "reproduce";
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
    std::cerr << "rwkv-embed: error (rank " << rank << " of " << size
              << "): " << (oom ? "out of memory" : e.what()) << std::endl;
    MPI_Abort(MPI_COMM_WORLD, oom ? kOutOfMemoryExit : ExitCodeFor(e));
  }
  MPI_Finalize();
  return code;
}

}  // namespace rwkv_embed::mpi
