// Private: the byte-level encoders of the mime module. Pure functions, no I/O. UTF-8 checks and
// base64 are shared with the other modules: lib/core/detail/utf8.hpp and base64.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace mailroom::mime::detail {

// ---- text bodies ---------------------------------------------------------------------------

/// Returns `in` with every line break (CRLF, bare LF, bare CR) as CRLF and a CRLF at the end.
std::string to_crlf_lines(std::string_view in);

/// What the transfer-encoding choice needs to know about CRLF-normalised text.
struct text_stats {
    std::size_t non_ascii = 0; ///< octets >= 0x80
    std::size_t controls = 0;  ///< C0 controls other than TAB, CR, LF; and DEL
    std::size_t longest_line = 0;
};

/// A text body made ready once for any number of messages.
struct prepared_text {
    std::string crlf; ///< CRLF line breaks, ending in CRLF
    text_stats st;
    bool valid_utf8 = true;
};
std::shared_ptr<const prepared_text> prepare_text(std::string_view text);

/// `in` with CRLF line breaks and a final CRLF (as to_crlf_lines), and in `st` what the
/// transfer-encoding choice needs to know about that text, found in the same pass.
std::string normalize_text(std::string_view in, text_stats& st);

/// Appends CRLF-normalised text as quoted-printable (RFC 2045 §6.7): lines of at most 76
/// characters with soft breaks, '=', controls, 8-bit octets and white space before a line break
/// encoded, hard line breaks kept as CRLF.
void quoted_printable_append(std::string& out, std::string_view crlf_text);

// ---- RFC 2047 encoded-words --------------------------------------------------------------------

/// Longest encoded-word, RFC 2047 §2.
inline constexpr std::size_t max_encoded_word = 75;

/// Splits UTF-8 `text` into encoded-words (`=?UTF-8?B?...?=` or `=?UTF-8?Q?...?=`, whichever
/// is shorter for this text) of at most `first_max` characters for the first and
/// max_encoded_word for the rest, never splitting a character. The Q form uses only the
/// characters RFC 2047 §5(3) allows in a phrase, so the words are valid in display names too.
/// Calls `emit(word)` for each.
template <class F> void encoded_words(std::string_view text, std::size_t first_max, F&& emit);

/// Non-template core of encoded_words: appends the words to `out` separated by '\n'.
void encoded_words_joined(std::string& out, std::string_view text, std::size_t first_max);

template <class F> void encoded_words(std::string_view text, std::size_t first_max, F&& emit)
{
    std::string joined;
    encoded_words_joined(joined, text, first_max);
    std::size_t pos = 0;
    while (pos < joined.size()) {
        std::size_t nl = joined.find('\n', pos);
        if (nl == std::string::npos)
            nl = joined.size();
        emit(std::string_view(joined).substr(pos, nl - pos));
        pos = nl + 1;
    }
}

// ---- RFC 2231 parameter values
// -------------------------------------------------------------------

/// Appends `value` percent-encoded as an RFC 2231 extended value (without the charset prefix):
/// attribute-chars stay, everything else becomes %XX.
void rfc2231_append(std::string& out, std::string_view value);

} // namespace mailroom::mime::detail
