// config/: LiteLLM config.yaml -> typed structs. Data files: tests/unit/config/data/.
#include "switchyard/config/config.hpp"
#include "switchyard/core/ids.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>

namespace cfg = switchyard::config;
namespace fs = std::filesystem;

namespace {

const std::string data_dir = SY_CONFIG_TEST_DATA;
const std::string shipped_dir = SY_SHIPPED_CONFIG_DIR;

std::string data(const std::string& rel) { return data_dir + "/" + rel; }

cfg::env_lookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) {
      return std::nullopt;
    }
    return it->second;
  };
}

// Loads without touching the process environment.
std::shared_ptr<const cfg::config> load(const std::string& path, std::map<std::string, std::string> vars = {}) {
  cfg::load_options options;
  options.env = env_of(std::move(vars));
  options.export_environment = false;
  return cfg::load_config_blocking(path, options);
}

cfg::config_error load_error(const std::string& path, std::map<std::string, std::string> vars = {}) {
  try {
    (void)load(path, std::move(vars));
  } catch (const cfg::config_error& e) {
    return e;
  }
  ADD_FAILURE() << path << ": expected a config_error";
  return cfg::config_error("", 0, "", "");
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    out += s + "\n";
  }
  return out;
}

// Writes small YAML files into a fresh directory per test.
class config_files : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sy_config_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }

  fs::path dir_;
};

const std::map<std::string, std::string> good_env{
    {"SY_TEST_OPENAI_KEY", "sk-openai-secret"},
    {"SY_TEST_HEADER_SECRET", "header-secret"},
    {"SY_TEST_AZURE_KEY", "azure-secret"},
    {"SY_TEST_REDIS_HOST", "redis.internal"},
    {"SY_TEST_REDIS_PASSWORD", "redis-secret"},
    {"SY_TEST_ANTHROPIC_KEY", "sk-ant-secret"},
    {"LITELLM_MASTER_KEY", "sk-master"},
    {"SWITCHYARD_MASTER_KEY", "sk-not-used"},
    {"DATABASE_URL", "postgresql://sy:pw@db:5432/switchyard"},
    {"REDIS_HOST", "env-redis-not-used"},
};

// ---- the good file, field by field ------------------------------------------------------

TEST(config_good, loads_every_section_field_by_field) {
  const auto c = load(data("good/main.yaml"), good_env);
  EXPECT_TRUE(c->warnings.empty()) << join(c->warnings);
  EXPECT_EQ(c->path, data("good/main.yaml"));
  EXPECT_EQ(c->files, (std::vector<std::string>{data("good/main.yaml"), data("good/models_included.yaml"),
                                                data("good/settings/overrides.yaml"),
                                                data("good/settings/more/deeper.yaml")}));

  // environment_variables: resolved and visible to os.environ/ (SY_TEST_ORG, SY_TEST_AZURE_BASE).
  EXPECT_EQ(c->environment_variables.at("SY_TEST_ORG"), "org-from-env-section");
  EXPECT_EQ(c->environment_variables.at("SY_TEST_AZURE_BASE"), "https://example-resource.openai.azure.com");

  // model_list: main.yaml's own entries, then models_included.yaml's, then overrides.yaml's
  // (which come from its own include, more/deeper.yaml).
  ASSERT_EQ(c->model_list.size(), 10u);
  std::vector<std::string> names;
  for (const auto& d : c->model_list) {
    names.push_back(d.model_name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"gpt-4o", "llama", "gpt-4o", "demo", "claude", "local-ollama", "vllm",
                                             "plain", "gen", "deep"}));
  EXPECT_EQ(c->model_names(), (std::vector<std::string>{"gpt-4o", "llama", "demo", "claude", "local-ollama", "vllm",
                                                        "plain", "gen", "deep"}));

  const auto& g = c->model_list[0];
  EXPECT_EQ(g.id, "gpt-4o-primary");
  EXPECT_EQ(g.model, "openai/gpt-4o");
  EXPECT_EQ(g.provider->name, "openai");
  EXPECT_EQ(g.upstream_model, "gpt-4o");
  EXPECT_EQ(g.api_base, "");
  EXPECT_EQ(g.api_key, "sk-openai-secret");
  EXPECT_EQ(g.organization, "org-from-env-section");
  EXPECT_EQ(g.api_version, "");
  EXPECT_EQ(g.timeout, 30.0);
  EXPECT_EQ(g.stream_timeout, 15.0);  // "15": a number given as a string is accepted
  EXPECT_EQ(g.rpm, 600.0);
  EXPECT_EQ(g.tpm, 100000.0);
  EXPECT_EQ(g.weight, 2.0);
  EXPECT_EQ(g.order, 1);
  EXPECT_EQ(g.max_parallel_requests, 8);
  EXPECT_EQ(g.cooldown_time, 0.0);
  EXPECT_FALSE(g.mock_response.has_value());
  EXPECT_EQ(g.extra_headers, (std::map<std::string, std::string>{{"X-Team", "research"}, {"X-Secret", "header-secret"}}));
  EXPECT_EQ(g.litellm_params["api_key"], "sk-openai-secret");  // resolved
  EXPECT_EQ(g.litellm_params["temperature"], 0.2);
  EXPECT_EQ(g.litellm_params["stream_timeout"], "15");  // raw keeps the YAML type
  EXPECT_EQ(g.model_info["id"], "gpt-4o-primary");
  EXPECT_EQ(g.model_info["max_input_tokens"], 128000);
  EXPECT_EQ(g.model_info["custom_tag"], "anything");
  EXPECT_EQ(g.origin, data("good/main.yaml") + ":11");

  const auto& llama = c->model_list[1];
  EXPECT_EQ(llama.provider->name, "openai");
  EXPECT_EQ(llama.upstream_model, "meta-llama/Llama-3.1-8B-Instruct");  // everything after the first slash
  EXPECT_EQ(llama.api_base, "http://127.0.0.1:8080/v1");
  EXPECT_EQ(llama.api_key, "none");
  EXPECT_FALSE(llama.timeout.has_value());
  EXPECT_FALSE(llama.rpm.has_value());
  EXPECT_FALSE(llama.order.has_value());
  // No model_info.id: sha256 of model_name + "\n" + litellm_params as written (sorted-key JSON).
  const nlohmann::json llama_params = {
      {"model", "openai/meta-llama/Llama-3.1-8B-Instruct"}, {"api_base", "http://127.0.0.1:8080/v1"}, {"api_key", "none"}};
  EXPECT_EQ(llama.id, switchyard::core::sha256_hex("llama\n" + llama_params.dump()));
  EXPECT_EQ(llama.model_info, nlohmann::json::object());

  const auto& az = c->model_list[2];
  EXPECT_EQ(az.provider->name, "azure");
  EXPECT_EQ(az.upstream_model, "gpt4o-eastus");
  EXPECT_EQ(az.api_base, "https://example-resource.openai.azure.com");  // from environment_variables
  EXPECT_EQ(az.api_key, "azure-secret");
  EXPECT_EQ(az.api_version, "2024-06-01");
  EXPECT_EQ(az.id.size(), 64u);

  const auto& demo = c->model_list[3];
  EXPECT_EQ(demo.mock_response, "Hello!");
  EXPECT_EQ(demo.upstream_model, "demo");

  EXPECT_EQ(c->model_list[4].provider->name, "anthropic");
  EXPECT_EQ(c->model_list[4].upstream_model, "claude-3-5-sonnet-20240620");
  EXPECT_EQ(c->model_list[4].api_key, "sk-ant-secret");
  EXPECT_EQ(c->model_list[4].origin, data("good/models_included.yaml") + ":2");
  EXPECT_EQ(c->model_list[5].provider->name, "ollama_chat");
  EXPECT_EQ(c->model_list[5].upstream_model, "llama3.1");
  EXPECT_EQ(c->model_list[6].provider->name, "hosted_vllm");
  EXPECT_EQ(c->model_list[6].upstream_model, "Qwen/Qwen2.5-7B");
  EXPECT_EQ(c->model_list[7].provider->name, "openai");  // no prefix
  EXPECT_EQ(c->model_list[7].upstream_model, "gpt-4o-mini");
  EXPECT_EQ(c->model_list[8].provider->name, "ollama");
  EXPECT_EQ(c->model_list[8].upstream_model, "mistral");
  EXPECT_EQ(c->model_list[9].rpm, 10.0);
  EXPECT_EQ(c->model_list[9].origin, data("good/settings/more/deeper.yaml") + ":2");

  // router_settings: main.yaml's keys win over the include's; cooldown_time comes from it.
  const auto& r = c->router;
  EXPECT_EQ(r.routing_strategy, "least-busy");
  EXPECT_EQ(r.num_retries, 3);
  EXPECT_EQ(r.timeout, 45.5);
  EXPECT_FALSE(r.stream_timeout.has_value());
  EXPECT_EQ(r.cooldown_time, 11.0);
  EXPECT_EQ(r.allowed_fails, 2);
  EXPECT_EQ(r.redis_host, "redis.internal");
  EXPECT_EQ(r.redis_port, 6380);
  EXPECT_EQ(r.redis_password, "redis-secret");
  EXPECT_EQ(r.redis_url, "");
  EXPECT_EQ(r.model_group_alias["gpt4"], "gpt-4o");
  EXPECT_EQ(r.model_group_alias["hidden-alias"]["hidden"], true);
  EXPECT_EQ(r.raw["fallbacks"], nlohmann::json::parse(R"([{"gpt-4o": ["llama"]}])"));
  EXPECT_EQ(r.raw["redis_password"], "redis-secret");

  // litellm_settings
  const auto& l = c->litellm;
  EXPECT_TRUE(l.drop_params);  // "true" (a string) is accepted
  EXPECT_TRUE(l.json_logs);    // YAML 1.1 `yes`
  EXPECT_EQ(l.num_retries, 2);  // main.yaml wins over models_included.yaml's 5
  EXPECT_EQ(l.request_timeout, 600.0);
  EXPECT_TRUE(l.cache);
  EXPECT_EQ(l.cache_params_.type, "redis");
  EXPECT_EQ(l.cache_params_.host, "cache-host");
  EXPECT_EQ(l.cache_params_.port, 6390);
  EXPECT_EQ(l.cache_params_.namespace_, "sy");
  EXPECT_EQ(l.cache_params_.ttl, 120.0);
  EXPECT_EQ(l.raw["set_verbose"], false);  // from the include

  // general_settings, with the env fallbacks
  const auto& gs = c->general;
  EXPECT_EQ(gs.master_key, "sk-master");  // LITELLM_MASTER_KEY before SWITCHYARD_MASTER_KEY
  EXPECT_EQ(gs.database_url, "postgresql://sy:pw@db:5432/switchyard");
  EXPECT_EQ(gs.max_request_size_mb, 8.0);
  EXPECT_EQ(gs.max_response_size_mb, 2.5);
  EXPECT_TRUE(gs.allow_requests_on_db_unavailable);
  EXPECT_EQ(gs.database_connection_pool_limit, 20);
  EXPECT_EQ(gs.raw["disable_spend_logs"], true);  // from settings/overrides.yaml
  EXPECT_TRUE(gs.disable_spend_logs);
  EXPECT_FALSE(gs.store_prompts_in_spend_logs) << "off unless set";
  EXPECT_EQ(gs.raw["store_model_in_db"], false);

  // Redis: router_settings wins over cache_params and REDIS_HOST.
  EXPECT_EQ(c->redis.host, "redis.internal");
  EXPECT_EQ(c->redis.port, 6380);
  EXPECT_EQ(c->redis.password, "redis-secret");
  EXPECT_EQ(c->redis.db, 0);
  EXPECT_FALSE(c->redis.tls);
  EXPECT_EQ(c->redis.source, "router_settings");
}

