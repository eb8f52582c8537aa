// Private: base64 (RFC 4648 §4), the one implementation for every module: MIME bodies and
// encoded-words (mime), SASL payloads and challenges (smtp). Pure functions, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mailroom::detail {

/// Octets of input per 76-character base64 line (RFC 2045 §6.8).
inline constexpr std::size_t base64_line_input = 57;

/// Appends `in` as base64 without line breaks.
void base64_append(std::string& out, std::string_view in);

/// Size of base64_append's output for `n` input octets.
inline constexpr std::uint64_t base64_size(std::uint64_t n) noexcept
{
    return (n + 2) / 3 * 4;
}

/// Appends `in` as base64 in 76-character lines joined by CRLF (RFC 2045 §6.8), without a CRLF
/// after the last line. `in.size()` must be a multiple of 57 unless this is the last piece of
/// the data: pieces encoded this way and joined by CRLF equal the encoding of the whole.
void base64_lines_append(std::string& out, std::string_view in);

/// Size of base64_lines_append's output for `n` input octets.
inline constexpr std::uint64_t base64_lines_size(std::uint64_t n) noexcept
{
    const std::uint64_t chars = base64_size(n);
    const std::uint64_t lines = (chars + 75) / 76;
    return chars + (lines ? 2 * (lines - 1) : 0);
}

/// Decodes `in`, or returns nothing when it isn't canonical base64: RFC 4954 §4 requires
/// rejecting any character outside the alphabet (white space included) and padding anywhere
/// but at the end, so the length must be a multiple of 4, and the unused bits of the last
/// group must be zero (RFC 4648 §3.5), so that one string has one meaning.
std::optional<std::string> base64_decode(std::string_view in);

} // namespace mailroom::detail
