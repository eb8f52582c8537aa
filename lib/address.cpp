// RFC 5322 §3.4 mailbox parsing with RFC 5321 §4.5.3.1 limits and RFC 6531/6532 UTF-8.
//
// One pass of a lexer turns the text into tokens; a second, over the tokens, checks the
// grammar. Both are linear in the input, and nesting is capped, so hostile input fails fast.
// Obsolete forms (CFWS inside a dot-atom, routes, quoted words in the domain) are rejected, not
// guessed at: an address means one thing here and the same thing at the server.

#include <mailroom/address.hpp>

#include "detail/base64.hpp"
#include "detail/utf8.hpp"

#include <arpa/inet.h>
#include <iconv.h>
#include <idn2.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <ostream>
#include <vector>

namespace mailroom {

namespace {

using detail::is_valid_utf8;

constexpr std::size_t max_input = 4096; // a mailbox longer than this is not an address
constexpr std::size_t max_comment_depth = 16;
constexpr std::size_t max_local = 64;   // RFC 5321 §4.5.3.1.1
constexpr std::size_t max_domain = 255; // RFC 5321 §4.5.3.1.2
constexpr std::size_t max_path = 256;   // RFC 5321 §4.5.3.1.3, with the angle brackets

enum class tok { atom, quoted, literal, special };

struct token {
    tok kind;
    std::string text;  // atom text, unescaped quoted content, literal with brackets, or the special
    bool space_before; // white space or a comment separates it from the previous token
    bool utf8;         // holds octets >= 0x80
    bool comment_before = false; // a comment is (part of) what separates it
};

struct failure {
    error code;
    const char* why;
};

inline bool is_atext(unsigned char c) noexcept
{
    // RFC 5322 §3.2.3 atext, plus UTF-8 octets (RFC 6532 §3.2).
    if (c >= 0x80)
        return true;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~': return true;
    default: return false;
    }
}

// Lexes `s` into tokens; returns a failure for anything that is not part of the grammar.
const failure* lex(std::string_view s, std::vector<token>& out)
{
    static constexpr failure ctl{error::control_character,
                                 "control character (CR, LF, NUL, TAB, ...) in the address"};
    static constexpr failure bad_utf8{error::invalid_utf8, "not valid UTF-8"};
    static constexpr failure unterminated_comment{error::invalid_address, "unterminated comment"};
    static constexpr failure deep{error::invalid_address, "comments nested too deeply"};
    static constexpr failure unterminated_quote{error::invalid_address,
                                                "unterminated quoted string"};
    static constexpr failure unterminated_literal{error::invalid_address,
                                                  "unterminated domain literal"};
    static constexpr failure stray{error::invalid_address, "character not allowed here"};

    if (detail::has_control(s))
        return &ctl;
    if (!is_valid_utf8(s))
        return &bad_utf8;

    bool space = false;
    bool comment = false;
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == ' ') {
            space = true;
            ++i;
        } else if (c == '(') {
            std::size_t depth = 0;
            for (;; ++i) {
                if (i >= s.size())
                    return &unterminated_comment;
                if (s[i] == '\\') {
                    ++i;
                    continue;
                }
                if (s[i] == '(' && ++depth > max_comment_depth)
                    return &deep;
                if (s[i] == ')' && --depth == 0)
                    break;
            }
            ++i;
            space = true;
            comment = true;
        } else if (c == '"') {
            token t{tok::quoted, {}, space, false, comment};
            for (++i;; ++i) {
                if (i >= s.size())
                    return &unterminated_quote;
                if (s[i] == '"')
                    break;
                if (s[i] == '\\' && ++i >= s.size())
                    return &unterminated_quote;
                t.utf8 |= static_cast<unsigned char>(s[i]) >= 0x80;
                t.text += s[i];
            }
            ++i;
            out.push_back(std::move(t));
            space = comment = false;
        } else if (c == '[') {
            const std::size_t end = s.find_first_of("[]\\", i + 1);
            if (end == std::string_view::npos || s[end] != ']')
                return &unterminated_literal;
            out.push_back(
                {tok::literal, std::string(s.substr(i, end + 1 - i)), space, false, comment});
            i = end + 1;
            space = comment = false;
        } else if (is_atext(c)) {
            token t{tok::atom, {}, space, false, comment};
            while (i < s.size() && is_atext(static_cast<unsigned char>(s[i]))) {
                t.utf8 |= static_cast<unsigned char>(s[i]) >= 0x80;
                t.text += s[i++];
            }
            out.push_back(std::move(t));
            space = comment = false;
        } else if (c == '<' || c == '>' || c == '@' || c == ',' || c == ':' || c == ';' ||
                   c == '.') {
            out.push_back(
                {tok::special, std::string(1, static_cast<char>(c)), space, false, comment});
            space = comment = false;
            ++i;
        } else {
            return &stray; // ')' ']' '\' outside their context
        }
    }
    return nullptr;
}

