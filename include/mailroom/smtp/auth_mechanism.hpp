// mailroom::smtp::auth_mechanism: the SASL mechanisms the client implements.
#pragma once

#include <mailroom/config.hpp>

#include <optional>
#include <string_view>

namespace mailroom::smtp {

/// SASL mechanisms for SMTP AUTH (RFC 4954).
///
/// When the client chooses, it takes the first of these the server offers and the credentials
/// allow, in this order (after TLS; see the client's options for what is allowed without it):
///
/// - `oauthbearer`, `xoauth2` when a bearer token is given: the user chose token
///   authentication, and a token is scoped and revocable where a password is not. OAUTHBEARER
///   (RFC 7628) is the standard form, XOAUTH2 Google's and Microsoft's older one.
/// - `scram_sha_256` (RFC 7677): the password never reaches the server, and the server proves
///   it knows the password's verifier, so a mis-issued certificate alone doesn't reveal it.
/// - `plain` (RFC 4616): one round trip, the standard; safe inside TLS.
/// - `login`: the same secret as PLAIN in two round trips, for servers that lack PLAIN.
/// - `cram_md5` (RFC 2195) last: inside TLS it protects nothing PLAIN doesn't, it needs the
///   server to keep a plaintext-equivalent secret (so it often fails against servers that
///   store hashes), it uses MD5 and never authenticates the server (RFC 4954 §4).
enum class auth_mechanism {
    plain,         ///< PLAIN (RFC 4616)
    login,         ///< LOGIN (draft-murchison-sasl-login)
    cram_md5,      ///< CRAM-MD5 (RFC 2195)
    scram_sha_256, ///< SCRAM-SHA-256 (RFC 7677)
    xoauth2,       ///< XOAUTH2 (Google, Microsoft)
    oauthbearer,   ///< OAUTHBEARER (RFC 7628)
};

/// The mechanism's registered name, e.g. "SCRAM-SHA-256".
MAILROOM_API std::string_view to_string(auth_mechanism m) noexcept;

/// The mechanism for a registered name (any case), or nothing for one this library lacks.
MAILROOM_API std::optional<auth_mechanism> auth_mechanism_from_name(std::string_view name) noexcept;

} // namespace mailroom::smtp
