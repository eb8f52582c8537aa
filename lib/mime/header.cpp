#include "header.hpp"

#include "encoding.hpp"

#include "detail/utf8.hpp"

#include <algorithm>
#include <vector>

namespace mailroom::mime::detail {

using mailroom::detail::is_printable_ascii;

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

void header_writer::glue(std::string_view s)
{
    out_ += s;
}

void header_writer::finish()
{
    out_ += "\r\n";
}

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

// `fill_line`: let the first word use the rest of the current line. Phrases don't, so a short
// name stays one encoded-word (see write_phrase), unless the line can't fold before it (the
// field's first word): then it must fit what is left, or the line passes 78.
void write_encoded(header_writer& h, std::string_view text, bool fill_line)
{
    std::size_t first = h.room();
    if ((!fill_line && h.can_fold()) || first < 20 || first > max_encoded_word)
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
        write_encoded(h, v, true);
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

namespace {

// An atom that a reader will take as itself: "=?" could start an encoded-word.
bool is_atom(std::string_view w) noexcept
{
    return !w.empty() && w.find("=?") == std::string_view::npos &&
           std::all_of(w.begin(), w.end(),
                       [](char c) { return is_atom_char(static_cast<unsigned char>(c)); });
}

} // namespace

std::string quoted_string(std::string_view text)
{
    std::string q;
    q.reserve(text.size() + 8);
    q += '"';
    for (char c : text) {
        if (c == '"' || c == '\\')
            q += '\\';
        q += c;
    }
    q += '"';
    return q;
}

namespace {

// A printable-ASCII name as atoms and quoted-strings. It is cut at single spaces into pieces of
// about 60 characters, each written as its atoms or as one quoted-string, so long names fold:
// the space between two words of a phrase reads back as one space (RFC 5322 §3.2.5), while runs
// of spaces stay inside a quoted-string. False when a piece can't be cut small enough.
bool write_plain_phrase(header_writer& h, std::string_view name)
{
    constexpr std::size_t piece_target = 60;
    std::vector<std::string_view> pieces;
    std::size_t start = 0;
    for (std::size_t i = 1; i + 1 < name.size(); ++i) {
        const bool single_space = name[i] == ' ' && name[i - 1] != ' ' && name[i + 1] != ' ';
        if (single_space && i - start >= piece_target) {
            pieces.push_back(name.substr(start, i - start));
            start = i + 1;
        }
    }
    pieces.push_back(name.substr(start));
    for (std::string_view piece : pieces) {
        const auto escapes =
            std::count_if(piece.begin(), piece.end(), [](char c) { return c == '"' || c == '\\'; });
        if (piece.size() + static_cast<std::size_t>(escapes) + 2 > max_raw_word)
            return false; // nothing written yet: the caller encodes instead
    }

    for (std::string_view piece : pieces) {
        bool atoms = piece.front() != ' ' && piece.back() != ' ' &&
                     piece.find("  ") == std::string_view::npos;
        for (std::size_t p = 0; atoms && p < piece.size();) {
            const std::size_t sp = std::min(piece.find(' ', p), piece.size());
            atoms = is_atom(piece.substr(p, sp - p));
            p = sp + 1;
        }
        if (atoms) {
            write_unstructured(h, piece);
            continue;
        }
        h.word(quoted_string(piece));
    }
    return true;
}

} // namespace

void write_phrase(header_writer& h, std::string_view name)
{
    if (is_printable_ascii(name) && name.find("=?") == std::string_view::npos &&
        write_plain_phrase(h, name))
        return;
    if (name.front() == ' ' || name.back() == ' ' || name.find("  ") != std::string_view::npos) {
        write_encoded(h, name, false);
        return;
    }
    // Words that are atoms stay readable; each run of other words (with the spaces inside it)
    // becomes encoded-words. Keeping a run in as few encoded-words as possible matters: white
    // space between adjacent encoded-words is not part of the text (RFC 2047 §6.2), and some
    // parsers (CPython before gh-128110) get that wrong in display names.
    std::size_t p = 0;
    std::size_t run_start = std::string_view::npos;
    while (p <= name.size()) {
        const std::size_t sp = std::min(name.find(' ', p), name.size());
        const std::string_view w = name.substr(p, sp - p);
        // An atom longer than a line can hold is encoded too (found by fuzz-header: a
        // one-word name of 996 octets made a 1001-octet line).
        if (is_atom(w) && w.size() <= max_raw_word) {
            if (run_start != std::string_view::npos)
                write_encoded(h, name.substr(run_start, p - 1 - run_start), false);
            run_start = std::string_view::npos;
            h.word(w);
        } else if (run_start == std::string_view::npos) {
            run_start = p;
        }
        p = sp + 1;
    }
    if (run_start != std::string_view::npos)
        write_encoded(h, name.substr(run_start), false);
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
