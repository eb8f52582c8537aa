// mailroom::smtp::capabilities: what a server advertised in its EHLO reply.
#pragma once

#include <mailroom/config.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailroom::smtp {

struct reply;

/// The service extensions of an EHLO reply (RFC 5321 §4.1.1.1).
///
/// Keywords are case-insensitive on the wire; here they are upper-cased. Every extension line
/// is kept in `extensions`, known or not, so a caller can look for ones this library doesn't
/// model; the common ones also have typed fields. Lines that aren't an ehlo-keyword followed by
/// parameters are ignored rather than failing the session: the reply itself was well-formed,
/// and an extension we can't read is one we won't use.
///
/// Thread safety: a value type.
struct capabilities {
    /// One ehlo-line: keyword and parameters as sent, the keyword upper-cased.
    struct extension {
        std::string keyword;             ///< e.g. "SIZE", "AUTH"
        std::vector<std::string> params; ///< e.g. {"35882577"}, {"PLAIN", "LOGIN"}
        friend bool operator==(const extension&, const extension&) = default;
    };

    /// The first line of the EHLO reply: the server's name and greeting. Informational only.
    std::string greeting;

    bool pipelining = false;            ///< PIPELINING, RFC 2920
    bool eight_bit_mime = false;        ///< 8BITMIME, RFC 6152
    bool smtputf8 = false;              ///< SMTPUTF8, RFC 6531
    bool dsn = false;                   ///< DSN, RFC 3461
    bool enhanced_status_codes = false; ///< ENHANCEDSTATUSCODES, RFC 2034
    bool chunking = false;              ///< CHUNKING (BDAT), RFC 3030
    bool binary_mime = false;           ///< BINARYMIME, RFC 3030
    bool starttls = false;              ///< STARTTLS, RFC 3207
    /// SIZE (RFC 1870): unset when not advertised; 0 when advertised without a usable limit
    /// ("SIZE", "SIZE 0", or a value that isn't a number that fits).
    std::optional<std::uint64_t> size;
    /// AUTH mechanisms (RFC 4954), upper-case, each once, in the server's order; includes the
    /// pre-standard "AUTH=LOGIN PLAIN" form some servers still send (that line is kept in
    /// `extensions` under the keyword "AUTH=").
    std::vector<std::string> auth;
    /// Every extension line in order, including the ones above.
    std::vector<extension> extensions;

    /// Parses an EHLO reply. Any reply parses (a non-250 reply is the caller's business: it
    /// means falling back to HELO, RFC 5321 §3.2); the first line is the greeting, each later
    /// line an extension.
    MAILROOM_API static capabilities parse(const reply& ehlo_reply);

    /// True when `keyword` (any case) was advertised.
    MAILROOM_API bool has(std::string_view keyword) const noexcept;
    /// The extension line for `keyword` (any case), or nullptr.
    MAILROOM_API const extension* find(std::string_view keyword) const noexcept;
    /// True when AUTH lists `mechanism` (any case).
    MAILROOM_API bool has_auth(std::string_view mechanism) const noexcept;

    friend bool operator==(const capabilities&, const capabilities&) = default;
};

} // namespace mailroom::smtp
