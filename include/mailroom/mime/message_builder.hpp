// mailroom::mime::message_builder: assembles and validates a message.
#pragma once

#include <mailroom/address.hpp>
#include <mailroom/mime/dkim.hpp>
#include <mailroom/mime/message.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mailroom::mime {

namespace detail {
struct prepared_text;
} // namespace detail

/// A file or a block of memory sent with the message.
struct attachment {
    /// The name the recipient sees (UTF-8). For a file, defaults to the file's own name.
    std::string filename;
    /// e.g. "application/pdf"; empty: chosen from the file name's extension.
    std::string content_type;
    /// The content, when it is in memory...
    std::string data;
    /// ...or a file, read when the message is written (its size is taken at build()). When set,
    /// `data` is not used.
    std::filesystem::path path;
    /// Non-empty: an inline part referenced from HTML as `cid:<content_id>` (multipart/related).
    std::string content_id;
};

/// How 8-bit body text may travel.
enum class transfer_mode {
    seven_bit, ///< every part 7bit, quoted-printable or base64: safe for any server
    eight_bit, ///< 8-bit UTF-8 text parts sent as `8bit`; needs a server with 8BITMIME
};

/// Builds a message: set fields, then build(). Setters only record; every check happens in
/// build(), which reports the first bad field as a typed error and names it in diagnostics.
///
/// Addresses may be given as text (parsed by build()) or as parsed mailbox values. Text fields
/// are UTF-8; anything non-ASCII is encoded (RFC 2047, RFC 2231) so any reader decodes it back
/// exactly. CR, LF, NUL and other control characters in any header value are rejected, never
/// stripped or folded into a new header.
///
/// Thread safety: a value type. build() is const, so a builder can serve as a template.
class MAILROOM_API message_builder {
public:
    /// A parsed mailbox, or text that build() parses (mailbox::parse).
    using mailbox_input = std::variant<mailbox, std::string>;

    /// The From mailbox (required); a later call replaces it.
    message_builder& from(mailbox_input m);
    /// The Sender header (RFC 5322 §3.6.2), and MAIL FROM unless envelope_from is set.
    message_builder& sender(mailbox_input m);
    /// Adds a To recipient (header and envelope); call once per mailbox.
    message_builder& to(mailbox_input m);
    /// Adds a Cc recipient (header and envelope).
    message_builder& cc(mailbox_input m);
    /// Envelope only: a Bcc recipient never appears in the headers.
    message_builder& bcc(mailbox_input m);
    /// Adds a Reply-To mailbox.
    message_builder& reply_to(mailbox_input m);
    /// MAIL FROM (the bounce address); default: Sender, else From.
    message_builder& envelope_from(mailbox_input m);

    /// The Subject (UTF-8; encoded and folded as needed). None: no Subject header.
    message_builder& subject(std::string text);
    /// The Date header. Default: the time build() runs, in the local time zone.
    message_builder& date(std::chrono::system_clock::time_point t);
    /// A fixed Message-ID, `<left@right>` or `left@right`. Default: a new random one per build().
    message_builder& message_id(std::string id);
    /// Right-hand side for generated Message-IDs. Default: the From address's domain.
    message_builder& message_id_domain(std::string domain);
    /// Adds a msg-id to In-Reply-To (RFC 5322 §3.6.4), with or without angle brackets.
    message_builder& in_reply_to(std::string msg_id);
    /// Adds a msg-id to References, as for in_reply_to.
    message_builder& references(std::string msg_id);
    /// Adds a List-Unsubscribe URI (RFC 2369), without angle brackets: `https://...` or
    /// `mailto:...`.
    message_builder& list_unsubscribe(std::string uri);
    /// Adds `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058); build() then requires
    /// an https List-Unsubscribe URI.
    message_builder& list_unsubscribe_one_click(bool on = true);
    /// Adds any other header (UTF-8 value, encoded as needed). Names the builder owns (From, To,
    /// Bcc, Date, Message-ID, MIME-Version, Content-*, ...) are refused by build() with
    /// error::reserved_header.
    message_builder& header(std::string name, std::string value);

