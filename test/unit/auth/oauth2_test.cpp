// The OAuth2 exchange without I/O (lib/auth/oauth2.hpp): each grant's form, what token
// responses mean (success, RFC 6749 §5.2 errors and their classes, malformed bodies), the
// RS256 assertion (signature checked with OpenSSL against the public key, claims read back
// with Boost.JSON), service-account key files.

#include "auth/oauth2.hpp"

#include <boost/json.hpp>

#include <doctest/doctest.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>
#include <string>

using namespace std::chrono_literals;
using namespace mailroom;
using namespace mailroom::auth;
using namespace mailroom::auth::detail;
namespace json = boost::json;

namespace {

std::string pem_of(EVP_PKEY* k, bool priv)
{
    std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new(BIO_s_mem()), &BIO_free);
    if (priv)
        PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
    else
        PEM_write_bio_PUBKEY(b.get(), k);
    char* p = nullptr;
    const long n = BIO_get_mem_data(b.get(), &p);
    return std::string(p, static_cast<std::size_t>(n));
}

struct keypair {
    std::shared_ptr<EVP_PKEY> key;
    explicit keypair(unsigned bits)
        : key(EVP_RSA_gen(bits), &EVP_PKEY_free)
    {
    }
    std::string private_pem() const { return pem_of(key.get(), true); }
};

const keypair& rsa2048()
{
    static const keypair k(2048);
    return k;
}

std::string unbase64url(std::string s)
{
    for (char& c : s)
        c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (s.size() % 4)
        s += '=';
    std::string out(s.size(), '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(s.data()),
                                  static_cast<int>(s.size()));
    REQUIRE(n >= 0);
    out.resize(static_cast<std::size_t>(n) - (s.size() - s.find_last_not_of('=') - 1));
    return out;
}

std::string account_json(const std::string& pem, std::string type = "service_account")
{
    json::object o{{"type", type},
                   {"client_email", "mailer@project.iam.gserviceaccount.com"},
                   {"private_key", pem},
                   {"private_key_id", "k1"},
                   {"token_uri", "https://127.0.0.1:8443/token"}};
    return json::serialize(o);
}

http::response resp(unsigned status, std::string body)
{
    http::response r;
    r.status = status;
    r.content_type = "application/json";
    r.body = std::move(body);
    return r;
}

std::string value_of(const http::form& f, std::string_view name)
{
    for (const auto& [k, v] : f)
        if (k == name)
            return v;
    return "<absent>";
}

} // namespace

