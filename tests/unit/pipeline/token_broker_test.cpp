// OAuth2 tokens for Vertex AI and Azure Entra ID: the RS256 JWT (checked with OpenSSL's
// verifier against a key made here), the service-account and token-answer parsers, and the
// token source's single flight, background refresh and failures, with an injected clock and
// an upstream that answers when the test says so.
#include "switchyard/pipeline/token_broker.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

using namespace switchyard;
using namespace switchyard::pipeline;
using json = nlohmann::json;

namespace {

struct keypair {
  std::string private_pem;
  std::string public_pem;
};

keypair make_key(bool rsa = true) {
  EVP_PKEY* k = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
  keypair out;
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  out.private_pem.assign(data, static_cast<std::size_t>(n));
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(b, k);
  n = BIO_get_mem_data(b, &data);
  out.public_pem.assign(data, static_cast<std::size_t>(n));
  BIO_free(b);
  EVP_PKEY_free(k);
  return out;
}

const keypair& test_key() {
  static const keypair k = make_key();
  return k;
}

json sa_json(const std::string& pem, std::string token_uri = "https://oauth2.example.test/token") {
  return {{"type", "service_account"},
          {"project_id", "proj-1"},
          {"private_key_id", "kid-1"},
          {"private_key", pem},
          {"client_email", "sa@proj-1.iam.gserviceaccount.com"},
          {"token_uri", std::move(token_uri)}};
}

std::string b64url_decode(std::string s) {
  for (auto& c : s) {
    c = c == '-' ? '+' : c == '_' ? '/' : c;
  }
  while (s.size() % 4 != 0) {
    s += '=';
  }
  std::string out(s.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(s.data()),
                          static_cast<int>(s.size()));
  out.resize(static_cast<std::size_t>(n) - std::count(s.end() - 2, s.end(), '='));
  return out;
}

bool verify_rs256(const std::string& public_pem, std::string_view input, const std::string& sig) {
  BIO* b = BIO_new_mem_buf(public_pem.data(), static_cast<int>(public_pem.size()));
  EVP_PKEY* k = PEM_read_bio_PUBKEY(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, k) == 1 &&
            EVP_DigestVerify(md, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(k);
  return ok;
}

std::vector<std::string> split_jwt(const std::string& jwt) {
  std::vector<std::string> parts;
  std::size_t from = 0;
  for (;;) {
    auto dot = jwt.find('.', from);
    parts.push_back(jwt.substr(from, dot == std::string::npos ? std::string::npos : dot - from));
    if (dot == std::string::npos) {
      return parts;
    }
    from = dot + 1;
  }
}

// An upstream whose answers wait until the test releases them (each send() blocks on a
// timer that release() cancels), recording the requests.
class gated_upstream final : public upstream_caller {
 public:
  explicit gated_upstream(net::io_context& io) : io_(io) {}
  std::vector<upstream::request> seen;
  std::deque<upstream::response> answers;  // the next answer; the last one repeats
  bool transport_error = false;

  net::awaitable<core::result<upstream::response>> send(upstream::request req) override {
    seen.push_back(std::move(req));
    auto gate = std::make_shared<net::steady_timer>(io_, net::steady_timer::time_point::max());
    gates_.push_back(gate);
    co_await gate->async_wait(net::as_tuple(net::use_awaitable));
    if (transport_error) {
      co_return core::make_error(core::errc::upstream_unreachable, "Connection refused");
    }
    auto r = answers.front();
    if (answers.size() > 1) {
      answers.pop_front();
    }
    co_return r;
  }
  net::awaitable<core::result<std::unique_ptr<upstream::body_stream>>> open(upstream::request) override {
    co_return core::make_error(core::errc::internal, "not used");
  }
  // Lets every waiting send() answer.
  void release() {
    for (auto& g : gates_) {
      g->cancel();
    }
    gates_.clear();
  }
  std::size_t waiting() const { return gates_.size(); }

 private:
  net::io_context& io_;
  std::vector<std::shared_ptr<net::steady_timer>> gates_;
};

upstream::response token_answer(const std::string& token, int expires_in = 3600) {
  upstream::response r;
  r.status = 200;
  r.body = json{{"access_token", token}, {"expires_in", expires_in}, {"token_type", "Bearer"}}.dump();
  return r;
}

struct fake_clock {
  token_source::clock::time_point t{std::chrono::hours(1000)};
  token_source::now_fn fn() {
    return [this] { return t; };
  }
};

upstream::request any_request() {
  upstream::request r;
  r.url = "http://token.test/token";
  r.body = "grant_type=x";
  return r;
}

// Runs io until `done` or until nothing is left to run; returns whether it finished.
template <class Pred>
bool run_until(net::io_context& io, Pred done) {
  io.restart();
  while (!done()) {
    if (io.run_one() == 0) {
      return done();
    }
  }
  return true;
}

}  // namespace

TEST(google_jwt, is_rs256_signed_with_the_service_account_key_and_verifies_with_openssl) {
  auto sa = parse_service_account(sa_json(test_key().private_pem).dump());
  ASSERT_TRUE(sa) << sa.error().message;
  auto jwt = google_jwt(*sa, 1'700'000'000);
  ASSERT_TRUE(jwt) << jwt.error().message;
  auto parts = split_jwt(*jwt);
  ASSERT_EQ(parts.size(), 3u);
  for (const auto& p : parts) {
    EXPECT_EQ(p.find_first_of("+/="), std::string::npos) << "base64url without padding";
  }
  auto header = json::parse(b64url_decode(parts[0]));
  EXPECT_EQ(header["alg"], "RS256");
  EXPECT_EQ(header["typ"], "JWT");
  EXPECT_EQ(header["kid"], "kid-1");
  auto claims = json::parse(b64url_decode(parts[1]));
  EXPECT_EQ(claims["iss"], "sa@proj-1.iam.gserviceaccount.com");
  EXPECT_EQ(claims["aud"], "https://oauth2.example.test/token");
  EXPECT_EQ(claims["scope"], "https://www.googleapis.com/auth/cloud-platform");
  EXPECT_EQ(claims["iat"], 1'700'000'000);
  EXPECT_EQ(claims["exp"], 1'700'003'600);
  const std::string signing_input = parts[0] + "." + parts[1];
  const std::string sig = b64url_decode(parts[2]);
  EXPECT_EQ(sig.size(), 256u);
  EXPECT_TRUE(verify_rs256(test_key().public_pem, signing_input, sig));
  // The check can fail: another key, or one changed byte of the claims.
  EXPECT_FALSE(verify_rs256(make_key().public_pem, signing_input, sig));
  std::string tampered = signing_input;
  tampered[tampered.size() - 2] ^= 1;
  EXPECT_FALSE(verify_rs256(test_key().public_pem, tampered, sig));
}

TEST(google_jwt, base64url_and_form_encoding) {
  EXPECT_EQ(base64url(std::string("\xfb\xff\xfe", 3)), "-__-");
  EXPECT_EQ(base64url("a"), "YQ");
  EXPECT_EQ(form_encode("urn:ietf:params:oauth:grant-type:jwt-bearer"),
            "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer");
  EXPECT_EQ(form_encode("a b+c/d~"), "a%20b%2Bc%2Fd~");
}

TEST(service_account, bad_keys_are_clear_401s) {
  auto bad = [](const std::string& text) {
    auto r = parse_service_account(text);
    EXPECT_FALSE(r);
    return r ? core::error{} : r.error();
  };
  EXPECT_EQ(bad("not json").status, 401);
  EXPECT_NE(bad("[1]").message.find("JSON object"), std::string::npos);
  auto no_email = sa_json(test_key().private_pem);
  no_email.erase("client_email");
  EXPECT_NE(bad(no_email.dump()).message.find("client_email"), std::string::npos);
  auto garbage = sa_json("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  EXPECT_NE(bad(garbage.dump()).message.find("not a PEM RSA private key"), std::string::npos);
  EXPECT_NE(bad(sa_json(make_key(false).private_pem).dump()).message.find("RSA"), std::string::npos);
  auto user = sa_json(test_key().private_pem);
  user["type"] = "authorized_user";
  EXPECT_NE(bad(user.dump()).message.find("authorized_user"), std::string::npos);
  auto no_uri = sa_json(test_key().private_pem);
  no_uri.erase("token_uri");
  auto ok = parse_service_account(no_uri.dump());
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->token_uri, "https://oauth2.googleapis.com/token");
}

TEST(token_answer, tokens_refusals_and_failures) {
  auto t = parse_token_answer(200, R"({"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"})", "sa");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->token, "ya29.x");
  EXPECT_EQ(t->lifetime, std::chrono::seconds(3599));
  auto refused = parse_token_answer(400, R"({"error":"invalid_grant","error_description":"Invalid JWT Signature."})",
                                    "VertexAIException - service account x");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().status, 401);
  EXPECT_NE(refused.error().message.find("invalid_grant: Invalid JWT Signature."), std::string::npos);
  EXPECT_NE(refused.error().message.find("VertexAIException"), std::string::npos);
  auto down = parse_token_answer(503, "upstream connect error", "sa");
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().status, 503);
  EXPECT_FALSE(parse_token_answer(200, R"({"expires_in":10})", "sa"));
  // A lifetime far beyond a day is a day; one below zero is no token.
  auto far = parse_token_answer(200, R"({"access_token":"t","expires_in":1e300})", "sa");
  ASSERT_TRUE(far);
  EXPECT_EQ(far->lifetime, std::chrono::seconds(86'400));
  EXPECT_FALSE(parse_token_answer(200, R"({"access_token":"t","expires_in":-5.5})", "sa"));
  EXPECT_FALSE(parse_token_answer(200, "{", "sa"));
}

TEST(token_source, concurrent_first_requests_share_one_fetch) {
  net::io_context io;
  gated_upstream up(io);
  up.answers.push_back(token_answer("tok-1"));
  fake_clock clock;
  token_source src("test", [] { return core::result<upstream::request>(any_request()); }, up, clock.fn());
  EXPECT_FALSE(src.current(io.get_executor())) << "nothing held yet";
  std::vector<std::string> got;
  for (int i = 0; i < 5; ++i) {
    net::co_spawn(io, src.get(), [&](std::exception_ptr, core::result<std::string> r) {
      got.push_back(r ? *r : "error: " + r.error().message);
    });
  }
  ASSERT_TRUE(run_until(io, [&] { return up.waiting() == 1; }));
  EXPECT_EQ(src.fetches(), 1u);
  EXPECT_TRUE(got.empty()) << "the first requests wait for the first fetch";
  up.release();
  ASSERT_TRUE(run_until(io, [&] { return got.size() == 5; }));
  for (const auto& g : got) {
    EXPECT_EQ(g, "tok-1");
  }
  EXPECT_EQ(up.seen.size(), 1u);
  EXPECT_EQ(*src.current(io.get_executor()), "tok-1");
}

TEST(token_source, refreshes_in_the_background_before_expiry_and_never_serves_an_expired_token) {
  net::io_context io;
  gated_upstream up(io);
  up.answers = {token_answer("tok-1", 3600), token_answer("tok-2", 3600)};
  fake_clock clock;
  token_source src("test", [] { return core::result<upstream::request>(any_request()); }, up, clock.fn());
  std::optional<core::result<std::string>> first;
  net::co_spawn(io, src.get(), [&](std::exception_ptr, core::result<std::string> r) { first = std::move(r); });
  ASSERT_TRUE(run_until(io, [&] { return up.waiting() == 1; }));
  up.release();
  ASSERT_TRUE(run_until(io, [&] { return first.has_value(); }));
  ASSERT_TRUE(*first);

  clock.t += std::chrono::minutes(40);  // before the refresh point (3/4 of the hour)
  EXPECT_EQ(*src.current(io.get_executor()), "tok-1");
  EXPECT_EQ(src.fetches(), 1u);

  clock.t += std::chrono::minutes(10);  // 50 min: past the refresh point, still valid
  EXPECT_EQ(*src.current(io.get_executor()), "tok-1") << "the request keeps the held token";
  EXPECT_EQ(*src.current(io.get_executor()), "tok-1");
  ASSERT_TRUE(run_until(io, [&] { return up.waiting() == 1; }));
  EXPECT_EQ(src.fetches(), 2u) << "one refresh, however many requests";
  up.release();
  ASSERT_TRUE(run_until(io, [&] { return src.current(io.get_executor()) == std::optional<std::string>("tok-2"); }));

  clock.t += std::chrono::minutes(61);  // tok-2 expired too, and nothing refreshed it
  EXPECT_FALSE(src.current(io.get_executor())) << "an expired token is never handed out";
}

TEST(token_source, a_refused_or_unreachable_token_endpoint_is_a_clear_error_not_a_hang) {
  net::io_context io;
  gated_upstream up(io);
  upstream::response refused;
  refused.status = 400;
  refused.body = R"({"error":"invalid_grant","error_description":"Invalid JWT Signature."})";
  up.answers.push_back(refused);
  fake_clock clock;
  token_source src("VertexAIException - service account sa@x", [] { return core::result<upstream::request>(any_request()); },
                   up, clock.fn());
  std::optional<core::result<std::string>> r;
  net::co_spawn(io, src.get(), [&](std::exception_ptr, core::result<std::string> x) { r = std::move(x); });
  ASSERT_TRUE(run_until(io, [&] { return up.waiting() == 1; }));
  up.release();
  ASSERT_TRUE(run_until(io, [&] { return r.has_value(); }));
  ASSERT_FALSE(*r);
  EXPECT_EQ(r->error().status, 401);
  EXPECT_NE(r->error().message.find("Invalid JWT Signature"), std::string::npos);

  up.transport_error = true;  // the next request tries again: the endpoint is down now
  r.reset();
  net::co_spawn(io, src.get(), [&](std::exception_ptr, core::result<std::string> x) { r = std::move(x); });
  ASSERT_TRUE(run_until(io, [&] { return up.waiting() == 1; }));
  up.release();
  ASSERT_TRUE(run_until(io, [&] { return r.has_value(); }));
  ASSERT_FALSE(*r);
  EXPECT_EQ(r->error().code, core::errc::upstream_unreachable);
  EXPECT_NE(r->error().message.find("could not be reached"), std::string::npos);
  EXPECT_EQ(up.seen.back().timeout, std::chrono::seconds(30)) << "a fetch is bounded";
}

TEST(token_broker, sources_per_credential_for_vertex_and_entra_only) {
  net::io_context io;
  gated_upstream up(io);
  config::config cfg;
  auto dep = [](std::string id, std::string provider, json params) {
    config::deployment d;
    d.id = std::move(id);
    d.model_name = d.id;
    d.provider = config::find_provider(provider);
    d.upstream_model = "m";
    d.litellm_params = std::move(params);
    return d;
  };
  const std::string creds = sa_json(test_key().private_pem, "http://127.0.0.1:9/token").dump();
  cfg.model_list.push_back(dep("v1", "vertex_ai", {{"vertex_credentials", creds}}));
  cfg.model_list.push_back(dep("v2", "vertex_ai", {{"vertex_credentials", json::parse(creds)}}));
  cfg.model_list.push_back(dep("az", "azure", {{"tenant_id", "t1"}, {"client_id", "c1"}, {"client_secret", "s e/cret"}}));
  cfg.model_list.push_back(dep("az-static", "azure", {{"azure_ad_token", "static-token"}}));
  cfg.model_list.push_back(dep("az-key", "azure", json::object()));
  cfg.model_list.push_back(dep("oa", "openai", json::object()));
  cfg.model_list.push_back(dep("v-bad", "vertex_ai", {{"vertex_credentials", "/nonexistent/sa.json"}}));
  config::read_credentials_file(cfg.model_list.back(), nullptr);  // as the loader does
  token_broker broker(cfg, up);
  EXPECT_NE(broker.source_for(cfg.model_list[0]), nullptr);
  EXPECT_EQ(broker.source_for(cfg.model_list[0]), broker.source_for(cfg.model_list[1])) << "one credential, one source";
  EXPECT_NE(broker.source_for(cfg.model_list[2]), nullptr);
  EXPECT_EQ(*broker.source_for(cfg.model_list[3])->current(io.get_executor()), "static-token");
  EXPECT_EQ(broker.source_for(cfg.model_list[4]), nullptr) << "an api-key deployment";
  EXPECT_EQ(broker.source_for(cfg.model_list[5]), nullptr);

  // An unreadable credentials file: every request gets the same clear 401.
  std::optional<core::result<std::string>> bad;
  net::co_spawn(io, broker.source_for(cfg.model_list[6])->get(),
                [&](std::exception_ptr, core::result<std::string> r) { bad = std::move(r); });
  ASSERT_TRUE(run_until(io, [&] { return bad.has_value(); }));
  ASSERT_FALSE(*bad);
  EXPECT_EQ(bad->error().status, 401);
  EXPECT_NE(bad->error().message.find("/nonexistent/sa.json"), std::string::npos);

  // The Entra request: client credentials for Cognitive Services, form-encoded.
  up.answers.push_back(token_answer("entra-1"));
  std::optional<core::result<std::string>> az;
  net::co_spawn(io, broker.source_for(cfg.model_list[2])->get(),
                [&](std::exception_ptr, core::result<std::string> r) { az = std::move(r); });
  ASSERT_TRUE(run_until(io, [&] { return up.waiting() == 1; }));
  EXPECT_EQ(up.seen[0].url, "https://login.microsoftonline.com/t1/oauth2/v2.0/token");
  EXPECT_EQ(up.seen[0].body,
            "grant_type=client_credentials&client_id=c1&client_secret=s%20e%2Fcret&scope=https%3A%2F%2F"
            "cognitiveservices.azure.com%2F.default");
  up.release();
  ASSERT_TRUE(run_until(io, [&] { return az.has_value(); }));
  EXPECT_EQ(**az, "entra-1");

  // The Google request: the JWT-bearer grant to the key's token_uri.
  up.answers = {token_answer("ya29.g")};
  std::optional<core::result<std::string>> g;
  net::co_spawn(io, broker.source_for(cfg.model_list[0])->get(),
                [&](std::exception_ptr, core::result<std::string> r) { g = std::move(r); });
  ASSERT_TRUE(run_until(io, [&] { return up.waiting() == 1; }));
  EXPECT_EQ(up.seen[1].url, "http://127.0.0.1:9/token");
  EXPECT_EQ(up.seen[1].body.rfind("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=", 0), 0u);
  up.release();
  ASSERT_TRUE(run_until(io, [&] { return g.has_value(); }));
  EXPECT_EQ(**g, "ya29.g");
}

// A credentials file is read with the config, not when the broker is built on the event
// loop: with the file gone after the load, the source still signs with its key; a path the
// loader never read is refused, not read.
TEST(token_broker, credentials_files_come_from_the_config_load_not_the_loop) {
  net::io_context io;
  gated_upstream up(io);
  const auto dir = std::filesystem::temp_directory_path() / ("sy_broker_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = (dir / "sa.json").string();
  std::ofstream(file) << sa_json(test_key().private_pem, "http://127.0.0.1:9/token").dump();
  config::config cfg;
  auto dep = [](std::string id, json params) {
    config::deployment d;
    d.id = std::move(id);
    d.model_name = d.id;
    d.provider = config::find_provider("vertex_ai");
    d.upstream_model = "m";
    d.litellm_params = std::move(params);
    return d;
  };
  cfg.model_list.push_back(dep("read", {{"vertex_credentials", file}}));
  config::read_credentials_file(cfg.model_list.back(), nullptr);
  cfg.model_list.push_back(dep("never-read", {{"vertex_credentials", file}}));
  std::filesystem::remove_all(dir);

  token_broker broker(cfg, up);
  up.answers.push_back(token_answer("ya29.file"));
  std::optional<core::result<std::string>> got;
  net::co_spawn(io, broker.source_for(cfg.model_list[0])->get(),
                [&](std::exception_ptr, core::result<std::string> r) { got = std::move(r); });
  ASSERT_TRUE(run_until(io, [&] { return up.waiting() == 1; }));
  up.release();
  ASSERT_TRUE(run_until(io, [&] { return got.has_value(); }));
  ASSERT_TRUE(*got) << got->error().message;
  EXPECT_EQ(**got, "ya29.file");

  std::optional<core::result<std::string>> refused;
  net::co_spawn(io, broker.source_for(cfg.model_list[1])->get(),
                [&](std::exception_ptr, core::result<std::string> r) { refused = std::move(r); });
  ASSERT_TRUE(run_until(io, [&] { return refused.has_value(); }));
  ASSERT_FALSE(*refused);
  EXPECT_EQ(refused->error().status, 401);
  EXPECT_NE(refused->error().message.find("was not read with the config"), std::string::npos);
}
