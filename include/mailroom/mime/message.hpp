// mailroom::mime::message: a built, validated message ready to be written.
#pragma once

#include <mailroom/envelope.hpp>
#include <mailroom/error.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

/// Message construction: RFC 5322 / MIME messages built, validated and written in wire form.
namespace mailroom::mime {

namespace detail {
struct message_data;
struct message_access;
class reader_state;
} // namespace detail

/// The most distinct recipients (To, Cc and Bcc together) a message may have unless the caller
/// says otherwise: message_builder::max_recipients, from_wire_options::max_recipients. RFC 5321
/// §4.5.3.1.8 asks servers for at least 100 per transaction and Postfix accepts 1 000 by
/// default; 10 000 leaves room for large lists while a runaway or hostile list (a 1 MiB To:
/// field holds some 40 000 addresses) is refused before anything is sent.
inline constexpr std::size_t default_max_recipients = 10000;

/// Options for message::from_wire and message::from_wire_file.
struct from_wire_options {
    /// The most distinct recipients taken from To, Cc and Bcc; one more is
    /// error::too_many_recipients. `SIZE_MAX` for no cap.
    std::size_t max_recipients = default_max_recipients;
};

/// A message in wire form (RFC 5322, CRLF line ends, no line over 998 octets), with its
/// envelope. Made by message_builder::build() or from pre-built bytes with message::from_bytes.
///
/// Cheap to copy (the content is shared and immutable). Thread safety: const access from any
/// number of threads is safe; each reader belongs to one thread at a time.
class MAILROOM_API message {
public:
    /// A message whose wire form is already known (for example an .eml file). `bytes` must use
    /// CRLF line ends; it is sent as it is, nothing is checked. `message_id` is only recorded,
    /// for message_id() and delivery reports.
    static message from_bytes(std::string bytes, mailroom::envelope env,
                              std::string message_id = {});

    /// A message read from its wire form, such as an .eml file, with the envelope taken from
    /// its headers as `sendmail -t` does: MAIL FROM from Sender, else From; recipients from To,
    /// Cc and Bcc (groups included), each once, in the order the fields give them. Line ends become
    /// CRLF, and Bcc fields are removed so they never reach the recipients. SMTPUTF8 is flagged for
    /// UTF-8 addresses or headers, 8BITMIME for 8-bit body octets.
    ///
    /// Field names are read as RFC 5322 §3.6.8 and its obsolete syntax (§4.5) have them:
    /// case-insensitive, with any white space (even folded) between the name and the colon
    /// ignored, so `Bcc :` and `BCC<TAB>:` are Bcc fields like `Bcc:`.
    ///
    /// Errors (diag.field names the header): error::missing_from, error::no_recipients, the
    /// address errors, error::line_too_long (a line over 998 octets), error::control_character
    /// (NUL or another control character in a header field; TAB is allowed),
    /// error::invalid_header_name (a header line with no ':', a field name that is not printable
    /// ASCII, or a first line that starts with white space, a continuation of no field),
    /// error::too_many_recipients (more than `opts.max_recipients`). On error nothing is made.
    static result<message> from_wire(std::string bytes, diagnostics& diag,
                                     const from_wire_options& opts);
    /// from_wire with the default options.
    static result<message> from_wire(std::string bytes, diagnostics& diag);

    /// from_wire for a message in a file, such as an .eml file, without holding the file in
    /// memory: the header section is read and checked now, and so is the body, which is then
    /// read again from the file, in chunks, each time the message is written. The envelope,
    /// the Bcc removal, the checks, size() and the wire form are those from_wire gives the
    /// file's contents. A file of at most 1 MiB, or one whose header section is longer than
    /// 1 MiB, is read whole and kept in memory instead.
    ///
    /// The file must not change while the message lives. Errors: those of from_wire, and
    /// error::file_unreadable (diag.detail names the file) when it can't be opened or read.
    /// Writing the message later: error::file_unreadable, error::file_changed (the file's size,
    /// or the size its body comes to on the wire, is not what it was).
    static result<message> from_wire_file(const std::filesystem::path& path, diagnostics& diag,
                                          const from_wire_options& opts);
    /// from_wire_file with the default options.
    static result<message> from_wire_file(const std::filesystem::path& path, diagnostics& diag);

    /// The same content with another envelope.
    message with_envelope(mailroom::envelope env) const;

    /// MAIL FROM, the RCPT TO recipients, and what the message needs (SMTPUTF8, 8BITMIME).
    const mailroom::envelope& envelope() const noexcept;
    /// The Message-ID with its angle brackets (`<k3j...@example.com>`); the same every time
    /// the message is written.
    const std::string& message_id() const noexcept;

    /// Exact size in octets of the wire form, before any SMTP dot-stuffing: what SIZE= declares.
    std::uint64_t size() const noexcept;

    /// Writes the whole message into one buffer. Errors: error::file_unreadable,
    /// error::file_changed (an attachment file changed since build()).
    result<std::string> serialize() const;

    /// Reads the wire form as a sequence of chunks, so a transport can write a message with large
    /// file attachments without holding it encoded in memory. Each chunk is at most about 96 KiB.
    ///
    /// Move-only; it keeps the message's content alive. Thread safety: one thread at a time.
    class MAILROOM_API reader {
    public:
        /// Takes over the other's position; the moved-from reader may only be destroyed or
        /// assigned to.
        reader(reader&&) noexcept;
        /// As the move constructor.
        reader& operator=(reader&&) noexcept;
        ~reader();

        /// The next chunk; empty at the end. The view stays valid until the next call.
        /// Errors: error::file_unreadable, error::file_changed.
        std::string_view next(error_code& ec);
        /// Octets not yet returned.
        std::uint64_t remaining() const noexcept;

    private:
        friend class message;
        explicit reader(std::shared_ptr<const detail::message_data> d);
        std::unique_ptr<detail::reader_state> state_;
    };
    /// A reader positioned at the first octet. Any number may be open at once.
    reader open() const;

    /// For the library itself (message_builder, from_bytes): wraps prepared content.
    explicit message(std::shared_ptr<const detail::message_data> d) noexcept
        : data_(std::move(d))
    {
    }

private:
    friend struct detail::message_access;
    std::shared_ptr<const detail::message_data> data_;
};

} // namespace mailroom::mime