TEST(config_good, generated_ids_do_not_depend_on_secret_values) {
  auto env = good_env;
  const auto a = load(data("good/main.yaml"), env);
  env["SY_TEST_AZURE_KEY"] = "rotated-secret";
  const auto b = load(data("good/main.yaml"), env);
  EXPECT_EQ(a->model_list[2].api_key, "azure-secret");
  EXPECT_EQ(b->model_list[2].api_key, "rotated-secret");
  EXPECT_EQ(a->model_list[2].id, b->model_list[2].id);
  EXPECT_NE(a->model_list[2].id, a->model_list[1].id);
}

TEST(config_good, budgets) {
  const auto c = load(data("good/budgets.yaml"));
  EXPECT_EQ(c->litellm.max_budget, 100.0);
  EXPECT_EQ(c->litellm.budget_duration, "30d");
  EXPECT_EQ(c->litellm.max_end_user_budget, 2.5);
  EXPECT_EQ(c->litellm.budget_tz.name(), "Asia/Kolkata");
  const auto d = load(data("good/main.yaml"), good_env);
  EXPECT_FALSE(d->litellm.max_budget);
  EXPECT_EQ(d->litellm.budget_tz.name(), "UTC");
}

// ---- bad files: exact file, line and key --------------------------------------------------

struct bad_case {
  const char* file;        // loaded, relative to data/bad
  const char* error_file;  // where the error is, relative to data/bad
  int line;
  const char* key;
  const char* message;     // a substring of detail()
};

class config_bad : public ::testing::TestWithParam<bad_case> {};

TEST_P(config_bad, reports_file_line_and_key) {
  const auto& p = GetParam();
  const auto e = load_error(data(std::string("bad/") + p.file), {{"SOME_VAR", "x"}});
  const std::string expected_file = data(std::string("bad/") + p.error_file);
  EXPECT_EQ(e.file(), expected_file);
  EXPECT_EQ(e.line(), p.line) << e.what();
  EXPECT_EQ(e.key(), p.key) << e.what();
  EXPECT_NE(e.detail().find(p.message), std::string::npos) << e.what();
  EXPECT_EQ(std::string(e.what()),
            expected_file + ":" + std::to_string(p.line) + ": " + p.key + ": " + e.detail());
}

INSTANTIATE_TEST_SUITE_P(
    files, config_bad,
    ::testing::Values(
        bad_case{"syntax.yaml", "syntax.yaml", 5, "yaml", "syntax error: illegal map value (column 22)"},
        bad_case{"stray_comma.yaml", "stray_comma.yaml", 2, "yaml", "syntax error: unexpected ',' (column 1)"},
        bad_case{"two_documents.yaml", "two_documents.yaml", 2, "yaml", "a second YAML document starts here"},
        bad_case{"tab_indent.yaml", "tab_indent.yaml", 3, "yaml", "syntax error: illegal tab when looking for indentation"},
        bad_case{"model_list_not_list.yaml", "model_list_not_list.yaml", 3, "model_list",
                 "expected a list, got a mapping"},
        bad_case{"litellm_params_not_map.yaml", "litellm_params_not_map.yaml", 3, "model_list[0].litellm_params",
                 "expected a mapping, got the string \"openai/gpt-4o\""},
        bad_case{"rpm_string.yaml", "rpm_string.yaml", 5, "model_list[0].litellm_params.rpm",
                 "expected a number, got the string \"abc\""},
        bad_case{"timeout_list.yaml", "timeout_list.yaml", 8, "model_list[1].litellm_params.timeout",
                 "expected a number, got a list"},
        bad_case{"max_request_size.yaml", "max_request_size.yaml", 3, "general_settings.max_request_size_mb",
                 "expected a number, got the string \"big\""},
        bad_case{"max_budget_inf.yaml", "max_budget_inf.yaml", 3, "litellm_settings.max_budget",
                 "expected a number, got the non-finite number .inf (only finite numbers are accepted)"},
        bad_case{"budget_duration.yaml", "budget_duration.yaml", 4, "litellm_settings.budget_duration",
                 "expected a duration such as"},
        bad_case{"timezone.yaml", "timezone.yaml", 3, "litellm_settings.timezone", "unknown time zone"},
        bad_case{"missing_model_name.yaml", "missing_model_name.yaml", 5, "model_list[1].model_name",
                 "missing model_name"},
        bad_case{"missing_model.yaml", "missing_model.yaml", 3, "model_list[0].litellm_params.model",
                 "missing litellm_params.model"},
        bad_case{"unknown_prefix.yaml", "unknown_prefix.yaml", 4, "model_list[0].litellm_params.model",
                 "unknown provider prefix 'foo/' in model 'foo/bar'; supported: openai/, hosted_vllm/, azure/, "
                 "anthropic/, ollama/, ollama_chat/"},
        bad_case{"sagemaker_prefix.yaml", "sagemaker_prefix.yaml", 6, "model_list[1].litellm_params.model",
                 "unknown provider prefix 'sagemaker/' in model 'sagemaker/jumpstart-llama'"},
        bad_case{"unset_env.yaml", "unset_env.yaml", 5, "model_list[0].litellm_params.api_key",
                 "environment variable SY_TEST_DEFINITELY_UNSET is not set"},
        bad_case{"unset_env_deep.yaml", "unset_env_deep.yaml", 4,
                 "router_settings.default_litellm_params.extra_body.tokens[1]",
                 "environment variable SY_TEST_DEFINITELY_UNSET is not set"},
        bad_case{"unset_in_env_section.yaml", "unset_in_env_section.yaml", 3, "environment_variables.DERIVED",
                 "environment variable SY_TEST_DEFINITELY_UNSET is not set"},
        bad_case{"missing_include.yaml", "missing_include.yaml", 4, "include[1]",
                 "cannot include 'does_not_exist.yaml'"},
        bad_case{"include_cycle_a.yaml", "include_cycle_b.yaml", 2, "include[0]", "include cycle: "},
        bad_case{"error_in_include.yaml", "sub/broken_rpm.yaml", 5, "model_list[0].litellm_params.rpm",
                 "expected a number, got the string \"lots\""},
        bad_case{"syntax_in_include.yaml", "sub/syntax.yaml", 3, "yaml", "syntax error: "},
        bad_case{"bool_wrong.yaml", "bool_wrong.yaml", 2, "litellm_settings.drop_params",
                 "expected a boolean (true/false), got the string \"maybe\""},
        bad_case{"spend_flag.yaml", "spend_flag.yaml", 2, "general_settings.store_prompts_in_spend_logs",
                 "expected a boolean (true/false), got the string \"sometimes\""},
        bad_case{"cache_namespace_long.yaml", "cache_namespace_long.yaml", 5, "litellm_settings.cache_params.namespace",
                 "must be at most 512 bytes (it is echoed in a response header)"},
        bad_case{"redis_port_range.yaml", "redis_port_range.yaml", 3, "router_settings.redis_port",
                 "must be between 1 and 65535"},
        bad_case{"top_level_list.yaml", "top_level_list.yaml", 1, "config", "the top level must be a mapping"},
        bad_case{"duplicate_id.yaml", "duplicate_id.yaml", 8, "model_list[1].model_info.id",
                 "duplicate deployment id 'same'"},
        bad_case{"redis_url.yaml", "redis_url.yaml", 2, "router_settings.redis_url",
                 "must start with redis:// or rediss://"},
        bad_case{"env_var_list.yaml", "env_var_list.yaml", 2, "environment_variables.FOO",
                 "expected a string, got a list"},
        bad_case{"model_info_type.yaml", "model_info_type.yaml", 5, "model_list[0].model_info.max_input_tokens",
                 "expected an integer, got the string \"many\""},
        bad_case{"order_fraction.yaml", "order_fraction.yaml", 5, "model_list[0].litellm_params.order",
                 "expected an integer, got the number 1.5"},
        bad_case{"router_not_map.yaml", "router_not_map.yaml", 2, "router_settings",
                 "expected a mapping, got a list"}));

