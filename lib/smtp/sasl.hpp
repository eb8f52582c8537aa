// Private: SASL client mechanisms for SMTP AUTH (RFC 4954), as step functions. Pure, no I/O:
// each takes a decoded challenge and gives the raw response; base64 and the 334 / 235 replies
// are auth_exchange's business.
#pragma once

#include <mailroom/error.hpp>
#include <mailroom/smtp/auth_mechanism.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mailroom::smtp::detail {

/// What the client may authenticate with. Secrets are wiped when a mechanism is destroyed;
/// this struct is the caller's to protect.
struct sasl_credentials {
    std::string username;     ///< authentication identity (all mechanisms)
    std::string password;     ///< PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256
    std::string authzid;      ///< authorization identity, PLAIN and SCRAM only; usually empty
    std::string bearer_token; ///< XOAUTH2, OAUTHBEARER: an OAuth 2.0 access token
    std::string host;         ///< OAUTHBEARER `host=` (RFC 7628 §3.1); optional
    std::uint16_t port = 0;   ///< OAUTHBEARER `port=`; 0 for none
};

struct sasl_options {
    /// SCRAM client nonce; empty means 24 random octets in base64. Set only by tests (the
    /// RFC 7677 test vector): a fixed nonce makes the exchange replayable.
    std::string scram_client_nonce;
    /// RFC 7677 §4: the iteration count SHOULD be at least 4096. Lower counts are refused: a
    /// man in the middle would choose 1 to make the proof it captures cheap to crack.
    unsigned scram_min_iterations = 4096;
    /// Higher counts are refused too: PBKDF2 runs on the caller's thread, and a hostile server
    /// could otherwise ask for minutes of CPU.
    unsigned scram_max_iterations = 1'000'000;
};

/// One SASL exchange from the client side.
///
/// initial_response() is what the client sends first, if the mechanism is client-first; then
/// respond() answers each server challenge. When the server reports success, succeeded() says
/// whether the mechanism agrees it is finished: SCRAM is only done once the server has proved
/// itself. Errors: error::sasl_bad_challenge (malformed or unexpected challenge; the exchange
/// must be cancelled with "*", RFC 4954 §4), error::sasl_server_error (SCRAM `e=`),
/// error::scram_server_signature_mismatch, error::sasl_incomplete.
class sasl_client {
public:
    virtual ~sasl_client() = default;
    sasl_client(const sasl_client&) = delete;
    sasl_client& operator=(const sasl_client&) = delete;

    auth_mechanism mechanism() const noexcept { return mech_; }

    /// The initial response, raw; nothing for a mechanism where the server speaks first
    /// (LOGIN, CRAM-MD5). The same value on every call.
    virtual std::optional<std::string> initial_response() const = 0;

    /// The response to one challenge (raw, decoded from base64).
    virtual result<std::string> respond(std::string_view challenge) = 0;

    /// Called when the server accepted (235): an empty code when the mechanism is complete.
    virtual error_code succeeded() const = 0;

    /// The server's error text from an error challenge (the OAuth JSON of XOAUTH2 and
    /// OAUTHBEARER, SCRAM's `e=` value), for diagnostics; empty when there was none. Server
    /// text: untrusted, and may be long.
    const std::string& server_error() const noexcept { return server_error_; }

protected:
    explicit sasl_client(auth_mechanism m) noexcept
        : mech_(m)
    {
    }
    std::string server_error_;

private:
    auth_mechanism mech_;
};

/// Creates the client side of mechanism `m`. Errors: error::invalid_credentials (a needed
/// field is empty, or a token isn't an RFC 6750 b64token), error::control_character (a
/// control character in a field: NUL would split PLAIN's fields, \x01 OAuth's),
/// error::saslprep_unsupported (SCRAM with a non-ASCII username, authzid or password: SASLprep
/// (RFC 4013) is not implemented, and printable ASCII is the range where it changes nothing),
/// error::auth_mechanism_unavailable (the crypto provider lacks the digest, e.g. MD5 under
/// FIPS, or the random generator failed).
result<std::unique_ptr<sasl_client>> make_sasl_client(auth_mechanism m, const sasl_credentials& c,
                                                      const sasl_options& o = {});

/// The preference order documented on auth_mechanism.
inline constexpr auth_mechanism all_auth_mechanisms[] = {
    auth_mechanism::oauthbearer, auth_mechanism::xoauth2, auth_mechanism::scram_sha_256,
    auth_mechanism::plain,       auth_mechanism::login,   auth_mechanism::cram_md5,
};

/// Picks the mechanism to use: the first of `allowed` (in the order documented on
/// auth_mechanism, whatever order `allowed` is in) that the server offers (`offered`, as in
/// capabilities::auth, any case) and the credentials support (a token for the OAuth
/// mechanisms, a username and password for the others). Without TLS only mechanisms that don't
/// put a reusable secret on the wire qualify: SCRAM-SHA-256 and CRAM-MD5; PLAIN, LOGIN and
/// bearer tokens would be readable by anyone on the path (RFC 4954 §4, §15).
/// Error: error::auth_mechanism_unavailable.
result<auth_mechanism>
choose_mechanism(const std::vector<std::string>& offered, const sasl_credentials& c,
                 bool tls_active, std::span<const auth_mechanism> allowed = all_auth_mechanisms);

/// For transcript logs: `line` (a client line, CRLF optional) with any SASL payload replaced
/// by "[redacted]". `AUTH PLAIN AHUAcA==` becomes `AUTH PLAIN [redacted]`; when `sasl_response`
/// (the line answers a 334 challenge) the whole line becomes "[redacted]", except the "*" that
/// cancels. Other lines come back unchanged, without their CRLF.
std::string redact_client_line(std::string_view line, bool sasl_response);

} // namespace mailroom::smtp::detail
