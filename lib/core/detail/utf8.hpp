// Private: UTF-8 and ASCII checks shared by core (addresses) and mime (headers, bodies). Pure
// functions, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace mailroom::detail {

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

// ---- eight octets at a time ----------------------------------------------------------------

inline constexpr std::uint64_t high_bits = 0x8080808080808080ULL;
inline constexpr std::uint64_t ones = 0x0101010101010101ULL;

inline std::uint64_t load8(const unsigned char* p) noexcept
{
    std::uint64_t x;
    std::memcpy(&x, p, 8);
    return x;
}

// True when all eight octets are printable ASCII (0x20..0x7E): the common case of body text,
// checked a word at a time.
inline bool printable8(std::uint64_t x) noexcept
{
    const std::uint64_t below_space = (x - 0x20 * ones) & ~x & high_bits;
    const std::uint64_t y = x ^ (0x7F * ones); // DEL becomes zero
    const std::uint64_t del = (y - ones) & ~y & high_bits;
    return ((x & high_bits) | below_space | del) == 0;
}

} // namespace mailroom::detail
