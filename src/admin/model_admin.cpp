// POST /model/new, /model/update, /model/delete: deployments kept in Postgres when
// general_settings.store_model_in_db is on, as LiteLLM's model management endpoints.
// A model is checked by loading the config with it (the same checks as a model_list
// entry) before it is written; after a write every instance applies the stored models
// (this one before the answer, the others through Redis, or their poll).
#include "switchyard/admin/db_models.hpp"
#include "switchyard/admin/model_info.hpp"

#include "handlers.hpp"

#include "switchyard/core/ids.hpp"

#include <cstdlib>

namespace switchyard::admin {

namespace {

constexpr std::string_view env_prefix = "os.environ/";

bool keep_as_is(const json& v) {
  if (!v.is_string()) {
    return true;
  }
  const auto& s = v.get_ref<const std::string&>();
  return s.starts_with(env_prefix) || core::secret_box::is_sealed(s);
}

// LiteLLM's answer when the models do not live in the database; a 400 here (LiteLLM sends
// a 500 for this client-side condition).
core::error store_off() {
  return bad_request("Set `'STORE_MODEL_IN_DB='True'` in your env to enable this feature.");
}

core::error not_in_db(const std::string& id) { return bad_request("Model with id=" + id + " not found in db", "id"); }

bool in_config_file(const route_context& c, const std::string& id) {
  for (const auto& d : c.deps.cfg->model_list) {
    if (d.id == id && !d.model_info.value("db_model", false)) {
      return true;
    }
  }
  return false;
}

// The row as the API answers it (LiteLLM's LiteLLM_ProxyModelTable), credentials left out.
json row_json(const pg::model_row& r) {
  json lp = json::parse(r.litellm_params_json, nullptr, false);
  json mi = json::parse(r.model_info_json, nullptr, false);
  if (!mi.is_object()) {
    mi = json::object();
  }
  mi["id"] = r.model_id;
  mi["db_model"] = true;
  return {{"model_id", r.model_id},
          {"model_name", r.model_name},
          {"litellm_params", redacted_params(lp.is_object() ? lp : json::object())},
          {"model_info", std::move(mi)},
          {"created_at", r.created_at},
          {"created_by", r.created_by},
          {"updated_at", r.updated_at},
          {"updated_by", r.updated_by}};
}

core::result<json> object_field(const json& body, const char* name, bool required) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    if (required) {
      return field_error(name, std::string("field required: ") + name);
    }
    return ok(json::object());
  }
  if (!it->is_object()) {
    return field_error(name, std::string(name) + " must be an object");
  }
  return ok(*it);
}

// Loads the config with `m` (off the loop); a model that does not load is a 400 with the
// reason (its key within the model and the message, no file).
net::awaitable<std::optional<core::error>> check(const route_context& c, config::db_model m) {
  auto reason = co_await c.deps.check_model(std::move(m));
  if (reason) {
    co_return bad_request("Invalid model: " + *reason, "litellm_params");
  }
  co_return std::nullopt;
}

// A value that looks sealed could only be replayed from a stored row: refused, so that what
// is stored sealed is always what we sealed.
std::optional<core::error> sealed_value_given(const json& litellm_params) {
  for (const auto& [k, v] : litellm_params.items()) {
    const auto sealed = [](const json& x) {
      return x.is_string() && core::secret_box::is_sealed(x.get_ref<const std::string&>());
    };
    bool found = sealed(v);
    if (v.is_object()) {
      for (const auto& [name, hv] : v.items()) {
        (void)name;
        found = found || sealed(hv);
      }
    }
    if (found) {
      return bad_request("litellm_params." + k + ": an encrypted value (" + std::string(core::secret_box::prefix) +
                             "...) cannot be written; send the value itself or an os.environ/ reference",
                         "litellm_params");
    }
  }
  return std::nullopt;
}