TEST(config_bad_misc, include_cycle_names_the_chain) {
  const auto e = load_error(data("bad/include_cycle_a.yaml"));
  EXPECT_EQ(e.detail(), "include cycle: " + data("bad/include_cycle_a.yaml") + " -> " +
                            data("bad/include_cycle_b.yaml") + " -> " + data("bad/include_cycle_a.yaml"));
}

TEST(config_bad_misc, missing_file_has_no_line) {
  const auto e = load_error(data("bad/no_such_file.yaml"));
  EXPECT_EQ(e.file(), data("bad/no_such_file.yaml"));
  EXPECT_EQ(e.line(), 0);
  EXPECT_EQ(e.key(), "config");
  EXPECT_EQ(std::string(e.what()), data("bad/no_such_file.yaml") + ": config: cannot read file: No such file or directory");
}

TEST(config_bad_misc, a_directory_is_refused_not_read_as_an_empty_config) {
  // An empty config would start the gateway with auth off: a mistyped path must not.
  const auto dir = std::filesystem::temp_directory_path() / ("sy-config-dir-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto e = load_error(dir.string());
  std::filesystem::remove_all(dir);
  EXPECT_EQ(e.file(), dir.string());
  EXPECT_EQ(e.line(), 0);
  EXPECT_EQ(std::string(e.what()), dir.string() + ": config: cannot read file: is a directory, not a file");
}

TEST_F(config_files, an_empty_file_is_refused_naming_it) {
  // LiteLLM refuses these ("Config cannot be None or Empty."); a reload of a truncated file
  // must not wipe every model either.
  const std::vector<std::pair<std::string, std::string>> files{
      {"empty.yaml", ""},
      {"comments.yaml", "# model_list comes later\n\n   # really\n"},
      {"markers.yaml", "---\n...\n"},
      {"tilde.yaml", "~\n"},
  };
  for (const auto& [name, text] : files) {
    const auto path = write(name, text);
    const auto e = load_error(path);
    EXPECT_EQ(e.file(), path);
    EXPECT_EQ(e.line(), 0);
    EXPECT_EQ(e.key(), "config");
    EXPECT_NE(e.detail().find("the file is empty"), std::string::npos) << e.what();
  }
  // An empty mapping is not empty to LiteLLM either: it loads (no models).
  EXPECT_EQ(load(write("braces.yaml", "{}\n"))->model_list.size(), 0u);
}

TEST_F(config_files, an_empty_include_is_refused_naming_it) {
  write("sub/empty.yaml", "# nothing yet\n");
  const auto main = write("main.yaml", "include:\n  - sub/empty.yaml\nmodel_list: []\n");
  const auto e = load_error(main);
  EXPECT_EQ(e.file(), main);
  EXPECT_EQ(e.line(), 2);
  EXPECT_EQ(e.key(), "include[0]");
  EXPECT_NE(e.detail().find("cannot include 'sub/empty.yaml'"), std::string::npos) << e.what();
  EXPECT_NE(e.detail().find("the file is empty"), std::string::npos) << e.what();
}

TEST_F(config_files, an_api_base_the_client_cannot_use_is_refused_at_its_line) {
  const std::vector<std::pair<std::string, std::string>> bad{
      {"not a url", "not an absolute URL (expected http:// or https://)"},
      {"ftp://x", "unsupported scheme 'ftp' (expected http or https)"},
      {"http://[::1", "unterminated IPv6 literal"},
      {"http://127.0.0.1:99999/v1", "port out of range: 99999"},
      {"http://:8080/v1", "missing host"},
  };
  for (const auto& [base, why] : bad) {
    const auto p = write("c.yaml", "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n"
                                   "      api_base: \"" + base + "\"\n");
    const auto e = load_error(p);
    EXPECT_EQ(std::string(e.what()), p + ":5: model_list[0].litellm_params.api_base: not a usable URL: " + why +
                                         " (an api_base is http(s)://host[:port][/path])");
  }
  // base_url is LiteLLM's other name for it.
  const auto b = write("b.yaml", "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, base_url: \"ftp://x\"}\n");
  EXPECT_EQ(load_error(b).key(), "model_list[0].litellm_params.base_url");
  // os.environ/: the resolved value, and the variable named (not its value).
  const auto env = write("e.yaml", "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n"
                                   "      api_base: os.environ/SY_TEST_BASE\n");
  const auto e = load_error(env, {{"SY_TEST_BASE", "gateway.internal:8000/v1"}});
  EXPECT_EQ(std::string(e.what()), env + ":5: model_list[0].litellm_params.api_base: the value of os.environ/SY_TEST_BASE "
                                         "is not a usable URL: not an absolute URL (expected http:// or https://) (an "
                                         "api_base is http(s)://host[:port][/path])");
  EXPECT_EQ(load(env, {{"SY_TEST_BASE", "http://gateway.internal:8000/v1"}})->model_list[0].api_base,
            "http://gateway.internal:8000/v1");
  // What real configs write.
  for (const std::string ok : {"https://r.openai.azure.com/", "http://127.0.0.1:11434", "http://[::1]:8000/v1",
                               "HTTPS://api.example.com/v1?x=1", "http://gpu-box_2:8000"}) {
    const auto p = write("ok.yaml", "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, api_base: \"" +
                                        ok + "\"}\n");
    EXPECT_EQ(load(p)->model_list[0].api_base, ok);
  }
}

TEST(config_bad_misc, error_format) {
  const cfg::config_error e("a.yaml", 12, "model_list[0].litellm_params.rpm", "expected a number");
  EXPECT_STREQ(e.what(), "a.yaml:12: model_list[0].litellm_params.rpm: expected a number");
  EXPECT_EQ(e.detail(), "expected a number");
}

// ---- warnings -------------------------------------------------------------------------------

TEST(config_warnings, one_per_unknown_key_with_file_and_line) {
  const auto c = load(data("warnings/main.yaml"));
  const std::string f = data("warnings/main.yaml");
  const std::string inc = data("warnings/warn_include.yaml");
  const std::vector<std::string> expected{
      f + ":23: mystery_section: unknown top-level key; ignored",
      f + ":10: router_settings.not_a_router_key: unknown key; ignored",
      f + ":9: router_settings.routing_strategy: unknown routing strategy 'fastest-first'; LiteLLM knows "
          "simple-shuffle, least-busy, usage-based-routing, usage-based-routing-v2, latency-based-routing, "
          "cost-based-routing, provider-budget-routing; using simple-shuffle",
      f + ":13: litellm_settings.made_up_setting: unknown key; ignored",
      f + ":16: litellm_settings.cache_params.hostname: unknown key; ignored",
      // model_list is read after the settings (they say how to read the deployments)
      f + ":7: model_list[0].model_inf: unknown key; ignored",
      f + ":6: model_list[0].litellm_params.temprature: unknown key; ignored",
      inc + ":2: general_settings.another_bogus: unknown key; ignored",
      f + ":19: general_settings.bogus: unknown key; ignored",
      f + ":18: general_settings.master_key: the master key does not start with 'sk-' as LiteLLM requires; some "
          "clients and tools expect it",
  };
  EXPECT_EQ(c->warnings, expected) << join(c->warnings);
  EXPECT_EQ(c->general.master_key, "not-sk-prefixed");  // a warning, not an error
}

TEST_F(config_files, master_key_from_env_without_sk_prefix_warns_naming_the_variable) {
  const auto p = write("c.yaml", "model_list: []\n");
  const auto c = load(p, {{"LITELLM_MASTER_KEY", "plain-key"}});
  EXPECT_EQ(c->general.master_key, "plain-key");
  ASSERT_EQ(c->warnings.size(), 1u);
  EXPECT_EQ(c->warnings[0],
            "environment: LITELLM_MASTER_KEY: the master key does not start with 'sk-' as LiteLLM requires; some "
            "clients and tools expect it");
  EXPECT_EQ(c->warnings[0].find("plain-key"), std::string::npos);  // never the secret
}

TEST_F(config_files, duplicate_yaml_key_warns_and_the_later_value_wins) {
  const auto p = write("c.yaml", "litellm_settings:\n  num_retries: 1\n  num_retries: 4\n");
  const auto c = load(p);
  EXPECT_EQ(c->litellm.num_retries, 4);
  ASSERT_EQ(c->warnings.size(), 1u);
  EXPECT_EQ(c->warnings[0], p + ":3: num_retries: duplicate key (also on line 2); the later value is used");
}

TEST_F(config_files, retry_counts_above_the_cap_are_used_as_the_cap_with_a_warning_each) {
  const auto p = write("c.yaml",
                       "litellm_settings:\n  num_retries: 10000\n"
                       "router_settings:\n  num_retries: 50\n"
                       "  retry_policy:\n    RateLimitErrorRetries: 11\n    TimeoutErrorRetries: 10\n"
                       "  model_group_retry_policy:\n    g:\n      TimeoutErrorRetries: 200\n");
  const auto c = load(p);
  ASSERT_TRUE(c);
  std::vector<std::string> want = {
      p + ":2: litellm_settings.num_retries: 10000 retries asked; at most 10 are made (each retry is one more "
          "provider call)",
      p + ":4: router_settings.num_retries: 50 retries asked; at most 10 are made (each retry is one more provider "
          "call)",
      p + ":10: router_settings.model_group_retry_policy.g.TimeoutErrorRetries: 200 retries asked; at most 10 are "
          "made (each retry is one more provider call)",
      p + ":6: router_settings.retry_policy.RateLimitErrorRetries: 11 retries asked; at most 10 are made (each "
          "retry is one more provider call)",
  };
  std::vector<std::string> got;
  for (const auto& w : c->warnings) {
    if (w.find("retries asked") != std::string::npos) {
      got.push_back(w);
    }
  }
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
}

TEST_F(config_files, identical_entries_get_distinct_generated_ids_and_a_warning) {
  const auto p = write("c.yaml",
                       "model_list:\n"
                       "  - model_name: a\n"
                       "    litellm_params: {model: openai/a}\n"
                       "  - model_name: a\n"
                       "    litellm_params: {model: openai/a}\n");
  const auto c = load(p);
  ASSERT_EQ(c->model_list.size(), 2u);
  EXPECT_EQ(c->model_list[1].id, c->model_list[0].id + "-2");
  ASSERT_EQ(c->warnings.size(), 1u);
  EXPECT_EQ(c->warnings[0], p + ":4: model_list[1]: same model_name and litellm_params as the entry at " + p +
                                ":2; its generated id gets the suffix -2");
}

// ---- values: YAML 1.1 typing, leniency ------------------------------------------------------

TEST_F(config_files, plain_scalars_are_typed_like_pyyaml_and_quoted_ones_stay_strings) {
  const auto p = write("c.yaml",
                       "model_list:\n"
                       "  - model_name: 123\n"
                       "    litellm_params:\n"
                       "      model: openai/x\n"
                       "      temperature: 0.5\n"
                       "      n: 2\n"
                       "      stop: \"yes\"\n"
                       "      flag_a: yes\n"
                       "      flag_b: Off\n"
                       "      version: 2024-06-01\n"
                       "      hex: 0x10\n"
                       "      exp: 1e5\n"
                       "      big: 1_000\n"
                       "      nothing: ~\n"
                       "      block: |\n"
                       "        two\n"
                       "        lines\n");
  const auto c = load(p);
  const auto& d = c->model_list.at(0);
  EXPECT_EQ(d.model_name, "123");
  const auto& j = d.litellm_params;
  EXPECT_TRUE(j["temperature"].is_number_float());
  EXPECT_EQ(j["n"], 2);
  EXPECT_EQ(j["stop"], "yes");
  EXPECT_EQ(j["flag_a"], true);
  EXPECT_EQ(j["flag_b"], false);
  EXPECT_EQ(j["version"], "2024-06-01");
  EXPECT_EQ(j["hex"], 16);
  EXPECT_EQ(j["exp"], "1e5");  // PyYAML needs a '.' for floats
  EXPECT_EQ(j["big"], 1000);
  EXPECT_TRUE(j["nothing"].is_null());
  EXPECT_EQ(j["block"], "two\nlines\n");
}

TEST_F(config_files, documented_string_keys_are_json_strings_in_raw) {
  const auto p = write("c.yaml",
                       "model_list:\n"
                       "  - model_name: a\n"
                       "    litellm_params:\n"
                       "      model: azure/a\n"
                       "      api_version: 2024\n"
                       "      api_key: 12345\n"
                       "    model_info: {id: 7, max_tokens: 100}\n"
                       "general_settings:\n"
                       "  litellm_key_header_name: 123\n"
                       "  max_request_size_mb: 4\n");
  const auto c = load(p);
  const auto& d = c->model_list.at(0);
  EXPECT_EQ(d.litellm_params["api_version"], "2024");
  EXPECT_EQ(d.litellm_params["api_key"], "12345");
  EXPECT_EQ(d.api_key, "12345");
  EXPECT_EQ(d.id, "7");
  EXPECT_EQ(d.model_info["id"], "7");
  EXPECT_EQ(d.model_info["max_tokens"], 100);  // numbers stay numbers
  EXPECT_EQ(c->general.raw.value("litellm_key_header_name", std::string{}), "123");
  EXPECT_EQ(c->general.raw["max_request_size_mb"], 4);
}

TEST_F(config_files, numbers_and_booleans_given_as_strings_are_accepted) {
  const auto p = write("c.yaml",
                       "model_list:\n"
                       "  - model_name: a\n"
                       "    litellm_params:\n"
                       "      model: openai/a\n"
                       "      rpm: os.environ/SY_RPM\n"
                       "      order: \"2\"\n"
                       "      max_parallel_requests: 3.0\n"
                       "      timeout: \" 2.5 \"\n"
                       "litellm_settings:\n"
                       "  drop_params: \"False\"\n"
                       "  json_logs: os.environ/SY_JSON\n"
                       "  cache: \"1\"\n"
                       "general_settings:\n"
                       "  max_request_size_mb: \"16\"\n");
  const auto c = load(p, {{"SY_RPM", "120"}, {"SY_JSON", "true"}});
  const auto& d = c->model_list.at(0);
  EXPECT_EQ(d.rpm, 120.0);
  EXPECT_EQ(d.order, 2);
  EXPECT_EQ(d.max_parallel_requests, 3);
  EXPECT_EQ(d.timeout, 2.5);
  EXPECT_EQ(d.litellm_params["rpm"], "120");  // raw JSON keeps what the env gave: a string
  EXPECT_FALSE(c->litellm.drop_params);
  EXPECT_TRUE(c->litellm.json_logs);
  EXPECT_TRUE(c->litellm.cache);
  EXPECT_EQ(c->general.max_request_size_mb, 16.0);
}

TEST_F(config_files, type_errors_on_env_values_name_the_variable_not_the_value) {
  const auto p = write("c.yaml",
                       "model_list:\n"
                       "  - model_name: a\n"
                       "    litellm_params:\n"
                       "      model: openai/a\n"
                       "      rpm: os.environ/SY_SECRET\n");
  const auto e = load_error(p, {{"SY_SECRET", "hunter2"}});
  EXPECT_EQ(e.line(), 5);
  EXPECT_EQ(e.key(), "model_list[0].litellm_params.rpm");
  EXPECT_EQ(e.detail(), "expected a number, got the value of os.environ/SY_SECRET");
}

TEST_F(config_files, empty_os_environ_name_is_an_error) {
  const auto p = write("c.yaml", "general_settings:\n  master_key: os.environ/\n");
  const auto e = load_error(p);
  EXPECT_EQ(e.line(), 2);
  EXPECT_EQ(e.key(), "general_settings.master_key");
}

TEST_F(config_files, alias_bomb_is_rejected) {
  std::string text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 8; ++i) {
    const std::string prev = "*a" + std::to_string(i - 1);
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev;
    for (int k = 1; k < 10; ++k) {
      text += ", " + prev;
    }
    text += "]\n";
  }
  const auto p = write("c.yaml", text);
  const auto e = load_error(p);
  EXPECT_EQ(e.key(), "yaml");
  EXPECT_NE(e.detail().find("the document expands to more than 200000 YAML nodes (keys, values and list items), the "
                            "limit for one file ("),
            std::string::npos)
      << e.what();
  EXPECT_NE(e.detail().find("copied by aliases so far): aliases nested too deeply?"), std::string::npos) << e.what();
}

