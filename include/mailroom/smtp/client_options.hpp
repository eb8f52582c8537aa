// mailroom::smtp::client_options: how a client connects, secures and authenticates.
#pragma once

#include <mailroom/logger.hpp>
#include <mailroom/smtp/auth_mechanism.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace mailroom::auth {
class token_source;
}

namespace mailroom::smtp {

/// Transport security. The secure choice is the default.
enum class tls_mode {
    required, ///< STARTTLS (RFC 3207) must be offered and succeed before anything else
    /// STARTTLS when offered; plaintext otherwise (a failed handshake still fails). With
    /// credentials to send (and not credentials::allow_plaintext), TLS is needed all the
    /// same: without it, connect fails with error::starttls_unavailable.
    opportunistic,
    none,     ///< plaintext: for loopback test servers only
    implicit, ///< TLS from the first byte (RFC 8314, port 465)
};

/// Transport security: when TLS is used, and how the server is verified.
struct tls_options {
    /// When TLS is used. Default: STARTTLS, required.
    tls_mode mode = tls_mode::required;
    /// The name the certificate must carry, also sent as SNI. Empty: the host connected to.
    std::string verify_name{};
    /// Check the certificate chain and name. Turning this off is for tests against servers
    /// with throwaway certificates; it leaves the connection open to anyone on the path.
    bool verify = true;
    /// PEM trust anchors in a file; with ca_dir empty too: the system's default store.
    std::string ca_file{};
    /// A directory of PEM trust anchors under hashed names (`openssl rehash`), besides ca_file.
    std::string ca_dir{};
    /// A client certificate chain (PEM), for servers that ask for one.
    std::string cert_file{};
    /// The client certificate's private key (PEM).
    std::string key_file{};
};

/// SMTP AUTH (RFC 4954) credentials.
struct credentials {
    /// The account name (the SASL authentication identity).
    std::string username{};
    /// For PLAIN, LOGIN, CRAM-MD5 and SCRAM-SHA-256. Never logged.
    std::string password{};
    /// For XOAUTH2 / OAUTHBEARER: returns a bearer token. Called on every new connection, and
    /// with `refresh = true` once more when the server rejects the token, so a cached token can
    /// be renewed. May throw nothing; return an empty string for "no token".
    std::function<std::string(bool refresh)> token_provider{};
    /// A mechanism to insist on; empty: the strongest both sides support (see auth_mechanism).
    std::optional<auth_mechanism> mechanism{};
    /// Allow PLAIN, LOGIN or a bearer token on a connection without TLS. Off: such credentials
    /// are never sent in the clear.
    bool allow_plaintext = false;
    /// For XOAUTH2 / OAUTHBEARER: access tokens from a token source (include
    /// <mailroom/auth/token_source.hpp>): a callback or a built-in OAuth2 grant, cached and
    /// refreshed ahead of expiry, shared by every connection of every pool given the same
    /// pointer. Asked on every new connection; when the server refuses the token (XOAUTH2's
    /// 334 with a JSON error, then 535), the token is invalidated, a new one fetched and AUTH
    /// retried once, on a new connection if the server closed this one. Takes precedence
    /// over token_provider. (Last, so positional initializers of the fields above keep
    /// working.)
    std::shared_ptr<auth::token_source> tokens{};
};

/// Per-phase time limits. Each covers a whole step (a server sending one byte at a time does
/// not extend it). Defaults from RFC 5321 §4.5.3.2, plus connect and TLS handshake.
struct timeouts {
    /// Steady-clock durations.
    using duration = std::chrono::steady_clock::duration;
    /// Name resolution and the TCP connect together, every address tried (RFC 8305).
    duration connect = std::chrono::seconds(30);
    /// The TLS handshake.
    duration tls_handshake = std::chrono::seconds(30);
    /// The server's greeting.
    duration greeting = std::chrono::minutes(5);
    duration command = std::chrono::minutes(5); ///< EHLO, STARTTLS, AUTH, NOOP, RSET, QUIT
    /// MAIL FROM (with pipelining: writing the envelope) and its reply.
    duration mail = std::chrono::minutes(5);
    /// Each reply to RCPT TO.
    duration rcpt = std::chrono::minutes(5);
    duration data = std::chrono::minutes(2);       ///< the reply to DATA
    duration data_block = std::chrono::minutes(3); ///< each write of message data
    duration data_end = std::chrono::minutes(10);  ///< the reply after the final dot

    /// Caps every limit at `d` (the CLI's --timeout).
    void cap(duration d)
    {
        for (duration* p : {&connect, &tls_handshake, &greeting, &command, &mail, &rcpt, &data,
                            &data_block, &data_end})
            if (*p > d)
                *p = d;
    }
};

/// How a client connects, secures and authenticates. A pool makes each of its connections
/// with the same options.
struct client_options {
    /// The server: a host name or an IP address.
    std::string host{};
    /// 0: 587 (submission), or 465 with tls_mode::implicit.
    std::uint16_t port = 0;
    /// The EHLO name: this host's domain name or an address literal. Default "localhost".
    std::string helo_name = "localhost";
    /// Transport security; STARTTLS is required by default.
    tls_options tls{};
    /// SMTP AUTH after EHLO (and TLS). None: no AUTH.
    std::optional<credentials> auth{};
    /// Per-phase time limits.
    smtp::timeouts timeouts{};
    /// Use PIPELINING (RFC 2920) when the server offers it.
    bool pipelining = true;
    /// Use CHUNKING (BDAT, RFC 3030) when the server offers it.
    bool chunking = true;
    /// Where the connection's log lines go (transcripts at log_level::trace).
    logger log{};
    /// Name servers to ask instead of the system's (/etc/resolv.conf), as
    /// "address[:port],..." (e.g. "127.0.0.1:5353,[::1]:53"): for a service with its own
    /// resolver, or a test. Empty: the system's. /etc/hosts is read first either way; IP
    /// literals and "localhost" are never looked up.
    std::string dns_servers{};
};

} // namespace mailroom::smtp