pg::model_row sealed_row(const config::db_model& m, const core::secret_box& box) {
  pg::model_row row;
  row.model_id = m.id;
  row.model_name = m.model_name;
  row.litellm_params_json = seal_params(m.litellm_params, box).dump();
  json mi = m.model_info;
  mi.erase("id");
  mi.erase("db_model");
  row.model_info_json = mi.dump();
  return row;
}

}  // namespace

std::string model_secret_passphrase(const std::string& master_key) {
  const char* salt = std::getenv("LITELLM_SALT_KEY");
  return salt != nullptr && *salt != '\0' ? std::string(salt) : master_key;
}

json seal_params(const json& litellm_params, const core::secret_box& box) {
  json out = litellm_params;
  if (!out.is_object()) {
    return out;
  }
  for (auto& [k, v] : out.items()) {
    if (config::is_secret_param(k) && !keep_as_is(v)) {
      v = box.seal(v.get<std::string>());
    } else if (config::is_header_param(k) && v.is_object()) {
      for (auto& [name, hv] : v.items()) {
        (void)name;
        if (!keep_as_is(hv)) {
          hv = box.seal(hv.get<std::string>());
        }
      }
    }
  }
  return out;
}

core::result<json> open_params(const json& litellm_params, const core::secret_box& box) {
  json out = litellm_params;
  if (!out.is_object()) {
    return ok(out);
  }
  const auto open_one = [&box](json& v, const std::string& key) -> std::optional<core::error> {
    if (!v.is_string() || !core::secret_box::is_sealed(v.get_ref<const std::string&>())) {
      return std::nullopt;
    }
    auto plain = box.open(v.get_ref<const std::string&>());
    if (!plain) {
      return core::make_error(core::errc::internal,
                              "litellm_params." + key +
                                  " does not decrypt (was it stored under another LITELLM_SALT_KEY or master key?)");
    }
    v = *plain;
    return std::nullopt;
  };
  for (auto& [k, v] : out.items()) {
    if (config::is_header_param(k) && v.is_object()) {
      for (auto& [name, hv] : v.items()) {
        if (auto e = open_one(hv, k + "." + name)) {
          return *e;
        }
      }
    } else if (auto e = open_one(v, k)) {
      return *e;
    }
  }
  return ok(out);
}

core::result<config::db_model> db_model_of(const pg::model_row& row, const core::secret_box& box) {
  config::db_model m;
  m.id = row.model_id;
  m.model_name = row.model_name;
  json lp = json::parse(row.litellm_params_json, nullptr, false);
  json mi = json::parse(row.model_info_json, nullptr, false);
  if (!lp.is_object() || !mi.is_object()) {
    return core::make_error(core::errc::internal, "stored litellm_params / model_info are not JSON objects");
  }
  auto opened = open_params(lp, box);
  if (!opened) {
    return opened.error();
  }
  m.litellm_params = std::move(*opened);
  m.model_info = std::move(mi);
  return m;
}

// POST /model/new {model_name, litellm_params, model_info}: the stored row (credentials
// left out). The id is model_info.id, else a new uuid.
handler_result model_new(const route_context& c) {
  if (!c.deps.models_changed || c.deps.model_secrets == nullptr) {
    co_return store_off();
  }
  auto name = string_field(c.body, "model_name", true);
  if (!name) {
    co_return name.error();
  }
  if (name->empty()) {
    co_return field_error("model_name", "model_name must not be empty");
  }
  auto lp = object_field(c.body, "litellm_params", true);
  if (!lp) {
    co_return lp.error();
  }
  auto mi = object_field(c.body, "model_info", false);
  if (!mi) {
    co_return mi.error();
  }
  if (auto e = sealed_value_given(*lp)) {
    co_return *e;
  }
  config::db_model m;
  m.model_name = *name;
  m.litellm_params = std::move(*lp);
  m.model_info = std::move(*mi);
  if (auto it = m.model_info.find("id"); it != m.model_info.end() && !it->is_null()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      co_return field_error("model_info.id", "model_info.id must be a non-empty string");
    }
    m.id = it->get<std::string>();
  } else {
    m.id = core::uuid4();
  }
  if (in_config_file(c, m.id)) {
    co_return bad_request("Model with id=" + m.id + " is in the config file; choose another model_info.id",
                          "model_info.id");
  }
  if (auto e = co_await check(c, m)) {
    co_return *e;
  }
  const pg::model_row row = sealed_row(m, *c.deps.model_secrets);
  auto r = co_await c.db().run(pg::insert_model_blocking, row, c.actor);
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    co_return bad_request("Model with id=" + m.id + " already exists in db", "model_info.id");
  }
  co_await c.deps.models_changed();
  co_return ok(row_json(**r));
}

