// The shipped deployment files: docker-compose.yml, .env.example and docker/Dockerfile.
// No Docker engine runs where the tests run, so these check the files' structure against
// what docs/deploy.md promises: the three services and their images, health checks and
// start order, named volumes, the private network, secrets only from .env, a read-only
// config, a non-root image built by the README's script.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

const std::string root = SWITCHYARD_SOURCE_DIR;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

YAML::Node compose() { return YAML::LoadFile(root + "/docker-compose.yml"); }

std::vector<std::string> strings(const YAML::Node& seq) {
  std::vector<std::string> out;
  if (seq && seq.IsSequence()) {
    for (const auto& n : seq) {
      out.push_back(n.as<std::string>());
    }
  }
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Every ${VAR...} reference in a string: the variable and what follows its name.
struct var_ref {
  std::string name;
  std::string modifier;  // "", ":-default", ":?message", ...
};

std::vector<var_ref> var_refs(const std::string& s) {
  std::vector<var_ref> out;
  static const std::regex re(R"(\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\})");
  for (auto it = std::sregex_iterator(s.begin(), s.end(), re); it != std::sregex_iterator(); ++it) {
    out.push_back({(*it)[1].str(), (*it)[2].str()});
  }
  return out;
}

bool is_secret_name(const std::string& name) {
  static const std::regex re("(KEY|PASSWORD|SECRET|TOKEN)", std::regex::icase);
  return std::regex_search(name, re);
}

}  // namespace

TEST(compose, three_services_with_the_expected_images) {
  const auto c = compose();
  ASSERT_TRUE(c["services"].IsMap());
  EXPECT_EQ(c["services"].size(), 3u);
  EXPECT_EQ(c["services"]["postgres"]["image"].as<std::string>(), "postgres:16-alpine");
  EXPECT_EQ(c["services"]["redis"]["image"].as<std::string>(), "redis:7-alpine");
  const auto sy = c["services"]["switchyard"];
  ASSERT_TRUE(sy.IsMap());
  EXPECT_EQ(sy["build"]["dockerfile"].as<std::string>(), "docker/Dockerfile");
}

TEST(compose, every_service_has_a_health_check_and_the_gateway_waits_for_healthy_stores) {
  const auto c = compose();
  for (const auto& svc : c["services"]) {
    const auto name = svc.first.as<std::string>();
    const auto hc = svc.second["healthcheck"];
    ASSERT_TRUE(hc.IsMap()) << name;
    ASSERT_TRUE(hc["test"]) << name;
    EXPECT_FALSE(hc["test"].IsScalar() && hc["test"].as<std::string>() == "NONE") << name;
    EXPECT_TRUE(hc["interval"]) << name;
  }
  const auto deps = c["services"]["switchyard"]["depends_on"];
  ASSERT_TRUE(deps.IsMap());
  for (const char* store : {"postgres", "redis"}) {
    EXPECT_EQ(deps[store]["condition"].as<std::string>(), "service_healthy") << store;
  }
}

TEST(compose, stores_keep_their_data_in_named_volumes) {
  const auto c = compose();
  std::set<std::string> declared;
  for (const auto& v : c["volumes"]) {
    declared.insert(v.first.as<std::string>());
  }
  const std::pair<const char*, const char*> mounts[] = {
      {"postgres", "/var/lib/postgresql/data"}, {"redis", "/data"}, {"switchyard", "/var/lib/switchyard"}};
  for (const auto& [svc, path] : mounts) {
    bool found = false;
    for (const auto& m : strings(c["services"][svc]["volumes"])) {
      const auto colon = m.find(':');
      ASSERT_NE(colon, std::string::npos) << m;
      const auto source = m.substr(0, colon);
      const auto target = m.substr(colon + 1, m.find(':', colon + 1) - colon - 1);
      if (target == path) {
        found = true;
        EXPECT_TRUE(declared.count(source)) << svc << ": " << m << " is not a named volume";
      }
    }
    EXPECT_TRUE(found) << svc << " has no volume at " << path;
  }
}

TEST(compose, stores_sit_on_an_internal_network_and_publish_no_port) {
  const auto c = compose();
  std::set<std::string> internal;
  for (const auto& n : c["networks"]) {
    EXPECT_EQ(n.second["driver"].as<std::string>(), "bridge");
    if (n.second["internal"] && n.second["internal"].as<bool>()) {
      internal.insert(n.first.as<std::string>());
    }
  }
  ASSERT_FALSE(internal.empty());
  for (const char* store : {"postgres", "redis"}) {
    const auto svc = c["services"][store];
    EXPECT_FALSE(svc["ports"]) << store << " publishes a port";
    const auto nets = strings(svc["networks"]);
    ASSERT_FALSE(nets.empty()) << store;
    for (const auto& n : nets) {
      EXPECT_TRUE(internal.count(n)) << store << " is on the non-internal network " << n;
    }
  }
  // The gateway reaches both stores and the outside (providers, Ollama on the host).
  const auto gw_nets = strings(c["services"]["switchyard"]["networks"]);
  EXPECT_TRUE(std::any_of(gw_nets.begin(), gw_nets.end(), [&](const auto& n) { return internal.count(n) == 1; }));
  EXPECT_TRUE(std::any_of(gw_nets.begin(), gw_nets.end(), [&](const auto& n) { return internal.count(n) == 0; }));
  EXPECT_TRUE(contains(strings(c["services"]["switchyard"]["extra_hosts"]), "host.docker.internal:host-gateway"));
}

