// Subcommands of the bluewhale CLI. Each parses its own options and returns the process exit code;
// errors propagate as bluewhale::Error and are printed by main().
#pragma once

namespace bluewhale::cli {

int cmd_prep(int argc, char** argv);
int cmd_gen(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_predict(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_index(int argc, char** argv);
// `bluewhale gen vectors` (cmd_index.cpp); cmd_gen hands over to it.
int cmd_gen_vectors(int argc, char** argv);
int cmd_tune(int argc, char** argv);

}  // namespace bluewhale::cli
