// config/: the parts of LiteLLM's config grammar that real configs lean on: provider keys
// and bases from the environment, credential_list, request defaults, drop lists, tags,
// ignore_invalid_deployments, alias lists, and the report of recognised-but-unsupported keys.
#include "switchyard/config/config.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>

namespace cfg = switchyard::config;
namespace fs = std::filesystem;

namespace {

class compat : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sy_compat_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& text) {
    const fs::path p = dir_ / "c.yaml";
    std::ofstream(p) << text;
    return p.string();
  }

  static std::shared_ptr<const cfg::config> load(const std::string& path, std::map<std::string, std::string> vars = {},
                                                 cfg::model_provider_lookup bare = {}) {
    cfg::load_options o;
    o.env = [vars = std::move(vars)](const std::string& n) -> std::optional<std::string> {
      auto it = vars.find(n);
      return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    o.export_environment = false;
    o.bare_model_provider = std::move(bare);
    return cfg::load_config_blocking(path, o);
  }

  static std::string one_model(const std::string& model, const std::string& extra = "") {
    return "model_list:\n  - model_name: m\n    litellm_params:\n      model: \"" + model + "\"\n" + extra;
  }

  fs::path dir_;
};

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    out += s + "\n";
  }
  return out;
}

}  // namespace

// ---- providers and credentials -------------------------------------------------------------

TEST_F(compat, every_provider_takes_its_key_from_its_variable) {
  for (const auto& p : cfg::provider_registry()) {
    if (p.api_key_env.empty()) {
      continue;
    }
    SCOPED_TRACE(std::string(p.name));
    const auto path = write(one_model(std::string(p.prefix) + "some-model", "      api_base: http://127.0.0.1:1\n"));
    const std::string var(p.api_key_env.substr(0, p.api_key_env.find(',')));
    const auto c = load(path, {{var, "key-of-" + std::string(p.name)}});
    ASSERT_EQ(c->model_list.size(), 1u);
    EXPECT_EQ(c->model_list[0].provider, &p);
    EXPECT_EQ(c->model_list[0].api_key, "key-of-" + std::string(p.name));
  }
}

TEST_F(compat, alternative_key_variables_and_base_variables) {
  auto c = load(write(one_model("together_ai/meta-llama/Llama-3")), {{"TOGETHER_API_KEY", "t-key"}});
  EXPECT_EQ(c->model_list[0].api_key, "t-key");
  c = load(write(one_model("together_ai/x")), {{"TOGETHERAI_API_KEY", "first"}, {"TOGETHER_API_KEY", "second"}});
  EXPECT_EQ(c->model_list[0].api_key, "first");  // api_key_env before the alternatives
  c = load(write(one_model("lm_studio/qwen")), {{"LM_STUDIO_API_BASE", "http://lm:1234/v1"}});
  EXPECT_EQ(c->model_list[0].api_base, "http://lm:1234/v1");
  c = load(write(one_model("openai/gpt-4o")), {{"OPENAI_API_BASE", "http://b"}, {"OPENAI_BASE_URL", "http://a"}});
  EXPECT_EQ(c->model_list[0].api_base, "http://a");
  // api_key in the config wins over the variable.
  c = load(write(one_model("groq/llama", "      api_key: from-config\n")), {{"GROQ_API_KEY", "from-env"}});
  EXPECT_EQ(c->model_list[0].api_key, "from-config");
}

TEST_F(compat, azure_reads_key_base_and_version_from_the_environment) {
  auto c = load(write(one_model("azure/my-gpt")),
                {{"AZURE_API_KEY", "az"}, {"AZURE_API_BASE", "https://r.openai.azure.com"}, {"AZURE_API_VERSION", "2024-06-01"}});
  EXPECT_EQ(c->model_list[0].api_key, "az");
  EXPECT_EQ(c->model_list[0].api_base, "https://r.openai.azure.com");
  EXPECT_EQ(c->model_list[0].api_version, "2024-06-01");
  c = load(write(one_model("azure/my-gpt", "      api_base: https://x\n")));
  EXPECT_EQ(c->model_list[0].api_version, "2025-02-01-preview");  // LiteLLM's default
  c = load(write(one_model("azure/my-gpt", "      api_base: https://x\n      api_version: \"2023-05-15\"\n")),
           {{"AZURE_API_VERSION", "2024-06-01"}});
  EXPECT_EQ(c->model_list[0].api_version, "2023-05-15");
  c = load(write(one_model("openai/gpt-4o")));
  EXPECT_EQ(c->model_list[0].api_version, "");  // only Azure has one
}

