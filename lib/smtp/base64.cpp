// Strict RFC 4648 base64 decoding.
#include "smtp/base64.hpp"

#include <array>
#include <cstdint>

namespace mailroom::smtp::detail {

namespace {

constexpr std::array<std::int8_t, 256> make_table() noexcept
{
    std::array<std::int8_t, 256> t{};
    for (auto& v : t)
        v = -1;
    constexpr std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (std::size_t i = 0; i < alphabet.size(); ++i)
        t[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
    return t;
}

constexpr auto table = make_table();

} // namespace

std::optional<std::string> base64_decode(std::string_view in)
{
    if (in.size() % 4 != 0)
        return std::nullopt;
    std::string out;
    out.reserve(in.size() / 4 * 3);
    for (std::size_t i = 0; i < in.size(); i += 4) {
        const bool last = i + 4 == in.size();
        const std::size_t pad = last ? (in[i + 3] == '=' ? (in[i + 2] == '=' ? 2 : 1) : 0) : 0;
        std::uint32_t group = 0;
        for (std::size_t j = 0; j < 4 - pad; ++j) {
            const std::int8_t v = table[static_cast<unsigned char>(in[i + j])];
            if (v < 0)
                return std::nullopt;
            group = group << 6 | static_cast<std::uint32_t>(v);
        }
        group <<= 6 * pad;
        if (pad == 2 && (group & 0xFFFF) != 0)
            return std::nullopt; // non-zero unused bits (RFC 4648 §3.5)
        if (pad == 1 && (group & 0xFF) != 0)
            return std::nullopt;
        out += static_cast<char>(group >> 16);
        if (pad < 2)
            out += static_cast<char>(group >> 8 & 0xFF);
        if (pad < 1)
            out += static_cast<char>(group & 0xFF);
    }
    return out;
}

} // namespace mailroom::smtp::detail
