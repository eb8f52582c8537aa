// Private: the byte-level encoders of the mime module. Pure functions, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace mailroom::mime::detail {

// ---- UTF-8 ---------------------------------------------------------------------------------

/// True when `s` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool is_valid_utf8(std::string_view s) noexcept;

/// Length of the UTF-8 sequence starting with lead byte `c` (1 for ASCII and for stray bytes).
inline std::size_t utf8_seq_len(unsigned char c) noexcept
{
    return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/// True when every byte is printable ASCII or a space (0x20..0x7E).
bool is_printable_ascii(std::string_view s) noexcept;

/// True when `s` holds a C0 control, DEL, or (in UTF-8) a C1 control (U+0080..U+009F).
bool has_control(std::string_view s) noexcept;

// ---- base64 (RFC 2045 §6.8) ------------------------------------------------------------------

/// Octets of input per 76-character base64 line.
inline constexpr std::size_t base64_line_input = 57;

/// Appends `in` as base64 without line breaks.
void base64_append(std::string& out, std::string_view in);

/// Size of base64_append's output for `n` input octets.
inline constexpr std::uint64_t base64_size(std::uint64_t n) noexcept
{
    return (n + 2) / 3 * 4;
}

/// Appends `in` as base64 in 76-character lines joined by CRLF, without a CRLF after the last
/// line. `in.size()` must be a multiple of 57 unless this is the last piece of the data: pieces
/// encoded this way and joined by CRLF equal the encoding of the whole.
void base64_lines_append(std::string& out, std::string_view in);

/// Size of base64_lines_append's output for `n` input octets.
inline constexpr std::uint64_t base64_lines_size(std::uint64_t n) noexcept
{
    const std::uint64_t chars = base64_size(n);
    const std::uint64_t lines = (chars + 75) / 76;
    return chars + (lines ? 2 * (lines - 1) : 0);
}

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
