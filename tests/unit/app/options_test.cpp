#include "switchyard/app/options.hpp"

#include <gtest/gtest.h>

using namespace switchyard::app;

TEST(options, litellm_style_command_line) {
  auto r = parse_options({"--config", "c.yaml", "--port", "4001", "--host", "127.0.0.1"});
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.opts.config_path, "c.yaml");
  EXPECT_EQ(r.opts.port, 4001);
  EXPECT_EQ(r.opts.host, "127.0.0.1");
}

TEST(options, equals_form_and_flags) {
  auto r = parse_options({"--config=c.yaml", "--port=0", "--detailed_debug"});
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.opts.port, 0);
  EXPECT_TRUE(r.opts.debug);
}

TEST(options, check_config_and_version) {
  auto r = parse_options({"--check-config", "x.yaml"});
  EXPECT_TRUE(r.opts.check_only);
  EXPECT_EQ(r.opts.config_path, "x.yaml");
  EXPECT_TRUE(parse_options({"--version"}).opts.show_version);
  EXPECT_TRUE(parse_options({"--help"}).error.empty());
}

TEST(options, errors) {
  EXPECT_FALSE(parse_options({}).error.empty());
  EXPECT_FALSE(parse_options({"--config"}).error.empty());
  EXPECT_FALSE(parse_options({"--config", "c", "--port", "70000"}).error.empty());
  EXPECT_FALSE(parse_options({"--config", "c", "--port", "abc"}).error.empty());
  EXPECT_FALSE(parse_options({"--config", "c", "--bogus"}).error.empty());
}

TEST(options, tls_files) {
  auto r = parse_options({"--config", "c.yaml", "--ssl_certfile_path", "cert.pem", "--ssl_keyfile_path=key.pem"});
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.opts.ssl_certfile_path, "cert.pem");
  EXPECT_EQ(r.opts.ssl_keyfile_path, "key.pem");
  EXPECT_FALSE(parse_options({"--config", "c", "--ssl_keyfile_path"}).error.empty());
  EXPECT_FALSE(parse_options({"--config", "c", "--ssl_certfile_path="}).error.empty());
}

TEST(options, log_level_from_litellm_log) {
  EXPECT_EQ(choose_log_level(false, nullptr).level, "info");
  EXPECT_EQ(choose_log_level(false, "").level, "info");
  EXPECT_EQ(choose_log_level(false, "DEBUG").level, "debug");
  EXPECT_EQ(choose_log_level(false, "warning").level, "warning");
  EXPECT_EQ(choose_log_level(false, "Warn").level, "warning");
  EXPECT_EQ(choose_log_level(false, "ERROR").level, "error");
  EXPECT_EQ(choose_log_level(false, "CRITICAL").level, "critical");
  EXPECT_TRUE(choose_log_level(false, "ERROR").warning.empty());
  // --debug wins over the variable.
  EXPECT_EQ(choose_log_level(true, "ERROR").level, "debug");
}

TEST(options, a_litellm_log_that_is_not_a_level_logs_at_info_and_says_so) {
  const auto c = choose_log_level(false, "verbose");
  EXPECT_EQ(c.level, "info");
  EXPECT_NE(c.warning.find("LITELLM_LOG=verbose is not a log level"), std::string::npos) << c.warning;
  const std::string long_value(500, 'x');
  EXPECT_LT(choose_log_level(false, long_value.c_str()).warning.size(), 200u);
}

TEST(options, grace_period_is_a_finite_number_of_seconds_in_range) {
  for (const char* ok : {"0", "30", "2.5", "86400"}) {
    auto r = parse_options({"--config", "c", "--grace-period", ok});
    EXPECT_TRUE(r.error.empty()) << ok << ": " << r.error;
  }
  EXPECT_DOUBLE_EQ(parse_options({"--config", "c", "--grace-period", "2.5"}).opts.grace_period_s, 2.5);
  EXPECT_DOUBLE_EQ(parse_options({"--config", "c", "--grace-period=0"}).opts.grace_period_s, 0);
  // std::stod read "5abc" as 5 and let the others through.
  for (const char* bad : {"5abc", "-5", "nan", "inf", "-inf", "1e400", "86401", "", " 5", "5 ", "0x10", "five"}) {
    auto r = parse_options({"--config", "c", "--grace-period", bad});
    EXPECT_EQ(r.error, std::string("invalid --grace-period '") + bad + "' (seconds, 0 to 86400)") << bad;
  }
}

TEST(options, a_host_name_is_resolved_to_the_address_bound) {
  std::vector<std::string> asked;
  const host_resolver fake = [&asked](const std::string& host) -> host_resolution {
    asked.push_back(host);
    if (host == "gateway.internal") {
      return {"10.1.2.3", {}};
    }
    return {{}, "Name or service not known"};
  };
  auto r = parse_options({"--config", "c", "--host", "gateway.internal"}, fake);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.opts.host, "10.1.2.3");
  // Addresses are used as written, never looked up.
  for (const char* literal : {"127.0.0.1", "0.0.0.0", "::", "::1", "fe80::1"}) {
    auto l = parse_options({"--config", "c", "--host", literal}, fake);
    ASSERT_TRUE(l.error.empty()) << literal << ": " << l.error;
    EXPECT_EQ(l.opts.host, literal);
  }
  EXPECT_EQ(asked, std::vector<std::string>{"gateway.internal"});
  auto bad = parse_options({"--config", "c", "--host", "nowhere.invalid"}, fake);
  EXPECT_EQ(bad.error,
            "invalid --host 'nowhere.invalid': not an IP address, and the name does not resolve (Name or service not known)");
  EXPECT_EQ(parse_options({"--config", "c", "--host", ""}, fake).error, "--host needs an address or a host name");
  // --check-config binds nothing: no lookup.
  EXPECT_TRUE(parse_options({"--check-config", "c", "--host", "nowhere.invalid"}, fake).error.empty());
}

TEST(options, localhost_resolves_with_the_system_resolver) {
  // /etc/hosts has it on any machine the tests run on.
  const auto got = resolve_host_blocking("localhost");
  ASSERT_TRUE(got.error.empty()) << got.error;
  EXPECT_TRUE(got.address == "127.0.0.1" || got.address == "::1") << got.address;
}
