// base64 (RFC 4648 §4): a table-driven encoder for MIME and SASL, and a strict decoder for
// SASL challenges.
#include "detail/base64.hpp"

#include <array>
#include <cstring>

namespace mailroom::detail {

// ---- encoding ------------------------------------------------------------------------------

namespace {

constexpr char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Two output characters for every 12-bit input value: one table load per two characters.
struct pair_table {
    std::array<std::array<char, 2>, 4096> v{};
    constexpr pair_table()
    {
        for (unsigned i = 0; i < 4096; ++i)
            v[i] = {b64_alphabet[i >> 6], b64_alphabet[i & 63]};
    }
};
constexpr pair_table pairs;

// Encodes whole 3-octet groups; returns the output position.
inline char* encode_groups(char* o, const unsigned char* p, std::size_t groups) noexcept
{
    for (std::size_t g = 0; g < groups; ++g, p += 3, o += 4) {
        const std::uint32_t x = (std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2];
        std::memcpy(o, pairs.v[x >> 12].data(), 2);
        std::memcpy(o + 2, pairs.v[x & 0xFFF].data(), 2);
    }
    return o;
}

inline char* encode_tail(char* o, const unsigned char* p, std::size_t rest) noexcept
{
    if (rest == 0)
        return o;
    const std::uint32_t x =
        (std::uint32_t{p[0]} << 16) | (rest == 2 ? std::uint32_t{p[1]} << 8 : 0);
    o[0] = b64_alphabet[(x >> 18) & 63];
    o[1] = b64_alphabet[(x >> 12) & 63];
    o[2] = rest == 2 ? b64_alphabet[(x >> 6) & 63] : '=';
    o[3] = '=';
    return o + 4;
}

} // namespace

void base64_append(std::string& out, std::string_view in)
{
    const std::size_t old = out.size();
    out.resize(old + base64_size(in.size()));
    const auto* p = reinterpret_cast<const unsigned char*>(in.data());
    char* o = encode_groups(out.data() + old, p, in.size() / 3);
    encode_tail(o, p + in.size() / 3 * 3, in.size() % 3);
}

void base64_lines_append(std::string& out, std::string_view in)
{
    const std::size_t old = out.size();
    out.resize(old + base64_lines_size(in.size()));
    const auto* p = reinterpret_cast<const unsigned char*>(in.data());
    char* o = out.data() + old;
    std::size_t left = in.size();
    while (left > base64_line_input) {
        o = encode_groups(o, p, base64_line_input / 3);
        o[0] = '\r';
        o[1] = '\n';
        o += 2;
        p += base64_line_input;
        left -= base64_line_input;
    }
    o = encode_groups(o, p, left / 3);
    encode_tail(o, p + left / 3 * 3, left % 3);
}

// ---- strict decoding -----------------------------------------------------------------------

namespace {

constexpr std::array<std::int8_t, 256> make_decode_table() noexcept
{
    std::array<std::int8_t, 256> t{};
    for (auto& v : t)
        v = -1;
    for (std::size_t i = 0; i < 64; ++i)
        t[static_cast<unsigned char>(b64_alphabet[i])] = static_cast<std::int8_t>(i);
    return t;
}

constexpr auto decode_table = make_decode_table();

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
            const std::int8_t v = decode_table[static_cast<unsigned char>(in[i + j])];
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

} // namespace mailroom::detail