    /// The body text (UTF-8, any line breaks). It is prepared once, here: line breaks made
    /// CRLF and the text scanned for the transfer-encoding choice, so a builder used as a
    /// template shares one prepared body among all the messages it builds. Errors still come
    /// from build().
    message_builder& text(std::string body);
    /// The HTML body, prepared as text() is. With a text body too: multipart/alternative,
    /// text first.
    message_builder& html(std::string body);
    /// Adds an attachment, or an inline part when it has a content_id. In-memory data is moved
    /// into shared storage here, so every message built from this builder shares it.
    message_builder& attach(attachment a);
    /// Attaches a file; its name and type come from the path.
    message_builder& attach_file(std::filesystem::path p, std::string content_type = {});
    /// An inline part, for `<img src="cid:...">` in the HTML body.
    message_builder& inline_file(std::string content_id, std::filesystem::path p,
                                 std::string content_type = {});

    /// How 8-bit text may travel. Default: transfer_mode::seven_bit.
    message_builder& mode(transfer_mode m);
    /// The most distinct recipients (To, Cc and Bcc together); build() refuses more with
    /// error::too_many_recipients. Default: default_max_recipients (10 000); `SIZE_MAX` for no
    /// cap.
    message_builder& max_recipients(std::size_t n);
    /// Signs every message built with `signer` (DKIM, RFC 6376); called again, adds another
    /// signature (one RSA and one Ed25519, as RFC 8463 advises). build() hashes the body right
    /// after laying it out, once per body canonicalization, from the chunks the message's
    /// writer makes (attachments base64-encoded a chunk at a time, files read in chunks,
    /// nothing held whole); a built message keeps attachments unencoded, so they are encoded
    /// again when it is written.
    message_builder& dkim(dkim_signer signer);

    /// Validates everything and lays the message out. Errors (diag.field names the field):
    /// error::missing_from, error::no_recipients, error::invalid_address and the other address
    /// errors, error::control_character, error::invalid_utf8, error::invalid_header_name,
    /// error::reserved_header, error::invalid_message_id, error::invalid_content_id,
    /// error::invalid_uri, error::invalid_filename, error::invalid_content_type,
    /// error::file_unreadable, error::too_many_recipients; with dkim(),
    /// error::dkim_signing_failed.
    result<message> build(diagnostics& diag) const;
    /// As above; throws boost::system::system_error carrying the diagnostics on failure.
    message build_or_throw() const;

private:
    std::optional<mailbox_input> from_, sender_, envelope_from_;
    std::vector<mailbox_input> to_, cc_, bcc_, reply_to_;
    std::optional<std::string> subject_;
    std::optional<std::chrono::system_clock::time_point> date_;
    std::string message_id_, message_id_domain_;
    std::vector<std::string> in_reply_to_, references_, list_unsubscribe_;
    bool one_click_ = false;
    std::vector<std::pair<std::string, std::string>> headers_;
    std::shared_ptr<const detail::prepared_text> text_, html_;
    // In-memory content is moved into shared storage once, at attach(): build() and every
    // message built from this builder share it instead of copying it.
    struct stored_attachment {
        attachment meta; // with `data` moved out
        std::shared_ptr<const std::string> data;
    };
    std::vector<stored_attachment> attachments_;
    transfer_mode mode_ = transfer_mode::seven_bit;
    std::size_t max_recipients_ = default_max_recipients;
    std::vector<dkim_signer> signers_;
};

/// The media type for a file name's extension (`report.pdf` → `application/pdf`);
/// `application/octet-stream` when unknown.
MAILROOM_API std::string_view media_type_for(std::string_view filename) noexcept;

} // namespace mailroom::mime