TEST_F(config_files, a_long_model_list_without_aliases_names_the_limit_not_aliases) {
  // 20000 plain deployments (about 2.6 MB): 11 nodes each, over the bound.
  std::string text = "model_list:\n";
  for (int i = 0; i < 20000; ++i) {
    text += "  - model_name: m" + std::to_string(i) + "\n    litellm_params:\n      model: openai/gpt-4o\n"
            "      api_base: https://llm-" + std::to_string(i) + ".example.com/v1\n      api_key: sk-some-key-" +
            std::to_string(i) + "\n";
  }
  const auto p = write("c.yaml", text);
  const auto e = load_error(p);
  EXPECT_EQ(e.key(), "yaml");
  EXPECT_EQ(e.detail(), "the file has more than 200000 YAML nodes (keys, values and list items), the limit for one "
                        "file; split it into several files with `include` (each has the same limit)");
  EXPECT_EQ(e.detail().find("alias"), std::string::npos);
  // The same deployments over two files load.
  std::string half_a = "model_list:\n", half_b = "model_list:\n";
  for (int i = 0; i < 20000; ++i) {
    (i < 10000 ? half_a : half_b) += "  - model_name: m" + std::to_string(i) +
                                      "\n    litellm_params: {model: openai/gpt-4o, api_key: k}\n";
  }
  write("b.yaml", half_b);
  const auto main = write("a.yaml", half_a + "include: [b.yaml]\n");
  EXPECT_EQ(load(main)->model_list.size(), 20000u);
}

TEST_F(config_files, deep_nesting_is_rejected) {
  const auto p = write("c.yaml", "router_settings:\n  x: " + std::string(200, '[') + std::string(200, ']') + "\n");
  const auto e = load_error(p);
  EXPECT_EQ(e.key(), "yaml");
  EXPECT_EQ(e.line(), 2);
}