TEST_F(compat, bare_model_names_follow_the_price_table) {
  auto table = [](std::string_view m) -> std::string {
    if (m == "claude-3-5-haiku-latest") {
      return "anthropic";
    }
    if (m == "mistral-large-latest") {
      return "mistral";
    }
    if (m == "doubao-pro") {
      return "volcengine";  // not a registered provider
    }
    return "";
  };
  const auto c = load(write("model_list:\n"
                            "  - model_name: a\n    litellm_params: {model: claude-3-5-haiku-latest}\n"
                            "  - model_name: b\n    litellm_params: {model: mistral-large-latest}\n"
                            "  - model_name: c\n    litellm_params: {model: my-own-model}\n"
                            "  - model_name: d\n    litellm_params: {model: doubao-pro}\n"),
                      {{"ANTHROPIC_API_KEY", "ak"}}, table);
  EXPECT_EQ(c->model_list[0].provider->name, "anthropic");
  EXPECT_EQ(c->model_list[0].upstream_model, "claude-3-5-haiku-latest");
  EXPECT_EQ(c->model_list[0].api_key, "ak");
  EXPECT_EQ(c->model_list[1].provider->name, "mistral");
  EXPECT_EQ(c->model_list[2].provider->name, "openai");
  EXPECT_EQ(c->model_list[3].provider->name, "openai");
  // Without a table every bare name is openai.
  const auto d = load(write(one_model("claude-3-5-haiku-latest")));
  EXPECT_EQ(d->model_list[0].provider->name, "openai");
}

TEST_F(compat, credential_list_fills_unset_params) {
  const auto c = load(write("credential_list:\n"
                            "  - credential_name: shared-azure\n"
                            "    credential_values:\n"
                            "      api_key: os.environ/AZ_KEY\n"
                            "      api_base: https://shared.openai.azure.com\n"
                            "      api_version: \"2024-10-21\"\n"
                            "    credential_info: {description: team resource}\n"
                            "model_list:\n"
                            "  - model_name: a\n"
                            "    litellm_params:\n"
                            "      model: azure/gpt-4o\n"
                            "      litellm_credential_name: shared-azure\n"
                            "  - model_name: b\n"
                            "    litellm_params:\n"
                            "      model: azure/gpt-4o-mini\n"
                            "      api_base: https://own.openai.azure.com\n"
                            "      litellm_credential_name: shared-azure\n"),
                      {{"AZ_KEY", "secret"}});
  EXPECT_EQ(c->model_list[0].api_key, "secret");
  EXPECT_EQ(c->model_list[0].api_base, "https://shared.openai.azure.com");
  EXPECT_EQ(c->model_list[0].api_version, "2024-10-21");
  EXPECT_EQ(c->model_list[1].api_base, "https://own.openai.azure.com");  // its own value wins
  EXPECT_EQ(c->model_list[1].api_key, "secret");
  EXPECT_TRUE(c->unsupported.empty());
}

