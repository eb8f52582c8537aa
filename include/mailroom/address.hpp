// mailroom::address and mailroom::mailbox: validated email addresses.
#pragma once

#include <mailroom/error.hpp>

#include <iosfwd>
#include <string>
#include <string_view>

namespace mailroom {

/// An RFC 5321 / RFC 5322 addr-spec (`local@domain`) that has been validated.
///
/// Parsing rejects rather than reinterprets: more than one '@', text after the domain, comments
/// inside the address, control characters, malformed UTF-8 and over-long parts are errors.
/// International domains are converted to their ASCII (A-label) form with libidn2 (IDNA 2008,
/// UTS #46 non-transitional); a non-ASCII local part is kept and marks the address as needing
/// SMTPUTF8 (RFC 6531).
///
/// Thread safety: a value type; distinct objects are independent, const access is safe.
class MAILROOM_API address {
public:
    address() = default;

    /// Parses a bare addr-spec such as `user@example.com` or `"john doe"@[192.0.2.1]`.
    /// Surrounding white space is allowed; nothing else is.
    /// Errors: error::invalid_address, error::address_too_long, error::invalid_domain,
    /// error::control_character, error::invalid_utf8. `diag.detail` says what was wrong.
    static result<address> parse(std::string_view text, diagnostics& diag);
    /// As above, without diagnostics.
    static result<address> parse(std::string_view text);

    /// Local part as it goes on the wire: a dot-atom, or a quoted-string with its quotes.
    const std::string& local_part() const noexcept { return local_; }
    /// Domain as the user wrote it (lower-cased if it was an IDN): for display.
    const std::string& domain() const noexcept { return domain_; }
    /// Domain in ASCII (A-labels, or an address literal): for the envelope and headers.
    const std::string& domain_ascii() const noexcept { return domain_ascii_; }

    /// True when the local part is not ASCII: delivery needs SMTPUTF8.
    bool needs_smtputf8() const noexcept { return smtputf8_; }
    /// True for a default-constructed address; as an envelope's `from`, the null path `<>`.
    bool empty() const noexcept { return local_.empty(); }

    /// `local@domain_ascii`: the form used in MAIL FROM / RCPT TO and in headers.
    std::string str() const;

    friend bool operator==(const address& a, const address& b) noexcept
    {
        return a.local_ == b.local_ && a.domain_ascii_ == b.domain_ascii_;
    }

private:
    std::string local_;
    std::string domain_;
    std::string domain_ascii_;
    bool smtputf8_ = false;

    friend class mailbox;
};

/// An RFC 5322 mailbox: an address with an optional display name.
///
/// Parses `Alice <alice@example.com>`, `"Doe, Jane" <jane@example.com>`,
/// `=?utf-8?q?J=C3=B6rg?= <j@example.com>` (the display name is decoded only for keeping; it is
/// re-encoded on output), UTF-8 names, and comments around the parts
/// (`alice@example.com (Alice)`). One mailbox only: a list or a group is an error.
///
/// RFC 2047 encoded-words among the display name's words are decoded to UTF-8: Q and B
/// encodings, charsets UTF-8, US-ASCII, ISO-8859-1 to -16 and Windows-1250 to -1258 (case-
/// insensitive, an RFC 2231 `*language` ignored); white space between two encoded-words is
/// dropped (RFC 2047 §6.2). Text that is not a well-formed encoded-word in one of those charsets,
/// or sits in a quoted string, stays as written. A word that decodes to a control character
/// (C0, DEL, C1) is error::control_character; one whose text is not valid in its charset (a
/// character split between two words included) is error::invalid_utf8.
///
/// Thread safety: a value type; distinct objects are independent, const access is safe.
class MAILROOM_API mailbox {
public:
    mailbox() = default;
    /// A mailbox from a parsed address and a display name (UTF-8, unquoted), which is checked
    /// when a message is built.
    explicit mailbox(mailroom::address addr, std::string display_name = {})
        : name_(std::move(display_name))
        , addr_(std::move(addr))
    {
    }

    /// Errors as for address::parse, and error::invalid_address for a list, a group, an
    /// unterminated quote, comment or angle bracket.
    static result<mailbox> parse(std::string_view text, diagnostics& diag);
    /// As above, without diagnostics.
    static result<mailbox> parse(std::string_view text);

    /// The display name as text (UTF-8), unquoted; empty when there is none.
    const std::string& display_name() const noexcept { return name_; }
    /// Sets the display name; it is checked (no controls, valid UTF-8) when a message is built.
    void set_display_name(std::string name) { name_ = std::move(name); }
    /// The address.
    const mailroom::address& address() const noexcept { return addr_; }

    friend bool operator==(const mailbox&, const mailbox&) = default;

private:
    std::string name_;
    mailroom::address addr_;
};

/// Writes address::str().
MAILROOM_API std::ostream& operator<<(std::ostream& os, const address& a);
/// Writes `"display name" <address>` (quoted when there is a name); for logs and tests, not for
/// headers, which the mime module encodes.
MAILROOM_API std::ostream& operator<<(std::ostream& os, const mailbox& m);

} // namespace mailroom
