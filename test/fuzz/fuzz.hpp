// Shared by the libFuzzer targets: invariant checks that abort with a message, the wire-form
// checks several targets make, and a deterministic way to cut one input into pieces.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <utility>
#include <vector>

namespace fuzz {

/// Reports a broken invariant and aborts, which libFuzzer records as a crash with its input.
[[noreturn]] inline void fail(const char* what, const char* file, int line)
{
    std::fprintf(stderr, "\n== fuzz invariant broken: %s (%s:%d)\n", what, file, line);
    std::fflush(stderr);
    std::abort();
}

/// Checks `cond`; `what` says what it means, for the report.
#define FUZZ_CHECK(cond, what)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ::fuzz::fail(what " [" #cond "]", __FILE__, __LINE__);                                 \
    } while (false)

/// True when every CR in `s` is followed by LF and every LF follows a CR (RFC 5321 §2.3.8).
inline bool crlf_only(std::string_view s) noexcept
{
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n'))
            return false;
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            return false;
    }
    return true;
}

/// The longest line of CRLF text, in octets without its CRLF.
inline std::size_t longest_line(std::string_view s) noexcept
{
    std::size_t longest = 0;
    std::size_t pos = 0;
    while (pos <= s.size()) {
        std::size_t end = s.find("\r\n", pos);
        if (end == std::string_view::npos)
            end = s.size();
        longest = end - pos > longest ? end - pos : longest;
        pos = end + 2;
    }
    return longest;
}

/// Reads what the fuzzer gave, front to back: control bytes for the target, then the rest.
class input {
public:
    input(const std::uint8_t* data, std::size_t size) noexcept
        : s_(reinterpret_cast<const char*>(data), size)
    {
    }
    /// The next octet, or 0 at the end.
    std::uint8_t byte() noexcept
    {
        if (s_.empty())
            return 0;
        const auto b = static_cast<std::uint8_t>(s_.front());
        s_.remove_prefix(1);
        return b;
    }
    /// Everything not yet read.
    std::string_view rest() noexcept { return std::exchange(s_, std::string_view{}); }
    /// Up to the next `sep` (not included; skipped), or the rest.
    std::string_view until(char sep) noexcept
    {
        const std::size_t p = s_.find(sep);
        const std::string_view r = s_.substr(0, p);
        s_.remove_prefix(p == std::string_view::npos ? s_.size() : p + 1);
        return r;
    }
    bool empty() const noexcept { return s_.empty(); }

private:
    std::string_view s_;
};

/// Cuts `s` into pieces at places chosen by `seed` (a small xorshift generator): the same seed
/// gives the same cuts, and pieces of 0 to about 16 octets, so every boundary gets tried.
inline std::vector<std::string_view> split(std::string_view s, std::uint32_t seed)
{
    std::vector<std::string_view> pieces;
    std::uint32_t x = seed * 2654435761u + 1;
    while (!s.empty()) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        const std::size_t n = (x >> 8) % 17;
        pieces.push_back(s.substr(0, n));
        s.remove_prefix(n < s.size() ? n : s.size());
    }
    return pieces;
}

} // namespace fuzz
