#include "smtp/sasl.hpp"

#include "detail/base64.hpp"

#include <doctest/doctest.h>

#include <ostream>

namespace mailroom::smtp {
// For doctest's failure messages (and boost::system::result's).
inline std::ostream& operator<<(std::ostream& os, auth_mechanism m)
{
    return os << to_string(m);
}
} // namespace mailroom::smtp

using mailroom::error;
using mailroom::error_code;
using mailroom::detail::base64_decode;
using mailroom::smtp::auth_mechanism;
using namespace mailroom::smtp::detail;

namespace {

std::unique_ptr<sasl_client> make(auth_mechanism m, const sasl_credentials& c,
                                  const sasl_options& o = {})
{
    auto r = make_sasl_client(m, c, o);
    REQUIRE_MESSAGE(r, r.error().message());
    REQUIRE((*r)->mechanism() == m);
    return std::move(*r);
}

error make_error(auth_mechanism m, const sasl_credentials& c, const sasl_options& o = {})
{
    auto r = make_sasl_client(m, c, o);
    REQUIRE_MESSAGE(!r, "expected a failure");
    return static_cast<error>(r.error().value());
}

std::string respond_ok(sasl_client& s, std::string_view challenge)
{
    auto r = s.respond(challenge);
    REQUIRE_MESSAGE(r, r.error().message());
    return *r;
}

error respond_error(sasl_client& s, std::string_view challenge)
{
    auto r = s.respond(challenge);
    REQUIRE_MESSAGE(!r, "expected a failure, got '" << *r << "'");
    return static_cast<error>(r.error().value());
}

std::string b64(std::string_view raw)
{
    std::string out;
    mailroom::detail::base64_append(out, raw);
    return out;
}

sasl_credentials password(std::string user, std::string pass)
{
    sasl_credentials c;
    c.username = std::move(user);
    c.password = std::move(pass);
    return c;
}

sasl_credentials token(std::string user, std::string tok)
{
    sasl_credentials c;
    c.username = std::move(user);
    c.bearer_token = std::move(tok);
    return c;
}

// RFC 7677 §3.
constexpr std::string_view scram_nonce = "rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view scram_server_first =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view scram_client_final =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view scram_server_final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

std::unique_ptr<sasl_client> rfc7677_client()
{
    sasl_options o;
    o.scram_client_nonce = scram_nonce;
    return make(auth_mechanism::scram_sha_256, password("user", "pencil"), o);
}

} // namespace