TEST_SUITE("auth.oauth2")
{
    TEST_CASE("grant forms")
    {
        oauth2_options o;
        o.client_id = "cid";
        o.client_secret = "csecret";
        o.scope = "https://mail.google.com/";
        o.grant = grant::refresh_token;
        auto f = grant_form(o, "rt-1", "");
        CHECK(value_of(f, "grant_type") == "refresh_token");
        CHECK(value_of(f, "refresh_token") == "rt-1");
        CHECK(value_of(f, "client_id") == "cid");
        CHECK(value_of(f, "client_secret") == "csecret");
        CHECK(value_of(f, "scope") == "https://mail.google.com/");

        o.grant = grant::client_credentials;
        o.scope = "https://outlook.office365.com/.default";
        f = grant_form(o, "", "");
        CHECK(value_of(f, "grant_type") == "client_credentials");
        CHECK(value_of(f, "refresh_token") == "<absent>");
        CHECK(value_of(f, "scope") == "https://outlook.office365.com/.default");

        o.grant = grant::jwt_bearer;
        f = grant_form(o, "", "a.b.c");
        CHECK(f.size() == 2);
        CHECK(value_of(f, "grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer");
        CHECK(value_of(f, "assertion") == "a.b.c");
        CHECK(value_of(f, "client_secret") == "<absent>");

        o.grant = grant::refresh_token;
        o.client_secret.clear();
        o.scope.clear();
        f = grant_form(o, "rt", ""); // a public client: no secret, the consent's scopes
        CHECK(value_of(f, "client_secret") == "<absent>");
        CHECK(value_of(f, "scope") == "<absent>");
    }

    TEST_CASE("a token response")
    {
        const auto now = clock::time_point{} + 100h;
        auto t = read_token_response(
            resp(200, R"({"access_token":"at-1","token_type":"Bearer","expires_in":3599})"), now);
        CHECK_FALSE(t.ec);
        CHECK(t.token.value == "at-1");
        CHECK(t.token.expires_at == now + 3599s);
        CHECK_FALSE(t.refresh_token);

        t = read_token_response(resp(200, R"({"access_token":"a","token_type":"bearer",)"
                                          R"("expires_in":"60","refresh_token":"rt-2"})"),
                                now);
        CHECK(t.token.expires_at == now + 60s); // quoted, as some endpoints send it
        REQUIRE(t.refresh_token);
        CHECK(*t.refresh_token == "rt-2"); // rotated

        t = read_token_response(resp(200, R"({"access_token":"a"})"), now);
        CHECK_FALSE(t.ec);
        CHECK(t.token.expires_at == clock::time_point::max()); // unknown: the policy decides
    }

    TEST_CASE("responses that aren't a token: transient")
    {
        const auto now = clock::time_point{} + 1h;
        for (const auto& [status, body] : std::vector<std::pair<unsigned, std::string>>{
                 {200, "<html>not json</html>"},
                 {200, R"({"token_type":"Bearer"})"},
                 {200, R"({"access_token":""})"},
                 {200, R"({"access_token":"x","token_type":"mac"})"},
                 {200, "[1,2]"},
                 {500, "oops"},
                 {503, R"({"error":"temporarily_unavailable"})"},
                 {429, R"({"error":"slow_down"})"},
                 {408, ""},
             }) {
            INFO(status, " ", body);
            const auto t = read_token_response(resp(status, body), now);
            CHECK(t.ec == error::token_refresh_failed);
            CHECK(t.ec == condition::transient);
            CHECK(t.token.value.empty());
            CHECK_FALSE(t.token.diag.detail.empty());
        }
    }

    TEST_CASE("OAuth2 errors and other 4xx: permanent, with the endpoint's text")
    {
        const auto now = clock::time_point{} + 1h;
        auto t = read_token_response(
            resp(
                400,
                R"({"error":"invalid_grant","error_description":"Token has been expired or revoked."})"),
            now);
        CHECK(t.ec == error::token_refresh_refused);
        CHECK(t.ec == condition::permanent);
        CHECK(t.token.diag.detail == "HTTP 400: invalid_grant: Token has been expired or revoked.");
        t = read_token_response(resp(401, R"({"error":"invalid_client"})"), now);
        CHECK(t.ec == error::token_refresh_refused);
        CHECK(t.token.diag.detail == "HTTP 401: invalid_client");
        t = read_token_response(resp(404, "not here"), now);
        CHECK(t.ec == error::token_refresh_refused);
        CHECK(t.token.diag.detail == "HTTP 404");
        // Control characters in the endpoint's text never reach a log line as they are.
        t = read_token_response(resp(400, "{\"error\":\"bad\\r\\nX: y\"}"), now);
        CHECK(t.token.diag.detail == "HTTP 400: bad??X: y");
    }

    TEST_CASE("request errors: permanent only for what a retry can't change")
    {
        CHECK(map_request_error(make_error_code(error::http_timeout)) ==
              error::token_refresh_failed);
        CHECK(map_request_error(make_error_code(error::connection_lost)) ==
              error::token_refresh_failed);
        CHECK(map_request_error(make_error_code(error::certificate_rejected)) ==
              error::token_refresh_failed);
        CHECK(map_request_error(boost::asio::error::connection_refused) ==
              error::token_refresh_failed);
        CHECK(map_request_error(make_error_code(error::http_redirect_refused)) ==
              error::token_refresh_refused);
        CHECK(map_request_error(make_error_code(error::tls_configuration_invalid)) ==
              error::token_refresh_refused);
        CHECK(map_request_error(boost::asio::error::operation_aborted) ==
              boost::asio::error::operation_aborted);
    }

    TEST_CASE("the RS256 assertion verifies against the public key and carries the claims")
    {
        diagnostics diag;
        auto acct = service_account::parse(account_json(rsa2048().private_pem()), diag);
        REQUIRE_MESSAGE(acct.has_value(), diag.to_string());
        std::string why;
        auto key = rsa_key::parse(acct->private_key, why);
        REQUIRE(key);
        const auto now =
            std::chrono::system_clock::time_point{} + std::chrono::seconds(1'800'000'000);
        const std::string jwt = make_assertion(*acct, *key, "https://mail.google.com/",
                                               "user@example.com", acct->token_uri, now, 1h);
        const auto d1 = jwt.find('.');
        const auto d2 = jwt.find('.', d1 + 1);
        REQUIRE(d2 != std::string::npos);
        CHECK(jwt.find_first_of("+/=") == std::string::npos); // base64url, no padding
        const auto header = json::parse(unbase64url(jwt.substr(0, d1))).as_object();
        CHECK(header.at("alg") == "RS256");
        CHECK(header.at("typ") == "JWT");
        CHECK(header.at("kid") == "k1");
        const auto claims = json::parse(unbase64url(jwt.substr(d1 + 1, d2 - d1 - 1))).as_object();
        CHECK(claims.at("iss") == "mailer@project.iam.gserviceaccount.com");
        CHECK(claims.at("aud") == "https://127.0.0.1:8443/token");
        CHECK(claims.at("scope") == "https://mail.google.com/");
        CHECK(claims.at("sub") == "user@example.com");
        CHECK(claims.at("iat").to_number<std::int64_t>() == 1'800'000'000);
        CHECK(claims.at("exp").to_number<std::int64_t>() == 1'800'003'600);

        // The signature, checked with the public key alone.
        const std::string sig = unbase64url(jwt.substr(d2 + 1));
        const std::string signed_part = jwt.substr(0, d2);
        auto verify = [&](const std::string& data) {
            std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                        &EVP_MD_CTX_free);
            const std::string pub = pem_of(rsa2048().key.get(), false);
            std::unique_ptr<BIO, decltype(&BIO_free)> b(
                BIO_new_mem_buf(pub.data(), static_cast<int>(pub.size())), &BIO_free);
            std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pk(
                PEM_read_bio_PUBKEY(b.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
            REQUIRE(pk);
            REQUIRE(EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pk.get()) == 1);
            return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                                    sig.size(), reinterpret_cast<const unsigned char*>(data.data()),
                                    data.size()) == 1;
        };
        CHECK(verify(signed_part));
        std::string tampered = signed_part;
        tampered[tampered.size() / 2] ^= 1;
        CHECK_FALSE(verify(tampered));
    }

    TEST_CASE("service-account files that can't work")
    {
        diagnostics diag;
        CHECK(service_account::parse("not json", diag).error() == error::invalid_token_source);
        CHECK(service_account::parse(account_json(rsa2048().private_pem(), "authorized_user"), diag)
                  .error() == error::invalid_token_source);
        CHECK(diag.detail.find("authorized_user") != std::string::npos);
        CHECK(service_account::parse(R"({"client_email":"a@b","private_key":"-----BEGIN"})", diag)
                  .error() == error::invalid_token_source);
        CHECK(diag.field == "service account \"private_key\"");
        const keypair small(1024);
        CHECK(service_account::parse(account_json(small.private_pem()), diag).error() ==
              error::invalid_token_source);
        CHECK(diag.detail.find("2048") != std::string::npos);
        std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> ec(EVP_EC_gen("P-256"), &EVP_PKEY_free);
        CHECK(service_account::parse(account_json(pem_of(ec.get(), true)), diag).error() ==
              error::invalid_token_source);
        CHECK(diag.detail.find("RSA") != std::string::npos);
        CHECK(service_account::load("/nonexistent/key.json", diag).error() ==
              error::invalid_token_source);
        // No token_uri: Google's.
        json::object o = json::parse(account_json(rsa2048().private_pem())).as_object();
        o.erase("token_uri");
        auto a = service_account::parse(json::serialize(o), diag);
        REQUIRE(a.has_value());
        CHECK(a->token_uri == "https://oauth2.googleapis.com/token");
        // Diagnostics never carry the key.
        CHECK(diag.to_string().find("PRIVATE KEY") == std::string::npos);
    }
}
