#include "encoding.hpp"

#include "detail/base64.hpp"
#include "detail/utf8.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace mailroom::mime::detail {

using mailroom::detail::base64_append;
using mailroom::detail::base64_size;
using mailroom::detail::is_valid_utf8;
using mailroom::detail::load8;
using mailroom::detail::printable8;
using mailroom::detail::utf8_seq_len;

// ---- text bodies ---------------------------------------------------------------------------

std::string normalize_text(std::string_view in, text_stats& st)
{
    st = {};
    // Sized for lines averaging 32 octets or more; shorter ones grow it.
    std::string out(in.size() + in.size() / 32 + 2, '\0');
    char* o = out.data();
    char* cap = o + out.size();
    auto room = [&](std::size_t n) {
        if (static_cast<std::size_t>(cap - o) >= n)
            return;
        const std::size_t used = static_cast<std::size_t>(o - out.data());
        out.resize(std::max(out.size() * 2, used + n));
        o = out.data() + used;
        cap = out.data() + out.size();
    };
    const auto* p = reinterpret_cast<const unsigned char*>(in.data());
    const auto* const end = p + in.size();
    std::size_t line = 0;
    while (p < end) {
        // A run of printable ASCII, the common case, is found a word at a time and copied whole.
        const auto* q = p;
        while (end - q >= 8 && printable8(load8(q)))
            q += 8;
        while (q < end && *q >= 0x20 && *q < 0x7F)
            ++q;
        const auto run = static_cast<std::size_t>(q - p);
        room(run + 2);
        std::memcpy(o, p, run);
        o += run;
        line += run;
        p = q;
        if (p == end)
            break;
        const unsigned char c = *p;
        if (c == '\r' || c == '\n') {
            st.longest_line = std::max(st.longest_line, line);
            line = 0;
            *o++ = '\r';
            *o++ = '\n';
            p += (c == '\r' && end - p > 1 && p[1] == '\n') ? 2 : 1;
            continue;
        }
        *o++ = static_cast<char>(c);
        ++p;
        ++line;
        if (c >= 0x80)
            ++st.non_ascii;
        else if (c != '\t')
            ++st.controls; // C0 controls and DEL
    }
    st.longest_line = std::max(st.longest_line, line);
    const auto used = static_cast<std::size_t>(o - out.data());
    if (used < 2 || o[-2] != '\r' || o[-1] != '\n') {
        room(2);
        *o++ = '\r';
        *o++ = '\n';
    }
    out.resize(static_cast<std::size_t>(o - out.data()));
    return out;
}

std::shared_ptr<const prepared_text> prepare_text(std::string_view text)
{
    auto p = std::make_shared<prepared_text>();
    p->crlf = normalize_text(text, p->st);
    // Line breaks are ASCII, so the normalised text is valid UTF-8 exactly when the input is;
    // pure ASCII needs no second look.
    p->valid_utf8 = p->st.non_ascii == 0 || is_valid_utf8(p->crlf);
    return p;
}

std::string to_crlf_lines(std::string_view in)
{
    text_stats ignored;
    return normalize_text(in, ignored);
}

namespace {
constexpr char hex_digits[] = "0123456789ABCDEF";

inline void put_hex(std::string& out, unsigned char c)
{
    out += '=';
    out += hex_digits[c >> 4];
    out += hex_digits[c & 15];
}
} // namespace

void quoted_printable_append(std::string& out, std::string_view text)
{
    // RFC 2045 §6.7: encoded lines are at most 76 characters; a soft break "=" counts as one.
    constexpr std::size_t max_line = 76;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t eol = text.find("\r\n", pos);
        const bool hard_break = eol != std::string_view::npos;
        if (!hard_break)
            eol = text.size();
        std::string_view line = text.substr(pos, eol - pos);
        std::size_t col = 0;
        for (std::size_t i = 0; i < line.size(); ++i) {
            auto c = static_cast<unsigned char>(line[i]);
            const bool last = i + 1 == line.size();
            // Rule (3): white space at the end of a line must be encoded.
            const bool literal =
                (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last);
            const std::size_t width = literal ? 1 : 3;
            // Leave room for the soft-break '=' unless this is the line's last character.
            const std::size_t need = last ? width : width + 1;
            if (col + need > max_line) {
                out += "=\r\n";
                col = 0;
            }
            if (literal)
                out += static_cast<char>(c);
            else
                put_hex(out, c);
            col += width;
        }
        if (hard_break)
            out += "\r\n";
        pos = hard_break ? eol + 2 : eol;
    }
}

// ---- RFC 2047 --------------------------------------------------------------------------------

namespace {

// RFC 2047 §5(3): in a phrase, a Q-encoded word may hold only letters, digits and "!*+-/" as
// themselves (and "_" for a space).
inline bool q_literal(unsigned char c) noexcept
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '!' ||
           c == '*' || c == '+' || c == '-' || c == '/';
}

inline std::size_t q_width(unsigned char c) noexcept
{
    return (q_literal(c) || c == ' ') ? 1 : 3;
}

} // namespace

void encoded_words_joined(std::string& out, std::string_view text, std::size_t first_max)
{
    std::size_t q_len = 0;
    for (unsigned char c : text)
        q_len += q_width(c);
    const bool use_q = q_len <= base64_size(text.size());
    const std::string_view prefix = use_q ? "=?UTF-8?Q?" : "=?UTF-8?B?";
    constexpr std::size_t overhead = 12; // prefix + "?="

    std::size_t limit = first_max;
    std::size_t pos = 0;
    bool first = true;
    while (pos < text.size() || first) {
        if (!first)
            out += '\n';
        const std::size_t payload_max = (limit > overhead ? limit - overhead : 4);
        // Take whole characters while the encoded payload fits; always at least one.
        std::size_t end = pos;
        std::size_t width = 0;
        while (end < text.size()) {
            std::size_t n = utf8_seq_len(static_cast<unsigned char>(text[end]));
            if (end + n > text.size())
                n = text.size() - end;
            std::size_t w = 0;
            if (use_q) {
                for (std::size_t k = 0; k < n; ++k)
                    w += q_width(static_cast<unsigned char>(text[end + k]));
                if (width + w > payload_max && end > pos)
                    break;
                width += w;
            } else {
                if (base64_size(end + n - pos) > payload_max && end > pos)
                    break;
            }
            end += n;
        }
        out += prefix;
        std::string_view chunk = text.substr(pos, end - pos);
        if (use_q) {
            for (unsigned char c : chunk) {
                if (c == ' ')
                    out += '_';
                else if (q_literal(c))
                    out += static_cast<char>(c);
                else
                    put_hex(out, c);
            }
        } else {
            base64_append(out, chunk);
        }
        out += "?=";
        pos = end;
        first = false;
        limit = max_encoded_word;
    }
}

// ---- RFC 2231 --------------------------------------------------------------------------------

void rfc2231_append(std::string& out, std::string_view value)
{
    // RFC 2231 §7: attribute-char is any printable ASCII but space, "*", "'", "%" and tspecials.
    constexpr std::string_view tspecials = "()<>@,;:\\\"/[]?=";
    for (unsigned char c : value) {
        if (c > 0x20 && c < 0x7F && c != '*' && c != '\'' && c != '%' &&
            tspecials.find(static_cast<char>(c)) == std::string_view::npos) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex_digits[c >> 4];
            out += hex_digits[c & 15];
        }
    }
}

} // namespace mailroom::mime::detail