TEST(compose, config_is_mounted_read_only_and_the_container_is_locked_down) {
  const auto sy = compose()["services"]["switchyard"];
  EXPECT_TRUE(contains(strings(sy["volumes"]), "./config:/app/config:ro"));
  EXPECT_TRUE(sy["read_only"].as<bool>());
  EXPECT_TRUE(contains(strings(sy["cap_drop"]), "ALL"));
  EXPECT_TRUE(contains(strings(sy["security_opt"]), "no-new-privileges:true"));
}

// No secret has a value written in the file: each comes from .env through ${VAR:?...}
// (compose refuses to start while it is empty) or, for optional provider keys, is empty
// by default. .env.example names every variable the file uses and holds no value for a
// secret.
TEST(compose, secrets_come_only_from_the_environment) {
  const auto text = read_file(root + "/docker-compose.yml");
  const auto c = YAML::Load(text);
  std::set<std::string> used;
  for (const auto& svc : c["services"]) {
    const auto env = svc.second["environment"];
    if (!env) {
      continue;
    }
    ASSERT_TRUE(env.IsMap()) << svc.first.as<std::string>() << ": environment must be a map";
    for (const auto& kv : env) {
      const auto name = kv.first.as<std::string>();
      const auto value = kv.second.as<std::string>();
      const auto refs = var_refs(value);
      for (const auto& r : refs) {
        used.insert(r.name);
        if (is_secret_name(r.name)) {
          const bool required = r.modifier.rfind(":?", 0) == 0;
          const bool optional_empty = r.modifier == ":-";
          const bool plain = r.modifier.empty();
          EXPECT_TRUE(required || optional_empty || plain) << name << ": ${" << r.name << r.modifier << "} has a default";
        }
      }
      if (is_secret_name(name) && name != "DATABASE_URL") {
        EXPECT_FALSE(refs.empty()) << name << " has a literal value";
      }
      if (name == "DATABASE_URL") {
        ASSERT_EQ(refs.size(), 1u);
        EXPECT_EQ(refs[0].name, "POSTGRES_PASSWORD");
      }
    }
  }
  for (const char* required : {"LITELLM_MASTER_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD"}) {
    EXPECT_NE(text.find(std::string("${") + required + ":?"), std::string::npos) << required << " is not required";
  }
  EXPECT_EQ(text.find("sk-change-me"), std::string::npos);

  std::set<std::string> example;
  std::istringstream ex(read_file(root + "/.env.example"));
  for (std::string line; std::getline(ex, line);) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    const auto eq = line.find('=');
    ASSERT_NE(eq, std::string::npos) << line;
    const auto name = line.substr(0, eq);
    example.insert(name);
    if (is_secret_name(name)) {
      EXPECT_EQ(line.substr(eq + 1), "") << ".env.example holds a value for " << name;
    }
  }
  for (const auto& v : used) {
    EXPECT_TRUE(example.count(v)) << v << " is used by docker-compose.yml but missing from .env.example";
  }
  const auto ignored = read_file(root + "/.gitignore");
  EXPECT_NE(ignored.find("\n.env\n"), std::string::npos) << ".env must be git-ignored";
}

TEST(dockerfile, builds_with_the_readme_script_and_runs_as_non_root_on_slim) {
  const auto text = read_file(root + "/docker/Dockerfile");
  ASSERT_FALSE(text.empty());
  std::vector<std::string> froms;
  std::string user;
  bool healthcheck = false;
  bool copies_config = false;
  bool copies_migrations = false;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("FROM ", 0) == 0) {
      froms.push_back(line);
    } else if (line.rfind("USER ", 0) == 0) {
      user = line.substr(5);
    } else if (line.rfind("HEALTHCHECK ", 0) == 0) {
      healthcheck = true;
    } else if (line.rfind("COPY --from=build /src/config/", 0) == 0) {
      copies_config = true;
    } else if (line.rfind("COPY --from=build /src/migrations/", 0) == 0) {
      copies_migrations = true;
    }
  }
  ASSERT_EQ(froms.size(), 2u);
  EXPECT_EQ(froms[0], "FROM debian:12 AS build");
  EXPECT_EQ(froms[1], "FROM debian:12-slim AS runtime");
  EXPECT_NE(text.find("RUN ./scripts/run.sh --build-only"), std::string::npos);
  EXPECT_NE(text.find("COPY --from=build /src/build/release/src/switchyard /usr/local/bin/switchyard"), std::string::npos);
  EXPECT_TRUE(healthcheck);
  EXPECT_TRUE(copies_config);
  EXPECT_TRUE(copies_migrations);
  ASSERT_FALSE(user.empty());
  EXPECT_NE(user.rfind("0", 0), 0u) << "runs as root";
  EXPECT_NE(user, "root");
  // The script the Dockerfile runs supports the flag and the README names the script.
  EXPECT_NE(read_file(root + "/scripts/run.sh").find("--build-only"), std::string::npos);
  EXPECT_NE(read_file(root + "/README.md").find("./scripts/run.sh"), std::string::npos);
}