inline bool is_special(const token& t, char c) noexcept
{
    return t.kind == tok::special && t.text[0] == c;
}

bool is_dot_atom_text(std::string_view s) noexcept
{
    if (s.empty() || s.front() == '.' || s.back() == '.')
        return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c == '.') {
            if (s[i + 1] == '.')
                return false;
        } else if (!is_atext(c)) {
            return false;
        }
    }
    return true;
}

// Host name label rules (RFC 1035 §2.3.1 as relaxed by RFC 1123 §2.1).
bool is_ldh_domain(std::string_view d) noexcept
{
    if (d.empty() || d.size() > max_domain)
        return false;
    std::size_t label = 0;
    for (std::size_t i = 0; i <= d.size(); ++i) {
        if (i == d.size() || d[i] == '.') {
            if (label == 0 || label > 63 || d[i - 1] == '-' || d[i - label] == '-')
                return false;
            label = 0;
            continue;
        }
        const char c = d[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return false;
        ++label;
    }
    return true;
}

struct parsed_addr {
    std::string local; // wire form
    std::string domain;
    std::string domain_ascii;
    bool smtputf8 = false;
};

// addr-spec over tokens [b, e).
const failure* parse_addr_spec(const std::vector<token>& t, std::size_t b, std::size_t e,
                               parsed_addr& out)
{
    static constexpr failure empty{error::invalid_address, "empty address"};
    static constexpr failure no_at{error::invalid_address, "missing '@'"};
    static constexpr failure two_at{error::invalid_address, "more than one '@'"};
    static constexpr failure bad_local{error::invalid_address, "malformed local part"};
    static constexpr failure bad_domain{error::invalid_domain, "malformed domain"};
    static constexpr failure inner_space{error::invalid_address,
                                         "white space or a comment inside the address"};
    static constexpr failure trailing{error::invalid_address, "text after the domain"};
    static constexpr failure list{error::invalid_address, "a list or group, not one address"};
    static constexpr failure long_local{error::address_too_long,
                                        "local part longer than 64 octets"};
    static constexpr failure long_domain{error::address_too_long, "domain longer than 255 octets"};
    static constexpr failure long_path{error::address_too_long, "address longer than 254 octets"};
    static constexpr failure bad_idn{error::invalid_domain,
                                     "international domain name not allowed by IDNA 2008"};
    static constexpr failure bad_literal{error::invalid_domain,
                                         "domain literal is not an IPv4 or IPv6 address"};

    if (b == e)
        return &empty;
    std::size_t at = e;
    for (std::size_t i = b; i < e; ++i) {
        if (is_special(t[i], ',') || is_special(t[i], ':') || is_special(t[i], ';') ||
            is_special(t[i], '<') || is_special(t[i], '>'))
            return &list;
        if (is_special(t[i], '@')) {
            if (at != e)
                return &two_at;
            at = i;
        }
    }
    if (at == e)
        return &no_at;
    for (std::size_t i = b + 1; i < e; ++i)
        if (t[i].space_before)
            return i > at + 1 && t[i - 1].kind != tok::special ? &trailing : &inner_space;

    // Local part: one quoted-string, or atoms and dots forming a dot-atom.
    std::string local;
    if (at == b)
        return &bad_local;
    if (t[b].kind == tok::quoted) {
        if (at != b + 1)
            return &bad_local;
        const std::string& q = t[b].text;
        out.smtputf8 = t[b].utf8;
        if (is_dot_atom_text(q)) {
            local = q; // RFC 5321 §4.1.2: don't quote what needs no quotes
        } else {
            local = "\"";
            for (char c : q) {
                if (c == '"' || c == '\\')
                    local += '\\';
                local += c;
            }
            local += '"';
        }
    } else {
        for (std::size_t i = b; i < at; ++i) {
            if (t[i].kind == tok::atom) {
                out.smtputf8 |= t[i].utf8;
                local += t[i].text;
            } else if (is_special(t[i], '.')) {
                local += '.';
            } else {
                return &bad_local;
            }
        }
        if (!is_dot_atom_text(local))
            return &bad_local;
    }
    if (local.size() > max_local)
        return &long_local;

    // Domain: a dot-atom host name (maybe international), or an address literal.
    if (at + 1 == e)
        return &bad_domain;
    std::string domain;
    std::string ascii;
    if (t[at + 1].kind == tok::literal) {
        if (at + 2 != e)
            return &trailing;
        domain = t[at + 1].text;
        std::string inner = domain.substr(1, domain.size() - 2);
        unsigned char buf[sizeof(in6_addr)];
        if (inner.size() > 5 && strncasecmp(inner.c_str(), "IPv6:", 5) == 0) {
            if (inet_pton(AF_INET6, inner.c_str() + 5, buf) != 1)
                return &bad_literal;
        } else if (inet_pton(AF_INET, inner.c_str(), buf) != 1) {
            return &bad_literal;
        }
        ascii = domain;
    } else {
        bool utf8 = false;
        for (std::size_t i = at + 1; i < e; ++i) {
            if (t[i].kind == tok::atom) {
                utf8 |= t[i].utf8;
                domain += t[i].text;
            } else if (is_special(t[i], '.')) {
                domain += '.';
            } else if (is_special(t[i], '@')) {
                return &two_at;
            } else {
                return &trailing;
            }
        }
        if (domain.size() > max_domain)
            return &long_domain;
        if (utf8) {
            char* a = nullptr;
            int rc = idn2_to_ascii_8z(domain.c_str(), &a, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
            std::unique_ptr<char, decltype(&idn2_free)> guard(a, &idn2_free);
            if (rc != IDN2_OK)
                return &bad_idn;
            ascii = a;
        } else {
            ascii = domain;
        }
        if (ascii.size() > max_domain)
            return &long_domain;
        if (!is_ldh_domain(ascii))
            return &bad_domain;
    }
    if (local.size() + 1 + ascii.size() + 2 > max_path)
        return &long_path;

    out.local = std::move(local);
    out.domain = std::move(domain);
    out.domain_ascii = std::move(ascii);
    return nullptr;
}

// ---- RFC 2047 encoded-words in display names ---------------------------------------------------
//
// An atom of the form =?charset?encoding?encoded-text?= (RFC 2047 §2, §5(3)) is decoded to UTF-8.
// What the decoder doesn't know (another charset, encoding or shape, a bad escape, base64 that
// isn't canonical) stays literal text, as §6.3 allows a reader. What it decodes but must not
// keep is an error: text that isn't valid in its charset, or a control character, which no
// display name may hold (the builder refuses them in names given as text too).

// The charsets decoded, by their RFC 2047 names (case-insensitive): what converter to use, or
// nothing for a charset left as literal text.
enum class charset_kind { unknown, utf8, ascii, iconv };

charset_kind classify_charset(std::string_view cs, std::string& iconv_name)
{
    std::string lower;
    for (char c : cs)
        lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "utf-8")
        return charset_kind::utf8;
    if (lower == "us-ascii")
        return charset_kind::ascii;
    auto number = [](std::string_view digits, int& n) {
        if (digits.empty() || digits.size() > 2 || digits.front() == '0')
            return false;
        n = 0;
        for (char c : digits) {
            if (c < '0' || c > '9')
                return false;
            n = n * 10 + (c - '0');
        }
        return true;
    };
    int n = 0;
    // ISO-8859-1 to -16 (there is no -12), Windows-1250 to -1258.
    if (lower.starts_with("iso-8859-") && number(std::string_view(lower).substr(9), n) && n <= 16 &&
        n != 12) {
        iconv_name = "ISO-8859-" + std::to_string(n);
        return charset_kind::iconv;
    }
    if (lower.starts_with("windows-125") && lower.size() == 12 && lower[11] >= '0' &&
        lower[11] <= '8') {
        iconv_name = "WINDOWS-125" + std::string(1, lower[11]);
        return charset_kind::iconv;
    }
    return charset_kind::unknown;
}

// glibc's iconv, from a single-byte charset to UTF-8: it is in the C library every build links
// already, so consumers' pkg-config and CMake files gain no dependency (libunistring's
// u8_conv_from_encoding would be one more library to find and link, for the same tables). False
// when an octet has no character in that charset (Windows-1252's 0x81, ...) or the converter is
// missing.
bool iconv_to_utf8(const std::string& charset, std::string_view in, std::string& out)
{
    iconv_t cd = iconv_open("UTF-8", charset.c_str());
    if (cd == reinterpret_cast<iconv_t>(-1))
        return false;
    out.assign(in.size() * 4 + 4, '\0'); // a single-byte charset's character: at most 3 octets
    char* src = const_cast<char*>(in.data());
    std::size_t src_left = in.size();
    char* dst = out.data();
    std::size_t dst_left = out.size();
    const std::size_t r = iconv(cd, &src, &src_left, &dst, &dst_left);
    const bool ok = r != static_cast<std::size_t>(-1) && src_left == 0 &&
                    iconv(cd, nullptr, nullptr, &dst, &dst_left) != static_cast<std::size_t>(-1);
    iconv_close(cd);
    out.resize(out.size() - dst_left);
    return ok;
}

int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

// RFC 2047 §4.2: '_' is a space, =XX an octet; false for a broken escape.
bool q_decode(std::string_view in, std::string& out)
{
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '_') {
            out += ' ';
        } else if (in[i] == '=') {
            if (i + 2 >= in.size())
                return false;
            const int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else {
            out += in[i];
        }
    }
    return true;
}

