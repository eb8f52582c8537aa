// DKIM canonicalization (RFC 6376 §3.4), field selection (§5.4) and the signature field's
// layout.

#include "dkim_canon.hpp"

#include <algorithm>
#include <cctype>

namespace mailroom::mime::detail {

namespace {

bool is_wsp(char c) noexcept
{
    return c == ' ' || c == '\t';
}

bool iequal(std::string_view a, std::string_view b) noexcept
{
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string lower(std::string_view s)
{
    std::string out(s);
    for (char& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

constexpr std::size_t max_column = 78;

} // namespace

std::vector<header_field> split_fields(std::string_view header)
{
    std::vector<header_field> out;
    std::size_t pos = 0;
    while (pos < header.size()) {
        const std::size_t start = pos;
        // A field runs to the end of the line that isn't followed by a continuation line.
        for (;;) {
            const std::size_t lf = header.find('\n', pos);
            pos = lf == std::string_view::npos ? header.size() : lf + 1;
            if (pos >= header.size() || !is_wsp(header[pos]))
                break;
        }
        const std::string_view raw = header.substr(start, pos - start);
        std::string_view name = raw.substr(0, std::min(raw.find(':'), raw.size()));
        while (!name.empty() && (is_wsp(name.back()) || name.back() == '\r' || name.back() == '\n'))
            name.remove_suffix(1);
        out.push_back({name, raw});
    }
    return out;
}

void canonicalize_header(std::string& out, std::string_view field, dkim_canonicalization c,
                         bool drop_crlf)
{
    if (c == dkim_canonicalization::simple) {
        if (drop_crlf && field.ends_with("\r\n"))
            field.remove_suffix(2);
        out += field;
        return;
    }
    const std::size_t colon = std::min(field.find(':'), field.size());
    std::string_view name = field.substr(0, colon);
    // The name unfolded too (obsolete syntax allows a fold before the colon), white space
    // before the colon dropped.
    const std::size_t name_start = out.size();
    for (char ch : name)
        if (ch != '\r' && ch != '\n')
            out += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    while (out.size() > name_start && is_wsp(out.back()))
        out.pop_back();
    out += ':';
    // The value unfolded, white space runs made one space, none at either end.
    bool space = false;
    bool started = false;
    for (std::size_t i = colon + 1; i < field.size(); ++i) {
        const char ch = field[i];
        if (ch == '\r' || ch == '\n')
            continue;
        if (is_wsp(ch)) {
            space = true;
            continue;
        }
        if (space && started)
            out += ' ';
        space = false;
        started = true;
        out += ch;
    }
    if (!drop_crlf)
        out += "\r\n";
}

void body_canonicalizer::flush_line_start(std::string& out)
{
    if (line_content_)
        return;
    for (; empty_lines_ > 0; --empty_lines_)
        out += "\r\n";
    line_content_ = true;
    any_ = true;
}

void body_canonicalizer::feed(std::string& out, std::string_view in)
{
    std::size_t i = 0;
    while (i < in.size()) {
        if (cr_) {
            cr_ = false;
            if (in[i] == '\n') {
                ++i;
                wsp_ = false;
                if (line_content_) {
                    out += "\r\n";
                    line_content_ = false;
                } else {
                    ++empty_lines_;
                }
                continue;
            }
            // A bare CR is content like any other octet.
            flush_line_start(out);
            if (wsp_) {
                out += ' ';
                wsp_ = false;
            }
            out += '\r';
        }
        const char c = in[i];
        if (c == '\r') {
            cr_ = true;
            ++i;
            continue;
        }
        if (relaxed_ && is_wsp(c)) {
            wsp_ = true;
            ++i;
            continue;
        }
        flush_line_start(out);
        if (wsp_) {
            out += ' ';
            wsp_ = false;
        }
        // The run of ordinary octets up to the next CR (or, relaxed, white space).
        std::size_t j = i + 1;
        while (j < in.size() && in[j] != '\r' && !(relaxed_ && is_wsp(in[j])))
            ++j;
        out.append(in.data() + i, j - i);
        i = j;
    }
}

void body_canonicalizer::finish(std::string& out)
{
    if (cr_) {
        cr_ = false;
        flush_line_start(out);
        if (wsp_)
            out += ' ';
        out += '\r';
    }
    wsp_ = false;
    if (line_content_) {
        out += "\r\n";
        line_content_ = false;
    }
    empty_lines_ = 0;
    // RFC 6376 §3.4.3: an empty body is one CRLF for simple; §3.4.4 (erratum 3150): nothing
    // for relaxed.
    if (!relaxed_ && !any_)
        out += "\r\n";
}

std::vector<std::string> signed_field_names(std::span<const header_field> fields,
                                            std::span<const std::string> names)
{
    std::vector<std::string> wanted;
    if (names.empty()) {
        for (std::string_view n : default_dkim_headers())
            wanted.emplace_back(n);
    } else {
        wanted.assign(names.begin(), names.end());
    }
    if (std::none_of(wanted.begin(), wanted.end(),
                     [](const std::string& n) { return iequal(n, "from"); }))
        wanted.insert(wanted.begin(), "from");
    std::vector<std::string> h;
    std::vector<std::string> seen;
    for (const std::string& n : wanted) {
        const std::string name = lower(n);
        if (std::find(seen.begin(), seen.end(), name) != seen.end())
            continue;
        seen.push_back(name);
        std::size_t count = static_cast<std::size_t>(
            std::count_if(fields.begin(), fields.end(),
                          [&](const header_field& f) { return iequal(f.name, name); }));
        if (name == "from")
            ++count;
        h.insert(h.end(), count, name);
    }
    return h;
}

std::vector<std::string_view> select_fields(std::span<const header_field> fields,
                                            std::span<const std::string> h)
{
    std::vector<bool> taken(fields.size(), false);
    std::vector<std::string_view> out;
    for (const std::string& name : h) {
        for (std::size_t i = fields.size(); i-- > 0;) {
            if (!taken[i] && iequal(fields[i].name, name)) {
                taken[i] = true;
                out.push_back(fields[i].raw);
                break;
            }
        }
    }
    return out;
}

signature_field::signature_field()
    : text_("DKIM-Signature:")
    , column_(text_.size())
{
}

void signature_field::put(std::string_view piece, bool space_before)
{
    if (column_ + piece.size() + (space_before ? 1 : 0) > max_column) {
        text_ += "\r\n\t";
        column_ = 1;
    } else if (space_before) {
        text_ += ' ';
        ++column_;
    }
    text_ += piece;
    column_ += piece.size();
}

void signature_field::add(std::string_view tag, std::string_view value)
{
    const std::string first = std::string(tag) + "=";
    if (value.find(':') == std::string_view::npos) {
        put(first + std::string(value) + ";", true);
        return;
    }
    // h=: may break after any ':' (RFC 6376 §3.5: FWS around the colons).
    std::size_t pos = 0;
    bool start = true;
    while (pos <= value.size()) {
        const std::size_t colon = std::min(value.find(':', pos), value.size());
        std::string piece = start ? first : std::string();
        piece += value.substr(pos, colon - pos);
        piece += colon < value.size() ? ":" : ";";
        put(piece, start);
        start = false;
        pos = colon + 1;
    }
}

const std::string& signature_field::head()
{
    // b= starts a line unless at least a few signature octets fit beside it.
    if (column_ + 1 + 2 + 8 > max_column) {
        text_ += "\r\n\t";
        column_ = 1;
        text_ += "b=";
        column_ += 2;
    } else {
        put("b=", true);
    }
    return text_;
}

std::string signature_field::finish(std::string_view b64) const
{
    std::string out = text_;
    std::size_t column = column_;
    while (!b64.empty()) {
        if (column >= max_column) {
            out += "\r\n\t";
            column = 1;
        }
        const std::size_t n = std::min(b64.size(), max_column - column);
        out += b64.substr(0, n);
        column += n;
        b64.remove_prefix(n);
    }
    out += "\r\n";
    return out;
}

bool is_dkim_dns_name(std::string_view name) noexcept
{
    if (name.empty() || name.size() > 253)
        return false;
    std::size_t label = 0;
    for (std::size_t i = 0; i <= name.size(); ++i) {
        if (i == name.size() || name[i] == '.') {
            if (label == 0 || label > 63)
                return false;
            label = 0;
            continue;
        }
        const char c = name[i];
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'))
            return false;
        ++label;
    }
    return true;
}

} // namespace mailroom::mime::detail