TEST_F(config_files, invalid_utf8_is_a_config_error) {
  const auto p = write("c.yaml", "model_list:\n  - model_name: a\n    litellm_params:\n      model: \"openai/a\xff\"\n");
  const auto e = load_error(p);
  EXPECT_EQ(e.line(), 4);
  EXPECT_EQ(e.key(), "yaml");
  EXPECT_EQ(e.detail(), "a value is not valid UTF-8");

  const auto q = write("d.yaml", "general_settings:\n  master_key: os.environ/SY_BYTES\n");
  const auto f = load_error(q, {{"SY_BYTES", "sk-\xc3\x28"}});
  EXPECT_EQ(f.line(), 2);
  EXPECT_EQ(f.key(), "general_settings.master_key");
}

TEST_F(config_files, yaml_merge_keys_are_applied) {
  const auto p = write("c.yaml",
                       "defaults: &defaults\n"
                       "  api_base: http://shared:8000/v1\n"
                       "  timeout: 9\n"
                       "model_list:\n"
                       "  - model_name: a\n"
                       "    litellm_params:\n"
                       "      <<: *defaults\n"
                       "      model: openai/a\n"
                       "      timeout: 3\n");
  const auto c = load(p);
  const auto& d = c->model_list.at(0);
  EXPECT_EQ(d.api_base, "http://shared:8000/v1");
  EXPECT_EQ(d.timeout, 3.0);  // explicit keys win over merged ones
  EXPECT_EQ(c->warnings, (std::vector<std::string>{p + ":1: defaults: unknown top-level key; ignored"}));
}

// ---- providers --------------------------------------------------------------------------------

struct provider_case {
  const char* model;
  std::string_view provider;
  const char* upstream;
};

class config_provider : public config_files, public ::testing::WithParamInterface<provider_case> {};

TEST_P(config_provider, prefix_gives_provider_and_upstream_model) {
  const auto& pc = GetParam();
  const auto p = write("c.yaml", std::string("model_list:\n  - model_name: m\n    litellm_params:\n      model: \"") +
                                     pc.model + "\"\n");
  const auto c = load(p);
  EXPECT_EQ(c->model_list.at(0).provider->name, pc.provider);
  EXPECT_EQ(c->model_list.at(0).upstream_model, pc.upstream);
  EXPECT_EQ(c->model_list.at(0).model, pc.model);
}

INSTANTIATE_TEST_SUITE_P(
    prefixes, config_provider,
    ::testing::Values(provider_case{"gpt-4o", "openai", "gpt-4o"},
                      provider_case{"openai/gpt-4o", "openai", "gpt-4o"},
                      provider_case{"openai/meta-llama/Llama-3", "openai", "meta-llama/Llama-3"},
                      provider_case{"hosted_vllm/Qwen/Qwen2", "hosted_vllm", "Qwen/Qwen2"},
                      provider_case{"azure/my-deployment", "azure", "my-deployment"},
                      provider_case{"anthropic/claude-3-haiku", "anthropic", "claude-3-haiku"},
                      provider_case{"ollama/llama3", "ollama", "llama3"},
                      provider_case{"ollama_chat/llama3:8b", "ollama_chat", "llama3:8b"},
                      provider_case{"groq/llama-3.1-8b-instant", "groq", "llama-3.1-8b-instant"}));

TEST_F(config_files, custom_llm_provider_names_the_provider) {
  const auto p = write("c.yaml",
                       "model_list:\n"
                       "  - model_name: m\n"
                       "    litellm_params:\n"
                       "      model: my-org/my-model\n"
                       "      custom_llm_provider: hosted_vllm\n");
  const auto c = load(p);
  EXPECT_EQ(c->model_list.at(0).provider->name, "hosted_vllm");
  EXPECT_EQ(c->model_list.at(0).upstream_model, "my-org/my-model");
}

TEST_F(config_files, unknown_custom_llm_provider_lists_the_registry) {
  const auto p = write("c.yaml",
                       "model_list:\n"
                       "  - model_name: m\n"
                       "    litellm_params:\n"
                       "      model: x\n"
                       "      custom_llm_provider: sagemaker\n");
  const auto e = load_error(p);
  EXPECT_EQ(e.key(), "model_list[0].litellm_params.custom_llm_provider");
  EXPECT_NE(e.detail().find("unknown provider 'sagemaker'; supported: " + cfg::supported_provider_names()),
            std::string::npos)
      << e.what();
  for (const auto& provider : cfg::provider_registry()) {
    EXPECT_NE(e.detail().find(provider.name), std::string::npos) << provider.name;
  }
}

TEST_F(config_files, unknown_prefix_lists_every_registered_prefix) {
  const auto e = load_error(write("c.yaml", "model_list:\n  - model_name: m\n    litellm_params:\n      model: foo/bar\n"));
  EXPECT_NE(e.detail().find("; supported: " + cfg::supported_prefixes()), std::string::npos) << e.what();
  for (const auto& provider : cfg::provider_registry()) {
    EXPECT_NE(e.detail().find(provider.prefix), std::string::npos) << provider.prefix;
  }
}

// Without litellm_params.api_key, the key comes from the provider's variable, as in LiteLLM.
TEST_F(config_files, api_key_falls_back_to_the_providers_environment_variable) {
  const auto p = write("c.yaml",
                       "model_list:\n"
                       "  - model_name: a\n"
                       "    litellm_params: {model: anthropic/claude-3-haiku}\n"
                       "  - model_name: b\n"
                       "    litellm_params: {model: anthropic/claude-3-haiku, api_key: sk-explicit}\n"
                       "  - model_name: c\n"
                       "    litellm_params: {model: gpt-4o}\n"
                       "  - model_name: d\n"
                       "    litellm_params: {model: azure/dep, api_base: 'https://r.openai.azure.com'}\n"
                       "  - model_name: e\n"
                       "    litellm_params: {model: hosted_vllm/q, api_base: 'http://gpu:8000/v1'}\n"
                       "  - model_name: f\n"
                       "    litellm_params: {model: ollama_chat/llama3}\n");
  const auto c = load(p, {{"ANTHROPIC_API_KEY", "sk-ant-env"},
                          {"OPENAI_API_KEY", "sk-openai-env"},
                          {"AZURE_API_KEY", "az-env"},
                          {"HOSTED_VLLM_API_KEY", "vllm-env"},
                          {"OLLAMA_API_KEY", "ollama-env"}});
  ASSERT_EQ(c->model_list.size(), 6u);
  EXPECT_EQ(c->model_list[0].api_key, "sk-ant-env");
  EXPECT_EQ(c->model_list[1].api_key, "sk-explicit");  // an explicit key wins
  EXPECT_EQ(c->model_list[2].api_key, "sk-openai-env");
  EXPECT_EQ(c->model_list[3].api_key, "az-env");
  EXPECT_EQ(c->model_list[4].api_key, "vllm-env");
  EXPECT_EQ(c->model_list[5].api_key, "ollama-env");
  EXPECT_FALSE(c->model_list[0].litellm_params.contains("api_key")) << "the key is not written into litellm_params";

  // Unset variable: no key.
  EXPECT_EQ(load(p)->model_list[0].api_key, "");
  // environment_variables count too (as for os.environ/).
  const auto q = write("q.yaml",
                       "environment_variables: {ANTHROPIC_API_KEY: sk-ant-section}\n"
                       "model_list:\n"
                       "  - model_name: a\n"
                       "    litellm_params: {model: anthropic/claude-3-haiku}\n");
  EXPECT_EQ(load(q)->model_list[0].api_key, "sk-ant-section");
}

// Bedrock deployments take absent AWS credentials and region from the AWS_* variables, as boto3.
TEST_F(config_files, bedrock_credentials_fall_back_to_the_aws_environment) {
  const auto p = write("c.yaml",
                       "model_list:\n"
                       "  - model_name: a\n"
                       "    litellm_params: {model: bedrock/anthropic.claude-3-haiku-20240307-v1:0}\n"
                       "  - model_name: b\n"
                       "    litellm_params: {model: bedrock/amazon.titan-embed-text-v2:0, aws_access_key_id: AKIDOWN,\n"
                       "                     aws_secret_access_key: own, aws_region_name: ap-south-1}\n");
  const auto c = load(p, {{"AWS_ACCESS_KEY_ID", "AKIDENV"},
                          {"AWS_SECRET_ACCESS_KEY", "env-secret"},
                          {"AWS_SESSION_TOKEN", "env-token"},
                          {"AWS_REGION", "eu-west-1"},
                          {"AWS_DEFAULT_REGION", "us-east-2"}});
  ASSERT_EQ(c->model_list.size(), 2u);
  const auto& a = c->model_list[0].litellm_params;
  EXPECT_EQ(c->model_list[0].provider, cfg::find_provider("bedrock"));
  EXPECT_EQ(a["aws_access_key_id"], "AKIDENV");
  EXPECT_EQ(a["aws_secret_access_key"], "env-secret");
  EXPECT_EQ(a["aws_session_token"], "env-token");
  EXPECT_EQ(a["aws_region_name"], "eu-west-1") << "AWS_REGION before AWS_DEFAULT_REGION";
  const auto& b = c->model_list[1].litellm_params;
  EXPECT_EQ(b["aws_access_key_id"], "AKIDOWN") << "litellm_params win";
  EXPECT_EQ(b["aws_secret_access_key"], "own");
  EXPECT_EQ(b["aws_region_name"], "ap-south-1");
  EXPECT_FALSE(b.contains("aws_session_token")) << "no env token mixed into the deployment's own keys";
  EXPECT_FALSE(load(p)->model_list[0].litellm_params.contains("aws_access_key_id")) << "nothing set: nothing filled";
}

