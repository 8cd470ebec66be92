#include "bluewhale/core/config.h"

#include <gtest/gtest.h>

#include <cmath>

namespace bluewhale {
namespace {

struct Params {
  int64_t min_count;
  double rate;
  std::string order;
  bool flag;
  std::vector<std::string> columns;
  std::vector<double> bounds;
  static const ParamTable<Params>& params() {
    static const auto t = ParamTable<Params>("demo")
                              .add("min_count", &Params::min_count, int64_t{1}, "rare threshold").min(1)
                              .add("rate", &Params::rate, 0.5, "a rate").min(0).max(1)
                              .add("order", &Params::order, std::string("frequency"), "id order").choices({"frequency", "first"})
                              .add("flag", &Params::flag, false, "a switch")
                              .add("columns", &Params::columns, std::vector<std::string>{}, "columns")
                              .add("bounds", &Params::bounds, std::vector<double>{}, "boundaries");
    return t;
  }
};

std::string error_of(const std::string& yaml) {
  try {
    Params::params().parse(ConfigNode::parse_yaml(yaml, "r.yaml"));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(ParamTable, DefaultsApplyWhenKeysAreAbsent) {
  Params p = Params::params().parse(ConfigNode::parse_yaml("{}", "r.yaml"));
  EXPECT_EQ(p.min_count, 1);
  EXPECT_DOUBLE_EQ(p.rate, 0.5);
  EXPECT_EQ(p.order, "frequency");
  EXPECT_FALSE(p.flag);
  EXPECT_TRUE(p.columns.empty());
}

TEST(ParamTable, ParsesEveryType) {
  Params p = Params::params().parse(ConfigNode::parse_yaml(
      "min_count: 7\nrate: 0.25\norder: first\nflag: true\ncolumns: [a, b]\nbounds: [1, 2.5]\n", "r.yaml"));
  EXPECT_EQ(p.min_count, 7);
  EXPECT_DOUBLE_EQ(p.rate, 0.25);
  EXPECT_EQ(p.order, "first");
  EXPECT_TRUE(p.flag);
  EXPECT_EQ(p.columns, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p.bounds, (std::vector<double>{1, 2.5}));
  Params q = Params::params().parse(ConfigNode::parse_yaml("columns: a, b ,c", "r.yaml"));
  EXPECT_EQ(q.columns, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(ParamTable, UnknownKeyNamesTheNearestValidKey) {
  std::string e = error_of("min_cont: 3\n");
  EXPECT_NE(e.find("r.yaml:1"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'min_cont'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'min_count'"), std::string::npos) << e;
}

TEST(ParamTable, BoundsTypesAndChoicesAreChecked) {
  EXPECT_NE(error_of("min_count: 0").find(">= 1"), std::string::npos);
  EXPECT_NE(error_of("rate: 1.5").find("<= 1"), std::string::npos);
  EXPECT_NE(error_of("min_count: many").find("expected an integer, got 'many'"), std::string::npos);
  std::string e = error_of("order: frequncy");
  EXPECT_NE(e.find("one of frequency, first"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'frequency'"), std::string::npos) << e;
  EXPECT_NE(error_of("flag: maybe").find("expected true or false"), std::string::npos);
  EXPECT_NE(error_of("rate: [1]").find("expected a value, got a list"), std::string::npos);
}

TEST(ParamTable, ErrorNamesLineAndKeyPath) {
  std::string e = error_of("flag: true\n\nrate: 9\n");
  EXPECT_NE(e.find("r.yaml:3: rate"), std::string::npos) << e;
}

TEST(ParamTable, HelpListsTypeDefaultBoundsAndDescription) {
  std::string h = Params::params().help();
  EXPECT_NE(h.find("min_count (integer, default 1, >= 1): rare threshold"), std::string::npos) << h;
  EXPECT_NE(h.find("order (string, default 'frequency', one of frequency, first)"), std::string::npos) << h;
}

TEST(ConfigNode, YamlSyntaxErrorNamesLine) {
  try {
    ConfigNode::parse_yaml("a: [1, 2\nb: 3\n", "bad.yaml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.yaml:"), std::string::npos) << e.what();
  }
}

TEST(ConfigNode, DuplicateKeysAreErrors) {
  EXPECT_THROW(ConfigNode::parse_yaml("a: 1\na: 2\n", "d.yaml"), ConfigError);
}

TEST(ConfigNode, ToYamlRoundTrips) {
  ConfigNode n = ConfigNode::parse_yaml("a: {b: [1, x y, \"q\\\"z\"], c: null}\nd: 2.5\n", "t.yaml");
  ConfigNode m = ConfigNode::parse_yaml(n.to_yaml(), "t2.yaml");
  EXPECT_EQ(n.to_yaml(), m.to_yaml());
  EXPECT_EQ(m.at("a").at("b").as_list()[2].as_scalar(), "q\"z");
  EXPECT_TRUE(m.at("a").at("c").is_null());
  EXPECT_DOUBLE_EQ(m.at("d").as_double(), 2.5);
}

TEST(Nearest, SuggestsOnlyCloseNames) {
  EXPECT_EQ(nearest("categorfy", {"categorify", "clip", "hash"}), "categorify");
  EXPECT_EQ(nearest("zzzzzzzz", {"categorify", "clip"}), "");
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

}  // namespace
}  // namespace bluewhale
