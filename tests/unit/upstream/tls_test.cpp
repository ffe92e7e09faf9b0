// HTTPS through the upstream client against an in-test TLS server whose
// self-signed certificate is generated here with OpenSSL (no files checked in).
#include "switchyard/upstream/client.hpp"

#include "test_server.hpp"

#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace {

using namespace std::chrono_literals;
using namespace sy_test;
namespace core = switchyard::core;
namespace upstream = switchyard::upstream;

struct test_cert {
  std::string cert_pem;
  std::string key_pem;
};

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

void add_ext(X509* x, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) {
    throw std::runtime_error("X509V3_EXT_conf_nid failed");
  }
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
}

// Self-signed P-256 certificate for CN=localhost with the given subjectAltName.
test_cert make_self_signed(const char* san) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  if (key == nullptr || x == nullptr) {
    throw std::runtime_error("OpenSSL key/cert allocation failed");
  }
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1,
                             -1, 0);
  X509_set_issuer_name(x, name);
  add_ext(x, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(x, NID_subject_key_identifier, "hash");
  add_ext(x, NID_subject_alt_name, san);
  if (X509_sign(x, key, EVP_sha256()) == 0) {
    throw std::runtime_error("X509_sign failed");
  }
  test_cert out;
  BIO* cb = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cb, x);
  out.cert_pem = bio_string(cb);
  BIO_free(cb);
  BIO* kb = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(kb, key, nullptr, nullptr, 0, nullptr, nullptr);
  out.key_pem = bio_string(kb);
  BIO_free(kb);
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

std::shared_ptr<ssl::context> server_context(const test_cert& c) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->use_certificate_chain(net::buffer(c.cert_pem));
  ctx->use_private_key(net::buffer(c.key_pem), ssl::context::pem);
  return ctx;
}

class upstream_tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cert_ = new test_cert(make_self_signed("DNS:localhost"));
    ca_path_ = new std::string((std::filesystem::temp_directory_path() /
                                ("switchyard_upstream_test_ca_" + std::to_string(::getpid()) + ".pem"))
                                   .string());
    std::ofstream(*ca_path_) << cert_->cert_pem;
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    std::filesystem::remove(*ca_path_, ec);
    delete ca_path_;
    delete cert_;
  }

  void SetUp() override {
    srv_ = std::make_unique<test_server>(io, server_context(*cert_));
    srv_->on_request = [](server_conn& c, http_request& r, int) -> net::awaitable<bool> {
      if (r.request_line().find("/stream") != std::string::npos) {
        co_await c.write(chunked_head() + chunk("data: 1\n\n"));
        co_await c.pause(300ms);
        co_await c.write(chunk("data: 2\n\n") + last_chunk);
      } else if (r.request_line().find("/close") != std::string::npos) {
        co_await c.write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close");
        co_return false;  // TCP close without TLS close_notify
      } else {
        co_await c.write(json_reply(R"({"tls":true})"));
      }
      co_return true;
    };
  }

  template <class F>
  void run(F f, std::chrono::seconds limit = 20s) {
    std::exception_ptr error;
    bool done = run_coro(io, std::move(f), limit, error);
    ASSERT_TRUE(done) << "test coroutine did not finish within " << limit.count() << " s";
    if (error) {
      std::rethrow_exception(error);
    }
  }

  upstream::request get(std::string url) {
    upstream::request r;
    r.method = "GET";
    r.url = std::move(url);
    r.timeout = 5000ms;
    r.connect_timeout = 3000ms;
    return r;
  }

  net::io_context io;
  std::unique_ptr<test_server> srv_;
  static test_cert* cert_;
  static std::string* ca_path_;
};

test_cert* upstream_tls::cert_ = nullptr;
std::string* upstream_tls::ca_path_ = nullptr;

TEST_F(upstream_tls, verify_off_accepts_self_signed_and_pools) {
  upstream::client_options opts;
  opts.verify_tls = false;
  upstream::client cl(io.get_executor(), opts);
  std::optional<core::result<upstream::response>> a;
  std::optional<core::result<upstream::response>> b;
  run([&]() -> net::awaitable<void> {
    a = co_await cl.send(get(srv_->url("/v1/models")));
    b = co_await cl.send(get(srv_->url("/v1/models")));
  });
  ASSERT_TRUE(*a) << (*a).error().message;
  EXPECT_EQ((*a)->body, R"({"tls":true})");
  ASSERT_TRUE(*b) << (*b).error().message;
  EXPECT_EQ(srv_->connections, 1);
  EXPECT_EQ(cl.idle_connections(), 1u);
  ASSERT_EQ(srv_->sni.size(), 1u);
  EXPECT_EQ(srv_->sni[0], "");  // no SNI for an IP literal
}