TEST_F(config_files, empty_model_after_prefix_is_an_error) {
  const auto p = write("c.yaml", "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/\n");
  const auto e = load_error(p);
  EXPECT_EQ(e.line(), 4);
  EXPECT_EQ(e.detail(), "no model name after the provider prefix 'openai/'");
}

// ---- environment ------------------------------------------------------------------------------

TEST_F(config_files, environment_variables_are_exported_with_setenv) {
  const std::string name = "SY_TEST_EXPORTED_" + std::to_string(::getpid());
  const auto p = write("c.yaml", "environment_variables:\n  " + name + ": exported-value\n");
  cfg::load_options options;
  options.env = env_of({});
  options.export_environment = true;
  (void)cfg::load_config_blocking(p, options);
  const char* v = std::getenv(name.c_str());
  ASSERT_NE(v, nullptr);
  EXPECT_STREQ(v, "exported-value");
  ::unsetenv(name.c_str());
}

TEST_F(config_files, environment_variables_feed_the_redis_fallback_and_report_their_line) {
  const auto ok = write("ok.yaml", "environment_variables:\n  REDIS_HOST: r1\n  REDIS_PORT: \"7000\"\n");
  const auto c = load(ok, {{"REDIS_PASSWORD", "pw"}});
  EXPECT_EQ(c->redis.host, "r1");
  EXPECT_EQ(c->redis.port, 7000);
  EXPECT_EQ(c->redis.password, "pw");
  EXPECT_EQ(c->redis.source, "env REDIS_HOST");

  const auto bad = write("bad.yaml", "environment_variables:\n  REDIS_HOST: r1\n  REDIS_PORT: seven\n");
  const auto e = load_error(bad);
  EXPECT_EQ(e.file(), bad);
  EXPECT_EQ(e.line(), 3);
  EXPECT_EQ(e.key(), "environment_variables.REDIS_PORT");
}

TEST_F(config_files, bad_redis_port_in_process_env_is_reported_as_environment) {
  const auto p = write("c.yaml", "model_list: []\n");
  const auto e = load_error(p, {{"REDIS_HOST", "h"}, {"REDIS_PORT", "abc"}});
  EXPECT_EQ(std::string(e.what()), "environment: REDIS_PORT: expected an integer, got the string \"abc\"");
}

TEST_F(config_files, redis_url_from_env) {
  const auto p = write("c.yaml", "model_list: []\n");
  const auto c = load(p, {{"REDIS_URL", "rediss://user:p%40ss@cache.example:6390/2"}, {"REDIS_HOST", "ignored"}});
  EXPECT_EQ(c->redis.host, "cache.example");
  EXPECT_EQ(c->redis.port, 6390);
  EXPECT_EQ(c->redis.username, "user");
  EXPECT_EQ(c->redis.password, "p@ss");
  EXPECT_EQ(c->redis.db, 2);
  EXPECT_TRUE(c->redis.tls);
  EXPECT_EQ(c->redis.source, "env REDIS_URL");
}

TEST_F(config_files, redis_from_cache_params_before_env) {
  const auto p = write("c.yaml",
                       "litellm_settings:\n"
                       "  cache: true\n"
                       "  cache_params: {type: redis, host: cache-host, port: \"6391\", password: cpw}\n");
  const auto c = load(p, {{"REDIS_HOST", "env-host"}});
  EXPECT_EQ(c->redis.host, "cache-host");
  EXPECT_EQ(c->redis.port, 6391);
  EXPECT_EQ(c->redis.password, "cpw");
  EXPECT_EQ(c->redis.source, "litellm_settings.cache_params");
}

TEST_F(config_files, non_redis_cache_params_are_not_a_redis_endpoint) {
  const auto p = write("c.yaml", "litellm_settings:\n  cache_params: {type: local, host: not-redis}\n");
  const auto c = load(p, {{"REDIS_HOST", "env-host"}});
  EXPECT_EQ(c->redis.host, "env-host");
  EXPECT_EQ(c->redis.source, "env REDIS_HOST");
}

TEST_F(config_files, router_redis_url_with_separate_password) {
  const auto p = write("c.yaml", "router_settings:\n  redis_url: redis://10.0.0.5\n  redis_password: rp\n");
  const auto c = load(p);
  EXPECT_EQ(c->redis.host, "10.0.0.5");
  EXPECT_EQ(c->redis.port, 6379);
  EXPECT_EQ(c->redis.password, "rp");
  EXPECT_EQ(c->router.redis_url, "redis://10.0.0.5");
}

TEST_F(config_files, no_redis_configured) {
  const auto p = write("c.yaml", "model_list: []\n");
  const auto c = load(p);
  EXPECT_EQ(c->redis.host, "");
  EXPECT_EQ(c->redis.source, "");
}

TEST_F(config_files, master_key_precedence) {
  const auto with_key = write("a.yaml", "general_settings:\n  master_key: sk-from-config\n");
  EXPECT_EQ(load(with_key, {{"LITELLM_MASTER_KEY", "sk-env"}})->general.master_key, "sk-from-config");
  const auto without = write("b.yaml", "general_settings: {}\n");
  EXPECT_EQ(load(without, {{"LITELLM_MASTER_KEY", "sk-env"}, {"SWITCHYARD_MASTER_KEY", "sk-sy"}})->general.master_key,
            "sk-env");
  EXPECT_EQ(load(without, {{"SWITCHYARD_MASTER_KEY", "sk-sy"}})->general.master_key, "sk-sy");
  EXPECT_EQ(load(without)->general.master_key, "");
}

TEST_F(config_files, an_empty_mapping_is_a_config_of_defaults) {
  // (An empty file is refused: an_empty_file_is_refused_naming_it.)
  const auto p = write("c.yaml", "{}\n");
  const auto c = load(p);
  EXPECT_TRUE(c->model_list.empty());
  EXPECT_EQ(c->router.routing_strategy, "simple-shuffle");
  EXPECT_EQ(c->general.database_connection_pool_limit, 10);
  EXPECT_TRUE(c->warnings.empty());
}

TEST_F(config_files, absolute_include_path) {
  const auto inc = write("dir/inc.yaml", "model_list:\n  - model_name: inc\n    litellm_params: {model: openai/inc}\n");
  const auto p = write("c.yaml", "include: " + inc + "\n");
  const auto c = load(p);
  ASSERT_EQ(c->model_list.size(), 1u);
  EXPECT_EQ(c->model_list[0].model_name, "inc");
}

// ---- the shipped configs ------------------------------------------------------------------------

TEST(config_shipped, default_config_loads_offline_without_any_env) {
  const auto c = load(shipped_dir + "/switchyard.yaml");
  EXPECT_TRUE(c->warnings.empty()) << join(c->warnings);
  ASSERT_EQ(c->model_list.size(), 1u);
  const auto& d = c->model_list[0];
  EXPECT_EQ(d.model_name, "demo");
  EXPECT_EQ(d.model, "openai/demo");
  EXPECT_EQ(d.mock_response, "Hello from Switchyard! This is the demo model answering offline.");
  EXPECT_EQ(c->general.master_key, "");
  EXPECT_EQ(load(shipped_dir + "/switchyard.yaml", {{"LITELLM_MASTER_KEY", "sk-1234"}})->general.master_key, "sk-1234");
}

TEST(config_shipped, example_config_validates_when_its_variables_are_set) {
  const std::map<std::string, std::string> env{
      {"OPENAI_API_KEY", "sk-o"},        {"AZURE_API_BASE", "https://r.openai.azure.com"},
      {"AZURE_API_KEY", "az"},           {"ANTHROPIC_API_KEY", "sk-ant"},
      {"VLLM_API_BASE", "http://gpu:8000/v1"}, {"LITELLM_MASTER_KEY", "sk-master"},
      {"DATABASE_URL", "postgresql://u:p@localhost:5432/sy"},
  };
  const auto c = load(shipped_dir + "/example.yaml", env);
  EXPECT_TRUE(c->warnings.empty()) << join(c->warnings);
  std::vector<std::string_view> providers;
  for (const auto& d : c->model_list) {
    providers.push_back(d.provider->name);
  }
  EXPECT_EQ(providers, (std::vector<std::string_view>{"openai", "azure", "anthropic", "ollama_chat", "openai",
                                                      "hosted_vllm", "openai"}));
  EXPECT_EQ(c->general.master_key, "sk-master");

  const auto e = load_error(shipped_dir + "/example.yaml", {});
  EXPECT_EQ(e.key(), "model_list[0].litellm_params.api_key");
  EXPECT_NE(e.detail().find("OPENAI_API_KEY"), std::string::npos);
}

}  // namespace

// ---- the response cache's settings (docs/cache.md)

namespace {

// The call types the cache serves, as the loader resolved them.
void expect_cached_types(const cfg::config& c, bool chat, bool completion, bool embedding) {
  EXPECT_EQ(c.cache.chat, chat);
  EXPECT_EQ(c.cache.completion, completion);
  EXPECT_EQ(c.cache.embedding, embedding);
}

}  // namespace

TEST_F(config_files, cache_settings_as_litellm) {
  const auto p = write("c.yaml",
                       "litellm_settings:\n"
                       "  cache: true\n"
                       "  cache_params:\n"
                       "    host: cache-host\n"
                       "    namespace: ns1\n"
                       "    mode: default_off\n"
                       "    supported_call_types: [acompletion, aembedding]\n");
  const auto c = load(p);
  EXPECT_TRUE(c->cache.enabled);
  EXPECT_TRUE(c->cache.use_redis);  // no type: redis, as LiteLLM's proxy
  EXPECT_EQ(c->cache.redis.host, "cache-host");
  EXPECT_EQ(c->cache.namespace_, "ns1");
  EXPECT_EQ(c->cache.ttl_s, 600.0);  // the default
  EXPECT_FALSE(c->cache.default_on);
  expect_cached_types(*c, true, false, true);
  EXPECT_TRUE(c->warnings.empty());
}

