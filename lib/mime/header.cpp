#include "header.hpp"

#include "encoding.hpp"

#include <algorithm>

namespace mailroom::mime::detail {

header_writer::header_writer(std::string& out, std::string_view name)
    : out_(out)
    , line_start_(out.size())
{
    out_ += name;
    out_ += ':';
}

std::size_t header_writer::room() const noexcept
{
    const std::size_t col = out_.size() - line_start_;
    return col + 1 >= fold_width ? 0 : fold_width - col - 1;
}

void header_writer::word(std::string_view w)
{
    // Never fold before an empty word: a continuation line of white space alone is obsolete
    // syntax (RFC 5322 §4.2).
    if (!w.empty() && line_has_word_ && w.size() > room()) {
        out_ += "\r\n";
        line_start_ = out_.size();
    }
    out_ += ' ';
    out_ += w;
    line_has_word_ = true;
}

void header_writer::glue(std::string_view s) { out_ += s; }

void header_writer::finish() { out_ += "\r\n"; }

bool needs_encoding(std::string_view v) noexcept
{
    if (!is_printable_ascii(v))
        return true;
    if (v.find("=?") != std::string_view::npos)
        return true;
    if (!v.empty() && (v.front() == ' ' || v.back() == ' '))
        return true;
    std::size_t run = 0;
    for (char c : v) {
        run = c == ' ' ? 0 : run + 1;
        if (run > max_raw_word)
            return true;
    }
    return false;
}

namespace {

void write_encoded(header_writer& h, std::string_view text)
{
    std::size_t first = h.room();
    if (first < 20 || first > max_encoded_word)
        first = max_encoded_word;
    encoded_words(text, first, [&](std::string_view w) { h.word(w); });
}

inline bool is_atom_char(unsigned char c) noexcept
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) !=
           std::string_view::npos;
}

} // namespace

void write_unstructured(header_writer& h, std::string_view v)
{
    if (needs_encoding(v)) {
        write_encoded(h, v);
        return;
    }
    std::size_t pos = 0;
    while (pos <= v.size()) {
        std::size_t sp = v.find(' ', pos);
        if (sp == std::string_view::npos)
            sp = v.size();
        h.word(v.substr(pos, sp - pos));
        pos = sp + 1;
    }
}

void write_phrase(header_writer& h, std::string_view name)
{
    // A quoted-string can't be folded, so a long name is encoded instead.
    if (needs_encoding(name) || name.find("  ") != std::string_view::npos ||
        name.size() > max_raw_word) {
        write_encoded(h, name);
        return;
    }
    const bool atoms = std::all_of(name.begin(), name.end(), [](char c) {
        return c == ' ' || is_atom_char(static_cast<unsigned char>(c));
    });
    if (atoms) {
        write_unstructured(h, name);
        return;
    }
    std::string q;
    q.reserve(name.size() + 8);
    q += '"';
    for (char c : name) {
        if (c == '"' || c == '\\')
            q += '\\';
        q += c;
    }
    q += '"';
    h.word(q);
}

void write_mailbox(header_writer& h, const mailbox& m, bool last)
{
    const std::string addr = m.address().str();
    if (m.display_name().empty()) {
        h.word(addr);
    } else {
        write_phrase(h, m.display_name());
        std::string angle;
        angle.reserve(addr.size() + 2);
        angle += '<';
        angle += addr;
        angle += '>';
        h.word(angle);
    }
    if (!last)
        h.glue(",");
}

void write_mailbox_header(std::string& out, std::string_view name, std::span<const mailbox> list)
{
    header_writer h(out, name);
    for (std::size_t i = 0; i < list.size(); ++i)
        write_mailbox(h, list[i], i + 1 == list.size());
    h.finish();
}

} // namespace mailroom::mime::detail
