#include "bluewhale/tune/space.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace bluewhale;
using namespace bluewhale::tune;

namespace {

SearchSpace parse_space(const std::string& yaml) {
  return SearchSpace::parse(ConfigNode::parse_yaml(yaml, "t.yaml").at("params"));
}

std::string error_of(const std::string& yaml) {
  try {
    parse_space(yaml);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

const char* kSpace = R"(
params:
  - {name: model.lr, type: float, low: 0.001, high: 1, log: true}
  - {name: model.dim, type: int, low: 4, high: 64, log: true}
  - {name: train.batch_size, type: int, low: 32, high: 40}
  - {name: model.optimizer, type: categorical, choices: [sgd, adagrad, adam]}
  - {name: model.weight_decay, type: float, low: 0, high: 0.1, when: {model.optimizer: [adagrad, adam]}}
)";

}  // namespace

TEST(SearchSpace, ParsesTypesAndEncodedLayout) {
  SearchSpace s = parse_space(kSpace);
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(s.encoded_dim(), 1u + 1 + 1 + 3 + 1);
  EXPECT_EQ(s.offset(3), 3u);
  EXPECT_EQ(s.offset(4), 6u);
  EXPECT_TRUE(s.params()[0].log);
  EXPECT_EQ(s.params()[4].parent, "model.optimizer");
}

TEST(SearchSpace, EncodeDecodeRoundTripsSampledConfigurations) {
  SearchSpace s = parse_space(kSpace);
  Rng rng(7);
  int with_wd = 0;
  for (int i = 0; i < 500; ++i) {
    json p = s.sample(rng);
    json back = s.decode(s.encode(p));
    ASSERT_EQ(back.size(), p.size()) << p.dump();
    EXPECT_EQ(back["model.dim"], p["model.dim"]);
    EXPECT_EQ(back["train.batch_size"], p["train.batch_size"]);
    EXPECT_EQ(back["model.optimizer"], p["model.optimizer"]);
    EXPECT_NEAR(back["model.lr"].get<double>(), p["model.lr"].get<double>(), 1e-12 * p["model.lr"].get<double>());
    const bool active = p["model.optimizer"] != "sgd";
    EXPECT_EQ(p.contains("model.weight_decay"), active) << p.dump();
    with_wd += active;
  }
  EXPECT_GT(with_wd, 250);  // two choices of three activate it
  EXPECT_LT(with_wd, 420);
}

TEST(SearchSpace, IntegersOwnEqualCellsAndLogIsUniformInLog) {
  SearchSpace s(std::vector<ParamSpec>{ParamSpec::integer("n", 1, 4), ParamSpec::real("lr", 1e-4, 1, true)});
  // Integer cells: 1 -> [0, .25), 2 -> [.25, .5), ...
  EXPECT_EQ(s.decode({0.01, 0.5})["n"], 1);
  EXPECT_EQ(s.decode({0.26, 0.5})["n"], 2);
  EXPECT_EQ(s.decode({0.99, 0.5})["n"], 4);
  EXPECT_NEAR(s.encode({{"n", 3}, {"lr", 0.01}})[0], 0.625, 1e-12);
  // lr 0.01 is the log-midpoint of [1e-4, 1].
  EXPECT_NEAR(s.encode({{"n", 3}, {"lr", 0.01}})[1], 0.5, 1e-12);
  EXPECT_NEAR(s.decode({0.5, 0.25})["lr"].get<double>(), 1e-3, 1e-15);
  Rng rng(1);
  int below = 0;
  for (int i = 0; i < 4000; ++i) below += s.sample(rng)["lr"].get<double>() < 0.01;
  EXPECT_NEAR(below / 4000.0, 0.5, 0.03);
}

TEST(SearchSpace, InactiveParametersEncodeToTheSameValue) {
  SearchSpace s = parse_space(kSpace);
  json a = {{"model.lr", 0.1}, {"model.dim", 8}, {"train.batch_size", 33}, {"model.optimizer", "sgd"}};
  std::vector<double> u = s.encode(a);
  EXPECT_EQ(u[6], 0.5);
  EXPECT_EQ(u[3], 1.0);
  EXPECT_EQ(u[4], 0.0);
  // A value given for an inactive parameter is ignored.
  json b = a;
  b["model.weight_decay"] = 0.05;
  EXPECT_EQ(s.encode(b), u);
  EXPECT_EQ(s.project(u), u);
}

TEST(SearchSpace, EncodeRejectsMissingOrOutOfRangeValues) {
  SearchSpace s = parse_space(kSpace);
  json a = {{"model.lr", 0.1}, {"model.dim", 8}, {"train.batch_size", 33}, {"model.optimizer", "adam"}};
  EXPECT_THROW(s.encode(a), ConfigError);  // weight_decay is active and missing
  a["model.weight_decay"] = 0.2;
  try {
    s.encode(a);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'model.weight_decay': 0.2 is outside [0, 0.1]"), std::string::npos) << e.what();
  }
  a["model.weight_decay"] = 0.01;
  a["model.optimizer"] = "lamb";
  EXPECT_THROW(s.encode(a), ConfigError);
}

TEST(SearchSpace, BadSpacesNameTheLineAndTheProblem) {
  EXPECT_NE(error_of("params: []").find("t.yaml:1"), std::string::npos);
  EXPECT_NE(error_of("params: []").find("empty"), std::string::npos);
  std::string e = error_of("params:\n  - {name: a, type: float, low: 1, high: 0.5}\n");
  EXPECT_NE(e.find("t.yaml:2"), std::string::npos) << e;
  EXPECT_NE(e.find("expected low < high"), std::string::npos) << e;
  e = error_of("params:\n  - {name: a, type: float, low: 0, high: 1, log: true}\n");
  EXPECT_NE(e.find("log scale needs low > 0"), std::string::npos) << e;
  e = error_of("params:\n  - {name: a, type: flaot, low: 0, high: 1}\n");
  EXPECT_NE(e.find("did you mean 'float'"), std::string::npos) << e;
  e = error_of("params:\n  - {name: a, type: float, low: 0, hihg: 1}\n");
  EXPECT_NE(e.find("hihg"), std::string::npos) << e;
  e = error_of("params:\n  - {name: a, type: int, low: 0.5, high: 3}\n");
  EXPECT_NE(e.find("whole numbers"), std::string::npos) << e;
  e = error_of("params:\n  - {name: a, type: categorical, choices: [x, x]}\n");
  EXPECT_NE(e.find("distinct"), std::string::npos) << e;
  e = error_of("params:\n  - {name: a, type: float, low: 0, high: 1}\n  - {name: a, type: float, low: 0, high: 1}\n");
  EXPECT_NE(e.find("t.yaml:3"), std::string::npos) << e;
  EXPECT_NE(e.find("declared twice"), std::string::npos) << e;
  e = error_of("params:\n  - {name: b, type: float, low: 0, high: 1, when: {a: [x]}}\n");
  EXPECT_NE(e.find("not a parameter declared before it"), std::string::npos) << e;
  e = error_of(
      "params:\n  - {name: a, type: categorical, choices: [sgd, adam]}\n"
      "  - {name: b, type: float, low: 0, high: 1, when: {a: [adma]}}\n");
  EXPECT_NE(e.find("t.yaml:3"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'adam'"), std::string::npos) << e;
}

TEST(SearchSpace, JsonRoundTrip) {
  SearchSpace s = parse_space(kSpace);
  SearchSpace t = SearchSpace::from_json(s.to_json());
  EXPECT_EQ(t.to_json(), s.to_json());
  EXPECT_EQ(t.encoded_dim(), s.encoded_dim());
}

TEST(Objectives, ParseDirectionsTargetsAndErrors) {
  auto o = parse_objectives(ConfigNode::parse_yaml(
      "o:\n  - {name: auc, direction: max, target: 0.8}\n  - {name: seconds, direction: min}\n", "o.yaml").at("o"));
  ASSERT_EQ(o.size(), 2u);
  EXPECT_TRUE(o[0].has_target);
  EXPECT_EQ(o[0].target, 0.8);
  EXPECT_TRUE(o[0].better(0.7, 0.6));
  EXPECT_TRUE(o[1].better(1.0, 2.0));
  EXPECT_EQ(objectives_from_json(objectives_to_json(o))[1].name, "seconds");
  try {
    parse_objectives(ConfigNode::parse_yaml("o:\n  - {name: auc, direction: up}\n", "o.yaml").at("o"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("o.yaml:2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("expected max or min"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_objectives(ConfigNode::parse_yaml("o: []\n", "o.yaml").at("o")), ConfigError);
}