// LiteLLM's default list names call types this gateway does not cache: they are named in one
// warning with the list's line, the others still apply; one type without a list is a list.
TEST_F(config_files, cache_call_types_not_cached_are_named_in_a_warning) {
  const auto p = write("c.yaml",
                       "litellm_settings:\n"
                       "  cache: true\n"
                       "  cache_params:\n"
                       "    type: local\n"
                       "    supported_call_types: [acompletion, atranscription, arerank, aembedding]\n");
  const auto c = load(p);
  expect_cached_types(*c, true, false, true);
  ASSERT_EQ(c->warnings.size(), 1u) << join(c->warnings);
  EXPECT_EQ(c->warnings[0].rfind(p + ":5: litellm_settings.cache_params.supported_call_types: not cached: "
                                     "\"atranscription\", \"arerank\" (",
                                 0),
            0u)
      << c->warnings[0];

  const auto one = load(write("o.yaml", "litellm_settings:\n  cache: true\n  cache_params: {type: local, "
                                        "supported_call_types: atext_completion}\n"));
  expect_cached_types(*one, false, true, false);
  EXPECT_TRUE(one->warnings.empty()) << join(one->warnings);
}

TEST_F(config_files, cache_redis_own_or_shared_or_env) {
  // cache_params names its own Redis: the router's stays the shared one.
  const auto own = write("a.yaml",
                         "router_settings: {redis_host: router-host}\n"
                         "litellm_settings: {cache: true, cache_params: {type: redis, host: cache-host, port: 6390, ttl: 30}}\n");
  auto c = load(own);
  EXPECT_EQ(c->redis.host, "router-host");
  EXPECT_EQ(c->cache.redis.host, "cache-host");
  EXPECT_EQ(c->cache.redis.port, 6390);
  EXPECT_EQ(c->cache.ttl_s, 30.0);
  // No host in cache_params: REDIS_* env, as LiteLLM.
  const auto env = write("b.yaml", "litellm_settings: {cache: true}\n");
  c = load(env, {{"REDIS_HOST", "env-host"}, {"REDIS_PORT", "7001"}});
  EXPECT_TRUE(c->cache.use_redis);
  EXPECT_EQ(c->cache.redis.host, "env-host");
  EXPECT_EQ(c->cache.redis.port, 7001);
}

// LiteLLM's per-backend TTL defaults replace `ttl` for their type; under type redis,
// default_in_memory_ttl bounds the memory tier's copies; socket_timeout is a known key
// that sets the lookups' wait on Redis.
TEST_F(config_files, cache_ttl_defaults_per_tier_and_socket_timeout) {
  const auto redis = load(write("r.yaml", "litellm_settings:\n  cache: true\n  cache_params:\n"
                                          "    {type: redis, host: h, ttl: 600, default_in_redis_ttl: 30,\n"
                                          "     default_in_memory_ttl: 5, socket_timeout: 0.25}\n"));
  EXPECT_EQ(redis->cache.ttl_s, 30.0);
  EXPECT_EQ(redis->cache.memory_max_ttl_s, 5.0);
  ASSERT_TRUE(redis->cache.redis_timeout_s);
  EXPECT_EQ(*redis->cache.redis_timeout_s, 0.25);
  EXPECT_TRUE(redis->warnings.empty()) << join(redis->warnings);
  EXPECT_TRUE(redis->unsupported.empty());

  const auto local = load(write("l.yaml", "litellm_settings:\n  cache: true\n  cache_params:\n"
                                          "    {type: local, ttl: 600, default_in_redis_ttl: 30, default_in_memory_ttl: 5}\n"));
  EXPECT_EQ(local->cache.ttl_s, 5.0);
  EXPECT_EQ(local->cache.memory_max_ttl_s, 0.0);  // the memory tier is the cache: its ttl is the TTL
  EXPECT_FALSE(local->cache.redis_timeout_s);
  EXPECT_TRUE(local->warnings.empty()) << join(local->warnings);
  EXPECT_TRUE(local->unsupported.empty());

  // Without them: `ttl`, no bound on memory copies, the default lookup wait.
  const auto plain = load(write("p.yaml", "litellm_settings: {cache: true, cache_params: {type: redis, host: h, ttl: 60}}\n"));
  EXPECT_EQ(plain->cache.ttl_s, 60.0);
  EXPECT_EQ(plain->cache.memory_max_ttl_s, 0.0);
  EXPECT_FALSE(plain->cache.redis_timeout_s);
}

TEST_F(config_files, cache_local_needs_no_redis) {
  const auto p = write("c.yaml", "litellm_settings: {cache: true, cache_params: {type: local}}\n");
  const auto c = load(p, {{"REDIS_HOST", "env-host"}});
  EXPECT_TRUE(c->cache.enabled);
  EXPECT_FALSE(c->cache.use_redis);
  EXPECT_TRUE(c->warnings.empty());
}

TEST_F(config_files, cache_off_or_unsupported_type_warns_once) {
  EXPECT_FALSE(load(write("a.yaml", "litellm_settings: {cache_params: {type: local}}\n"))->cache.enabled);
  const auto p = write("c.yaml", "litellm_settings:\n  cache: true\n  cache_params: {type: redis-semantic, similarity_threshold: 0.8}\n");
  const auto c = load(p);
  EXPECT_FALSE(c->cache.enabled);
  ASSERT_EQ(c->warnings.size(), 1u);
  EXPECT_NE(c->warnings[0].find("cache type \"redis-semantic\" is not supported (only redis and local): response caching is OFF"),
            std::string::npos)
      << c->warnings[0];
  EXPECT_NE(c->warnings[0].find(p + ":3:"), std::string::npos) << c->warnings[0];
  // Redis type with no Redis anywhere: memory only, one warning.
  const auto none = load(write("d.yaml", "litellm_settings: {cache: true}\n"));
  EXPECT_TRUE(none->cache.enabled);
  EXPECT_FALSE(none->cache.use_redis);
  EXPECT_EQ(none->warnings.size(), 1u);
}

TEST_F(config_files, default_team_params_keys_are_checked) {
  // The fields a team created for an SSO group gets: known ones type-checked, others warned.
  const auto p = write("c.yaml",
                       "litellm_settings:\n"
                       "  default_team_params:\n"
                       "    max_budget: 10\n"
                       "    budget_duration: 30d\n"
                       "    models: [demo]\n"
                       "    tpm_limit: 1000\n"
                       "    rpm_limit: 10\n"
                       "    team_member_permissions: [/key/generate]\n"
                       "    team_alias: nope\n");
  const auto c = load(p);
  ASSERT_EQ(c->warnings.size(), 1u) << join(c->warnings);
  EXPECT_EQ(c->warnings[0], p + ":9: litellm_settings.default_team_params.team_alias: unknown key; ignored");
  EXPECT_EQ(c->litellm.raw["default_team_params"]["budget_duration"], "30d");
  EXPECT_EQ(c->litellm.raw["default_team_params"]["max_budget"], 10);

  const auto bad_type = load_error(write("t.yaml", "litellm_settings:\n  default_team_params:\n    rpm_limit: lots\n"));
  EXPECT_EQ(bad_type.key(), "litellm_settings.default_team_params.rpm_limit");
  EXPECT_EQ(bad_type.line(), 3);
  const auto bad_list = load_error(write("l.yaml", "litellm_settings:\n  default_team_params: {models: demo}\n"));
  EXPECT_EQ(bad_list.key(), "litellm_settings.default_team_params.models");
  const auto bad_period = load_error(write("d.yaml", "litellm_settings:\n  default_team_params: {budget_duration: monthly}\n"));
  EXPECT_EQ(bad_period.key(), "litellm_settings.default_team_params.budget_duration");
  const auto not_map = load_error(write("m.yaml", "litellm_settings:\n  default_team_params: [1]\n"));
  EXPECT_EQ(not_map.key(), "litellm_settings.default_team_params");
}

TEST_F(config_files, cache_mode_must_be_known) {
  const auto p = write("c.yaml", "litellm_settings: {cache: true, cache_params: {type: local, mode: sometimes}}\n");
  const auto e = load_error(p);
  EXPECT_EQ(e.key(), "litellm_settings.cache_params.mode");
}

TEST_F(config_files, ssl_verify_false_true_or_a_ca_bundle) {
  const auto bundle = write("ca.pem", "not parsed by the loader\n");
  const auto p = write("c.yaml",
                       "model_list:\n"
                       "  - model_name: a\n"
                       "    litellm_params: {model: openai/x, ssl_verify: false}\n"
                       "  - model_name: b\n"
                       "    litellm_params: {model: openai/x, ssl_verify: \"" + bundle + "\"}\n"
                       "  - model_name: c\n"
                       "    litellm_params: {model: openai/x, ssl_verify: os.environ/VERIFY}\n"
                       "  - model_name: d\n"
                       "    litellm_params: {model: openai/x}\n"
                       "litellm_settings:\n"
                       "  ssl_verify: \"False\"\n");
  const auto c = load(p, {{"VERIFY", "true"}});
  ASSERT_EQ(c->model_list.size(), 4u);
  EXPECT_EQ(c->model_list[0].ssl_verify, (cfg::tls_trust{false, ""}));
  EXPECT_EQ(c->model_list[1].ssl_verify, (cfg::tls_trust{true, bundle}));
  EXPECT_EQ(c->model_list[2].ssl_verify, (cfg::tls_trust{true, ""}));
  EXPECT_FALSE(c->model_list[3].ssl_verify.has_value());
  EXPECT_EQ(c->litellm.ssl_verify, (cfg::tls_trust{false, ""}));
  for (const auto& u : c->unsupported) {
    EXPECT_EQ(u.key.find("ssl_verify"), std::string::npos) << u.key;  // acted on, not reported
  }
}