TEST_SUITE("smtp.sasl")
{
    TEST_CASE("mechanism names")
    {
        CHECK(to_string(auth_mechanism::scram_sha_256) == "SCRAM-SHA-256");
        CHECK(to_string(auth_mechanism::cram_md5) == "CRAM-MD5");
        CHECK(to_string(auth_mechanism::oauthbearer) == "OAUTHBEARER");
        for (auto m : all_auth_mechanisms)
            CHECK(mailroom::smtp::auth_mechanism_from_name(to_string(m)) == m);
        CHECK(mailroom::smtp::auth_mechanism_from_name("xoauth2") == auth_mechanism::xoauth2);
        CHECK_FALSE(mailroom::smtp::auth_mechanism_from_name("GSSAPI"));
        CHECK_FALSE(mailroom::smtp::auth_mechanism_from_name(""));
    }

    TEST_CASE("PLAIN")
    {
        auto s = make(auth_mechanism::plain, password("tim", "tanstaaftanstaaf"));
        CHECK(s->initial_response() == std::string("\0tim\0tanstaaftanstaaf", 21));
        CHECK(s->succeeded() == error_code());
        CHECK(respond_error(*s, "") == error::sasl_bad_challenge);

        auto c = password("user", "pass");
        c.authzid = "admin";
        CHECK(make(auth_mechanism::plain, c)->initial_response() ==
              std::string("admin\0user\0pass", 15));
        // UTF-8 is carried as is (RFC 4616 §2).
        CHECK(make(auth_mechanism::plain, password("j\xc3\xb6rg", "p\xc3\xa4ss"))
                  ->initial_response() == std::string("\0j\xc3\xb6rg\0p\xc3\xa4ss", 12));

        CHECK(make_error(auth_mechanism::plain, password("", "x")) == error::invalid_credentials);
        CHECK(make_error(auth_mechanism::plain, password("x", "")) == error::invalid_credentials);
        CHECK(make_error(auth_mechanism::plain, password("x", std::string("a\0b", 3))) ==
              error::control_character);
        CHECK(make_error(auth_mechanism::plain, password(std::string("a\0b", 3), "x")) ==
              error::control_character);
        CHECK(make_error(auth_mechanism::plain, password("x", "pass\r\n")) ==
              error::control_character);
        c.authzid = std::string("a\0", 2);
        CHECK(make_error(auth_mechanism::plain, c) == error::control_character);
    }

    TEST_CASE("LOGIN")
    {
        auto s = make(auth_mechanism::login, password("alice", "secret"));
        CHECK_FALSE(s->initial_response());
        CHECK(s->succeeded() == error::sasl_incomplete);
        CHECK(respond_ok(*s, "Username:") == "alice");
        CHECK(s->succeeded() == error::sasl_incomplete);
        CHECK(respond_ok(*s, "Password:") == "secret");
        CHECK(s->succeeded() == error_code());
        CHECK(respond_error(*s, "Password:") == error::sasl_bad_challenge);
        // The prompt's words don't matter.
        auto s2 = make(auth_mechanism::login, password("alice", "secret"));
        CHECK(respond_ok(*s2, "User Name\0") == "alice");
        CHECK(make_error(auth_mechanism::login, password("alice", "")) ==
              error::invalid_credentials);
    }

    TEST_CASE("CRAM-MD5: RFC 2195 test vector")
    {
        auto s = make(auth_mechanism::cram_md5, password("tim", "tanstaaftanstaaf"));
        CHECK_FALSE(s->initial_response());
        CHECK(s->succeeded() == error::sasl_incomplete);
        CHECK(respond_ok(*s, "<1896.697170952@postoffice.reston.mci.net>") ==
              "tim b913a602c7eda7a495b4e6e7334d3890");
        CHECK(s->succeeded() == error_code());
        CHECK(respond_error(*s, "<again@example>") == error::sasl_bad_challenge);

        auto empty = make(auth_mechanism::cram_md5, password("tim", "tanstaaftanstaaf"));
        CHECK(respond_error(*empty, "") == error::sasl_bad_challenge);
    }

    TEST_CASE("SCRAM-SHA-256: RFC 7677 test vector")
    {
        auto s = rfc7677_client();
        CHECK(s->initial_response() == "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        CHECK(s->succeeded() == error::sasl_incomplete);
        CHECK(respond_ok(*s, scram_server_first) == scram_client_final);
        CHECK(s->succeeded() == error::sasl_incomplete); // the server hasn't proved itself yet
        CHECK(respond_ok(*s, scram_server_final) == "");
        CHECK(s->succeeded() == error_code());
        CHECK(respond_error(*s, scram_server_final) == error::sasl_bad_challenge);
    }

    TEST_CASE("SCRAM-SHA-256: the server must prove itself")
    {
        auto s = rfc7677_client();
        respond_ok(*s, scram_server_first);
        CHECK(respond_error(*s, "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=") ==
              error::scram_server_signature_mismatch);
        CHECK(s->succeeded() == error::sasl_incomplete);

        // A proof for the wrong password doesn't verify either.
        sasl_options o;
        o.scram_client_nonce = scram_nonce;
        auto wrong = make(auth_mechanism::scram_sha_256, password("user", "pencil2"), o);
        CHECK(respond_ok(*wrong, scram_server_first) != scram_client_final);
        CHECK(respond_error(*wrong, scram_server_final) == error::scram_server_signature_mismatch);

        auto e = rfc7677_client();
        respond_ok(*e, scram_server_first);
        CHECK(respond_error(*e, "e=invalid-proof") == error::sasl_server_error);
        CHECK(e->server_error() == "invalid-proof");

        for (std::string_view bad : {"", "v=", "v=not base64!", "x=abc", "v", "v=abc,,"}) {
            CAPTURE(bad);
            auto b = rfc7677_client();
            respond_ok(*b, scram_server_first);
            CHECK(respond_error(*b, bad) == error::sasl_bad_challenge);
        }
        // Extensions after the verifier are allowed.
        auto ext = rfc7677_client();
        respond_ok(*ext, scram_server_first);
        CHECK(respond_ok(*ext, std::string(scram_server_final) + ",x=ext") == "");
    }

    TEST_CASE("SCRAM-SHA-256: malformed server-first messages")
    {
        const std::string good_tail = ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        for (std::string bad : {
                 std::string(),
                 std::string("garbage"),
                 "m=ext,r=rOprNGfwEbeRWgbNEkqOxyz" + good_tail, // mandatory extension
                 "r=rOprNGfwEbeRWgbNEkqO" + good_tail,          // no server part
                 "r=someoneelsesnonce12345" + good_tail,        // not our nonce
                 "r=rOprNGfwEbeRWgbNEk" + good_tail,            // a prefix of ours
                 std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=,i=4096"),
                 std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=@@@@,i=4096"),
                 std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ=="),
                 std::string("r=rOprNGfwEbeRWgbNEkqOxyz,i=4096,s=W22ZaJ0SNY7soEsUEjb6gQ=="),
                 std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0"),
                 std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=04096"),
                 std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1"),
                 std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096x"),
                 std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i="),
                 std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1"),
                 std::string("r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999"),
                 std::string("r=rOprNGfwEbeRWgbNEkqOx\nz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
             }) {
            CAPTURE(bad);
            auto s = rfc7677_client();
            CHECK(respond_error(*s, bad) == error::sasl_bad_challenge);
            CHECK(respond_error(*s, scram_server_final) == error::sasl_bad_challenge);
            CHECK(s->succeeded() == error::sasl_incomplete);
        }

        // Iteration bounds are options.
        sasl_options o;
        o.scram_client_nonce = "abc";
        o.scram_min_iterations = 1;
        auto low = make(auth_mechanism::scram_sha_256, password("user", "pencil"), o);
        CHECK(respond_ok(*low, "r=abcdef,s=c2FsdA==,i=1").substr(0, 15) == "c=biws,r=abcdef");
        o.scram_min_iterations = 4096;
        o.scram_max_iterations = 5000;
        auto high = make(auth_mechanism::scram_sha_256, password("user", "pencil"), o);
        CHECK(respond_error(*high, "r=abcdef,s=c2FsdA==,i=5001") == error::sasl_bad_challenge);
    }

    TEST_CASE("SCRAM-SHA-256: names, authzid, nonces, SASLprep restriction")
    {
        sasl_options o;
        o.scram_client_nonce = "nonce";
        auto c = password("a,b=c", "pencil");
        CHECK(make(auth_mechanism::scram_sha_256, c, o)->initial_response() ==
              "n,,n=a=2Cb=3Dc,r=nonce");
        c.authzid = "admin=1";
        auto s = make(auth_mechanism::scram_sha_256, c, o);
        CHECK(s->initial_response() == "n,a=admin=3D1,n=a=2Cb=3Dc,r=nonce");
        // The channel binding attribute carries the gs2-header.
        const std::string final_msg = respond_ok(*s, "r=nonceXYZ,s=c2FsdA==,i=4096");
        CHECK(final_msg.substr(0, 2 + b64("n,a=admin=3D1,").size()) ==
              "c=" + b64("n,a=admin=3D1,"));

        // Random nonces: 24 octets in base64, different each time.
        auto r1 = make(auth_mechanism::scram_sha_256, password("user", "pencil"));
        auto r2 = make(auth_mechanism::scram_sha_256, password("user", "pencil"));
        const std::string ir1 = *r1->initial_response();
        const std::string ir2 = *r2->initial_response();
        CHECK(ir1.size() == std::string("n,,n=user,r=").size() + 32);
        CHECK(ir1 != ir2);
        CHECK(ir1.find(',', 12) == std::string::npos);

        CHECK(make_error(auth_mechanism::scram_sha_256, password("user", "p\xc3\xa4ss")) ==
              error::saslprep_unsupported);
        CHECK(make_error(auth_mechanism::scram_sha_256, password("j\xc3\xb6rg", "pass")) ==
              error::saslprep_unsupported);
        CHECK(make_error(auth_mechanism::scram_sha_256, password("user", "a\tb")) ==
              error::control_character);
        CHECK(make_error(auth_mechanism::scram_sha_256, password("user", "")) ==
              error::invalid_credentials);
        o.scram_client_nonce = "bad,nonce";
        CHECK(make_error(auth_mechanism::scram_sha_256, password("user", "x"), o) ==
              error::invalid_credentials);
    }

    TEST_CASE("XOAUTH2")
    {
        // Google's documented example.
        const std::string google_token = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg";
        auto s = make(auth_mechanism::xoauth2, token("someuser@example.com", google_token));
        const std::string ir = *s->initial_response();
        CHECK(ir == "user=someuser@example.com\x01"
                    "auth=Bearer "
                    "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01");
        CHECK(b64(ir) == "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbV"
                         "RjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==");
        CHECK(s->succeeded() == error_code());
        // An error challenge gets the empty response, and the failure reply follows.
        const std::string json =
            R"({"status":"401","schemes":"bearer","scope":"https://mail.google.com/"})";
        CHECK(respond_ok(*s, json) == "");
        CHECK(s->server_error() == json);
        CHECK(s->succeeded() == error::sasl_server_error);
        CHECK(respond_error(*s, json) == error::sasl_bad_challenge);

        CHECK(make_error(auth_mechanism::xoauth2, token("", "abc")) == error::invalid_credentials);
        CHECK(make_error(auth_mechanism::xoauth2, token("a@b", "")) == error::invalid_credentials);
        CHECK(make_error(auth_mechanism::xoauth2, token("a@b", "has space")) ==
              error::invalid_credentials);
        CHECK(make_error(auth_mechanism::xoauth2, token("a@b", "tok\x01"
                                                               "auth=x")) ==
              error::control_character);
        CHECK(make_error(auth_mechanism::xoauth2, token("a\x01@b", "tok")) ==
              error::control_character);
        CHECK(make_error(auth_mechanism::xoauth2, token("a@b", "=abc")) ==
              error::invalid_credentials);
        // b64token: the RFC 6750 §2.1 alphabet, padding only at the end.
        CHECK(make_sasl_client(auth_mechanism::xoauth2, token("a@b", "aZ09-._~+/==")).has_value());
        CHECK(make_error(auth_mechanism::xoauth2, token("a@b", "ab=c")) ==
              error::invalid_credentials);
    }

    TEST_CASE("OAUTHBEARER: RFC 7628 §4.1 example")
    {
        auto c = token("user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
        c.host = "server.example.com";
        c.port = 143;
        auto s = make(auth_mechanism::oauthbearer, c);
        const std::string ir = *s->initial_response();
        CHECK(ir == "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
                    "auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01");
        CHECK(b64(ir) ==
              "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmV"
              "hcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB");

        // RFC 7628 §3.2.3: the error challenge is answered with a single %x01.
        const std::string json = R"({"status":"invalid_token","scope":"example_scope"})";
        CHECK(respond_ok(*s, json) == "\x01");
        CHECK(s->server_error() == json);
        CHECK(s->succeeded() == error::sasl_server_error);
        CHECK(respond_error(*s, "{}") == error::sasl_bad_challenge);

        // Without host, port and authzid; ',' and '=' escaped in the authzid.
        auto bare = make(auth_mechanism::oauthbearer, token("", "tok"));
        CHECK(bare->initial_response() == "n,,\x01"
                                          "auth=Bearer tok\x01\x01");
        auto esc = make(auth_mechanism::oauthbearer, token("a,b=c", "tok"));
        CHECK(esc->initial_response() == "n,a=a=2Cb=3Dc,\x01"
                                         "auth=Bearer tok\x01\x01");

        c.host = "evil\x01host";
        CHECK(make_error(auth_mechanism::oauthbearer, c) == error::control_character);
    }

    TEST_CASE("choosing a mechanism")
    {
        const std::vector<std::string> all = {"LOGIN",   "PLAIN",       "CRAM-MD5", "SCRAM-SHA-256",
                                              "XOAUTH2", "OAUTHBEARER", "GSSAPI"};
        const auto pw = password("u", "p");
        auto tok = token("u", "t");
        auto both = pw;
        both.bearer_token = "t";
        // The mechanism's name, or "none" (comparing results directly trips a GCC 12
        // -Wmaybe-uninitialized false positive inside variant2 under the sanitizers).
        auto choose = [](const std::vector<std::string>& offered, const sasl_credentials& c,
                         bool tls, std::span<const auth_mechanism> allowed = all_auth_mechanisms) {
            auto r = choose_mechanism(offered, c, tls, allowed);
            if (r)
                return std::string(to_string(*r));
            CHECK(r.error() == error::auth_mechanism_unavailable);
            return std::string("none");
        };

        CHECK(choose(all, pw, true) == "SCRAM-SHA-256");
        CHECK(choose(all, tok, true) == "OAUTHBEARER");
        CHECK(choose(all, both, true) == "OAUTHBEARER");
        CHECK(choose({"XOAUTH2", "PLAIN"}, both, true) == "XOAUTH2");
        CHECK(choose({"PLAIN", "LOGIN"}, both, true) == "PLAIN"); // fall back
        CHECK(choose({"LOGIN", "PLAIN"}, pw, true) == "PLAIN");   // our order
        CHECK(choose({"CRAM-MD5", "LOGIN"}, pw, true) == "LOGIN");
        CHECK(choose({"CRAM-MD5"}, pw, true) == "CRAM-MD5");
        CHECK(choose({"plain"}, pw, true) == "PLAIN"); // any case
        CHECK(choose({"GSSAPI", "NTLM"}, pw, true) == "none");
        CHECK(choose({}, pw, true) == "none");
        CHECK(choose({"PLAIN"}, tok, true) == "none");
        CHECK(choose({"XOAUTH2"}, pw, true) == "none");
        CHECK(choose(all, sasl_credentials{}, true) == "none");

        // Without TLS, nothing that puts a reusable secret on the wire.
        CHECK(choose(all, pw, false) == "SCRAM-SHA-256");
        CHECK(choose({"PLAIN", "LOGIN", "CRAM-MD5"}, pw, false) == "CRAM-MD5");
        CHECK(choose({"PLAIN", "LOGIN"}, pw, false) == "none");
        CHECK(choose({"XOAUTH2", "OAUTHBEARER"}, tok, false) == "none");

        // Restricting what is allowed; the allowed list's order doesn't change the preference.
        const auth_mechanism only_plain_login[] = {auth_mechanism::login, auth_mechanism::plain};
        CHECK(choose(all, pw, true, only_plain_login) == "PLAIN");
        const auth_mechanism only_login[] = {auth_mechanism::login};
        CHECK(choose({"PLAIN"}, pw, true, only_login) == "none");
        CHECK(error_code(error::auth_mechanism_unavailable) == mailroom::condition::permanent);
    }

    TEST_CASE("redacting AUTH lines for transcripts")
    {
        CHECK(redact_client_line("AUTH PLAIN AHVzZXIAcGFzcw==\r\n", false) ==
              "AUTH PLAIN [redacted]");
        CHECK(redact_client_line("auth xoauth2 dXNlcj1=", false) == "auth xoauth2 [redacted]");
        CHECK(redact_client_line("AUTH LOGIN\r\n", false) == "AUTH LOGIN");
        CHECK(redact_client_line("AUTH EXTERNAL =", false) == "AUTH EXTERNAL [redacted]");
        CHECK(redact_client_line("dGltIGI5MTNh\r\n", true) == "[redacted]");
        CHECK(redact_client_line("\r\n", true) == "[redacted]");
        CHECK(redact_client_line("*\r\n", true) == "*");
        CHECK(redact_client_line("MAIL FROM:<a@example.com>\r\n", false) ==
              "MAIL FROM:<a@example.com>");
        CHECK(redact_client_line("AUTHX something", false) == "AUTHX something");
    }

    TEST_CASE("strict base64 decoding")
    {
        const std::pair<std::string_view, std::string_view> vectors[] = {
            {"", ""},
            {"Zg==", "f"},
            {"Zm8=", "fo"},
            {"Zm9v", "foo"},
            {"Zm9vYg==", "foob"},
            {"Zm9vYmE=", "fooba"},
            {"Zm9vYmFy", "foobar"},
        };
        for (auto [enc, dec] : vectors) {
            CHECK(base64_decode(enc) == std::string(dec));
            CHECK(b64(dec) == enc);
        }
        CHECK(base64_decode("AAECAwQFBgcICQoLDA0ODw==") ==
              std::string("\0\1\2\3\4\5\6\7\10\11\12\13\14\15\16\17", 16));
        CHECK(base64_decode("+/+/") == std::string("\xfb\xff\xbf"));
        // RFC 4954 §4: reject anything outside the alphabet, and padding before the end.
        for (std::string_view bad :
             {"Zg", "Zg=", "Zm9vY", "Zg==Zg==", "=AAA", "AAA=BBBB", "A===", "====", "Zm9v\r\n",
              " Zm9v", "Zm 9v", "Zm9v.", "Zm-_", "Zh==", "Zm9=", "Zg=a"}) {
            CAPTURE(bad);
            CHECK_FALSE(base64_decode(bad));
        }
    }
}
