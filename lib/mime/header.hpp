// Private: header field formatting with folding (RFC 5322 §2.2.3) and RFC 2047 encoding.
#pragma once

#include <mailroom/address.hpp>

#include <span>
#include <string>
#include <string_view>

namespace mailroom::mime::detail {

/// Lines are folded to at most this many characters where a fold point exists (RFC 5322 §2.1.1).
inline constexpr std::size_t fold_width = 78;
/// A word longer than this is never written raw: it is encoded so it can be split.
inline constexpr std::size_t max_raw_word = 900;

/// Writes one header field as words separated by single spaces; a line that would pass
/// fold_width is folded by putting CRLF before the space, so unfolding gives back the text.
class header_writer {
public:
    header_writer(std::string& out, std::string_view name);
    /// A space, then `w`: the space is a fold point.
    void word(std::string_view w);
    /// `s` glued to what precedes it (no space, no fold point).
    void glue(std::string_view s);
    /// Room left on the current line for a word after its space.
    std::size_t room() const noexcept;
    /// False until the current line has a word: the next word can't fold before it.
    bool can_fold() const noexcept { return line_has_word_; }
    /// Ends the field with CRLF.
    void finish();

private:
    std::string& out_;
    std::size_t line_start_;
    bool line_has_word_ = false;
};

/// True when an unstructured value can't be written as it is: non-ASCII, "=?" (which a reader
/// would decode), white space at either end, or a word too long to fold.
bool needs_encoding(std::string_view value) noexcept;

/// Writes `value` (UTF-8, no controls) as unstructured text (RFC 5322 §3.2.5), as encoded-words
/// where needs_encoding says so.
void write_unstructured(header_writer& h, std::string_view value);

/// `text` as an RFC 5322 quoted-string: in double quotes, with '"' and '\\' escaped.
std::string quoted_string(std::string_view text);

/// A display name as atoms, one quoted-string, or encoded-words (RFC 5322 §3.2.5 phrase).
void write_phrase(header_writer& h, std::string_view name);

/// `name <local@domain>` or `local@domain`, with a ',' after it unless `last`.
void write_mailbox(header_writer& h, const mailbox& m, bool last);

/// Convenience: a whole address-list header.
void write_mailbox_header(std::string& out, std::string_view name, std::span<const mailbox> list);

} // namespace mailroom::mime::detail
