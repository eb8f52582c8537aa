// mailroom: errors shared by every module.
//
// Every operation reports failure as a boost::system::error_code. Codes the library makes
// belong to mailroom::library_category(); callers test them against the conditions below
// (`ec == mailroom::condition::invalid_input`) rather than against single values. Text that
// explains a failure (which field, what was wrong) goes in a `diagnostics` object beside the
// code, never in the code itself.
#pragma once

#include <mailroom/config.hpp>

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <string>
#include <type_traits>

namespace mailroom {

using boost::system::error_code;
using boost::system::result;

/// Errors made by mailroom itself.
enum class error {
    // Bad input: nothing was sent or written.
    invalid_address = 1,   ///< not an RFC 5322 mailbox / RFC 5321 path
    address_too_long,      ///< local part > 64 octets, domain > 255, path > 256 (RFC 5321 §4.5.3.1)
    invalid_domain,        ///< domain is not a host name, IDN or address literal
    control_character,     ///< CR, LF, NUL or another control character where text is expected
    invalid_utf8,          ///< text is not well-formed UTF-8
    invalid_header_name,   ///< header field name is empty or not printable ASCII without ':'
    reserved_header,       ///< header is set by the builder itself (From, Bcc, Content-Type, ...)
    invalid_message_id,    ///< not an RFC 5322 msg-id `<left@right>`
    invalid_content_id,    ///< inline part's Content-ID is empty or not a dot-atom@dot-atom
    invalid_uri,           ///< List-Unsubscribe URI with spaces, controls or '<' '>'
    invalid_filename,      ///< attachment name is empty or holds '/' or '\\'
    invalid_content_type,  ///< not a `type/subtype` media type
    missing_from,          ///< a message needs a From mailbox
    no_recipients,         ///< a message needs at least one To, Cc or Bcc recipient
    file_unreadable,       ///< an attachment file can't be opened or read
    file_changed,          ///< an attachment file changed size between build and write
    line_too_long,         ///< a line over 998 octets where it can't be encoded
};

/// The category of `mailroom::error`.
MAILROOM_API const boost::system::error_category& library_category() noexcept;

inline error_code make_error_code(error e) noexcept
{
    return {static_cast<int>(e), library_category()};
}

/// What a caller usually wants to know about an error.
enum class condition {
    invalid_input = 1, ///< the caller's data is at fault: fix it, don't retry
    transient,         ///< may succeed if retried later
    permanent,         ///< will fail again the same way
    timeout,           ///< a deadline passed
};

MAILROOM_API const boost::system::error_category& condition_category() noexcept;

inline boost::system::error_condition make_error_condition(condition c) noexcept
{
    return {static_cast<int>(c), condition_category()};
}

/// Text beside an error code: which field or command failed and why. Safe to log: it never holds
/// credentials or message bodies.
struct diagnostics {
    std::string field;  ///< e.g. "To", "Subject", "attachment report.pdf"
    std::string detail; ///< e.g. "more than one '@'"

    void clear()
    {
        field.clear();
        detail.clear();
    }
    /// "field: detail" or whichever of the two is set.
    MAILROOM_API std::string to_string() const;
};

} // namespace mailroom

template <>
struct boost::system::is_error_code_enum<mailroom::error> : std::true_type {};
template <>
struct boost::system::is_error_condition_enum<mailroom::condition> : std::true_type {};
