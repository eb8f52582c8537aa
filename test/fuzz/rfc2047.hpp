// A reader for what the header writer produces, written plainly and independently of it, for
// the round-trip checks: unfolding, encoded-words (RFC 2047, the UTF-8 B and Q forms the
// library writes), unstructured text and phrases (RFC 5322 §3.2.5, §3.2.4).
#pragma once

#include "detail/base64.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace fuzz {

/// RFC 5322 §2.2.3: a CRLF followed by white space is removed.
inline std::string unfold(std::string_view s)
{
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s.substr(i, 2) == "\r\n" && i + 2 < s.size() && (s[i + 2] == ' ' || s[i + 2] == '\t')) {
            ++i;
            continue;
        }
        out += s[i];
    }
    return out;
}

/// The text of one encoded-word `=?UTF-8?B?...?=` or `=?UTF-8?Q?...?=` (charset any case), or
/// nothing when `w` isn't one.
inline std::optional<std::string> decode_encoded_word(std::string_view w)
{
    if (w.size() < 12 || !w.ends_with("?="))
        return std::nullopt;
    std::string head(w.substr(0, 10));
    for (char& c : head)
        c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
    const std::string_view payload = w.substr(10, w.size() - 12);
    if (head == "=?UTF-8?B?")
        return mailroom::detail::base64_decode(payload);
    if (head != "=?UTF-8?Q?")
        return std::nullopt;
    std::string out;
    for (std::size_t i = 0; i < payload.size(); ++i) {
        const char c = payload[i];
        if (c == '_') {
            out += ' ';
        } else if (c == '=') {
            auto hex = [](char h) -> int {
                if (h >= '0' && h <= '9')
                    return h - '0';
                if (h >= 'A' && h <= 'F')
                    return h - 'A' + 10;
                return -1;
            };
            if (i + 2 >= payload.size())
                return std::nullopt;
            const int hi = hex(payload[i + 1]), lo = hex(payload[i + 2]);
            if (hi < 0 || lo < 0)
                return std::nullopt;
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else if (c == '?' || c == ' ') {
            return std::nullopt;
        } else {
            out += c;
        }
    }
    return out;
}

/// Unstructured text (RFC 5322 §3.2.5) as a reader shows it: words separated by single
/// spaces, white space between adjacent encoded-words dropped (RFC 2047 §6.2).
inline std::string decode_unstructured(std::string_view v)
{
    std::string out;
    bool prev_encoded = false;
    std::size_t pos = 0;
    for (bool first = true; pos <= v.size(); first = false) {
        std::size_t sp = v.find(' ', pos);
        if (sp == std::string_view::npos)
            sp = v.size();
        const std::string_view w = v.substr(pos, sp - pos);
        const auto d = decode_encoded_word(w);
        if (!first && !(prev_encoded && d))
            out += ' ';
        out += d ? *d : std::string(w);
        prev_encoded = d.has_value();
        pos = sp + 1;
    }
    return out;
}

/// A phrase (RFC 5322 §3.2.5) as the writer writes one: atoms, quoted-strings and
/// encoded-words separated by single spaces. Adjacent words read back with one space between
/// them, adjacent encoded-words with none. `rest` gets what follows the phrase (from the first
/// word starting with '<'). Nothing when a quoted-string is unterminated.
inline std::optional<std::string> decode_phrase(std::string_view v, std::string_view& rest)
{
    std::string out;
    bool prev_encoded = false;
    bool first = true;
    std::size_t pos = 0;
    rest = {};
    while (pos < v.size()) {
        if (v[pos] == ' ') {
            ++pos;
            continue;
        }
        if (v[pos] == '<') {
            rest = v.substr(pos);
            break;
        }
        std::string word;
        bool encoded = false;
        if (v[pos] == '"') {
            std::size_t i = pos + 1;
            for (; i < v.size() && v[i] != '"'; ++i) {
                if (v[i] == '\\' && i + 1 < v.size())
                    ++i;
                word += v[i];
            }
            if (i == v.size())
                return std::nullopt;
            pos = i + 1;
        } else {
            std::size_t sp = v.find(' ', pos);
            if (sp == std::string_view::npos)
                sp = v.size();
            const std::string_view w = v.substr(pos, sp - pos);
            const auto d = decode_encoded_word(w);
            encoded = d.has_value();
            word = d ? *d : std::string(w);
            pos = sp;
        }
        if (!first && !(prev_encoded && encoded))
            out += ' ';
        out += word;
        prev_encoded = encoded;
        first = false;
    }
    return out;
}

} // namespace fuzz
