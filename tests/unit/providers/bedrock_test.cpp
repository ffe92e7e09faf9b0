// Bedrock: SigV4 against AWS's published test suite, the event-stream framing against
// aws-c-event-stream's encoded vectors, and the Converse translation both ways.
#include "bedrock_stream.hpp"
#include "stream_harness.hpp"
#include "switchyard/providers/aws_eventstream.hpp"
#include "switchyard/providers/bedrock.hpp"
#include "switchyard/providers/sigv4.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <random>

using namespace switchyard;
using json = nlohmann::json;
using providers::call_type;
namespace aws = providers::aws;

namespace {

// ---- SigV4: AWS's "aws-sig-v4-test-suite" (the Signature Version 4 test suite in
// AWS's General Reference): credentials AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY,
// date 20150830T123600Z, region us-east-1, service "service", host example.amazonaws.com.

const aws::credentials suite_creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
constexpr std::string_view suite_date = "20150830T123600Z";
constexpr std::string_view empty_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct suite_case {
  const char* name;
  const char* method;
  const char* path;
  const char* query;
  providers::header_list extra;  // besides host and x-amz-date
  const char* payload;
  const char* signed_headers;
  const char* signature;
};

aws::signature sign_case(const suite_case& c, const aws::credentials& creds = suite_creds) {
  providers::header_list headers{{"Host", "example.amazonaws.com"}, {"X-Amz-Date", std::string(suite_date)}};
  for (const auto& h : c.extra) {
    headers.push_back(h);
  }
  aws::sign_input in{c.method, c.path, c.query, &headers, c.payload};
  return aws::sign(in, creds, "us-east-1", "service", suite_date);
}

TEST(SigV4, GetVanillaCanonicalRequestStringToSignAndSignature) {
  suite_case c{"get-vanilla", "GET", "/", "", {}, "", "host;x-amz-date", ""};
  auto s = sign_case(c);
  EXPECT_EQ(s.canonical_request, "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" +
                                     std::string(empty_hash));
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  EXPECT_EQ(s.signature, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  EXPECT_EQ(s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(SigV4, PublishedSuiteSignatures) {
  const suite_case cases[] = {
      {"get-vanilla-query", "GET", "/", "", {}, "", "host;x-amz-date",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"get-vanilla-query-order-key-case", "GET", "/", "Param2=value2&Param1=value1", {}, "", "host;x-amz-date",
       "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
      {"get-vanilla-empty-query-key", "GET", "/", "Param1=value1", {}, "", "host;x-amz-date",
       "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
      {"get-vanilla-query-unreserved", "GET", "/",
       "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
       "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
       {}, "", "host;x-amz-date", "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
      {"get-vanilla-utf8-query", "GET", "/", "\xE1\x88\xB4=bar", {}, "", "host;x-amz-date",
       "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
      {"get-unreserved", "GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "", {}, "",
       "host;x-amz-date", "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
      {"get-utf8", "GET", "/\xE1\x88\xB4", "", {}, "", "host;x-amz-date",
       "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
      {"get-header-value-trim", "GET", "/", "", {{"My-Header1", " value1"}, {"My-Header2", "\"a   b   c\""}}, "",
       "host;my-header1;my-header2;x-amz-date", "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
      {"post-vanilla", "POST", "/", "", {}, "", "host;x-amz-date",
       "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
      {"post-vanilla-query", "POST", "/", "Param1=value1", {}, "", "host;x-amz-date",
       "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
      {"post-header-key-sort", "POST", "/", "", {{"My-Header1", "value1"}}, "", "host;my-header1;x-amz-date",
       "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
      {"post-header-value-case", "POST", "/", "", {{"My-Header1", "VALUE1"}}, "", "host;my-header1;x-amz-date",
       "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
      {"post-x-www-form-urlencoded", "POST", "/", "", {{"Content-Type", "application/x-www-form-urlencoded"}},
       "Param1=value1", "content-type;host;x-amz-date",
       "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
  };
  for (const auto& c : cases) {
    auto s = sign_case(c);
    EXPECT_EQ(s.signed_headers, c.signed_headers) << c.name;
    EXPECT_EQ(s.signature, c.signature) << c.name << "\n" << s.canonical_request;
  }
}

TEST(SigV4, PostStsHeaderBeforeSignsTheSessionToken) {
  // post-sts-token/post-sts-header-before: X-Amz-Security-Token is part of the canonical request.
  const std::string token =
      "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUu"
      "wthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQc"
      "HNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLx"
      "BA==";
  suite_case c{"post-sts-header-before", "POST", "/", "", {{"X-Amz-Security-Token", token}}, "",
               "host;x-amz-date;x-amz-security-token", ""};
  auto s = sign_case(c);
  EXPECT_EQ(s.signed_headers, "host;x-amz-date;x-amz-security-token");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6");
  EXPECT_EQ(s.signature, "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead");
}

TEST(SigV4, WrongSecretChangesTheSignature) {
  suite_case c{"get-vanilla", "GET", "/", "", {}, "", "", ""};
  auto s = sign_case(c, {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz", ""});
  EXPECT_NE(s.signature, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(SigV4, AmzDateAndUriEncode) {
  using namespace std::chrono;
  EXPECT_EQ(aws::amz_date(system_clock::time_point(seconds(1440938160))), "20150830T123600Z");
  EXPECT_EQ(aws::uri_encode("us.anthropic.claude-3-5-sonnet-20240620-v1:0", false),
            "us.anthropic.claude-3-5-sonnet-20240620-v1%3A0");
  EXPECT_EQ(aws::uri_encode("a b/c~", true), "a%20b/c~");
  EXPECT_EQ(aws::uri_encode("a/b", false), "a%2Fb");
}

// ---- event-stream framing: aws-c-event-stream's encoded/positive vectors

std::string bytes(std::initializer_list<unsigned> b) {
  std::string s;
  for (auto x : b) {
    s += static_cast<char>(x);
  }
  return s;
}

TEST(EventStream, Crc32CheckValue) { EXPECT_EQ(aws::crc32("123456789"), 0xCBF43926u); }

TEST(EventStream, EmptyMessageVector) {
  const auto v = bytes({0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff});
  EXPECT_EQ(aws::encode_message({}, ""), v);
  aws::event_stream_decoder dec;
  std::vector<aws::event_message> out;
  EXPECT_FALSE(dec.feed(v, out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].payload.empty());
  EXPECT_TRUE(out[0].headers.empty());
}

TEST(EventStream, PayloadAndHeaderVectors) {
  const auto payload_only = bytes({0x00, 0x00, 0x00, 0x1D, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x52, 0x8c, 0x5a, 0x7b,
                                   0x27, 0x66, 0x6f, 0x6f, 0x27, 0x3a, 0x27, 0x62, 0x61, 0x72, 0x27, 0x7d, 0xc3,
                                   0x65, 0x39, 0x36});
  EXPECT_EQ(aws::encode_message({}, "{'foo':'bar'}"), payload_only);
  const auto with_header = aws::encode_message({{"content-type", "application/json"}}, "{'foo':'bar'}");
  EXPECT_EQ(with_header.substr(0, 12), bytes({0x00, 0x00, 0x00, 0x3D, 0x00, 0x00, 0x00, 0x20, 0x07, 0xFD, 0x83, 0x96}));
  EXPECT_EQ(with_header.substr(with_header.size() - 4), bytes({0x8D, 0x9C, 0x08, 0xB1}));

  aws::event_stream_decoder dec;
  std::vector<aws::event_message> out;
  const std::string both = payload_only + with_header;
  for (char c : both) {  // one byte at a time
    ASSERT_FALSE(dec.feed(std::string_view(&c, 1), out));
  }
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].payload, "{'foo':'bar'}");
  EXPECT_EQ(out[1].header("content-type"), "application/json");
  EXPECT_EQ(out[1].payload, "{'foo':'bar'}");
  EXPECT_EQ(dec.pending(), 0u);
}

TEST(EventStream, BadPreludeCrcBadMessageCrcAndBadLengthsFail) {
  auto good = aws::encode_message({{":event-type", "x"}}, "{}");
  {
    auto bad = good;
    bad[9] = static_cast<char>(bad[9] ^ 1);  // prelude CRC
    aws::event_stream_decoder dec;
    std::vector<aws::event_message> out;
    auto e = dec.feed(bad, out);
    ASSERT_TRUE(e);
    EXPECT_NE(e->find("prelude CRC"), std::string::npos);
    EXPECT_TRUE(dec.feed(good, out));  // stays failed
    EXPECT_TRUE(out.empty());
  }
  {
    auto bad = good;
    bad[bad.size() - 6] = static_cast<char>(bad[bad.size() - 6] ^ 0x20);  // payload byte
    aws::event_stream_decoder dec;
    std::vector<aws::event_message> out;
    auto e = dec.feed(bad, out);
    ASSERT_TRUE(e);
    EXPECT_NE(e->find("message CRC"), std::string::npos);
  }
  {
    // total length 8 (< 16) with a correct prelude CRC.
    std::string p = bytes({0, 0, 0, 8, 0, 0, 0, 0});
    auto crc = aws::crc32(p);
    p += bytes({crc >> 24, (crc >> 16) & 0xff, (crc >> 8) & 0xff, crc & 0xff});
    aws::event_stream_decoder dec;
    std::vector<aws::event_message> out;
    auto e = dec.feed(p, out);
    ASSERT_TRUE(e);
    EXPECT_NE(e->find("length"), std::string::npos);
  }
}

TEST(EventStream, TruncatedFrameIsPendingAndFirstMessageEnd) {
  auto m = aws::encode_message({{":event-type", "messageStart"}}, "{\"role\":\"assistant\"}");
  aws::event_stream_decoder dec;
  std::vector<aws::event_message> out;
  EXPECT_FALSE(dec.feed(std::string_view(m).substr(0, m.size() - 3), out));
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(dec.pending(), m.size() - 3);
  EXPECT_EQ(aws::first_message_end(m + m), m.size());
  EXPECT_EQ(aws::first_message_end(std::string_view(m).substr(0, 11)), 0u);
  EXPECT_EQ(aws::first_message_end(std::string_view(m).substr(0, m.size() - 1)), 0u);
}

// ---- Converse translation

config::deployment bedrock_dep(std::string model = "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0") {
  config::deployment d;
  d.model_name = "claude-bedrock";
  d.model = model;
  d.provider = config::find_provider("bedrock");
  d.upstream_model = model.substr(std::string("bedrock/").size());
  d.litellm_params = {{"model", model},
                      {"aws_access_key_id", "AKIDEXAMPLE"},
                      {"aws_secret_access_key", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
                      {"aws_region_name", "us-west-2"}};
  return d;
}

std::string header(const providers::upstream_call& c, const std::string& name) {
  for (const auto& [k, v] : c.headers) {
    if (k == name) {
      return v;
    }
  }
  return {};
}

const auto fixed_time = std::chrono::system_clock::time_point(std::chrono::seconds(1440938160));

TEST(Bedrock, RegistryEntry) {
  const auto* p = config::find_provider_for_model("bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->name, "bedrock");
  EXPECT_EQ(&providers::adapter_for(*p), &providers::bedrock_adapter());
  EXPECT_TRUE(providers::supports(*p, call_type::chat));
  EXPECT_TRUE(providers::supports(*p, call_type::embedding));
  EXPECT_FALSE(providers::supports(*p, call_type::completion));
  auto m = aws::encode_message({}, "{}");
  EXPECT_EQ(providers::first_event_end(p->framing, m + "xyz"), m.size());
}

TEST(Bedrock, ConverseRequestTranslationAndSignature) {
  json body = {
      {"model", "claude-bedrock"},
      {"messages",
       {{{"role", "system"}, {"content", "Be terse."}},
        {{"role", "user"},
         {"content",
          {{{"type", "text"}, {"text", "What is in this image?"}},
           {{"type", "image_url"}, {"image_url", {{"url", "data:image/png;base64,iVBORw0KGgo="}}}}}}},
        {{"role", "assistant"},
         {"content", nullptr},
         {"tool_calls",
          {{{"id", "tooluse_1"},
            {"type", "function"},
            {"function", {{"name", "get_weather"}, {"arguments", "{\"city\":\"Paris\"}"}}}}}}},
        {{"role", "tool"}, {"tool_call_id", "tooluse_1"}, {"content", "sunny"}}}},
      {"tools",
       {{{"type", "function"},
         {"function",
          {{"name", "get_weather"},
           {"description", "Weather"},
           {"parameters", {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}}}}}}}},
      {"tool_choice", "required"},
      {"max_tokens", 100},
      {"temperature", 0.5},
      {"top_p", 0.9},
      {"stop", "END"},
      {"top_k", 5}};
  auto call = providers::build_bedrock_call(call_type::chat, bedrock_dep(), body, {}, fixed_time);
  ASSERT_TRUE(call) << call.error().message;
  EXPECT_EQ(call->url,
            "https://bedrock-runtime.us-west-2.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
  auto j = json::parse(call->body);
  EXPECT_EQ(j["system"], json::parse(R"([{"text":"Be terse."}])"));
  EXPECT_EQ(j["messages"][0]["role"], "user");
  EXPECT_EQ(j["messages"][0]["content"][1]["image"]["format"], "png");
  EXPECT_EQ(j["messages"][0]["content"][1]["image"]["source"]["bytes"], "iVBORw0KGgo=");
  EXPECT_EQ(j["messages"][1]["content"][0]["toolUse"]["toolUseId"], "tooluse_1");
  EXPECT_EQ(j["messages"][1]["content"][0]["toolUse"]["input"]["city"], "Paris");
  EXPECT_EQ(j["messages"][2]["content"][0]["toolResult"]["toolUseId"], "tooluse_1");
  EXPECT_EQ(j["messages"][2]["content"][0]["toolResult"]["content"][0]["text"], "sunny");
  EXPECT_EQ(j["toolConfig"]["tools"][0]["toolSpec"]["name"], "get_weather");
  EXPECT_EQ(j["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["type"], "object");
  EXPECT_TRUE(j["toolConfig"]["toolChoice"].contains("any"));
  EXPECT_EQ(j["inferenceConfig"], json::parse(R"({"maxTokens":100,"temperature":0.5,"topP":0.9,"stopSequences":["END"]})"));
  EXPECT_EQ(j["additionalModelRequestFields"]["top_k"], 5);
  EXPECT_EQ(header(*call, "x-amz-date"), "20150830T123600Z");
  EXPECT_EQ(header(*call, "x-amz-security-token"), "");

  // The signature is what an independent signer computes over the double-encoded path.
  providers::header_list h{{"content-type", "application/json"},
                           {"host", "bedrock-runtime.us-west-2.amazonaws.com"},
                           {"x-amz-date", "20150830T123600Z"}};
  aws::sign_input in{"POST", "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse", "", &h, call->body};
  auto expect = aws::sign(in, {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""}, "us-west-2", "bedrock",
                          "20150830T123600Z");
  EXPECT_NE(expect.canonical_request.find("/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse"),
            std::string::npos);
  EXPECT_EQ(header(*call, "authorization"), expect.authorization);
}

TEST(Bedrock, StreamUrlSessionTokenEndpointOverrideAndRoutePrefix) {
  auto d = bedrock_dep("bedrock/converse/us.anthropic.claude-3-5-sonnet-20240620-v1:0");
  d.litellm_params["aws_session_token"] = "TOKEN";
  d.litellm_params["aws_bedrock_runtime_endpoint"] = "http://127.0.0.1:9999/";
  json body = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"stream", true}};
  auto call = providers::build_bedrock_call(call_type::chat, d, body, providers::build_options{true, false}, fixed_time);
  ASSERT_TRUE(call) << call.error().message;
  EXPECT_EQ(call->url, "http://127.0.0.1:9999/model/us.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream");
  EXPECT_EQ(header(*call, "x-amz-security-token"), "TOKEN");
  EXPECT_NE(header(*call, "authorization").find("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"),
            std::string::npos);
  EXPECT_NE(header(*call, "authorization").find("/us-west-2/bedrock/aws4_request"), std::string::npos);
}

TEST(Bedrock, RequestErrors) {
  auto d = bedrock_dep();
  json msgs = {{{"role", "user"}, {"content", "hi"}}};
  auto no_creds = d;
  no_creds.litellm_params.erase("aws_secret_access_key");
  auto e = providers::build_bedrock_call(call_type::chat, no_creds, {{"messages", msgs}}, {}, fixed_time);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().status, 401);
  EXPECT_NE(e.error().message.find("AWS_SECRET_ACCESS_KEY"), std::string::npos);

  auto unsupported = providers::build_bedrock_call(call_type::chat, d, {{"messages", msgs}, {"logit_bias", {{"1", 2}}}},
                                                   {}, fixed_time);
  ASSERT_FALSE(unsupported);
  EXPECT_EQ(unsupported.error().status, 400);
  EXPECT_EQ(unsupported.error().param, "logit_bias");
  EXPECT_TRUE(providers::build_bedrock_call(call_type::chat, d, {{"messages", msgs}, {"logit_bias", {{"1", 2}}}},
                                            providers::build_options{false, true}, fixed_time));

  json url_image = {{{"role", "user"},
                     {"content", {{{"type", "image_url"}, {"image_url", {{"url", "https://example.com/a.png"}}}}}}}};
  auto img = providers::build_bedrock_call(call_type::chat, d, {{"messages", url_image}}, {}, fixed_time);
  ASSERT_FALSE(img);
  EXPECT_EQ(img.error().status, 400);

  auto completion = providers::build_bedrock_call(call_type::completion, d, {{"prompt", "x"}}, {}, fixed_time);
  ASSERT_FALSE(completion);
  EXPECT_EQ(completion.error().status, 400);

  // tool_choice none: the tools are not sent.
  json tools = {{{"type", "function"}, {"function", {{"name", "f"}}}}};
  auto none = providers::build_bedrock_call(call_type::chat, d, {{"messages", msgs}, {"tools", tools}, {"tool_choice", "none"}},
                                            {}, fixed_time);
  ASSERT_TRUE(none);
  EXPECT_FALSE(json::parse(none->body).contains("toolConfig"));
  // ... unless the conversation holds tool calls or results: Bedrock refuses those blocks
  // without a toolConfig, so the tools go, without toolChoice.
  json history = {{{"role", "user"}, {"content", "hi"}},
                  {{"role", "assistant"},
                   {"tool_calls", {{{"id", "t1"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", "{}"}}}}}}},
                  {{"role", "tool"}, {"tool_call_id", "t1"}, {"content", "done"}}};
  auto after_tools = providers::build_bedrock_call(
      call_type::chat, d, {{"messages", history}, {"tools", tools}, {"tool_choice", "none"}}, {}, fixed_time);
  ASSERT_TRUE(after_tools);
  json tc = json::parse(after_tools->body)["toolConfig"];
  EXPECT_EQ(tc["tools"][0]["toolSpec"]["name"], "f");
  EXPECT_FALSE(tc.contains("toolChoice"));
}

TEST(Bedrock, EmbeddingRequests) {
  auto titan = bedrock_dep("bedrock/amazon.titan-embed-text-v2:0");
  auto call = providers::build_bedrock_call(call_type::embedding, titan, {{"input", "hello"}, {"dimensions", 256}}, {},
                                            fixed_time);
  ASSERT_TRUE(call) << call.error().message;
  EXPECT_EQ(call->url, "https://bedrock-runtime.us-west-2.amazonaws.com/model/amazon.titan-embed-text-v2%3A0/invoke");
  EXPECT_EQ(json::parse(call->body), json::parse(R"({"inputText":"hello","dimensions":256})"));
  auto many = providers::build_bedrock_call(call_type::embedding, titan, {{"input", {"a", "b"}}}, {}, fixed_time);
  ASSERT_FALSE(many);
  EXPECT_EQ(many.error().status, 400);

  auto cohere = bedrock_dep("bedrock/cohere.embed-english-v3");
  auto cc = providers::build_bedrock_call(call_type::embedding, cohere, {{"input", {"a", "b"}}}, {}, fixed_time);
  ASSERT_TRUE(cc);
  EXPECT_EQ(json::parse(cc->body), json::parse(R"({"texts":["a","b"],"input_type":"search_document"})"));

  const auto& a = providers::bedrock_adapter();
  auto tr = a.translate_response(call_type::embedding, titan, R"({"embedding":[0.5,-0.25],"inputTextTokenCount":3})",
                                 "emb");
  ASSERT_TRUE(tr);
  auto j = json::parse(tr->body);
  EXPECT_EQ(j["data"][0]["embedding"], json::parse("[0.5,-0.25]"));
  EXPECT_EQ(j["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(tr->tokens.prompt_tokens, 3);
  auto tc = a.translate_response(call_type::embedding, cohere, R"({"embeddings":[[1,2],[3,4]],"id":"x"})", "emb");
  ASSERT_TRUE(tc);
  EXPECT_EQ(json::parse(tc->body)["data"][1]["embedding"], json::parse("[3,4]"));
  EXPECT_FALSE(a.translate_response(call_type::embedding, titan, R"({"embedding":"nope"})", "emb"));
}

TEST(Bedrock, ConverseResponseTranslation) {
  const auto& a = providers::bedrock_adapter();
  constexpr std::string_view body = R"({
    "output": {"message": {"role": "assistant", "content": [
      {"text": "Let me check."},
      {"toolUse": {"toolUseId": "tooluse_abc", "name": "get_weather", "input": {"city": "Paris"}}}]}},
    "stopReason": "tool_use",
    "usage": {"inputTokens": 30, "outputTokens": 12, "totalTokens": 42, "cacheReadInputTokens": 4, "cacheWriteInputTokens": 0},
    "metrics": {"latencyMs": 100}})";
  auto r = a.translate_response(call_type::chat, bedrock_dep(), body, "claude-bedrock");
  ASSERT_TRUE(r) << r.error().message;
  auto j = json::parse(r->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "claude-bedrock");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Let me check.");
  EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["id"], "tooluse_abc");
  EXPECT_EQ(json::parse(j["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"].get<std::string>()),
            json::parse(R"({"city":"Paris"})"));
  EXPECT_EQ(j["usage"]["prompt_tokens"], 34);
  EXPECT_EQ(j["usage"]["completion_tokens"], 12);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
  EXPECT_EQ(r->tokens.prompt_tokens, 34);
  EXPECT_EQ(r->tokens.cached_tokens, 4);

  for (std::string_view bad : {"not json", "{}", R"({"output":{"message":{"content":"x"}}})", "[1]"}) {
    auto e = a.translate_response(call_type::chat, bedrock_dep(), bad, "m");
    ASSERT_FALSE(e) << bad;
    EXPECT_GE(e.error().status, 500);
    EXPECT_NE(e.error().message.find("BedrockException"), std::string::npos);
  }
  auto len = a.translate_response(call_type::chat, bedrock_dep(),
                                  R"({"output":{"message":{"content":[{"text":"x"}]}},"stopReason":"max_tokens"})", "m");
  ASSERT_TRUE(len);
  EXPECT_EQ(json::parse(len->body)["choices"][0]["finish_reason"], "length");
}

TEST(Bedrock, HttpErrorMapping) {
  const auto& a = providers::bedrock_adapter();
  auto e = a.translate_error(bedrock_dep(), 429, R"({"message":"Too many requests, please wait before trying again."})");
  EXPECT_EQ(e.status, 429);
  EXPECT_TRUE(e.retryable);
  EXPECT_NE(e.message.find("BedrockException"), std::string::npos);
  EXPECT_NE(e.message.find("Too many requests"), std::string::npos);
  auto v = a.translate_error(bedrock_dep(), 400, R"({"__type":"com.amazon#ValidationException","message":"bad"})");
  EXPECT_EQ(v.status, 400);
  EXPECT_NE(v.message.find("ValidationException: bad"), std::string::npos);
  auto d = a.translate_error(bedrock_dep(), 403, R"({"Message":"User is not authorized"})");
  EXPECT_EQ(d.status, 403);
  EXPECT_NE(d.message.find("not authorized"), std::string::npos);
}

// ---- ConverseStream

std::string event(const std::string& type, const std::string& payload) {
  return aws::encode_message({{":event-type", type}, {":content-type", "application/json"}, {":message-type", "event"}},
                             payload);
}

std::string tool_stream() {
  return event("messageStart", R"({"role":"assistant"})") +
         event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"Checking"}})") +
         event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":" now."}})") +
         event("contentBlockStop", R"({"contentBlockIndex":0})") +
         event("contentBlockStart",
               R"({"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_1","name":"get_weather"}}})") +
         event("contentBlockDelta", R"({"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"city\":"}}})") +
         event("contentBlockDelta", R"({"contentBlockIndex":1,"delta":{"toolUse":{"input":"\"Paris\"}"}}})") +
         event("contentBlockStop", R"({"contentBlockIndex":1})") + event("messageStop", R"({"stopReason":"tool_use"})") +
         event("metadata", R"({"usage":{"inputTokens":20,"outputTokens":9,"totalTokens":29},"metrics":{"latencyMs":5}})");
}

TEST(Bedrock, StreamTranslationInAnySplit) {
  const auto& a = providers::bedrock_adapter();
  const auto in = tool_stream();
  auto whole = test::run_stream(a, call_type::chat, bedrock_dep(), in, true, test::split_sizes(in.size(), 0, 0));
  ASSERT_FALSE(whole.error) << whole.error->message;
  std::string text;
  std::string args;
  std::string finish;
  for (const auto& c : whole.chunks) {
    if (!c["choices"].empty()) {
      const auto& delta = c["choices"][0]["delta"];
      text += delta.value("content", "");
      if (delta.contains("tool_calls")) {
        const auto& tc = delta["tool_calls"][0];
        EXPECT_EQ(tc["index"], 0);
        if (tc.contains("id")) {
          EXPECT_EQ(tc["id"], "tooluse_1");
          EXPECT_EQ(tc["function"]["name"], "get_weather");
        }
        args += tc["function"].value("arguments", "");
      }
      if (c["choices"][0]["finish_reason"].is_string()) {
        finish = c["choices"][0]["finish_reason"];
      }
    }
  }
  EXPECT_EQ(text, "Checking now.");
  EXPECT_EQ(json::parse(args), json::parse(R"({"city":"Paris"})"));
  EXPECT_EQ(finish, "tool_calls");
  EXPECT_EQ(whole.chunks.back()["usage"]["prompt_tokens"], 20);
  EXPECT_EQ(whole.chunks.back()["usage"]["completion_tokens"], 9);
  EXPECT_EQ(whole.tokens.total_tokens, 29);
  for (std::size_t piece : {1u, 3u, 17u, 100u}) {
    auto split = test::run_stream(a, call_type::chat, bedrock_dep(), in, true, test::split_sizes(in.size(), piece, 7));
    ASSERT_FALSE(split.error);
    EXPECT_EQ(split.chunks, whole.chunks) << piece;
  }
}

TEST(Bedrock, StreamFailures) {
  const auto& a = providers::bedrock_adapter();
  const auto good = tool_stream();
  auto run = [&](std::string_view in) {
    return test::run_stream(a, call_type::chat, bedrock_dep(), in, true, test::split_sizes(in.size(), 0, 0));
  };
  // Truncated inside the last frame: the answer never completed.
  auto cut = run(std::string_view(good).substr(0, good.size() - 5));
  ASSERT_TRUE(cut.error);
  // messageStop already arrived, the truncated metadata frame still makes it an error.
  EXPECT_NE(cut.error->message.find("truncated"), std::string::npos);
  EXPECT_GE(cut.error->status, 500);

  // Ends cleanly between frames but before messageStop.
  const auto first = event("messageStart", R"({"role":"assistant"})");
  auto early = run(first);
  ASSERT_TRUE(early.error);
  EXPECT_NE(early.error->message.find("before messageStop"), std::string::npos);

  // A bad message CRC in the middle: the events before it were translated.
  auto bad = good;
  bad[first.size() + 20] = static_cast<char>(bad[first.size() + 20] ^ 0x01);
  auto crc = run(bad);
  ASSERT_TRUE(crc.error);
  EXPECT_NE(crc.error->message.find("CRC"), std::string::npos);
  EXPECT_FALSE(crc.chunks.empty());  // the role chunk from messageStart

  // A bad prelude CRC on the first frame.
  auto pre = good;
  pre[8] = static_cast<char>(pre[8] ^ 0x01);
  auto prelude = run(pre);
  ASSERT_TRUE(prelude.error);
  EXPECT_NE(prelude.error->message.find("prelude CRC"), std::string::npos);

  // An exception message: status from :exception-type, the provider's message kept.
  auto exc = first + aws::encode_message({{":exception-type", "throttlingException"},
                                          {":content-type", "application/json"},
                                          {":message-type", "exception"}},
                                         R"({"message":"Too many tokens, please wait."})");
  auto thr = run(exc);
  ASSERT_TRUE(thr.error);
  EXPECT_EQ(thr.error->status, 429);
  EXPECT_NE(thr.error->message.find("Too many tokens"), std::string::npos);
  auto val = run(aws::encode_message({{":exception-type", "validationException"}, {":message-type", "exception"}},
                                     R"({"message":"bad input"})"));
  ASSERT_TRUE(val.error);
  EXPECT_EQ(val.error->status, 400);

  // A payload that is not JSON.
  auto notjson = run(event("messageStart", "{not json"));
  ASSERT_TRUE(notjson.error);
  EXPECT_GE(notjson.error->status, 500);
}

// ---- plain events read from their scan vs the DOM ----------------------------------------

test::reading_outcome read_events(std::string_view wire, bool include_usage, bool dom_only) {
  return test::read_stream_with(
      [&](bool dom, std::size_t* scanned) {
        return providers::make_bedrock_stream("my-model", include_usage, {dom, scanned});
      },
      wire, dom_only);
}

// The two readings of `wire` agree (payloads byte for byte, error, usage), with and without
// the usage chunk. Returns how many events the scan read.
std::size_t expect_same_readings(std::string_view wire) {
  return test::expect_same_readings_with(read_events, wire);
}

// Random ConverseStream answers: text deltas with escapes and non-ASCII, tool uses,
// reasoning, citations, stop reasons and usage counts (plain, huge, negative, fractions,
// null, strings), members in other kinds, unknown members, duplicates, escaped keys,
// exceptions, unknown event types, events after messageStop, invalid JSON and UTF-8. Half
// the streams are plain (what Bedrock sends, `p` padding included), half mix in the rest.
class event_maker : public test::random_json {
 public:
  explicit event_maker(unsigned seed) : random_json(seed) {}

  std::string stream() {
    plain_ = chance(50);
    events_ = 0;
    std::string out = frame("messageStart", object({member("role", "\"assistant\"")}));
    const int blocks = pick(1, 3);
    for (int b = 0; b < blocks; ++b) {
      const std::string index = std::to_string(b);
      const bool tool = odd(15);
      if (tool || odd(5)) {
        out += frame("contentBlockStart",
                     object({member("contentBlockIndex", index),
                             member("start", tool ? R"({"toolUse":{"toolUseId":"tooluse_a","name":"f"}})" : "{}")}));
      }
      const int deltas = pick(0, 6);
      for (int i = 0; i < deltas; ++i) {
        out += frame("contentBlockDelta", object({member("contentBlockIndex", index), member("delta", delta(tool))}));
        if (odd(2)) {
          out += odd_event();
        }
      }
      out += frame("contentBlockStop", object({member("contentBlockIndex", index)}));
    }
    if (!odd(5)) {
      std::vector<std::string> m;
      if (!odd(10)) {
        m.push_back(member("stopReason", plain_ ? one_of({R"("end_turn")", R"("max_tokens")", R"("stop_sequence")"})
                                                : one_of({R"("end_turn")", R"("tool_use")", R"("max_tokens")",
                                                          R"("guardrail_intervened")", R"("content_filtered")",
                                                          R"("\u006dax_tokens")", R"("")", "null", "5"})));
      }
      if (odd(5)) {
        m.push_back(member("additionalModelResponseFields", R"({"stop_sequence":null})"));
      }
      out += frame("messageStop", object(std::move(m)));
    }
    if (odd(5)) {
      out += frame("contentBlockDelta", object({member("contentBlockIndex", "0"), member("delta", delta(false))}));
    }
    if (!odd(10)) {
      out += frame("metadata", metadata());
    }
    if (odd(5)) {
      out += odd_event();
    }
    return out;
  }

  int events() const { return events_; }

 private:

  std::string frame(const std::string& type, const std::string& payload) {
    ++events_;
    if (odd(3)) {
      return event(type, one_of({payload.substr(0, payload.size() / 2), "[1]", "", "null", payload + "x"}));
    }
    return event(type, payload);
  }

  // The members, perhaps with Bedrock's `p` padding, a duplicate or an unknown member.
  std::string object(std::vector<std::string> members) {
    if (chance(70)) {
      members.push_back(member("p", "\"" + std::string("abcdefghijklmnopqrstuvwxyz").substr(0, pick(1, 26)) + "\""));
    }
    return braces(std::move(members), true);
  }

  std::string text() {
    static const std::string_view pieces[] = {"The",       " sky",    "",         "\\\"",           "\\\\",
                                              "\\/",       "\\n",     "\\t",      "\\b\\f\\r",      "\\u0000",
                                              "\\u001f",   "\\u00e9", "\\u4f60",  "\\ud83d\\ude00", "\xc3\xa9",
                                              "\xe4\xbd\xa0", "<b>&", " ",        "\x7f"};
    std::string out;
    const int n = pick(plain_ ? 1 : 0, 3);
    for (int i = 0; i < n; ++i) {
      out += pieces[pick(0, static_cast<int>(std::size(pieces)) - 1)];
    }
    if (odd(2)) {
      out += "\xff";
    }
    return "\"" + out + "\"";
  }

  std::string delta(bool tool) {
    if (tool && !odd(10)) {
      return object({member("toolUse", object({member("input", one_of({R"("{\"a\":")", R"("1}")", R"("")"}))}))});
    }
    if (odd(10)) {
      return one_of({R"({"reasoningContent":{"text":"hmm"}})", R"({"reasoningContent":{"signature":"c2ln"}})",
                     R"({"citation":{"title":"t"}})", R"({"toolUse":{"input":"{}"}})", "null", "\"x\"", "{}",
                     R"({"text":5})", R"({"text":null})"});
    }
    std::vector<std::string> m{member("text", text())};
    if (odd(5)) {
      m.push_back(member(one_of({"toolUse", "reasoningContent"}), R"({"input":"x","text":"y"})"));
    }
    if (odd(3)) {
      m.push_back(m.front());  // text twice
    }
    std::string out = "{";
    for (std::size_t i = 0; i < m.size(); ++i) {
      out += (i ? "," : "") + m[i];
    }
    return out + "}";
  }

  std::string count() {
    return plain_ ? std::to_string(pick(0, 5000))
                  : one_of({"12", "0", "-3", "2.5", "1e3", "99999999999999999999", "1000000000000001", "null",
                            "\"7\"", "4000000000"});
  }

  std::string metadata() {
    std::vector<std::string> u;
    for (const char* k : {"inputTokens", "outputTokens", "totalTokens"}) {
      if (!odd(10)) {
        u.push_back(member(k, count()));
      }
    }
    if (chance(20)) {
      u.push_back(member("cacheReadInputTokens", count()));
    }
    if (chance(20)) {
      u.push_back(member("cacheWriteInputTokens", count()));
    }
    if (odd(5)) {
      u.push_back(member(one_of({"cacheDetails", "serverToolUsage"}), "[]"));
    }
    if (odd(3) && !u.empty()) {
      u.push_back(u.back());
    }
    std::string usage = "{";
    for (std::size_t i = 0; i < u.size(); ++i) {
      usage += (i ? "," : "") + u[i];
    }
    usage += "}";
    std::vector<std::string> m;
    if (!odd(10)) {
      m.push_back(member("usage", odd(5) ? one_of({"null", "\"x\"", "[]"}) : usage));
    }
    m.push_back(member("metrics", R"({"latencyMs":312})"));
    if (odd(5)) {
      m.push_back(member("trace", R"({"guardrail":{}})"));
    }
    return object(std::move(m));
  }

  std::string odd_event() {
    switch (pick(0, 3)) {
      case 0:
        return aws::encode_message({{":exception-type", one_of({"throttlingException", "modelStreamErrorException"})},
                                    {":content-type", "application/json"},
                                    {":message-type", "exception"}},
                                   R"({"message":"Too many tokens"})");
      case 1: return event(one_of({"citationsDelta", "messageStarted", "contentBlockdelta"}), "{}");
      case 2: return frame("metadata", metadata());
      default: return frame("messageStart", object({member("role", "\"assistant\"")}));
    }
  }

  int events_ = 0;
};

// Whatever the scan reads, it translates exactly as the DOM does (chunks, errors, usage),
// over thousands of random streams; and it reads most of their events.
TEST(Bedrock, ScannedEventsGiveTheDomPathsBytesOverManyShapes) {
  std::size_t events = 0;
  std::size_t scanned = 0;
  for (unsigned seed = 0; seed < 3000; ++seed) {
    event_maker maker(seed);
    const std::string wire = maker.stream();
    SCOPED_TRACE(seed);
    scanned += expect_same_readings(wire);
    events += static_cast<std::size_t>(maker.events());
    if (HasFailure()) {
      break;
    }
  }
  std::printf("bedrock stream: %zu of %zu random events read from their scan\n", scanned, events);
  EXPECT_GT(scanned * 10, events * 4) << "most plain events take the scan";
  EXPECT_LT(scanned, events) << "and some are left to the DOM";
}

// Named shapes: a plain answer is read from its scan, event by event; what the scan cannot
// vouch for goes to the DOM; the same output either way.
TEST(Bedrock, PlainEventsAreScannedAndTheRestReadByTheDom) {
  const std::string start = event("messageStart", R"({"role":"assistant","p":"abcd"})");
  const std::string stop = event("messageStop", R"({"stopReason":"end_turn","p":"ab"})");
  const std::string meta = event(
      "metadata",
      R"({"usage":{"inputTokens":24,"outputTokens":20,"totalTokens":44},"metrics":{"latencyMs":312},"p":"abc"})");
  const std::string text = event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"Hi"},"p":"a"})");
  EXPECT_EQ(expect_same_readings(start + text + text + event("contentBlockStop", R"({"contentBlockIndex":0})") +
                                 stop + meta),
            6u);
  EXPECT_EQ(expect_same_readings(tool_stream()), 7u) << "the tool use's start and deltas go to the DOM";
  // Escapes, non-ASCII, huge and cache counts, a stop reason with an escape: all scanned.
  EXPECT_EQ(expect_same_readings(
                start +
                event("contentBlockDelta",
                      R"({"delta":{"text":"a\"b\\c\/\b\f\n\u0001\u00e9\ud83d\ude00 é"},"contentBlockIndex":0})") +
                event("messageStop", R"({"stopReason":"\u006dax_tokens"})") +
                event("metadata",
                      R"({"usage":{"inputTokens":18446744073709551615,"outputTokens":1000000000000001,)"
                      R"("cacheReadInputTokens":7,"cacheWriteInputTokens":3}})")),
            4u);
  // One event the scan leaves to the DOM, between plain ones.
  for (const auto& [type, payload] : std::vector<std::pair<std::string, std::string>>{
           {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"hmm"}}})"},
           {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"reasoningContent":{"signature":"c2ln"}}})"},
           {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":""}})"},
           {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"a","text":"b"}})"},
           {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"\u0074ext":"a"}})"},
           {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"a","citation":{}}})"},
           {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"a"},"delta":{"text":"b"}})"},
           {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"a"},"extra":1})"},
           {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"a"},"p":"x","p":"y"})"},
           {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":5}})"},
           {"contentBlockStart", R"({"contentBlockIndex":0,"start":{}})"},
           {"contentBlockStop", R"({"contentBlockIndex":0,"stopped":true})"},
           {"messageStart", R"({"role":"assistant","role":"assistant"})"},
           {"citationsDelta", R"({"text":"a"})"},
           {"metadata", R"({"usage":{"inputTokens":2.0,"outputTokens":1}})"},
           {"metadata", R"({"usage":{"inputTokens":-1,"outputTokens":1}})"},
           {"metadata", R"({"usage":{"inputTokens":"7","outputTokens":1}})"},
           {"metadata", R"({"usage":{"inputTokens":null,"outputTokens":1}})"},
           {"metadata", R"({"usage":{"inputTokens":1,"inputTokens":2}})"},
           {"metadata", R"({"usage":{"inputTokens":1,"cacheDetails":[]}})"},
           {"metadata", R"({"usage":null})"},
       }) {
    EXPECT_EQ(expect_same_readings(start + event(type, payload) + stop + meta), 3u) << type << " " << payload;
  }
  // Events the DOM turns into an error: invalid JSON or UTF-8, a delta that is no object.
  for (const auto& [type, payload] : std::vector<std::pair<std::string, std::string>>{
           {"contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"\xff\"}}"},
           {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":null})"},
           {"contentBlockDelta", R"({"contentBlockIndex":0})"},
           {"messageStop", R"({"stopReason":"end_turn")"},
           {"metadata", "[1]"},
       }) {
    const auto wire = start + event(type, payload) + stop + meta;
    EXPECT_EQ(expect_same_readings(wire), 1u) << type << " " << payload;
    EXPECT_TRUE(read_events(wire, true, false).error) << type << " " << payload;
  }
  // A stop reason that is no string (then, after messageStop, only metadata counts), and an
  // exception between plain events.
  EXPECT_EQ(expect_same_readings(start + event("messageStop", R"({"stopReason":null})") + text + meta), 2u);
  EXPECT_EQ(expect_same_readings(start + text +
                                 aws::encode_message({{":exception-type", "throttlingException"},
                                                      {":message-type", "exception"}},
                                                     R"({"message":"slow down"})") +
                                 stop),
            2u);
}

}  // namespace
