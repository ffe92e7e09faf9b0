// load_config_blocking: files -> merged tree -> environment -> os.environ/ -> typed structs.
//
// Steps (each may throw config_error with the file:line of the offending value):
//  1. Parse the file and, depth first, its `include`s (paths relative to the including
//     file's directory; cycles are errors). model_list entries: the file's own first, then
//     each include's in order. Mapping sections (router_settings, litellm_settings,
//     general_settings, environment_variables) merge one level deep, key by key: a later
//     include overrides an earlier one and the including file overrides its includes.
//  2. environment_variables: resolved, kept as an overlay seen by every later lookup, and
//     exported with setenv() (unless load_options says not to).
//  3. os.environ/VAR is replaced in every string of model_list and the three *_settings
//     sections, at any depth. Ignored sections (guardrails, ...) are not resolved.
//  4. Unknown keys -> warnings; documented keys are type-checked; typed fields filled.
//  5. Env fallbacks (master key, database URL, Redis).
#include "switchyard/config/config.hpp"
#include "switchyard/cache/controls.hpp"
#include "switchyard/core/route_groups.hpp"

#include "known_keys.hpp"
#include "redis_url.hpp"
#include "values.hpp"
#include "yaml_tree.hpp"

#include "switchyard/core/ids.hpp"

#include "../upstream/url.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <utility>

