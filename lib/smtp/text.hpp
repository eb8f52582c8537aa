// Private: small ASCII helpers shared by the smtp module. Locale-independent on purpose:
// protocol keywords are ASCII, and toupper() would change with the global locale.
#pragma once

#include <string>
#include <string_view>

namespace mailroom::smtp::detail {

inline bool is_alpha(char c) noexcept
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
inline bool is_digit(char c) noexcept
{
    return c >= '0' && c <= '9';
}
inline bool is_alnum(char c) noexcept
{
    return is_alpha(c) || is_digit(c);
}
inline char to_upper(char c) noexcept
{
    return c >= 'a' && c <= 'z' ? char(c - 'a' + 'A') : c;
}

inline std::string to_upper(std::string_view s)
{
    std::string out(s);
    for (char& c : out)
        c = to_upper(c);
    return out;
}

inline bool iequals(std::string_view a, std::string_view b) noexcept
{
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (to_upper(a[i]) != to_upper(b[i]))
            return false;
    }
    return true;
}

/// True when `s` holds a C0 control character or DEL: what must never reach a command line
/// unescaped (CR and LF end it, NUL truncates it in C servers).
inline bool has_ascii_control(std::string_view s) noexcept
{
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F)
            return true;
    }
    return false;
}

inline bool is_ascii(std::string_view s) noexcept
{
    for (char c : s) {
        if (static_cast<unsigned char>(c) >= 0x80)
            return false;
    }
    return true;
}

} // namespace mailroom::smtp::detail