// Decodes `atom` into `out` when it is an encoded-word (`decoded` set); leaves both alone when
// it is not one. Returns a failure for one whose text is not valid or holds a control.
const failure* decode_encoded_word(std::string_view atom, std::string& out, bool& decoded)
{
    static constexpr failure bad_charset{error::invalid_utf8,
                                         "an encoded-word is not valid text in its charset"};
    static constexpr failure ctl{error::control_character,
                                 "an encoded-word decodes to a control character"};
    decoded = false;
    if (atom.size() < 8 || !atom.starts_with("=?") || !atom.ends_with("?="))
        return nullptr;
    const std::string_view inner = atom.substr(2, atom.size() - 4);
    const std::size_t q1 = inner.find('?');
    if (q1 == std::string_view::npos || q1 + 2 >= inner.size() || inner[q1 + 2] != '?')
        return nullptr;
    std::string_view charset = inner.substr(0, q1);
    const char enc = inner[q1 + 1];
    const std::string_view text = inner.substr(q1 + 3);
    if (text.empty() || text.find('?') != std::string_view::npos)
        return nullptr;
    charset = charset.substr(0, charset.find('*')); // RFC 2231 §5: charset*language
    std::string iconv_name;
    const charset_kind kind = classify_charset(charset, iconv_name);
    if (kind == charset_kind::unknown)
        return nullptr;
    std::string raw;
    if (enc == 'Q' || enc == 'q') {
        if (!q_decode(text, raw))
            return nullptr;
    } else if (enc == 'B' || enc == 'b') {
        auto b = detail::base64_decode(text);
        if (!b)
            return nullptr;
        raw = std::move(*b);
    } else {
        return nullptr;
    }
    std::string utf8;
    switch (kind) {
    case charset_kind::utf8:
        if (!is_valid_utf8(raw))
            return &bad_charset;
        utf8 = std::move(raw);
        break;
    case charset_kind::ascii:
        if (std::any_of(raw.begin(), raw.end(),
                        [](char c) { return static_cast<unsigned char>(c) >= 0x80; }))
            return &bad_charset;
        utf8 = std::move(raw);
        break;
    default:
        if (!iconv_to_utf8(iconv_name, raw, utf8))
            return &bad_charset;
        break;
    }
    // C0 (TAB, CR, LF, NUL, ...), DEL and C1: a name with them would smuggle line breaks or
    // terminal escapes to whoever shows it.
    if (detail::has_control(utf8))
        return &ctl;
    out += utf8;
    decoded = true;
    return nullptr;
}