TEST_F(upstream_tls, verify_on_rejects_self_signed) {
  upstream::client cl(io.get_executor());  // system CA store only
  std::optional<core::result<upstream::response>> res;
  run([&]() -> net::awaitable<void> { res = co_await cl.send(get(srv_->url("/v1/models", "localhost"))); });
  ASSERT_FALSE(*res);
  EXPECT_EQ((*res).error().code, core::errc::upstream_unreachable);
  EXPECT_NE((*res).error().message.find("self-signed"), std::string::npos) << (*res).error().message;
  EXPECT_TRUE(srv_->requests.empty());
}

TEST_F(upstream_tls, trusted_ca_file_verifies_name_and_sends_sni) {
  upstream::client_options opts;
  opts.ca_file = *ca_path_;
  upstream::client cl(io.get_executor(), opts);
  std::optional<core::result<upstream::response>> res;
  run([&]() -> net::awaitable<void> { res = co_await cl.send(get(srv_->url("/v1/models", "localhost"))); });
  ASSERT_TRUE(*res) << (*res).error().message;
  EXPECT_EQ((*res)->status, 200);
  ASSERT_EQ(srv_->sni.size(), 1u);
  EXPECT_EQ(srv_->sni[0], "localhost");
}

TEST_F(upstream_tls, hostname_mismatch_is_rejected) {
  upstream::client_options opts;
  opts.ca_file = *ca_path_;  // trusted, but issued for DNS:localhost only
  upstream::client cl(io.get_executor(), opts);
  std::optional<core::result<upstream::response>> res;
  run([&]() -> net::awaitable<void> { res = co_await cl.send(get(srv_->url("/v1/models", "127.0.0.1"))); });
  ASSERT_FALSE(*res);
  EXPECT_EQ((*res).error().code, core::errc::upstream_unreachable);
  EXPECT_NE((*res).error().message.find("hostname mismatch"), std::string::npos) << (*res).error().message;
}

TEST_F(upstream_tls, insecure_env_turns_verification_off) {
  ::setenv("SWITCHYARD_INSECURE_TLS", "1", 1);
  upstream::client cl(io.get_executor());
  ::unsetenv("SWITCHYARD_INSECURE_TLS");
  std::optional<core::result<upstream::response>> res;
  run([&]() -> net::awaitable<void> { res = co_await cl.send(get(srv_->url("/v1/models", "localhost"))); });
  ASSERT_TRUE(*res) << (*res).error().message;
}

TEST_F(upstream_tls, streaming_and_read_until_close_over_tls) {
  upstream::client_options opts;
  opts.ca_file = *ca_path_;
  upstream::client cl(io.get_executor(), opts);
  std::chrono::milliseconds first_after{};
  std::string streamed;
  std::optional<core::error> err;
  std::optional<core::result<upstream::response>> until_close;
  run([&]() -> net::awaitable<void> {
    auto s = co_await cl.open(get(srv_->url("/stream", "localhost")));
    if (!s) {
      err = s.error();
      co_return;
    }
    auto t = steady::now();
    for (bool first = true;; first = false) {
      auto p = co_await (*s)->read_some();
      if (first) {
        first_after = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t);
      }
      if (!p) {
        err = p.error();
        co_return;
      }
      if (p->empty()) {
        break;
      }
      streamed += *p;
    }
    until_close = co_await cl.send(get(srv_->url("/close", "localhost")));
  });
  ASSERT_FALSE(err) << err->message;
  EXPECT_EQ(streamed, "data: 1\n\ndata: 2\n\n");
  EXPECT_LT(first_after, 200ms);
  ASSERT_TRUE(until_close);
  ASSERT_TRUE(*until_close) << (*until_close).error().message;
  EXPECT_EQ((*until_close)->body, "until-close");
  EXPECT_EQ(srv_->connections, 1);  // the stream's connection was reused for the second request
  EXPECT_EQ(cl.idle_connections(), 0u);
}

TEST_F(upstream_tls, handshake_with_a_plain_http_server_fails_cleanly) {
  test_server plain(io);
  plain.on_connect = [](server_conn& c) -> net::awaitable<void> {
    co_await c.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    c.close();
  };
  upstream::client cl(io.get_executor());
  std::optional<core::result<upstream::response>> res;
  std::string url = "https://127.0.0.1:" + std::to_string(plain.port()) + "/";
  run([&]() -> net::awaitable<void> { res = co_await cl.send(get(url)); });
  ASSERT_FALSE(*res);
  EXPECT_EQ((*res).error().code, core::errc::upstream_unreachable);
  EXPECT_NE((*res).error().message.find("TLS handshake failed"), std::string::npos) << (*res).error().message;
}

}  // namespace