TEST_F(compat, unknown_credential_name_is_an_error_naming_the_known_ones) {
  const auto p = write("credential_list:\n  - credential_name: one\n    credential_values: {api_key: k}\n" +
                       one_model("openai/gpt-4o", "      litellm_credential_name: two\n"));
  try {
    (void)load(p);
    FAIL() << "expected a config_error";
  } catch (const cfg::config_error& e) {
    EXPECT_EQ(e.key(), "model_list[0].litellm_params.litellm_credential_name");
    EXPECT_NE(e.detail().find("no credential named 'two' in credential_list (it has: one)"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW((void)load(write("credential_list:\n  - credential_values: {api_key: k}\n")), cfg::config_error);
}

TEST_F(compat, headers_and_extra_headers_are_both_sent) {
  const auto c = load(write(one_model("openai/gpt-4o", "      headers: {X-Team: a, X-Both: from-headers}\n"
                                                       "      extra_headers: {X-Extra: b, X-Both: from-extra}\n")));
  const auto& h = c->model_list[0].extra_headers;
  EXPECT_EQ(h.at("X-Team"), "a");
  EXPECT_EQ(h.at("X-Extra"), "b");
  EXPECT_EQ(h.at("X-Both"), "from-extra");
}

// ---- request defaults and drop lists --------------------------------------------------------

TEST_F(compat, request_params_become_defaults) {
  const auto c = load(write("model_list:\n"
                            "  - model_name: local-fast\n"
                            "    litellm_params:\n"
                            "      model: ollama_chat/llama3\n"
                            "      max_tokens: 512\n"
                            "      temperature: 0.2\n"
                            "      stop: [\"###\"]\n"
                            "      num_ctx: 8192\n"
                            "      keep_alive: 10m\n"
                            "      reasoning_effort: low\n"
                            "      response_format: {type: json_object}\n"
                            "      extra_body: {top_k: 20, temperature: 0.9}\n"
                            "      rpm: 10\n"
                            "router_settings:\n"
                            "  default_litellm_params: {top_p: 0.5, max_tokens: 99, rpm: 5}\n"));
  const auto& d = c->model_list[0].request_defaults;
  EXPECT_EQ(d.at("max_tokens"), 512);  // the deployment's own over default_litellm_params
  EXPECT_EQ(d.at("temperature"), 0.2);  // its own over extra_body's
  EXPECT_EQ(d.at("stop"), nlohmann::json::array({"###"}));
  EXPECT_EQ(d.at("num_ctx"), 8192);
  EXPECT_EQ(d.at("keep_alive"), "10m");
  EXPECT_EQ(d.at("reasoning_effort"), "low");
  EXPECT_EQ(d.at("response_format"), nlohmann::json({{"type", "json_object"}}));
  EXPECT_EQ(d.at("top_k"), 20);    // from extra_body
  EXPECT_EQ(d.at("top_p"), 0.5);   // from default_litellm_params
  EXPECT_FALSE(d.contains("rpm"));  // routing params are not request params
  EXPECT_FALSE(d.contains("model"));
}

TEST_F(compat, drop_params_as_a_list_and_additional_drop_params) {
  const auto c = load(write("model_list:\n"
                            "  - model_name: a\n"
                            "    litellm_params:\n"
                            "      model: openai/o3\n"
                            "      temperature: 1\n"
                            "      additional_drop_params: [temperature]\n"
                            "  - model_name: b\n"
                            "    litellm_params:\n"
                            "      model: openai/gpt-4o\n"
                            "      drop_params: [logit_bias]\n"
                            "litellm_settings:\n"
                            "  drop_params: [\"user\", \"seed\"]\n"));
  EXPECT_FALSE(c->litellm.drop_params);  // a list names parameters; it is not `true`
  EXPECT_EQ(c->litellm.additional_drop_params, (std::vector<std::string>{"user", "seed"}));
  EXPECT_EQ(c->model_list[0].drop_param_names, (std::vector<std::string>{"user", "seed", "temperature"}));
  EXPECT_FALSE(c->model_list[0].request_defaults.contains("temperature"));
  EXPECT_EQ(c->model_list[1].drop_param_names, (std::vector<std::string>{"user", "seed", "logit_bias"}));
  const auto d = load(write(one_model("openai/gpt-4o") + "litellm_settings:\n  drop_params: true\n"));
  EXPECT_TRUE(d->litellm.drop_params);
}

// ---- grammar -----------------------------------------------------------------------------------

TEST_F(compat, model_group_alias_lists_and_objects) {
  const auto c = load(write(one_model("openai/gpt-4o") +
                            "router_settings:\n"
                            "  model_group_alias:\n"
                            "    gpt-4: [missing-group, m]\n"
                            "    hidden: {model: m, hidden: true}\n"
                            "    plain: m\n"));
  EXPECT_TRUE(c->router.model_group_alias.at("gpt-4").is_array());
  EXPECT_THROW((void)load(write(one_model("openai/gpt-4o") + "router_settings:\n  model_group_alias: {a: [[x]]}\n")),
               cfg::config_error);
}

TEST_F(compat, litellm_settings_alias_and_allowed_fails_fall_back) {
  const auto c = load(write(one_model("openai/gpt-4o") +
                            "litellm_settings:\n  allowed_fails: 7\n  model_group_alias: {old: m}\n"));
  EXPECT_EQ(c->router.allowed_fails, 7);
  EXPECT_EQ(c->router.model_group_alias.at("old"), "m");
  const auto d = load(write(one_model("openai/gpt-4o") +
                            "router_settings:\n  allowed_fails: 2\nlitellm_settings:\n  allowed_fails: 7\n"));
  EXPECT_EQ(d->router.allowed_fails, 2);  // the router setting wins
}

TEST_F(compat, ignore_invalid_deployments_skips_with_a_warning) {
  const std::string models = "model_list:\n"
                             "  - model_name: good\n"
                             "    litellm_params: {model: groq/llama-3.1-8b-instant}\n"
                             "  - model_name: bad\n"
                             "    litellm_params: {model: watsonx/ibm/granite}\n";
  try {
    (void)load(write(models));
    FAIL() << "an unknown provider stops the start without ignore_invalid_deployments";
  } catch (const cfg::config_error& e) {
    EXPECT_NE(e.detail().find("unknown provider prefix 'watsonx/'"), std::string::npos);
    EXPECT_NE(e.detail().find("groq/"), std::string::npos) << "names the supported prefixes";
  }
  const auto c = load(write(models + "router_settings:\n  ignore_invalid_deployments: true\n"));
  ASSERT_EQ(c->model_list.size(), 1u);
  EXPECT_EQ(c->model_list[0].model_name, "good");
  const std::string all = joined(c->warnings);
  EXPECT_NE(all.find("unknown provider prefix 'watsonx/'"), std::string::npos) << all;
  EXPECT_NE(all.find("skipped (router_settings.ignore_invalid_deployments)"), std::string::npos) << all;
}

TEST_F(compat, tags_and_tag_routing_settings) {
  const auto c = load(write("model_list:\n"
                            "  - model_name: m\n    litellm_params: {model: openai/a, tags: [free, default]}\n"
                            "  - model_name: m\n    litellm_params: {model: openai/b, tags: paid}\n"
                            "router_settings:\n  enable_tag_filtering: true\n  tag_filtering_match_any: false\n"));
  EXPECT_TRUE(c->router.enable_tag_filtering);
  EXPECT_FALSE(c->router.tag_filtering_match_any);
  EXPECT_EQ(c->model_list[0].tags, (std::vector<std::string>{"free", "default"}));
  EXPECT_EQ(c->model_list[1].tags, (std::vector<std::string>{"paid"}));
}

TEST_F(compat, model_group_retry_policy_is_read_and_checked) {
  const auto c = load(write(one_model("openai/gpt-4o") +
                            "router_settings:\n  model_group_retry_policy:\n    m: {RateLimitErrorRetries: 4}\n"));
  EXPECT_EQ(c->router.model_group_retry_policy["m"]["RateLimitErrorRetries"], 4);
  EXPECT_THROW((void)load(write(one_model("openai/gpt-4o") + "router_settings:\n  model_group_retry_policy: {m: 3}\n")),
               cfg::config_error);
}

TEST_F(compat, dollar_brace_stays_literal_with_a_warning) {
  const auto c = load(write(one_model("openai/gpt-4o", "      api_key: ${OPENAI_API_KEY}\n")),
                      {{"OPENAI_API_KEY", "real"}});
  EXPECT_EQ(c->model_list[0].api_key, "${OPENAI_API_KEY}");
  const std::string all = joined(c->warnings);
  EXPECT_NE(all.find("model_list[0].litellm_params.api_key: '${...}' is not expanded"), std::string::npos) << all;
}

TEST_F(compat, wildcards_load) {
  const auto c = load(write("model_list:\n"
                            "  - model_name: \"*\"\n    litellm_params: {model: \"*\"}\n"
                            "  - model_name: \"groq/*\"\n    litellm_params: {model: \"groq/*\"}\n"));
  EXPECT_EQ(c->model_list[0].provider->name, "openai");
  EXPECT_EQ(c->model_list[1].provider->name, "groq");
  EXPECT_EQ(c->model_list[1].upstream_model, "*");
}

TEST_F(compat, azure_with_no_deployment_name_is_skipped_with_one_warning) {
  // As in LiteLLM's sample proxy config: LiteLLM starts with it (it serves only dall-e-2
  // image generations through it), so the gateway starts too, without it.
  const auto p = write("model_list:\n"
                       "  - model_name: dall-e-2\n"
                       "    litellm_params:\n"
                       "      model: azure/\n"
                       "      api_version: 2023-06-01-preview\n"
                       "      api_base: https://r.openai.azure.com/\n"
                       "      api_key: k\n"
                       "  - model_name: gpt\n"
                       "    litellm_params: {model: azure/chatgpt-v-2, api_base: https://r.openai.azure.com/, api_key: k}\n");
  const auto c = load(p);
  ASSERT_EQ(c->model_list.size(), 1u);
  EXPECT_EQ(c->model_list[0].model_name, "gpt");
  ASSERT_EQ(c->warnings.size(), 1u) << joined(c->warnings);
  EXPECT_EQ(c->warnings[0].rfind(p + ":4: model_list[0].litellm_params.model: 'azure/' names no Azure deployment", 0), 0u)
      << c->warnings[0];
  EXPECT_NE(c->warnings[0].find("this deployment is skipped"), std::string::npos) << c->warnings[0];
  // Other providers still need a model after the prefix.
  try {
    (void)load(write(one_model("openai/")));
    ADD_FAILURE() << "openai/ loaded";
  } catch (const cfg::config_error& e) {
    EXPECT_EQ(e.detail(), "no model name after the provider prefix 'openai/'");
  }
}

// ---- recognised, not supported ------------------------------------------------------------

TEST_F(compat, unsupported_keys_are_listed_once_each) {
  const auto c = load(write("model_list:\n"
                            "  - model_name: a\n    litellm_params: {model: openai/x, max_retries: 3, region_name: eu}\n"
                            "  - model_name: b\n    litellm_params: {model: openai/y, max_retries: 1}\n"
                            "litellm_settings:\n  success_callback: [prometheus]\n  modify_params: true\n"
                            "general_settings:\n  use_x_forwarded_for: true\n"
                            "guardrails:\n  - guardrail_name: g\n"));
  std::vector<std::string> keys;
  for (const auto& u : c->unsupported) {
    keys.push_back(u.key);
    EXPECT_FALSE(u.note.empty()) << u.key;
    EXPECT_NE(u.origin.find("c.yaml:"), std::string::npos) << u.origin;
  }
  const std::vector<std::string> expected{"guardrails",
                                          "model_list[].litellm_params.max_retries",
                                          "model_list[].litellm_params.region_name",
                                          "litellm_settings.modify_params",
                                          "general_settings.use_x_forwarded_for"};
  std::vector<std::string> sorted_keys = keys, sorted_expected = expected;
  std::sort(sorted_keys.begin(), sorted_keys.end());
  std::sort(sorted_expected.begin(), sorted_expected.end());
  EXPECT_EQ(sorted_keys, sorted_expected) << joined(keys);
  const auto summary = cfg::unsupported_summary(*c);
  EXPECT_EQ(summary.rfind("5 config key(s) recognised but not supported: ", 0), 0u) << summary;
  EXPECT_NE(summary.find("general_settings.use_x_forwarded_for (ignored"), std::string::npos) << summary;
}

TEST_F(compat, credentials_that_are_not_read_are_reported) {
  // docs/bedrock.md and docs/providers.md say these are not read: a deployment that sets
  // them must hear so, not be signed differently than its author expects in silence.
  const auto c = load(write("model_list:\n"
                            "  - model_name: b\n"
                            "    litellm_params:\n"
                            "      model: bedrock/anthropic.claude-3-haiku-20240307-v1:0\n"
                            "      aws_role_name: arn:aws:iam::123456789012:role/r\n"
                            "      aws_session_name: s\n"
                            "      aws_profile_name: p\n"
                            "  - model_name: a\n"
                            "    litellm_params:\n"
                            "      model: azure/d\n"
                            "      api_base: https://r.openai.azure.com\n"
                            "      azure_username: u@example.com\n"
                            "      azure_password: pw-not-logged\n"));
  std::vector<std::string> keys;
  for (const auto& u : c->unsupported) {
    keys.push_back(u.key);
    EXPECT_EQ(u.note.rfind("ignored: ", 0), 0u) << u.key << ": " << u.note;
    EXPECT_EQ(u.note.find("pw-not-logged"), std::string::npos);
  }
  const std::vector<std::string> expected{
      "model_list[].litellm_params.aws_role_name", "model_list[].litellm_params.aws_session_name",
      "model_list[].litellm_params.aws_profile_name", "model_list[].litellm_params.azure_username",
      "model_list[].litellm_params.azure_password"};
  EXPECT_EQ(keys, expected) << joined(keys);
  EXPECT_EQ(c->unsupported[0].origin, dir_.string() + "/c.yaml:5");
  const auto summary = cfg::unsupported_summary(*c);
  EXPECT_EQ(summary.rfind("5 config key(s) recognised but not supported: ", 0), 0u) << summary;
}

TEST_F(compat, a_litellm_routing_strategy_not_implemented_is_reported_as_unsupported) {
  for (const std::string strategy : {"cost-based-routing", "provider-budget-routing"}) {
    const auto c = load(write(one_model("openai/x") + "router_settings:\n  routing_strategy: " + strategy + "\n"));
    ASSERT_EQ(c->unsupported.size(), 1u) << strategy;
    EXPECT_EQ(c->unsupported[0].key, "router_settings.routing_strategy");
    EXPECT_EQ(c->unsupported[0].note, "'" + strategy + "' is not implemented; using simple-shuffle");
    EXPECT_EQ(c->unsupported[0].origin, dir_.string() + "/c.yaml:6");
    EXPECT_TRUE(c->warnings.empty()) << joined(c->warnings);
  }
  for (const std::string strategy : {"simple-shuffle", "least-busy", "latency-based-routing", "usage-based-routing",
                                     "usage-based-routing-v2"}) {
    const auto c = load(write(one_model("openai/x") + "router_settings:\n  routing_strategy: " + strategy + "\n"));
    EXPECT_TRUE(c->unsupported.empty()) << strategy;
    EXPECT_TRUE(c->warnings.empty()) << joined(c->warnings);
  }
}

TEST_F(compat, unserved_callbacks_are_reported_once_and_not_handed_to_the_gateway) {
  // The gateway starts a sender for each name left in litellm.raw and warns about each
  // one it cannot start: a name reported here must not reach it, or it is named twice.
  const auto c = load(write(one_model("openai/x") +
                            "litellm_settings:\n  success_callback: [langfuse, s3, my_api]\n"
                            "  failure_callback: sentry\n  callbacks: [otel, datadog]\n"
                            "callback_settings:\n  my_api: {callback_type: generic_api, endpoint: http://h/logs}\n"));
  std::vector<std::string> keys;
  for (const auto& u : c->unsupported) {
    keys.push_back(u.key + ": " + u.note);
  }
  const std::string served = "ignored: the callbacks served are prometheus, otel, langfuse, generic_api and webhook; ";
  EXPECT_EQ(keys, (std::vector<std::string>{"litellm_settings.callbacks: " + served + "not sent to datadog",
                                            "litellm_settings.success_callback: " + served + "not sent to s3",
                                            "litellm_settings.failure_callback: " + served + "not sent to sentry"}))
      << joined(keys);
  EXPECT_EQ(c->litellm.raw["success_callback"], nlohmann::json::parse(R"(["langfuse","my_api"])"));
  EXPECT_EQ(c->litellm.raw["callbacks"], nlohmann::json::parse(R"(["otel"])"));
  EXPECT_FALSE(c->litellm.raw.contains("failure_callback"));
}

TEST_F(compat, off_flags_and_served_callbacks_are_not_reported) {
  const auto c = load(write(one_model("openai/x") +
                            "litellm_settings:\n  set_verbose: false\n  callbacks: [prometheus]\n"
                            "  success_callback: [prometheus, langfuse, datadog]\n"
                            "general_settings:\n  enable_jwt_auth: false\n  enforce_user_param: true\n"));
  std::vector<std::string> keys;
  for (const auto& u : c->unsupported) {
    keys.push_back(u.key + ": " + u.note);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "litellm_settings.success_callback: ignored: the callbacks served are prometheus, otel, langfuse, "
                      "generic_api and webhook; not sent to datadog"}))
      << joined(keys);
}
