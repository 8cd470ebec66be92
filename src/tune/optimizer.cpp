#include "bluewhale/tune/optimizer.h"

#include "bluewhale/core/error.h"

namespace bluewhale::tune {

std::unique_ptr<Optimizer> make_gp_optimizer(const SearchSpace& space, const OptimizerOptions& options);
std::unique_ptr<Optimizer> make_tpe_optimizer(const SearchSpace& space, const OptimizerOptions& options);

namespace {

class RandomOptimizer : public Optimizer {
 public:
  explicit RandomOptimizer(const SearchSpace& space) : space_(space) {}
  std::string name() const override { return "random"; }
  json suggest(const std::vector<Observation>&, const std::vector<json>&, Rng& rng) override {
    return space_.sample(rng);
  }

 private:
  SearchSpace space_;
};

}  // namespace

const std::vector<std::string>& optimizer_names() {
  static const std::vector<std::string> names{"gp", "tpe", "random"};
  return names;
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, const SearchSpace& space,
                                          const OptimizerOptions& options) {
  if (name == "random") return std::make_unique<RandomOptimizer>(space);
  if (name == "gp") return make_gp_optimizer(space, options);
  if (name == "tpe") return make_tpe_optimizer(space, options);
  const std::string near = nearest(name, optimizer_names());
  BW_THROW(ConfigError, "tune: unknown algorithm '", name, "'; expected gp, tpe or random",
           near.empty() ? "" : " (did you mean '" + near + "'?)");
}

}  // namespace bluewhale::tune