TEST_F(config_files, ssl_verify_with_a_missing_bundle_is_an_error_at_its_line) {
  const auto p = write("c.yaml",
                       "model_list:\n"
                       "  - model_name: a\n"
                       "    litellm_params:\n"
                       "      model: openai/x\n"
                       "      ssl_verify: /nonexistent/ca.pem\n");
  const auto e = load_error(p);
  EXPECT_EQ(std::string(e.what()), p + ":5: model_list[0].litellm_params.ssl_verify: CA bundle \"/nonexistent/ca.pem\" "
                                       "is not a readable file (ssl_verify takes false, true or a PEM bundle)");
}

TEST_F(config_files, https_listener_files_in_general_settings) {
  const auto p = write("c.yaml", "general_settings:\n  ssl_certfile_path: /etc/c.pem\n  ssl_keyfile_path: /etc/k.pem\n");
  const auto c = load(p);
  EXPECT_EQ(c->general.ssl_certfile_path, "/etc/c.pem");
  EXPECT_EQ(c->general.ssl_keyfile_path, "/etc/k.pem");
  EXPECT_TRUE(c->warnings.empty()) << join(c->warnings);
}

TEST_F(config_files, redis_tls_from_cache_params) {
  const auto ca = write("redis-ca.pem", "x\n");
  const auto p = write("c.yaml",
                       "litellm_settings:\n"
                       "  cache: true\n"
                       "  cache_params: {type: redis, host: h, port: 6380, ssl: true, ssl_ca_certs: \"" + ca +
                           "\", ssl_cert_reqs: required, ssl_check_hostname: false}\n");
  const auto c = load(p);
  EXPECT_TRUE(c->redis.tls);
  EXPECT_TRUE(c->redis.tls_verify);
  EXPECT_FALSE(c->redis.tls_check_hostname);
  EXPECT_EQ(c->redis.tls_ca_file, ca);
  EXPECT_TRUE(c->cache.redis.tls);
  EXPECT_TRUE(c->warnings.empty()) << join(c->warnings);

  const auto q = write("d.yaml",
                       "litellm_settings:\n"
                       "  cache: true\n"
                       "  cache_params: {type: redis, url: \"rediss://h:6380\", ssl_cert_reqs: none}\n");
  const auto d = load(q);
  EXPECT_TRUE(d->redis.tls);
  EXPECT_FALSE(d->redis.tls_verify);

  const auto r = write("e.yaml",
                       "litellm_settings:\n"
                       "  cache: true\n"
                       "  cache_params: {type: redis, host: h, ssl_cert_reqs: sometimes}\n");
  EXPECT_NE(std::string(load_error(r).what()).find("cache_params.ssl_cert_reqs: expected none or required"),
            std::string::npos);
}

// Models kept in Postgres (store_model_in_db): merged after model_list with the same checks;
// one that does not load is skipped with a warning, unless it is the one being checked.
TEST_F(config_files, db_models_merge_after_model_list) {
  const auto path = write("c.yaml",
                          "model_list:\n"
                          "  - model_name: file\n"
                          "    litellm_params: {model: openai/f, api_key: sk-file}\n"
                          "    model_info: {id: file-1}\n"
                          "general_settings: {store_model_in_db: true}\n");
  cfg::load_options o;
  o.env = env_of({{"SY_DB_KEY", "sk-from-env"}});
  o.export_environment = false;
  cfg::db_model good{"db-1", "stored", {{"model", "openai/s"}, {"api_key", "os.environ/SY_DB_KEY"}, {"rpm", 5}},
                     {{"description", "d"}}};
  cfg::db_model bad{"db-2", "broken", {{"model", "nosuchprovider/x"}}, nlohmann::json::object()};
  cfg::db_model clash{"file-1", "clash", {{"model", "openai/c"}}, nlohmann::json::object()};
  o.db_models = {good, bad, clash};
  auto c = cfg::load_config_blocking(path, o);
  EXPECT_TRUE(c->general.store_model_in_db);
  ASSERT_EQ(c->model_list.size(), 2u);
  const auto& d = c->model_list[1];
  EXPECT_EQ(d.id, "db-1");
  EXPECT_EQ(d.model_name, "stored");
  EXPECT_EQ(d.api_key, "sk-from-env") << "os.environ/ references resolve on each load";
  EXPECT_EQ(d.rpm, 5);
  EXPECT_EQ(d.model_info["db_model"], true);
  EXPECT_EQ(d.model_info["id"], "db-1");
  EXPECT_EQ(d.model_info["description"], "d");
  EXPECT_EQ(c->model_list[0].model_name, "file") << "the config file wins an id both use";
  const auto w = join(c->warnings);
  EXPECT_NE(w.find("database: db_model[db-2].litellm_params.model"), std::string::npos) << w;
  EXPECT_NE(w.find("db_model[file-1].model_info.id"), std::string::npos) << w;
  EXPECT_EQ(w.find("sk-from-env"), std::string::npos);

  o.strict_db_model = "db-2";
  try {
    (void)cfg::load_config_blocking(path, o);
    ADD_FAILURE() << "the checked model must throw";
  } catch (const cfg::config_error& e) {
    EXPECT_EQ(e.file(), "database");
    EXPECT_EQ(e.key(), "db_model[db-2].litellm_params.model");
  }
  o.strict_db_model = "file-1";
  EXPECT_THROW((void)cfg::load_config_blocking(path, o), cfg::config_error);
}

TEST_F(config_files, store_model_in_db_from_the_environment) {
  const auto path = write("c.yaml", "model_list: []\n");
  cfg::load_options o;
  o.export_environment = false;
  o.env = env_of({{"STORE_MODEL_IN_DB", "True"}});
  EXPECT_TRUE(cfg::load_config_blocking(path, o)->general.store_model_in_db);
  o.env = env_of({});
  EXPECT_FALSE(cfg::load_config_blocking(path, o)->general.store_model_in_db);
}

// Credentials are kept out of /model/info and sealed in the database; prices are neither,
// though "input_cost_per_token" ends like "azure_ad_token".
TEST(secret_params, credentials_are_secret_and_prices_are_not) {
  for (const char* k : {"api_key", "aws_secret_access_key", "aws_session_token", "azure_ad_token", "vertex_credentials",
                        "client_secret", "password", "anthropic_api_key", "my_token"}) {
    EXPECT_TRUE(cfg::is_secret_param(k)) << k;
  }
  for (const char* k : {"input_cost_per_token", "output_cost_per_token", "input_cost_per_second",
                        "cache_read_input_token_cost", "model", "api_base", "rpm", "max_tokens"}) {
    EXPECT_FALSE(cfg::is_secret_param(k)) << k;
  }
}

// Credentials files are read when the config loads (off the event loop): the deployment
// carries their text, so building its token source later reads nothing.
TEST_F(config_files, vertex_credentials_files_are_read_with_the_config) {
  const auto key = write("sa.json", "{\"type\": \"service_account\"}");
  const auto env_key = write("env-sa.json", "{\"type\": \"from-env\"}");
  const auto p = write("c.yaml",
                       "environment_variables:\n"
                       "  GOOGLE_APPLICATION_CREDENTIALS: " + env_key + "\n"
                       "model_list:\n"
                       "  - model_name: by-path\n"
                       "    litellm_params: {model: vertex_ai/gemini-2.5-pro, vertex_project: p, vertex_credentials: " +
                           key + "}\n"
                       "  - model_name: inline\n"
                       "    litellm_params: {model: vertex_ai/gemini-2.5-pro, vertex_project: p, vertex_credentials: "
                       "'{\"type\": \"service_account\"}'}\n"
                       "  - model_name: from-env\n"
                       "    litellm_params: {model: vertex_ai/gemini-2.5-pro, vertex_project: p}\n"
                       "  - model_name: missing\n"
                       "    litellm_params: {model: vertex_ai/gemini-2.5-pro, vertex_project: p, vertex_credentials: " +
                           (dir_ / "nope.json").string() + "}\n"
                       "  - model_name: not-vertex\n"
                       "    litellm_params: {model: openai/gpt-4o, api_key: k}\n");
  const auto c = load(p);
  ASSERT_EQ(c->model_list.size(), 5u);
  const auto& by_path = c->model_list[0].credentials;
  ASSERT_TRUE(by_path);
  EXPECT_EQ(by_path->path, key);
  EXPECT_EQ(by_path->text, "{\"type\": \"service_account\"}");
  EXPECT_TRUE(by_path->error.empty());
  EXPECT_FALSE(c->model_list[1].credentials) << "a key written inline names no file";
  ASSERT_TRUE(c->model_list[2].credentials) << "GOOGLE_APPLICATION_CREDENTIALS from environment_variables";
  EXPECT_EQ(c->model_list[2].credentials->text, "{\"type\": \"from-env\"}");
  ASSERT_TRUE(c->model_list[3].credentials);
  EXPECT_TRUE(c->model_list[3].credentials->text.empty());
  EXPECT_EQ(c->model_list[3].credentials->error,
            "cannot read the file '" + (dir_ / "nope.json").string() + "': No such file or directory");
  EXPECT_FALSE(c->model_list[4].credentials);
}
