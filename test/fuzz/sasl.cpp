// Fuzz target: SMTP AUTH (RFC 4954) driven by a hostile server: auth_exchange over each SASL
// mechanism (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256, XOAUTH2, OAUTHBEARER).
//
// Input: one octet choosing the mechanism, then replies, each one octet (the code from a table
// of those an AUTH exchange meets; whether the text is sent as base64 of what follows, as
// challenges are; whether the reply has two lines) and its text up to a '\n'. The SCRAM client
// nonce is the RFC 7677 vector's, so seeds can hold a whole exchange. Invariants:
// - every line the client writes is one CRLF-terminated line, the AUTH command at most 512
//   octets (RFC 4954 §4), a response valid base64 or "*" (or empty);
// - the password never goes on the wire in clear text, and not at all, even base64-encoded,
//   with the challenge-response mechanisms (CRAM-MD5, SCRAM), unless the server sent its text
//   first (SCRAM echoes the server's nonce);
// - the exchange succeeds only on a 235 and only after the mechanism agreed (SCRAM: the
//   server proved itself); it ends with done and writes nothing then;
// - while a response is awaited, the transcript redaction hides the whole line.
#include "fuzz.hpp"

#include "detail/base64.hpp"
#include "smtp/auth_exchange.hpp"

#include <mailroom/smtp/reply.hpp>

#include <string>

using namespace mailroom::smtp::detail;
using mailroom::error_code;
using mailroom::smtp::auth_mechanism;
using mailroom::smtp::reply;

namespace {

constexpr std::string_view password = "pencil";

// `echo`: the server itself sent the password's text (in a nonce, say), which SCRAM echoes.
void check_line(std::string_view line, auth_mechanism m, bool echo = false)
{
    FUZZ_CHECK(line.ends_with("\r\n") && fuzz::crlf_only(line) &&
                   line.find("\r\n") == line.size() - 2,
               "client output isn't one CRLF line");
    FUZZ_CHECK(echo || line.find(password) == std::string_view::npos, "the password in clear text");
    const std::string_view body = line.substr(0, line.size() - 2);
    std::string_view payload = body;
    if (body.starts_with("AUTH ")) {
        FUZZ_CHECK(line.size() <= 512, "AUTH command over 512 octets");
        const auto sp = body.find(' ', 5);
        payload = sp == std::string_view::npos ? std::string_view{} : body.substr(sp + 1);
        if (payload == "=")
            payload = {};
    }
    if (payload == "*")
        return;
    const auto raw = mailroom::detail::base64_decode(payload);
    FUZZ_CHECK(raw.has_value(), "a SASL response that isn't base64");
    if (!echo && (m == auth_mechanism::cram_md5 || m == auth_mechanism::scram_sha_256))
        FUZZ_CHECK(raw->find(password) == std::string::npos,
                   "the password on the wire with a challenge-response mechanism");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    fuzz::input in(data, size);
    const std::uint8_t setup = in.byte();
    static constexpr auth_mechanism mechs[] = {
        auth_mechanism::plain,   auth_mechanism::login,       auth_mechanism::cram_md5,
        auth_mechanism::xoauth2, auth_mechanism::oauthbearer, auth_mechanism::scram_sha_256,
    };
    const auth_mechanism m = mechs[setup % 6];

    sasl_credentials c;
    c.username = "user";
    c.password = std::string(password);
    c.bearer_token = "ya29.a0AfH6SMBx-token";
    if (setup & 0x40)
        c.authzid = "admin";
    if (setup & 0x80) {
        c.host = "mail.example.com";
        c.port = 587;
    }
    sasl_options o;
    o.scram_client_nonce = "rOprNGfwEbeRWgbNEkqO";
    // Small bounds keep PBKDF2 cheap per run and let the fuzzer reach both refusals.
    o.scram_min_iterations = 16;
    o.scram_max_iterations = 4096;

    std::string out;
    auto ex = auth_exchange::start(m, c, out, o);
    FUZZ_CHECK(ex.has_value(), "valid credentials refused");
    FUZZ_CHECK(out.starts_with("AUTH "), "the exchange doesn't start with AUTH");
    check_line(out, m);

    static constexpr int codes[] = {334, 334, 334, 334, 334, 334, 235, 235,
                                    250, 354, 454, 501, 535, 530, 432, 221};
    bool cancelled = false;
    bool echo = false;
    for (int n = 0; n < 64 && !in.empty(); ++n) {
        const std::uint8_t b = in.byte();
        const std::string_view text = in.until('\n');
        reply r;
        r.code = codes[b & 15];
        std::string line;
        if (b & 0x10)
            mailroom::detail::base64_append(line, text);
        else
            line = text;
        r.lines.push_back(line);
        if (b & 0x20)
            r.lines.push_back("second line");
        echo |= text.find(password) != std::string_view::npos;

        const bool was_awaiting = ex->awaiting_response_line();
        out.clear();
        error_code ec;
        const auto s = ex->on_reply(r, out, ec);
        if (s == auth_exchange::step::done) {
            FUZZ_CHECK(out.empty(), "output with done");
            FUZZ_CHECK(!ex->awaiting_response_line(), "still awaiting a response when done");
            if (!ec) {
                FUZZ_CHECK(r.code == 235, "success without a 235");
                FUZZ_CHECK(!cancelled, "success after the client cancelled");
                FUZZ_CHECK(!ex->mechanism().succeeded(), "success the mechanism disputes");
            }
            return 0;
        }
        FUZZ_CHECK(!ec, "an error with step::send");
        FUZZ_CHECK(was_awaiting, "a line sent after the exchange ended");
        check_line(out, m, echo);
        cancelled |= out == "*\r\n";
        if (ex->awaiting_response_line()) {
            const std::string red = redact_client_line(out, true);
            FUZZ_CHECK(red == "[redacted]" || (out == "*\r\n" && red == "*"),
                       "a SASL response not redacted");
        }
    }
    return 0;
}