namespace switchyard::config {

namespace {

namespace fs = std::filesystem;
using detail::check_type;
using detail::describe;
using detail::fail;
using detail::map_entry;
using detail::node;
using detail::read_bool;
using detail::read_int;
using detail::read_non_negative;
using detail::read_string;
using detail::section;
using detail::to_json;

constexpr const char* env_prefix = "os.environ/";
constexpr const char* env_file = "environment";  // the "file" of values read from the process env

// "<file>:<line>: <key>: <message>" (line 0: no line), as config_error::what().
std::string format_message(const std::string& file, int line, const std::string& key, const std::string& message) {
  return config_error(file, line, key, message).what();
}

std::string origin_of(const node& n) { return (n.file ? *n.file : std::string()) + ":" + std::to_string(n.line); }

const map_entry* find_entry(const node& m, std::string_view key) {
  for (const auto& e : m.entries) {
    if (e.key == key) {
      return &e;
    }
  }
  return nullptr;
}

// One model_list entry and where it came from.
struct model_ref {
  node entry;
  std::string path;  // "model_list[i]", i counting within its own file
};

// The sections of one file after its includes were merged in.
struct merged_sections {
  std::vector<model_ref> models;
  node router, litellm, general, env, callbacks;  // null or mapping (callbacks: callback_settings)
  std::vector<node> credentials;                  // credential_list entries, the file's own first
};

// litellm_params that are request parameters: sent upstream when the request does not
// set them (deployment::request_defaults). LiteLLM passes every litellm_param it does not
// use itself to the provider call, under the client's own arguments.
constexpr std::string_view request_param_keys[] = {
    "temperature", "top_p", "n", "max_tokens", "max_completion_tokens", "stop", "presence_penalty",
    "frequency_penalty", "logit_bias", "user", "seed", "response_format", "tools", "tool_choice",
    "parallel_tool_calls", "reasoning_effort", "logprobs", "top_logprobs", "modalities", "audio", "prediction",
    "service_tier", "web_search_options", "thinking", "top_k",
    // Ollama (top-level keep_alive/format; the others go into `options`)
    "keep_alive", "format", "num_ctx", "num_predict", "repeat_penalty", "repeat_last_n", "mirostat",
    "mirostat_eta", "mirostat_tau", "num_gpu", "num_thread", "tfs_z",
};

bool is_request_param(std::string_view key) {
  for (auto k : request_param_keys) {
    if (k == key) {
      return true;
    }
  }
  return false;
}

// "model_list[3].litellm_params.x" -> "model_list[].litellm_params.x": one report per key.
std::string fold_indexes(const std::string& path) {
  std::string out;
  out.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    out += path[i];
    if (path[i] == '[') {
      while (i + 1 < path.size() && path[i + 1] >= '0' && path[i + 1] <= '9') {
        ++i;
      }
    }
  }
  return out;
}

// Comma-separated names ("A,B") in order.
std::vector<std::string> split_names(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    const auto comma = list.find(',');
    auto name = list.substr(0, comma);
    if (!name.empty()) {
      out.emplace_back(name);
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
  return out;
}

// LiteLLM's default Azure API version (litellm.AZURE_DEFAULT_API_VERSION), used when
// neither api_version nor AZURE_API_VERSION is set.
constexpr const char* azure_default_api_version = "2025-02-01-preview";

// base <- over, one level deep: over's keys replace base's (keeping base's order) or append.
void merge_mapping(node& base, const node& over) {
  if (!over.is_mapping()) {
    return;
  }
  if (!base.is_mapping()) {
    base = over;
    return;
  }
  for (const auto& e : over.entries) {
    bool replaced = false;
    for (auto& b : base.entries) {
      if (b.key == e.key) {
        b = e;
        replaced = true;
        break;
      }
    }
    if (!replaced) {
      base.entries.push_back(e);
    }
  }
}

// A deployment the loader leaves out with a warning rather than refusing the config.
struct deployment_skipped : config_error {
  using config_error::config_error;
};

// A value found in the environment: from the config's environment_variables (with its
// location) or from the process environment.
struct env_value {
  std::string value;
  const node* where = nullptr;  // environment_variables entry, or nullptr: process env
};

class loader {
 public:
  explicit loader(const load_options& options)
      : base_env_(options.env ? options.env : process_env()),
        export_(options.export_environment),
        bare_model_provider_(options.bare_model_provider),
        db_models_(options.db_models),
        strict_db_model_(options.strict_db_model) {}

  std::shared_ptr<const config> run(const std::string& path) {
    cfg_.path = path;
    stack_.push_back(canonical(path));
    stack_display_.push_back(path);
    merged_sections m = load_file(path);

    apply_environment(m.env);

    // The deployment id hash uses litellm_params as written (before os.environ/): ids
    // stay stable when a secret rotates, and secrets never feed them.
    std::vector<nlohmann::json> params_as_written;
    for (const auto& r : m.models) {
      const node* lp = r.entry.is_mapping() ? r.entry.find("litellm_params") : nullptr;
      params_as_written.push_back(lp != nullptr && lp->is_mapping() ? to_json(*lp) : nlohmann::json::object());
    }

    // ${VAR} is not expanded (LiteLLM does not either): said once per value, as written.
    for (const auto& r : m.models) {
      warn_dollar_vars(r.entry, r.path);
    }
    warn_dollar_vars(m.router, "router_settings");
    warn_dollar_vars(m.litellm, "litellm_settings");
    warn_dollar_vars(m.general, "general_settings");
    for (std::size_t i = 0; i < m.credentials.size(); ++i) {
      warn_dollar_vars(m.credentials[i], "credential_list[" + std::to_string(i) + "]");
    }

    for (auto& r : m.models) {
      resolve_env(r.entry, r.path);
    }
    resolve_env(m.router, "router_settings");
    resolve_env(m.litellm, "litellm_settings");
    resolve_env(m.general, "general_settings");
    for (std::size_t i = 0; i < m.credentials.size(); ++i) {
      resolve_env(m.credentials[i], "credential_list[" + std::to_string(i) + "]");
    }
    resolve_env(m.callbacks, "callback_settings");
    if (m.callbacks.is_mapping()) {
      cfg_.callback_settings = to_json(m.callbacks);
    }

    parse_credentials(m.credentials);
    // The settings first: ignore_invalid_deployments, drop lists and default params
    // apply while the deployments are read.
    parse_router(m.router);
    parse_litellm(m.litellm);
    parse_models(m.models, params_as_written);
    parse_db_models();
    parse_general(m.general);
    apply_settings_fallbacks(m.litellm);
    resolve_redis(m.router, m.litellm);
    resolve_cache(m.litellm);
    return std::make_shared<const config>(std::move(cfg_));
  }

 private:
  // ---- files and includes ---------------------------------------------------------------

  static std::string canonical(const std::string& p) {
    std::error_code ec;
    auto c = fs::weakly_canonical(fs::path(p), ec);
    return ec ? fs::path(p).lexically_normal().string() : c.string();
  }

  merged_sections load_file(const std::string& display) {
    std::string bytes;
    node root = detail::parse_yaml_file_blocking(display, cfg_.warnings, &bytes);
    cfg_.files.push_back(display);
    cfg_.loaded_bytes += display;
    cfg_.loaded_bytes += '\0';
    cfg_.loaded_bytes += bytes;
    if (root.is_null()) {
      // Empty, comments only, or a bare `---`: LiteLLM refuses it ("Config cannot be None or
      // Empty.", and an empty include fails its merge). Accepting it would start a gateway,
      // or turn a reload of a truncated file into one, with no models at all.
      throw config_error(display, 0, "config",
                         "the file is empty (no YAML content, only comments or document markers); a config needs "
                         "at least one section such as model_list");
    }
    if (!root.is_mapping()) {
      fail(root, "config",
           "the top level must be a mapping of sections (model_list, router_settings, litellm_settings, "
           "general_settings, ...), got " +
               describe(root));
    }

    merged_sections own;
    const map_entry* include = nullptr;
    for (const auto& e : root.entries) {
      if (e.key == "callback_settings") {
        if (e.value.is_mapping()) {
          own.callbacks = e.value;
        }
        continue;
      }
      if (auto note = detail::ignored_top_level_note(e.key); !note.empty()) {
        report_unsupported(e.key, std::string(note), *e.value.file, e.key_line);
        continue;
      }
      const auto* spec = detail::find_key(section::top_level, e.key);
      if (spec == nullptr) {
        warn(*e.value.file, e.key_line, e.key, "unknown top-level key; ignored");
        continue;
      }
      check_type(e.value, spec->type, e.key);
      if (e.key == "model_list") {
        for (std::size_t i = 0; i < e.value.items.size(); ++i) {
          own.models.push_back({e.value.items[i], "model_list[" + std::to_string(i) + "]"});
        }
      } else if (e.key == "router_settings") {
        own.router = e.value;
      } else if (e.key == "litellm_settings") {
        own.litellm = e.value;
      } else if (e.key == "general_settings") {
        own.general = e.value;
      } else if (e.key == "environment_variables") {
        own.env = e.value;
      } else if (e.key == "credential_list") {
        own.credentials = e.value.items;
      } else if (e.key == "include") {
        include = &e;
      }
    }
    if (include == nullptr) {
      return own;
    }

    merged_sections acc;
    auto include_one = [&](const node& item, const std::string& key) {
      if (!item.is_scalar() || item.text.empty()) {
        fail(item, key, "expected the path of a YAML file, got " + describe(item));
      }
      const fs::path rel(item.text);
      const std::string sub = rel.is_absolute()
                                  ? rel.lexically_normal().string()
                                  : (fs::path(display).parent_path() / rel).lexically_normal().string();
      const std::string canon = canonical(sub);
      for (const auto& s : stack_) {
        if (s == canon) {
          std::string chain;
          for (const auto& d : stack_display_) {
            chain += d + " -> ";
          }
          fail(item, key, "include cycle: " + chain + sub);
        }
      }
      stack_.push_back(canon);
      stack_display_.push_back(sub);
      merged_sections got;
      try {
        got = load_file(sub);
      } catch (const config_error& e) {
        if (e.line() == 0 && e.key() == "config" && e.file() == sub) {
          fail(item, key, "cannot include '" + item.text + "' (" + sub + "): " + e.detail());
        }
        throw;
      }
      stack_.pop_back();
      stack_display_.pop_back();
      for (auto& mr : got.models) {
        acc.models.push_back(std::move(mr));
      }
      for (auto& c : got.credentials) {
        acc.credentials.push_back(std::move(c));
      }
      merge_mapping(acc.router, got.router);
      merge_mapping(acc.litellm, got.litellm);
      merge_mapping(acc.general, got.general);
      merge_mapping(acc.env, got.env);
      merge_mapping(acc.callbacks, got.callbacks);
    };
    if (include->value.is_sequence()) {
      for (std::size_t i = 0; i < include->value.items.size(); ++i) {
        include_one(include->value.items[i], "include[" + std::to_string(i) + "]");
      }
    } else if (include->value.is_scalar()) {
      include_one(include->value, "include");
    }

    // The including file overrides its includes; its own models come first.
    merged_sections out;
    out.models = std::move(own.models);
    for (auto& mr : acc.models) {
      out.models.push_back(std::move(mr));
    }
    out.credentials = std::move(own.credentials);
    for (auto& c : acc.credentials) {
      out.credentials.push_back(std::move(c));
    }
    out.router = std::move(acc.router);
    out.litellm = std::move(acc.litellm);
    out.general = std::move(acc.general);
    out.env = std::move(acc.env);
    out.callbacks = std::move(acc.callbacks);
    merge_mapping(out.callbacks, own.callbacks);
    merge_mapping(out.router, own.router);
    merge_mapping(out.litellm, own.litellm);
    merge_mapping(out.general, own.general);
    merge_mapping(out.env, own.env);
    return out;
  }

  // ---- environment ----------------------------------------------------------------------

  std::optional<env_value> lookup(const std::string& name) const {
    if (auto it = overlay_.find(name); it != overlay_.end()) {
      return it->second;
    }
    if (auto v = base_env_(name)) {
      return env_value{*v, nullptr};
    }
    return std::nullopt;
  }

  void resolve_scalar(node& n, const std::string& path) const {
    if (n.text.rfind(env_prefix, 0) != 0) {
      return;
    }
    const std::string var = n.text.substr(std::strlen(env_prefix));
    if (var.empty()) {
      fail(n, path, "os.environ/ needs a variable name, e.g. os.environ/OPENAI_API_KEY");
    }
    auto v = lookup(var);
    if (!v) {
      fail(n, path, "environment variable " + var + " is not set (the value is os.environ/" + var + ")");
    }
    if (!detail::is_valid_utf8(v->value)) {
      fail(n, path, "the value of environment variable " + var + " is not valid UTF-8");
    }
    n.text = v->value;
    n.env_var = var;
  }

  void resolve_env(node& n, const std::string& path) const {
    switch (n.type) {
      case node::kind::null:
        return;
      case node::kind::scalar:
        resolve_scalar(n, path);
        return;
      case node::kind::sequence:
        for (std::size_t i = 0; i < n.items.size(); ++i) {
          resolve_env(n.items[i], path + "[" + std::to_string(i) + "]");
        }
        return;
      case node::kind::mapping:
        for (auto& e : n.entries) {
          resolve_env(e.value, path + "." + e.key);
        }
        return;
    }
  }

  void apply_environment(const node& env) {
    if (!env.is_mapping()) {
      return;
    }
    env_nodes_ = std::make_unique<node>(env);  // stable addresses for env_value::where
    for (auto& e : env_nodes_->entries) {
      const std::string path = "environment_variables." + e.key;
      if (e.key.empty() || e.key.find('=') != std::string::npos) {
        fail(e.value, path, "not a valid environment variable name");
      }
      if (e.value.is_null()) {
        warn(*e.value.file, e.key_line, path, "no value; not exported");
        continue;
      }
      if (!e.value.is_scalar()) {
        fail(e.value, path, "expected a string, got " + describe(e.value));
      }
      resolve_scalar(e.value, path);
      overlay_[e.key] = env_value{e.value.text, &e.value};
      cfg_.environment_variables[e.key] = e.value.text;
      if (export_ && ::setenv(e.key.c_str(), e.value.text.c_str(), 1) != 0) {
        fail(e.value, path, std::string("setenv failed: ") + std::strerror(errno));
      }
    }
  }

  // Where an env-derived value came from, for messages.
  struct env_origin {
    std::string file;
    int line = 0;
    std::string key;
  };
  static env_origin origin_of_env(const std::string& name, const env_value& v) {
    if (v.where != nullptr) {
      return {*v.where->file, v.where->line, "environment_variables." + name};
    }
    return {env_file, 0, name};
  }

  // ---- warnings and section checks --------------------------------------------------------

  void warn(const std::string& file, int line, const std::string& key, const std::string& message) {
    cfg_.warnings.push_back(format_message(file, line, key, message));
  }

  // A retry count above max_num_retries: used as the cap, said once at start.
  void warn_retries_over_cap(const node* n, std::optional<int> value, const std::string& path) {
    if (n != nullptr && value && *value > ::switchyard::config::max_num_retries && n->file) {
      warn(*n->file, n->line, path,
           std::to_string(*value) + " retries asked; at most " + std::to_string(::switchyard::config::max_num_retries) +
               " are made (each retry is one more provider call)");
    }
  }

  // Unknown keys -> one warning each; documented keys -> type-checked.
  void check_section(const node& m, section s, const std::string& prefix) {
    const auto& spec = detail::spec_of(s);
    for (const auto& e : m.entries) {
      const std::string path = prefix + "." + e.key;
      const auto* k = detail::find_key(s, e.key);
      if (k == nullptr) {
        if (!spec.open) {
          warn(*e.value.file, e.key_line, path, "unknown key; ignored");
        }
        continue;
      }
      check_type(e.value, k->type, path);
      // A flag set to false asks for nothing (LiteLLM's flags default to off): not reported.
      const bool off_flag = k->type == detail::value_type::boolean && read_bool(&e.value, path) == false;
      if (!k->unsupported.empty() && !e.value.is_null() && !off_flag) {
        report_unsupported(path, std::string(k->unsupported), *e.value.file, e.key_line);
      }
    }
  }

  // Whether litellm_settings' callbacks may name it: what the gateway starts a sender for
  // (pipeline::make_callback_target: the name, or callback_settings.<name>.callback_type),
  // and prometheus. callback_settings must be read already.
  bool callback_is_served(const std::string& name) const {
    if (name == "prometheus") {
      return true;
    }
    std::string kind = name;
    if (const auto& cs = cfg_.callback_settings; cs.is_object()) {
      if (auto it = cs.find(name); it != cs.end() && it->is_object()) {
        if (auto t = it->find("callback_type"); t != it->end() && t->is_string()) {
          kind = t->get<std::string>();
        }
      }
    }
    return kind == "otel" || kind == "langfuse" || kind == "generic_api" || kind == "webhook";
  }

  void report_unsupported(const std::string& path, std::string note, const std::string& file, int line) {
    const std::string key = fold_indexes(path);
    for (const auto& u : cfg_.unsupported) {
      if (u.key == key) {
        return;
      }
    }
    cfg_.unsupported.push_back({key, std::move(note), file + ":" + std::to_string(line)});
  }

  // A string value holding ${NAME}: kept as written (as LiteLLM does), with a warning,
  // since the author probably meant os.environ/NAME.
  void warn_dollar_vars(const node& n, const std::string& path) {
    switch (n.type) {
      case node::kind::null:
        return;
      case node::kind::scalar: {
        const auto open = n.text.find("${");
        if (open != std::string::npos && n.text.find('}', open) != std::string::npos) {
          warn(n.file ? *n.file : cfg_.path, n.line, path,
               "'${...}' is not expanded (LiteLLM does not expand it either): the value is used as written; "
               "write os.environ/NAME to read an environment variable");
        }
        return;
      }
      case node::kind::sequence:
        for (std::size_t i = 0; i < n.items.size(); ++i) {
          warn_dollar_vars(n.items[i], path + "[" + std::to_string(i) + "]");
        }
        return;
      case node::kind::mapping:
        for (const auto& e : n.entries) {
          warn_dollar_vars(e.value, path + "." + e.key);
        }
        return;
    }
  }

  // ---- credential_list --------------------------------------------------------------------

  // [{credential_name, credential_values: {api_key, api_base, ...}, credential_info}]:
  // a deployment naming one in litellm_params.litellm_credential_name takes its values
  // for the params it does not set itself.
  void parse_credentials(const std::vector<node>& list) {
    for (std::size_t i = 0; i < list.size(); ++i) {
      const node& c = list[i];
      const std::string p = "credential_list[" + std::to_string(i) + "]";
      if (!c.is_mapping()) {
        fail(c, p, "expected a mapping with credential_name and credential_values, got " + describe(c));
      }
      for (const auto& e : c.entries) {
        if (e.key != "credential_name" && e.key != "credential_values" && e.key != "credential_info") {
          warn(*e.value.file, e.key_line, p + "." + e.key, "unknown key; ignored");
        }
      }
      auto name = read_string(c.find("credential_name"), p + ".credential_name");
      if (!name || name->empty()) {
        fail(c, p + ".credential_name", "a credential needs credential_name");
      }
      const node* values = c.find("credential_values");
      if (values == nullptr || !values->is_mapping()) {
        fail(values != nullptr ? *values : c, p + ".credential_values",
             "a credential needs credential_values (a mapping such as api_key, api_base)");
      }
      if (const node* info = c.find("credential_info"); info != nullptr && !info->is_null() && !info->is_mapping()) {
        fail(*info, p + ".credential_info", "expected a mapping, got " + describe(*info));
      }
      if (!credentials_.emplace(*name, *values).second) {
        fail(*c.find("credential_name"), p + ".credential_name", "duplicate credential_name '" + *name + "'");
      }
    }
  }

  // Keys documented as strings are JSON strings in the raw sections even when written as
  // plain numbers or booleans (`api_version: 2024`, `litellm_key_header_name: 123`), so
  // later stages can read them with json::value(key, std::string{}) without a type error.
  static void stringify_documented(nlohmann::json& obj, const node& m, section s) {
    for (const auto& e : m.entries) {
      const auto* k = detail::find_key(s, e.key);
      if (k != nullptr && k->type == detail::value_type::string && e.value.is_scalar()) {
        obj[e.key] = e.value.text;
      }
    }
  }

  // ---- model_list -----------------------------------------------------------------------

  void parse_models(const std::vector<model_ref>& models, const std::vector<nlohmann::json>& params_as_written) {
    std::map<std::string, std::string> explicit_ids;   // id -> origin
    std::map<std::string, int> generated_ids;          // hash -> times seen
    std::map<std::string, std::string> generated_origin;
    for (std::size_t i = 0; i < models.size(); ++i) {
      deployment d;
      try {
        d = parse_deployment(models[i]);
      } catch (const deployment_skipped& e) {
        warn(e.file(), e.line(), e.key(), e.detail());
        continue;
      } catch (const config_error& e) {
        if (!cfg_.router.ignore_invalid_deployments) {
          throw;
        }
        warn(e.file(), e.line(), e.key(),
             e.detail() + "; this deployment is skipped (router_settings.ignore_invalid_deployments)");
        continue;
      }
      const node* mi = models[i].entry.find("model_info");
      const node* id_node = mi != nullptr && mi->is_mapping() ? mi->find("id") : nullptr;
      if (!d.id.empty()) {
        auto [it, inserted] = explicit_ids.emplace(d.id, d.origin);
        if (!inserted) {
          fail(*id_node, models[i].path + ".model_info.id",
               "duplicate deployment id '" + d.id + "' (also used by the entry at " + it->second + ")");
        }
      } else {
        // sha256 over model_name, a newline, and litellm_params as written, dumped as
        // compact JSON with sorted keys (nlohmann's object order): deterministic.
        d.id = core::sha256_hex(d.model_name + "\n" + params_as_written[i].dump());
        const int seen = ++generated_ids[d.id];
        if (seen == 1) {
          generated_origin[d.id] = d.origin;
        } else {
          warn(*models[i].entry.file, models[i].entry.line, models[i].path,
               "same model_name and litellm_params as the entry at " + generated_origin[d.id] +
                   "; its generated id gets the suffix -" + std::to_string(seen));
          d.id += "-" + std::to_string(seen);
        }
      }
      cfg_.model_list.push_back(std::move(d));
    }
  }

  // A JSON value as a tree node of the given origin: strings are quoted scalars (never
  // retyped), other scalars keep their JSON text.
  static node node_of(const nlohmann::json& j, const std::shared_ptr<const std::string>& file) {
    node n;
    n.file = file;
    if (j.is_null()) {
      return n;
    }
    if (j.is_object()) {
      n.type = node::kind::mapping;
      for (const auto& [k, v] : j.items()) {
        n.entries.push_back(map_entry{k, 0, node_of(v, file)});
      }
    } else if (j.is_array()) {
      n.type = node::kind::sequence;
      for (const auto& v : j) {
        n.items.push_back(node_of(v, file));
      }
    } else {
      n.type = node::kind::scalar;
      n.quoted = j.is_string();
      n.text = j.is_string() ? j.get<std::string>() : j.dump();
    }
    return n;
  }

  // The deployments kept in Postgres, after model_list: the same checks as a model_list
  // entry (os.environ/ resolved, provider, params, credentials, default params). A bad one
  // is skipped with a warning, never a failed load (it was checked when it was written, but
  // the environment or the code may have changed since); the config's own deployment wins
  // an id both use.
  void parse_db_models() {
    std::set<std::string> ids;
    for (const auto& d : cfg_.model_list) {
      ids.insert(d.id);
    }
    static const auto db_file = std::make_shared<const std::string>("database");
    for (const auto& m : db_models_) {
      const std::string path = "db_model[" + m.id + "]";
      const bool strict = !strict_db_model_.empty() && m.id == strict_db_model_;
      try {
        if (m.id.empty()) {
          throw config_error("database", 0, path, "a stored model needs a model_id");
        }
        nlohmann::json entry = {{"model_name", m.model_name}, {"litellm_params", m.litellm_params}};
        if (m.model_info.is_object()) {
          nlohmann::json info = m.model_info;
          info.erase("id");  // the row's model_id is the id
          info.erase("db_model");
          entry["model_info"] = std::move(info);
        }
        model_ref r{node_of(entry, db_file), path};
        resolve_env(r.entry, path);
        deployment d = parse_deployment(r);
        d.id = m.id;
        d.origin = "database:" + m.id;
        d.model_info["id"] = m.id;
        d.model_info["db_model"] = true;
        if (ids.contains(m.id)) {
          throw config_error("database", 0, path + ".model_info.id",
                             "a model_list deployment of the config file already has the id '" + m.id +
                                 "' (the config file wins)");
        }
        ids.insert(m.id);
        cfg_.model_list.push_back(std::move(d));
      } catch (const config_error& e) {
        if (strict) {
          throw;
        }
        warn(e.file(), e.line(), e.key(), e.detail() + "; this stored model is skipped");
      } catch (const std::exception& e) {
        if (strict) {
          throw config_error("database", 0, path, e.what());
        }
        warn("database", 0, path, std::string(e.what()) + "; this stored model is skipped");
      }
    }
  }

  deployment parse_deployment(const model_ref& r) {
    const node& e = r.entry;
    if (!e.is_mapping()) {
      fail(e, r.path, "expected a mapping with model_name and litellm_params, got " + describe(e));
    }
    check_section(e, section::model_entry, r.path);

    deployment d;
    d.origin = origin_of(e);
    const node* name = e.find("model_name");
    auto model_name = read_string(name, r.path + ".model_name");
    if (!model_name) {
      fail(e, r.path + ".model_name", "missing model_name (the name clients send as `model`)");
    }
    if (model_name->empty()) {
      fail(*name, r.path + ".model_name", "model_name must not be empty");
    }
    d.model_name = *model_name;

    const std::string lp_path = r.path + ".litellm_params";
    const map_entry* lpe = find_entry(e, "litellm_params");
    if (lpe == nullptr || lpe->value.is_null()) {
      if (lpe != nullptr) {
        throw config_error(*lpe->value.file, lpe->key_line, lp_path, "litellm_params is empty; it needs at least `model`");
      }
      fail(e, lp_path, "missing litellm_params (a mapping with at least `model`, e.g. model: openai/gpt-4o)");
    }
    check_type(lpe->value, detail::value_type::mapping, lp_path);
    const node lp = with_credential(lpe->value, lp_path);
    check_section(lp, section::litellm_params, lp_path);

    const node* model = lp.find("model");
    auto model_text = read_string(model, lp_path + ".model");
    if (!model_text || model_text->empty()) {
      if (model != nullptr && !model->is_null()) {
        fail(*model, lp_path + ".model", "litellm_params.model must not be empty");
      }
      throw config_error(*lp.file, lpe->key_line, lp_path + ".model",
                         "missing litellm_params.model (e.g. openai/gpt-4o, azure/<deployment>, ollama_chat/llama3)");
    }
    d.model = *model_text;
    parse_provider(d, lp, lp_path);

    d.api_base = read_string(lp.find("api_base"), lp_path + ".api_base").value_or("");
    check_api_base(lp.find("api_base"), lp_path + ".api_base");
    if (d.api_base.empty()) {
      d.api_base = read_string(lp.find("base_url"), lp_path + ".base_url").value_or("");
      check_api_base(lp.find("base_url"), lp_path + ".base_url");
    }
    if (d.api_base.empty()) {
      // As LiteLLM: the provider's base variable(s) before its default.
      for (const auto& var : split_names(d.provider->api_base_env)) {
        if (auto v = lookup(var); v && !v->value.empty()) {
          d.api_base = v->value;
          break;
        }
      }
    }
    d.api_key = read_string(lp.find("api_key"), lp_path + ".api_key").value_or("");
    if (d.api_key.empty()) {
      // As LiteLLM: without api_key, the key comes from the provider's variable(s)
      // (environment_variables first, then the process environment), when set.
      auto vars = split_names(d.provider->api_key_env);
      for (auto& alt : split_names(d.provider->api_key_env_alt)) {
        vars.push_back(std::move(alt));
      }
      for (const auto& var : vars) {
        if (auto v = lookup(var); v && !v->value.empty()) {
          d.api_key = v->value;
          break;
        }
      }
    }
    d.api_version = read_string(lp.find("api_version"), lp_path + ".api_version").value_or("");
    if (d.api_version.empty() && d.provider->wire == wire_format::azure) {
      auto v = lookup("AZURE_API_VERSION");
      d.api_version = v && !v->value.empty() ? v->value : azure_default_api_version;
    }
    d.organization = read_string(lp.find("organization"), lp_path + ".organization").value_or("");
    // headers and extra_headers are both sent upstream; extra_headers wins on a clash.
    for (const char* key : {"headers", "extra_headers"}) {
      const node* eh = lp.find(key);
      if (eh == nullptr || !eh->is_mapping()) {
        continue;
      }
      for (const auto& h : eh->entries) {
        const std::string hp = lp_path + "." + key + "." + h.key;
        auto v = read_string(&h.value, hp);
        if (!v) {
          throw config_error(*h.value.file, h.key_line, hp, "a header needs a value");
        }
        d.extra_headers[h.key] = *v;
      }
    }
    d.timeout = read_non_negative(lp.find("timeout"), lp_path + ".timeout");
    d.stream_timeout = read_non_negative(lp.find("stream_timeout"), lp_path + ".stream_timeout");
    if (const node* mr = lp.find("mock_response"); mr != nullptr && !mr->is_null()) {
      d.mock_response = read_string(mr, lp_path + ".mock_response");
    }
    d.rpm = read_non_negative(lp.find("rpm"), lp_path + ".rpm");
    d.tpm = read_non_negative(lp.find("tpm"), lp_path + ".tpm");
    d.weight = read_non_negative(lp.find("weight"), lp_path + ".weight");
    d.order = read_int(lp.find("order"), lp_path + ".order", 0, INT_MAX);
    d.max_parallel_requests = read_int(lp.find("max_parallel_requests"), lp_path + ".max_parallel_requests", 0, INT_MAX);
    d.cooldown_time = read_non_negative(lp.find("cooldown_time"), lp_path + ".cooldown_time");
    d.ssl_verify = read_ssl_verify(lp.find("ssl_verify"), lp_path + ".ssl_verify");
    d.litellm_params = to_json(lp);
    stringify_documented(d.litellm_params, lp, section::litellm_params);
    parse_request_params(d, lp, lp_path);
    if (d.provider->wire == wire_format::bedrock) {
      fill_aws_credentials(d);
    }
    {
      const auto gac = lookup("GOOGLE_APPLICATION_CREDENTIALS");
      read_credentials_file(d, gac ? gac->value.c_str() : nullptr);  // Vertex AI only
    }

    d.model_info = nlohmann::json::object();
    if (const node* mi = e.find("model_info"); mi != nullptr && mi->is_mapping()) {
      const std::string mi_path = r.path + ".model_info";
      check_section(*mi, section::model_info, mi_path);
      d.model_info = to_json(*mi);
      stringify_documented(d.model_info, *mi, section::model_info);
      d.id = read_string(mi->find("id"), mi_path + ".id").value_or("");
      if (!d.cooldown_time) {
        d.cooldown_time = read_non_negative(mi->find("cooldown_time"), mi_path + ".cooldown_time");
      }
    }
    return d;
  }

  // As LiteLLM (boto3): AWS credentials and region absent from litellm_params come from
  // the environment (environment_variables first, then the process environment). The
  // keys are one set: a deployment that names its own access key takes no secret or
  // session token from the environment.
  void fill_aws_credentials(deployment& d) const {
    struct source {
      const char* param;
      std::initializer_list<const char*> vars;
      bool credential;
    };
    const source sources[] = {
        {"aws_access_key_id", {"AWS_ACCESS_KEY_ID"}, true},
        {"aws_secret_access_key", {"AWS_SECRET_ACCESS_KEY"}, true},
        {"aws_session_token", {"AWS_SESSION_TOKEN"}, true},
        {"aws_region_name", {"AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION"}, false},
    };
    auto has = [&](const char* param) {
      auto it = d.litellm_params.find(param);
      return it != d.litellm_params.end() && it->is_string() && !it->get_ref<const std::string&>().empty();
    };
    const bool own_keys = has("aws_access_key_id");
    for (const auto& s : sources) {
      if (has(s.param) || (s.credential && own_keys)) {
        continue;
      }
      for (const char* var : s.vars) {
        if (auto v = lookup(var); v && !v->value.empty()) {
          d.litellm_params[s.param] = v->value;
          break;
        }
      }
    }
  }

  // An api_base the upstream client cannot split (no http(s) scheme, no host, a port out
  // of range, ...) would fail every request to the deployment with a 500: refused here
  // with its line instead, through the client's own parser. An os.environ/ value is
  // checked as resolved, and the message names the variable.
  static void check_api_base(const node* n, const std::string& path) {
    if (n == nullptr || !n->is_scalar() || n->text.empty()) {
      return;
    }
    std::string why;
    if (upstream::detail::parse_url(n->text, why)) {
      return;
    }
    fail(*n, path,
         (n->env_var.empty() ? std::string("not a usable URL: ")
                             : "the value of os.environ/" + n->env_var + " is not a usable URL: ") +
             why + " (an api_base is http(s)://host[:port][/path])");
  }

  // The provider from the registry: custom_llm_provider names it (LiteLLM: the model is
  // then sent as is, minus a matching prefix), else the model's prefix, else the provider
  // of bare names.
  void parse_provider(deployment& d, const node& lp, const std::string& lp_path) const {
    const node* model = lp.find("model");
    const node* custom = lp.find("custom_llm_provider");
    if (auto cp = read_string(custom, lp_path + ".custom_llm_provider"); cp && !cp->empty()) {
      const provider_info* p = find_provider(*cp);
      if (p == nullptr) {
        fail(*custom, lp_path + ".custom_llm_provider",
             "unknown provider '" + *cp + "'; supported: " + supported_provider_names());
      }
      d.provider = p;
      d.upstream_model = d.model.rfind(std::string(p->prefix), 0) == 0 ? d.model.substr(p->prefix.size()) : d.model;
      return;
    }
    const auto slash = d.model.find('/');
    if (slash == std::string::npos) {
      // As LiteLLM: a known model name belongs to the provider the price table names
      // (claude-* is anthropic); anything else is the provider of bare names (openai).
      d.provider = &provider_for_bare_names();
      if (bare_model_provider_) {
        if (const auto* p = provider_for_litellm_provider(bare_model_provider_(d.model)); p != nullptr) {
          d.provider = p;
        }
      }
      d.upstream_model = d.model;
      return;
    }
    const provider_info* p = find_provider_for_model(d.model);
    if (p == nullptr) {
      fail(*model, lp_path + ".model",
           "unknown provider prefix '" + d.model.substr(0, slash + 1) + "' in model '" + d.model +
               "'; supported: " + supported_prefixes());
    }
    d.provider = p;
    d.upstream_model = d.model.substr(slash + 1);
    if (d.upstream_model.empty() && p->name == "azure") {
      // LiteLLM accepts `azure/` alone (its sample proxy config has one): with no
      // deployment name it sends only image generations, to Azure's dall-e-2 preview API
      // (openai/images/generations:submit), and the gateway serves no image generation.
      // LiteLLM starts with it, so the gateway does too, without it.
      throw deployment_skipped(*model->file, model->line, lp_path + ".model",
                               "'azure/' names no Azure deployment: LiteLLM uses such an entry only for dall-e-2 "
                               "image generation, which is not served here; this deployment is skipped (write "
                               "azure/<deployment> to serve it)");
    }
    if (d.upstream_model.empty()) {
      fail(*model, lp_path + ".model", "no model name after the provider prefix '" + std::string(p->prefix) + "'");
    }
  }

  // ---- settings sections ------------------------------------------------------------------

  void parse_router(const node& r) {
    auto& out = cfg_.router;
    if (!r.is_mapping()) {
      return;
    }
    const std::string p = "router_settings";
    check_section(r, section::router_settings, p);
    if (auto s = read_string(r.find("routing_strategy"), p + ".routing_strategy"); s && !s->empty()) {
      out.routing_strategy = *s;
      // Said here, once, rather than by the router: --check-config shows it too, and a
      // reload reports it like any other unsupported key.
      const node& n = *r.find("routing_strategy");
      if (!detail::is_known_routing_strategy(*s)) {
        warn(*n.file, n.line, p + ".routing_strategy",
             "unknown routing strategy '" + *s +
                 "'; LiteLLM knows simple-shuffle, least-busy, usage-based-routing, usage-based-routing-v2, "
                 "latency-based-routing, cost-based-routing, provider-budget-routing; using simple-shuffle");
      } else if (!detail::is_served_routing_strategy(*s)) {
        report_unsupported(p + ".routing_strategy", "'" + *s + "' is not implemented; using simple-shuffle", *n.file,
                           n.line);
      }
    }
    out.num_retries = read_int(r.find("num_retries"), p + ".num_retries", 0, INT_MAX);
    warn_retries_over_cap(r.find("num_retries"), out.num_retries, p + ".num_retries");
    out.timeout = read_non_negative(r.find("timeout"), p + ".timeout");
    out.stream_timeout = read_non_negative(r.find("stream_timeout"), p + ".stream_timeout");
    out.cooldown_time = read_non_negative(r.find("cooldown_time"), p + ".cooldown_time");
    out.allowed_fails = read_int(r.find("allowed_fails"), p + ".allowed_fails", 0, INT_MAX);
    out.redis_host = read_string(r.find("redis_host"), p + ".redis_host").value_or("");
    out.redis_password = read_string(r.find("redis_password"), p + ".redis_password").value_or("");
    out.redis_url = read_string(r.find("redis_url"), p + ".redis_url").value_or("");
    out.redis_port = read_int(r.find("redis_port"), p + ".redis_port", 1, 65535);
    if (const node* a = r.find("model_group_alias"); a != nullptr && a->is_mapping()) {
      check_model_group_alias(*a, p + ".model_group_alias");
      out.model_group_alias = to_json(*a);
    }
    out.enable_tag_filtering = read_bool(r.find("enable_tag_filtering"), p + ".enable_tag_filtering").value_or(false);
    out.tag_filtering_match_any =
        read_bool(r.find("tag_filtering_match_any"), p + ".tag_filtering_match_any").value_or(true);
    out.ignore_invalid_deployments =
        read_bool(r.find("ignore_invalid_deployments"), p + ".ignore_invalid_deployments").value_or(false);
    if (const node* g = r.find("model_group_retry_policy"); g != nullptr && g->is_mapping()) {
      for (const auto& e : g->entries) {
        if (!e.value.is_mapping()) {
          fail(e.value, p + ".model_group_retry_policy." + e.key,
               "expected a retry policy (a mapping such as RateLimitErrorRetries: 3), got " + describe(e.value));
        }
        for (const auto& k : e.value.entries) {
          const std::string at = p + ".model_group_retry_policy." + e.key + "." + k.key;
          warn_retries_over_cap(&k.value, read_int(&k.value, at, 0, INT_MAX), at);
        }
      }
      out.model_group_retry_policy = to_json(*g);
    }
    if (const node* rp = r.find("retry_policy"); rp != nullptr && rp->is_mapping()) {
      for (const auto& k : rp->entries) {
        const std::string at = p + ".retry_policy." + k.key;
        warn_retries_over_cap(&k.value, read_int(&k.value, at, 0, INT_MAX), at);
      }
    }
    if (const node* dl = r.find("default_litellm_params"); dl != nullptr && dl->is_mapping()) {
      default_params_ = *dl;
    }
    out.raw = to_json(r);
    stringify_documented(out.raw, r, section::router_settings);
  }

  // Settings that fall back on another section's key, once every section is read.
  void apply_settings_fallbacks(const node& l) {
    if (!l.is_mapping()) {
      return;
    }
    // litellm_settings.allowed_fails: the router's when router_settings has none.
    if (!cfg_.router.allowed_fails) {
      cfg_.router.allowed_fails = read_int(l.find("allowed_fails"), "litellm_settings.allowed_fails", 0, INT_MAX);
    }
    // litellm_settings.model_group_alias: used when router_settings has none.
    if (cfg_.router.model_group_alias.empty()) {
      if (const node* a = l.find("model_group_alias"); a != nullptr && a->is_mapping()) {
        check_model_group_alias(*a, "litellm_settings.model_group_alias");
        cfg_.router.model_group_alias = to_json(*a);
      }
    }
  }

  // A bool, or a list of parameter names (kept as names to drop; the bool stays false).
  std::optional<bool> read_drop_params(const node* n, const std::string& path, std::vector<std::string>& names) {
    if (n == nullptr || n->is_null()) {
      return std::nullopt;
    }
    if (n->is_sequence()) {
      read_names(n, path, names);
      return std::nullopt;
    }
    return read_bool(n, path);
  }

  static void read_names(const node* n, const std::string& path, std::vector<std::string>& names) {
    if (n == nullptr || n->is_null()) {
      return;
    }
    if (!n->is_sequence()) {
      fail(*n, path, "expected a list of parameter names, got " + describe(*n));
    }
    for (std::size_t i = 0; i < n->items.size(); ++i) {
      auto v = read_string(&n->items[i], path + "[" + std::to_string(i) + "]");
      if (v && !v->empty()) {
        names.push_back(*v);
      }
    }
  }

  // The deployment's request defaults, drop list and tags (see deployment).
  void parse_request_params(deployment& d, const node& lp, const std::string& lp_path) {
    for (const auto& e : lp.entries) {
      if (is_request_param(e.key) && !e.value.is_null()) {
        d.request_defaults[e.key] = to_json(e.value);
      }
    }
    if (const node* eb = lp.find("extra_body"); eb != nullptr && eb->is_mapping()) {
      for (const auto& e : eb->entries) {
        if (!d.request_defaults.contains(e.key)) {
          d.request_defaults[e.key] = to_json(e.value);
        }
      }
    }
    if (default_params_.is_mapping()) {
      for (const auto& e : default_params_.entries) {
        if (is_request_param(e.key) && !e.value.is_null() && !d.request_defaults.contains(e.key) &&
            lp.find(e.key) == nullptr) {
          d.request_defaults[e.key] = to_json(e.value);
        }
      }
    }
    d.drop_param_names = cfg_.litellm.additional_drop_params;
    if (auto dp = read_drop_params(lp.find("drop_params"), lp_path + ".drop_params", d.drop_param_names); dp) {
      d.litellm_params["drop_params"] = *dp;
    }
    read_names(lp.find("additional_drop_params"), lp_path + ".additional_drop_params", d.drop_param_names);
    for (const auto& name : d.drop_param_names) {
      d.request_defaults.erase(name);
    }
    if (const node* t = lp.find("tags"); t != nullptr && !t->is_null()) {
      if (t->is_scalar()) {
        d.tags.push_back(t->text);
      } else {
        for (std::size_t i = 0; i < t->items.size(); ++i) {
          if (auto v = read_string(&t->items[i], lp_path + ".tags[" + std::to_string(i) + "]")) {
            d.tags.push_back(*v);
          }
        }
      }
    }
  }

  // litellm_params with litellm_credential_name's values filled in where unset.
  node with_credential(const node& lp, const std::string& lp_path) const {
    const node* name = lp.find("litellm_credential_name");
    auto cred = read_string(name, lp_path + ".litellm_credential_name");
    if (!cred || cred->empty()) {
      return lp;
    }
    auto it = credentials_.find(*cred);
    if (it == credentials_.end()) {
      std::string known;
      for (const auto& [k, v] : credentials_) {
        known += (known.empty() ? "" : ", ") + k;
      }
      fail(*name, lp_path + ".litellm_credential_name",
           "no credential named '" + *cred + "' in credential_list" +
               (known.empty() ? std::string(" (the config has none)") : " (it has: " + known + ")"));
    }
    node out = lp;
    for (const auto& e : it->second.entries) {
      if (out.find(e.key) == nullptr) {
        out.entries.push_back(e);
      }
    }
    return out;
  }

  // {alias: group}, {alias: {model: group, hidden: bool}} or {alias: [group, ...]} (the
  // first listed group that exists serves the alias).
  static void check_model_group_alias(const node& a, const std::string& p) {
    for (const auto& e : a.entries) {
      const std::string ep = p + "." + e.key;
      if (e.value.is_scalar() && !e.value.text.empty()) {
        continue;
      }
      if (e.value.is_sequence() && !e.value.items.empty()) {
        for (std::size_t i = 0; i < e.value.items.size(); ++i) {
          const auto& it = e.value.items[i];
          if (!it.is_scalar() || it.text.empty()) {
            fail(it, ep + "[" + std::to_string(i) + "]", "expected a model group name, got " + describe(it));
          }
        }
        continue;
      }
      if (e.value.is_mapping()) {
        auto m = read_string(e.value.find("model"), ep + ".model");
        if (!m || m->empty()) {
          fail(e.value, ep + ".model", "an alias mapping needs `model` (the model group it points to)");
        }
        (void)read_bool(e.value.find("hidden"), ep + ".hidden");
        continue;
      }
      fail(e.value, ep,
           "expected a model group name, a list of them, or {model: <group>, hidden: <bool>}, got " +
               describe(e.value));
    }
  }

  void parse_litellm(const node& l) {
    auto& out = cfg_.litellm;
    if (!l.is_mapping()) {
      return;
    }
    const std::string p = "litellm_settings";
    check_section(l, section::litellm_settings, p);
    out.drop_params =
        read_drop_params(l.find("drop_params"), p + ".drop_params", out.additional_drop_params).value_or(false);
    read_names(l.find("additional_drop_params"), p + ".additional_drop_params", out.additional_drop_params);
    out.json_logs = read_bool(l.find("json_logs"), p + ".json_logs").value_or(false);
    out.num_retries = read_int(l.find("num_retries"), p + ".num_retries", 0, INT_MAX);
    warn_retries_over_cap(l.find("num_retries"), out.num_retries, p + ".num_retries");
    out.request_timeout = read_non_negative(l.find("request_timeout"), p + ".request_timeout");
    out.cache = read_bool(l.find("cache"), p + ".cache").value_or(false);
    out.max_budget = read_non_negative(l.find("max_budget"), p + ".max_budget");
    out.max_end_user_budget = read_non_negative(l.find("max_end_user_budget"), p + ".max_end_user_budget");
    out.budget_duration = read_string(l.find("budget_duration"), p + ".budget_duration").value_or("");
    if (!out.budget_duration.empty() && !core::parse_budget_duration(out.budget_duration)) {
      fail(*l.find("budget_duration"), p + ".budget_duration",
           "expected a duration such as \"30s\", \"30m\", \"30h\", \"30d\", \"2w\" or \"1mo\", got \"" + out.budget_duration +
               "\"");
    }
    out.ssl_verify = read_ssl_verify(l.find("ssl_verify"), p + ".ssl_verify");
    out.timezone = read_string(l.find("timezone"), p + ".timezone").value_or("");
    if (!out.timezone.empty()) {
      std::string why;
      auto tz = core::time_zone::load(out.timezone, &why);
      if (!tz) {
        fail(*l.find("timezone"), p + ".timezone", "\"" + out.timezone + "\": " + why);
      }
      out.budget_tz = std::move(*tz);
    }
    if (const node* c = l.find("cache_params"); c != nullptr && c->is_mapping()) {
      const std::string cp = p + ".cache_params";
      check_section(*c, section::cache_params, cp);
      auto& o = out.cache_params_;
      o.type = read_string(c->find("type"), cp + ".type").value_or("");
      o.host = read_string(c->find("host"), cp + ".host").value_or("");
      o.password = read_string(c->find("password"), cp + ".password").value_or("");
      o.url = read_string(c->find("url"), cp + ".url").value_or("");
      o.namespace_ = read_string(c->find("namespace"), cp + ".namespace").value_or("");
      if (o.namespace_.size() > cache::max_namespace_bytes) {
        fail(*c->find("namespace"), cp + ".namespace",
             "must be at most " + std::to_string(cache::max_namespace_bytes) + " bytes (it is echoed in a response header)");
      }
      o.port = read_int(c->find("port"), cp + ".port", 1, 65535);
      o.ttl = read_non_negative(c->find("ttl"), cp + ".ttl");
      o.default_in_memory_ttl = read_non_negative(c->find("default_in_memory_ttl"), cp + ".default_in_memory_ttl");
      o.default_in_redis_ttl = read_non_negative(c->find("default_in_redis_ttl"), cp + ".default_in_redis_ttl");
      o.socket_timeout = read_non_negative(c->find("socket_timeout"), cp + ".socket_timeout");
      o.mode = read_string(c->find("mode"), cp + ".mode").value_or("");
      if (!o.mode.empty() && o.mode != "default_on" && o.mode != "default_off") {
        fail(*c->find("mode"), cp + ".mode", "must be default_on or default_off, got \"" + o.mode + "\"");
      }
      o.max_connections = read_int(c->find("max_connections"), cp + ".max_connections", 1, 100000);
      if (const node* t = c->find("supported_call_types"); t != nullptr && t->is_sequence()) {
        std::vector<std::string> types;
        for (std::size_t i = 0; i < t->items.size(); ++i) {
          auto v = read_string(&t->items[i], cp + ".supported_call_types[" + std::to_string(i) + "]");
          if (v) {
            types.push_back(*v);
          }
        }
        o.supported_call_types = std::move(types);
      } else if (t != nullptr && t->is_scalar() && !t->is_null()) {
        o.supported_call_types = std::vector<std::string>{t->text};  // one type, written without a list
      }
    }
    if (const node* d = l.find("default_team_params"); d != nullptr && d->is_mapping()) {
      // Teams a UI sign-in creates for groups it does not know (docs/sso.md); the values
      // are checked again as /team/new checks them when the sign-in settings are read.
      const std::string dp = p + ".default_team_params";
      check_section(*d, section::default_team_params, dp);
      if (const node* bd = d->find("budget_duration"); bd != nullptr && bd->is_scalar() &&
                                                       !core::parse_budget_duration(bd->text)) {
        fail(*bd, dp + ".budget_duration",
             "expected a duration such as \"30s\", \"30m\", \"30h\", \"30d\", \"2w\" or \"1mo\", got \"" + bd->text + "\"");
      }
    }
    // Callbacks: prometheus (/metrics), otel, langfuse, generic_api and webhook run
    // (docs/observability.md, "Callbacks"), also under another name whose
    // callback_settings.<name>.callback_type is one of them; any other name is reported.
    for (const char* key : {"callbacks", "success_callback", "failure_callback"}) {
      const node* cb = l.find(key);
      if (cb == nullptr || cb->is_null()) {
        continue;
      }
      std::vector<std::string> others;
      auto consider = [this, &others](const node& n) {
        if (n.is_scalar() && !callback_is_served(n.text)) {
          others.push_back(n.text);
        }
      };
      if (cb->is_sequence()) {
        for (const auto& n : cb->items) {
          consider(n);
        }
      } else {
        consider(*cb);
      }
      if (!others.empty()) {
        std::string names;
        for (const auto& n : others) {
          names += (names.empty() ? "" : ", ") + n;
        }
        report_unsupported(p + "." + key, "ignored: the callbacks served are prometheus, otel, langfuse, generic_api and webhook; not sent to " + names, *cb->file,
                           cb->line);
      }
    }
    out.raw = to_json(l);
    stringify_documented(out.raw, l, section::litellm_settings);
    // The names reported above are dropped from what the gateway reads to start its
    // callbacks: it would otherwise name each of them in a second warning of its own.
    for (const char* key : {"callbacks", "success_callback", "failure_callback"}) {
      auto it = out.raw.find(key);
      if (it == out.raw.end()) {
        continue;
      }
      if (it->is_string() && !callback_is_served(it->get<std::string>())) {
        out.raw.erase(it);
      } else if (it->is_array()) {
        nlohmann::json kept = nlohmann::json::array();
        for (const auto& v : *it) {
          if (!v.is_string() || callback_is_served(v.get<std::string>())) {
            kept.push_back(v);
          }
        }
        *it = std::move(kept);
      }
    }
    if (const node* c = l.find("cache_params"); c != nullptr && c->is_mapping()) {
      stringify_documented(out.raw["cache_params"], *c, section::cache_params);
    }
    if (const node* d = l.find("default_team_params"); d != nullptr && d->is_mapping()) {
      stringify_documented(out.raw["default_team_params"], *d, section::default_team_params);
    }
  }

  // A list of route patterns: paths ("/v1/chat/completions"), prefixes ("/key/*") or
  // LiteLLM's route group names ("llm_api_routes", also spelled
  // "LiteLLMRoutes.llm_api_routes"; core/route_groups.hpp).
  std::vector<std::string> read_routes(const node* n, const std::string& path) {
    std::vector<std::string> out;
    if (n == nullptr || n->is_null()) {
      return out;
    }
    if (!n->is_sequence()) {
      fail(*n, path, "must be a list of routes");
    }
    for (std::size_t i = 0; i < n->items.size(); ++i) {
      const auto item_path = path + "[" + std::to_string(i) + "]";
      auto v = read_string(&n->items[i], item_path);
      if (!v) {
        continue;
      }
      if (!v->starts_with('/') && !core::is_route_group(*v)) {
        // LiteLLM accepts any string here (a name it does not know matches nothing); so
        // does this gateway, with a warning instead of a silent no-op.
        const auto& item = n->items[i];
        warn(item.file ? *item.file : std::string(), item.line, item_path,
             "\"" + *v + "\" is neither a path (starting with /) nor a route group this gateway knows "
             "(llm_api_routes, openai_routes, anthropic_routes, info_routes, management_routes, "
             "spend_tracking_routes, public_routes): it matches no route");
      }
      out.push_back(std::move(*v));
    }
    return out;
  }

  // A list of client addresses: IPv4 or IPv6 addresses, or networks in CIDR form.
  std::vector<std::string> read_ip_list(const node* n, const std::string& path) {
    std::vector<std::string> out;
    if (n == nullptr || n->is_null()) {
      return out;
    }
    if (!n->is_sequence()) {
      fail(*n, path, "must be a list of IP addresses or CIDR networks");
    }
    for (std::size_t i = 0; i < n->items.size(); ++i) {
      const auto item_path = path + "[" + std::to_string(i) + "]";
      auto v = read_string(&n->items[i], item_path);
      if (!v) {
        continue;
      }
      if (!detail::valid_ip_or_cidr(*v)) {
        fail(n->items[i], item_path, "\"" + *v + "\" is not an IP address or a CIDR network (e.g. 10.0.0.0/8)");
      }
      out.push_back(std::move(*v));
    }
    return out;
  }

  void parse_general(const node& g) {
    auto& out = cfg_.general;
    const std::string p = "general_settings";
    if (g.is_mapping()) {
      check_section(g, section::general_settings, p);
      out.master_key = read_string(g.find("master_key"), p + ".master_key").value_or("");
      out.database_url = read_string(g.find("database_url"), p + ".database_url").value_or("");
      out.max_request_size_mb = read_positive(g.find("max_request_size_mb"), p + ".max_request_size_mb");
      out.max_response_size_mb = read_positive(g.find("max_response_size_mb"), p + ".max_response_size_mb");
      out.allow_requests_on_db_unavailable =
          read_bool(g.find("allow_requests_on_db_unavailable"), p + ".allow_requests_on_db_unavailable")
              .value_or(false);
      out.database_connection_pool_limit =
          read_int(g.find("database_connection_pool_limit"), p + ".database_connection_pool_limit", 1, 10000)
              .value_or(10);
      out.database_connection_timeout =
          read_positive(g.find("database_connection_timeout"), p + ".database_connection_timeout");
      out.disable_spend_logs = read_bool(g.find("disable_spend_logs"), p + ".disable_spend_logs").value_or(false);
      out.store_prompts_in_spend_logs =
          read_bool(g.find("store_prompts_in_spend_logs"), p + ".store_prompts_in_spend_logs").value_or(false);
      out.allowed_routes = read_routes(g.find("allowed_routes"), p + ".allowed_routes");
      out.admin_only_routes = read_routes(g.find("admin_only_routes"), p + ".admin_only_routes");
      out.allowed_ips = read_ip_list(g.find("allowed_ips"), p + ".allowed_ips");
      out.public_routes = read_routes(g.find("public_routes"), p + ".public_routes");
      for (std::size_t i = 0; i < out.public_routes.size(); ++i) {
        if (!core::public_route_allowed(out.public_routes[i])) {
          const node& item = g.find("public_routes")->items[i];
          warn(item.file ? *item.file : std::string(), item.line, p + ".public_routes[" + std::to_string(i) + "]",
               "\"" + out.public_routes[i] +
                   "\" stays behind a key: only information routes (info_routes, /spend/calculate, the "
                   "probes) can be public here, never routes that spend or administer");
        }
      }
      out.forward_client_headers_to_llm_api =
          read_bool(g.find("forward_client_headers_to_llm_api"), p + ".forward_client_headers_to_llm_api")
              .value_or(false);
      if (const node* c = g.find("cors_allow_origins"); c != nullptr && !c->is_null()) {
        if (!c->is_sequence()) {
          fail(*c, p + ".cors_allow_origins", "must be a list of origins (\"https://app.example.com\") or [\"*\"]");
        }
        for (std::size_t i = 0; i < c->items.size(); ++i) {
          const auto item_path = p + ".cors_allow_origins[" + std::to_string(i) + "]";
          auto v = read_string(&c->items[i], item_path);
          if (!v) {
            continue;
          }
          if (*v != "*" && !(v->starts_with("http://") || v->starts_with("https://"))) {
            fail(c->items[i], item_path,
                 "\"" + *v + "\" is not an origin: scheme and host, like \"https://app.example.com\", or \"*\"");
          }
          while (v->size() > 1 && v->back() == '/') {
            v->pop_back();
          }
          out.cors_allow_origins.push_back(std::move(*v));
        }
      }
      out.cors_allow_credentials =
          read_bool(g.find("cors_allow_credentials"), p + ".cors_allow_credentials").value_or(false);
      out.ssl_certfile_path = read_string(g.find("ssl_certfile_path"), p + ".ssl_certfile_path").value_or("");
      out.ssl_keyfile_path = read_string(g.find("ssl_keyfile_path"), p + ".ssl_keyfile_path").value_or("");
      out.store_model_in_db = read_bool(g.find("store_model_in_db"), p + ".store_model_in_db").value_or(false);
      out.raw = to_json(g);
      stringify_documented(out.raw, g, section::general_settings);
    }

    // Master key: the config, else LITELLM_MASTER_KEY, else SWITCHYARD_MASTER_KEY.
    env_origin key_origin;
    if (!out.master_key.empty()) {
      const node& n = *g.find("master_key");
      key_origin = {*n.file, n.line, p + ".master_key"};
    } else {
      for (const char* name : {"LITELLM_MASTER_KEY", "SWITCHYARD_MASTER_KEY"}) {
        if (auto v = lookup(name); v && !v->value.empty()) {
          out.master_key = v->value;
          key_origin = origin_of_env(name, *v);
          break;
        }
      }
    }
    if (!out.master_key.empty() && out.master_key.rfind("sk-", 0) != 0) {
      warn(key_origin.file, key_origin.line, key_origin.key,
           "the master key does not start with 'sk-' as LiteLLM requires; some clients and tools expect it");
    }

    // As LiteLLM: STORE_MODEL_IN_DB=True turns it on when the config does not say.
    if (!g.is_mapping() || g.find("store_model_in_db") == nullptr || g.find("store_model_in_db")->is_null()) {
      if (auto v = lookup("STORE_MODEL_IN_DB"); v && !v->value.empty()) {
        node n;
        n.type = node::kind::scalar;
        n.text = v->value;
        out.store_model_in_db = read_bool(&n, "STORE_MODEL_IN_DB").value_or(false);
      }
    }

    // Database URL: the config, else DATABASE_URL.
    env_origin db_origin;
    if (!out.database_url.empty()) {
      const node& n = *g.find("database_url");
      db_origin = {*n.file, n.line, p + ".database_url"};
    } else if (auto v = lookup("DATABASE_URL"); v && !v->value.empty()) {
      out.database_url = v->value;
      db_origin = origin_of_env("DATABASE_URL", *v);
    }
    if (!out.database_url.empty() && out.database_url.rfind("postgresql://", 0) != 0 &&
        out.database_url.rfind("postgres://", 0) != 0) {
      warn(db_origin.file, db_origin.line, db_origin.key,
           "the database URL should be a PostgreSQL URL (postgresql://user:password@host:port/db)");
    }
  }

  static std::optional<double> read_positive(const node* n, const std::string& path) {
    auto v = detail::read_number(n, path);
    if (v && *v <= 0) {
      fail(*n, path, "must be greater than 0");
    }
    return v;
  }

  // ---- Redis -----------------------------------------------------------------------------

  void resolve_redis(const node& router, const node& litellm) {
    redis_endpoint r;
    // 1. router_settings
    if (router.is_mapping() && from_config(router, "router_settings", "redis_url", "redis_host", "redis_port",
                                           "redis_password", "redis_db", r)) {
      cfg_.redis = r;
      return;
    }
    // 2. litellm_settings.cache_params, when it is a Redis cache (type redis, redis-semantic, or unset)
    const std::string& cache_type = cfg_.litellm.cache_params_.type;
    if (const node* c = litellm.is_mapping() ? litellm.find("cache_params") : nullptr;
        c != nullptr && c->is_mapping() && (cache_type.empty() || cache_type.rfind("redis", 0) == 0)) {
      if (from_config(*c, "litellm_settings.cache_params", "url", "host", "port", "password", "db", r)) {
        auto user = read_string(c->find("username"), "litellm_settings.cache_params.username");
        if (user && r.username.empty()) {
          r.username = *user;
        }
        cfg_.redis = r;
        return;
      }
    }
    // 3. the environment
    if (auto url = lookup("REDIS_URL"); url && !url->value.empty()) {
      if (auto err = detail::parse_redis_url(url->value, r)) {
        const auto o = origin_of_env("REDIS_URL", *url);
        throw config_error(o.file, o.line, o.key, *err);
      }
      if (auto pw = lookup("REDIS_PASSWORD"); pw && r.password.empty()) {
        r.password = pw->value;
      }
      r.source = "env REDIS_URL";
      cfg_.redis = r;
      return;
    }
    if (auto host = lookup("REDIS_HOST"); host && !host->value.empty()) {
      r.host = host->value;
      if (auto port = lookup("REDIS_PORT"); port && !port->value.empty()) {
        node n;
        n.type = node::kind::scalar;
        n.text = port->value;
        n.quoted = true;
        const auto o = origin_of_env("REDIS_PORT", *port);
        n.file = std::make_shared<const std::string>(o.file);
        n.line = o.line;
        r.port = read_int(&n, o.key, 1, 65535).value_or(6379);
      }
      if (auto pw = lookup("REDIS_PASSWORD")) {
        r.password = pw->value;
      }
      r.source = "env REDIS_HOST";
      cfg_.redis = r;
    }
  }

  // ---- response cache (docs/cache.md) -------------------------------------------------------

  void resolve_cache(const node& litellm) {
    const auto& l = cfg_.litellm;
    if (!l.cache) {
      return;
    }
    const node* c = litellm.is_mapping() ? litellm.find("cache_params") : nullptr;
    const node* where = c != nullptr ? c : litellm.find("cache");
    const std::string file = where != nullptr && where->file ? *where->file : cfg_.path;
    const int line = where != nullptr ? where->line : 0;
    const auto& p = l.cache_params_;
    // LiteLLM's proxy defaults to a Redis cache when no type is given.
    const std::string type = p.type.empty() ? "redis" : p.type;
    auto& out = cfg_.cache;
    if (type != "redis" && type != "local") {
      warn(file, line, "litellm_settings.cache_params.type",
           "cache type \"" + type + "\" is not supported (only redis and local): response caching is OFF");
      return;
    }
    out.enabled = true;
    out.namespace_ = p.namespace_;
    // As LiteLLM: the backend's own default (default_in_memory_ttl for type local,
    // default_in_redis_ttl for type redis) replaces `ttl`; a request's ttl still wins.
    const auto& backend_ttl = type == "local" ? p.default_in_memory_ttl : p.default_in_redis_ttl;
    out.ttl_s = backend_ttl && *backend_ttl > 0 ? *backend_ttl : p.ttl && *p.ttl > 0 ? *p.ttl : 600.0;
    // In front of Redis, the memory tier is this instance's copy: default_in_memory_ttl
    // bounds how long it is kept, so that a /cache/delete on another instance (which this
    // one's memory never hears of) reaches it within that time.
    if (type == "redis" && p.default_in_memory_ttl && *p.default_in_memory_ttl > 0) {
      out.memory_max_ttl_s = *p.default_in_memory_ttl;
    }
    if (p.socket_timeout && *p.socket_timeout > 0) {
      out.redis_timeout_s = p.socket_timeout;
    }
    out.default_on = p.mode != "default_off";
    if (p.supported_call_types) {
      out.chat = out.completion = out.embedding = false;
      std::string uncached;  // the types named that this gateway does not cache
      for (const auto& t : *p.supported_call_types) {
        if (t == "completion" || t == "acompletion") {
          out.chat = true;
        } else if (t == "text_completion" || t == "atext_completion") {
          out.completion = true;
        } else if (t == "embedding" || t == "aembedding") {
          out.embedding = true;
        } else {
          uncached += (uncached.empty() ? "\"" : ", \"") + t + "\"";
        }
      }
      // LiteLLM's own default list names transcription and rerank too; asked for here, they
      // would be silently not cached.
      if (!uncached.empty()) {
        const node* st = c != nullptr && c->is_mapping() ? c->find("supported_call_types") : nullptr;
        warn(st != nullptr && st->file ? *st->file : file, st != nullptr ? st->line : line,
             "litellm_settings.cache_params.supported_call_types",
             "not cached: " + uncached +
                 " (the cached call types are completion, text_completion and embedding, with their async "
                 "names acompletion, atext_completion and aembedding)");
      }
    }
    if (type == "local") {
      return;
    }
    // The cache's own Redis when cache_params names one, else the shared one (router
    // settings, cache_params or REDIS_* env, as resolved above).
    redis_endpoint r;
    if (c != nullptr && c->is_mapping() &&
        from_config(*c, "litellm_settings.cache_params", "url", "host", "port", "password", "db", r)) {
      auto user = read_string(c->find("username"), "litellm_settings.cache_params.username");
      if (user && r.username.empty()) {
        r.username = *user;
      }
      out.redis = r;
    } else {
      out.redis = cfg_.redis;
    }
    if (out.redis.host.empty()) {
      warn(file, line, "litellm_settings.cache_params",
           "cache type redis but no Redis configured (cache_params.host/url, router_settings or REDIS_HOST/REDIS_URL): "
           "responses are cached in this process's memory only");
      return;
    }
    out.use_redis = true;
  }

  // ssl_verify: false/true (also as strings, e.g. from os.environ/), or a CA bundle path
  // (which must exist: a typo would otherwise only show at the first request).
  static std::optional<tls_trust> read_ssl_verify(const node* n, const std::string& path) {
    if (n == nullptr || n->is_null()) {
      return std::nullopt;
    }
    if (!n->is_scalar()) {
      fail(*n, path, "expected false, true or the path of a CA bundle (PEM)");
    }
    const auto json = detail::scalar_json(*n);
    if (json.is_boolean()) {
      return tls_trust{json.get<bool>(), {}};
    }
    std::string text = n->text;
    std::string lower = text;
    for (auto& ch : lower) {
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    if (lower == "false" || lower == "no" || lower == "off" || lower == "0") {
      return tls_trust{false, {}};
    }
    if (lower == "true" || lower == "yes" || lower == "on" || lower == "1") {
      return tls_trust{true, {}};
    }
    std::error_code ec;
    if (text.empty() || !fs::is_regular_file(text, ec)) {
      fail(*n, path, "CA bundle \"" + text + "\" is not a readable file (ssl_verify takes false, true or a PEM bundle)");
    }
    return tls_trust{true, text};
  }

  // cache_params' TLS keys (redis-py's names): ssl, ssl_ca_certs, ssl_cert_reqs, ssl_check_hostname.
  static void read_redis_tls(const node& m, const std::string& prefix, redis_endpoint& r) {
    if (read_bool(m.find("ssl"), prefix + ".ssl").value_or(false)) {
      r.tls = true;
    }
    if (auto ca = read_string(m.find("ssl_ca_certs"), prefix + ".ssl_ca_certs"); ca && !ca->empty()) {
      std::error_code ec;
      if (!fs::is_regular_file(*ca, ec)) {
        fail(*m.find("ssl_ca_certs"), prefix + ".ssl_ca_certs", "CA bundle \"" + *ca + "\" is not a readable file");
      }
      r.tls_ca_file = *ca;
    }
    if (const node* reqs = m.find("ssl_cert_reqs"); reqs != nullptr && !reqs->is_null()) {
      std::string v = reqs->is_scalar() ? reqs->text : std::string();
      for (auto& ch : v) {
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      }
      if (v == "none" || v == "cert_none") {
        r.tls_verify = false;
      } else if (v != "required" && v != "cert_required") {
        fail(*reqs, prefix + ".ssl_cert_reqs", "expected none or required, got \"" + v + "\"");
      }
    }
    if (auto check = read_bool(m.find("ssl_check_hostname"), prefix + ".ssl_check_hostname")) {
      r.tls_check_hostname = *check;
    }
  }

  static bool from_config(const node& m, const std::string& prefix, const char* url_key, const char* host_key,
                          const char* port_key, const char* password_key, const char* db_key, redis_endpoint& r) {

    auto password = read_string(m.find(password_key), prefix + "." + password_key).value_or("");
    if (auto url = read_string(m.find(url_key), prefix + "." + url_key); url && !url->empty()) {
      if (auto err = detail::parse_redis_url(*url, r)) {
        fail(*m.find(url_key), prefix + "." + url_key, *err);
      }
      if (r.password.empty()) {
        r.password = password;
      }
      r.source = prefix;
      if (prefix == "litellm_settings.cache_params") {
        read_redis_tls(m, prefix, r);
      }
      return true;
    }
    if (auto host = read_string(m.find(host_key), prefix + "." + host_key); host && !host->empty()) {
      r.host = *host;
      r.port = read_int(m.find(port_key), prefix + "." + port_key, 1, 65535).value_or(6379);
      r.password = password;
      r.db = read_int(m.find(db_key), prefix + "." + db_key, 0, 1 << 20).value_or(0);
      r.source = prefix;
      if (prefix == "litellm_settings.cache_params") {
        read_redis_tls(m, prefix, r);
      }
      return true;
    }
    return false;
  }

  env_lookup base_env_;
  bool export_;
  model_provider_lookup bare_model_provider_;
  std::vector<db_model> db_models_;
  std::string strict_db_model_;
  std::map<std::string, node> credentials_;  // credential_name -> credential_values
  node default_params_;                      // router_settings.default_litellm_params
  config cfg_;
  std::vector<std::string> stack_;          // canonical paths being loaded (cycle check)
  std::vector<std::string> stack_display_;  // the same, as shown in messages
  std::unique_ptr<node> env_nodes_;         // resolved environment_variables section
  std::map<std::string, env_value> overlay_;
};

}  // namespace

std::shared_ptr<const config> load_config_blocking(const std::string& path, const load_options& options) {
  try {
    loader l(options);
    return l.run(path);
  } catch (const nlohmann::json::exception& e) {
    // Not expected (input is validated first); keep the module's one exception type.
    throw config_error(path, 0, "config", std::string("cannot convert the config to JSON: ") + e.what());
  } catch (const fs::filesystem_error& e) {
    throw config_error(path, 0, "config", e.what());
  }
}

std::string unsupported_summary(const config& c) {
  if (c.unsupported.empty()) {
    return {};
  }
  std::string out = std::to_string(c.unsupported.size()) + " config key(s) recognised but not supported: ";
  for (std::size_t i = 0; i < c.unsupported.size(); ++i) {
    out += (i == 0 ? "" : "; ") + c.unsupported[i].key + " (" + c.unsupported[i].note + ")";
  }
  return out;
}

bool is_acted_on_setting(std::string_view section_name, std::string_view key) {
  section s;
  if (section_name == "general_settings") {
    s = section::general_settings;
  } else if (section_name == "litellm_settings") {
    s = section::litellm_settings;
  } else {
    return true;
  }
  const auto* k = detail::find_key(s, key);
  return k != nullptr && k->unsupported.empty();
}

std::shared_ptr<const config> load_config_blocking(const std::string& path, const env_lookup& env) {
  load_options options;
  options.env = env;
  return load_config_blocking(path, options);
}

}  // namespace switchyard::config