// POST /model/update {model_info: {id}, litellm_params?, model_name?}: litellm_params are
// merged over the stored ones (a null value keeps the stored one, as LiteLLM), model_info
// merged, model_name replaced. The config file's models cannot be edited here.
handler_result model_update(const route_context& c) {
  if (!c.deps.models_changed || c.deps.model_secrets == nullptr) {
    co_return store_off();
  }
  auto mi = object_field(c.body, "model_info", true);
  if (!mi) {
    co_return mi.error();
  }
  const auto id_it = mi->find("id");
  if (id_it == mi->end() || !id_it->is_string() || id_it->get_ref<const std::string&>().empty()) {
    co_return field_error("model_info.id", "model_info.id not provided");
  }
  const std::string id = id_it->get<std::string>();
  auto lp = object_field(c.body, "litellm_params", false);
  if (!lp) {
    co_return lp.error();
  }
  if (auto e = sealed_value_given(*lp)) {
    co_return *e;
  }
  std::optional<std::string> name;
  if (c.body.contains("model_name") && !c.body["model_name"].is_null()) {
    auto n = string_field(c.body, "model_name", true);
    if (!n) {
      co_return n.error();
    }
    if (n->empty()) {
      co_return field_error("model_name", "model_name must not be empty");
    }
    name = *n;
  }
  auto existing = co_await c.db().run(pg::get_model_blocking, id);
  if (!existing) {
    co_return existing.error();
  }
  if (!*existing) {
    if (in_config_file(c, id)) {
      co_return bad_request("Can't edit model. Model in config. Store model in db via `/model/new`. to edit.", "id");
    }
    co_return not_in_db(id);
  }
  auto stored = db_model_of(**existing, *c.deps.model_secrets);
  if (!stored) {
    co_return stored.error();
  }
  config::db_model m = std::move(*stored);
  for (const auto& [k, v] : lp->items()) {
    if (!v.is_null()) {
      m.litellm_params[k] = v;
    }
  }
  for (const auto& [k, v] : mi->items()) {
    if (k != "id" && k != "db_model") {
      m.model_info[k] = v;
    }
  }
  if (name) {
    m.model_name = *name;
  }
  if (auto e = co_await check(c, m)) {
    co_return *e;
  }
  const pg::model_row row = sealed_row(m, *c.deps.model_secrets);
  auto r = co_await c.db().run(pg::update_model_blocking, row, c.actor);
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    co_return not_in_db(id);
  }
  co_await c.deps.models_changed();
  co_return ok(row_json(**r));
}

// POST /model/delete {id}: {"message": "Model: <id> deleted successfully"}.
handler_result model_delete(const route_context& c) {
  if (!c.deps.models_changed || c.deps.model_secrets == nullptr) {
    co_return store_off();
  }
  auto id = string_field(c.body, "id", true);
  if (!id) {
    co_return id.error();
  }
  auto r = co_await c.db().run(pg::delete_model_blocking, *id, c.actor);
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    co_return not_in_db(*id);
  }
  co_await c.deps.models_changed();
  co_return ok(json{{"message", "Model: " + *id + " deleted successfully"}});
}

}  // namespace switchyard::admin