template <class T> result<T> fail(const failure* f, diagnostics& diag)
{
    diag.detail = f->why;
    return make_error_code(f->code);
}

const failure* check_size(std::string_view text)
{
    static constexpr failure too_long{error::address_too_long, "longer than 4096 octets"};
    return text.size() > max_input ? &too_long : nullptr;
}

} // namespace

std::string address::str() const
{
    std::string s;
    s.reserve(local_.size() + 1 + domain_ascii_.size());
    s += local_;
    s += '@';
    s += domain_ascii_;
    return s;
}

result<address> address::parse(std::string_view text, diagnostics& diag)
{
    if (auto f = check_size(text))
        return fail<address>(f, diag);
    std::vector<token> toks;
    if (auto f = lex(text, toks))
        return fail<address>(f, diag);
    parsed_addr p;
    if (auto f = parse_addr_spec(toks, 0, toks.size(), p))
        return fail<address>(f, diag);
    address a;
    a.local_ = std::move(p.local);
    a.domain_ = std::move(p.domain);
    a.domain_ascii_ = std::move(p.domain_ascii);
    a.smtputf8_ = p.smtputf8;
    return a;
}

result<address> address::parse(std::string_view text)
{
    diagnostics d;
    return parse(text, d);
}

result<mailbox> mailbox::parse(std::string_view text, diagnostics& diag)
{
    static constexpr failure two_angles{error::invalid_address, "more than one '<'"};
    static constexpr failure unclosed{error::invalid_address, "'<' without '>'"};
    static constexpr failure after{error::invalid_address, "text after '>'"};
    static constexpr failure bad_name{error::invalid_address,
                                      "display name holds characters that need quotes"};

    if (auto f = check_size(text))
        return fail<mailbox>(f, diag);
    std::vector<token> toks;
    if (auto f = lex(text, toks))
        return fail<mailbox>(f, diag);

    std::size_t open = toks.size();
    for (std::size_t i = 0; i < toks.size(); ++i) {
        if (is_special(toks[i], '<')) {
            if (open != toks.size())
                return fail<mailbox>(&two_angles, diag);
            open = i;
        }
    }
    parsed_addr p;
    std::string name;
    if (open == toks.size()) {
        if (auto f = parse_addr_spec(toks, 0, toks.size(), p))
            return fail<mailbox>(f, diag);
    } else {
        std::size_t close = open + 1;
        while (close < toks.size() && !is_special(toks[close], '>'))
            ++close;
        if (close == toks.size())
            return fail<mailbox>(&unclosed, diag);
        if (close + 1 != toks.size())
            return fail<mailbox>(&after, diag);
        // A leading space inside the brackets is CFWS; the address itself must be tight.
        std::vector<token> inner(toks.begin() + static_cast<std::ptrdiff_t>(open) + 1,
                                 toks.begin() + static_cast<std::ptrdiff_t>(close));
        if (!inner.empty())
            inner.front().space_before = false;
        if (auto f = parse_addr_spec(inner, 0, inner.size(), p))
            return fail<mailbox>(f, diag);
        // Display name: words (atoms, quoted strings) and the dots of "John Q. Public". An atom
        // may be an encoded-word (RFC 2047 §5(1)); inside a quoted string "=?...?=" is text.
        bool after_word = false; // the token before was a decoded encoded-word
        for (std::size_t i = 0; i < open; ++i) {
            const token& t = toks[i];
            if (t.kind == tok::special && !is_special(t, '.'))
                return fail<mailbox>(&bad_name, diag);
            if (t.kind == tok::literal)
                return fail<mailbox>(&bad_name, diag);
            std::string word;
            bool is_word = false;
            if (t.kind == tok::atom)
                if (auto f = decode_encoded_word(t.text, word, is_word))
                    return fail<mailbox>(f, diag);
            // RFC 2047 §6.2: white space between two encoded-words is not shown; a comment
            // between them is not white space, so it still separates them.
            const bool joined = is_word && after_word && !t.comment_before;
            if (i > 0 && t.space_before && !joined)
                name += ' ';
            name += is_word ? word : t.text;
            after_word = is_word;
        }
    }
    mailroom::address a;
    a.local_ = std::move(p.local);
    a.domain_ = std::move(p.domain);
    a.domain_ascii_ = std::move(p.domain_ascii);
    a.smtputf8_ = p.smtputf8;
    return mailbox(std::move(a), std::move(name));
}

result<mailbox> mailbox::parse(std::string_view text)
{
    diagnostics d;
    return parse(text, d);
}

std::ostream& operator<<(std::ostream& os, const address& a)
{
    return os << a.str();
}

std::ostream& operator<<(std::ostream& os, const mailbox& m)
{
    if (!m.display_name().empty())
        os << '"' << m.display_name() << "\" ";
    return os << '<' << m.address() << '>';
}

} // namespace mailroom
